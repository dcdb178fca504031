"""Scoring time, somna against YASA's ``SleepStaging``, on the same synthetic EDF nights.

The same job for both tools: read the EDF, stage every 30-s epoch, compute the night's sleep statistics,
write the hypnogram as CSV. Measured two ways, on an 8-h and a 22-h night in Sleep-EDF SC layout:

- **whole process** (what a user waits for): ``somna score PSG --model M --no-report`` (which also writes
  the probabilities, an EDF+ hypnogram and metrics.json) against a Python process that reads the EDF with
  MNE, runs ``yasa.SleepStaging(...).predict()``, ``Hypnogram.sleep_statistics()`` and writes the CSV;
  interpreter start-up and imports included;
- **in process** (imports and model loading excluded): ``Stager.predict`` + ``sleep_metrics`` +
  ``Hypnogram.to_csv`` against the same YASA calls.

Each for somna's default backend (``auto``: the run's ONNX export, no torch) and for the torch backend.
The tools take turns within each repeat (after one warm-up each), so that a slow spell of the machine
falls on all of them alike; medians are reported. Weights do not change the time: without ``--model`` a
default-size model with random weights is saved as a run and exported, as training does. Target (issue
12): whole-process somna ≥ 8× faster than YASA.

Run: ``.venv/bin/python benchmarks/vs_yasa_speed.py [--model runs/demo/model] [--repeats 5]``
Writes ``benchmarks/results/vs_yasa_speed.json``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result

from somna.synth import write_synthetic_cohort

YASA_JOB = """
import json, sys
import mne, yasa
psg, out = sys.argv[1], sys.argv[2]
raw = mne.io.read_raw_edf(psg, include=["EEG Fpz-Cz", "EOG horizontal"], preload=True, verbose="error")
hypnogram = yasa.SleepStaging(raw, eeg_name="EEG Fpz-Cz", eog_name="EOG horizontal").predict()
stats = hypnogram.sleep_statistics()
hypnogram.hypno.to_csv(out + "/hypnogram.csv")
with open(out + "/stats.json", "w") as fh:
    json.dump({k: float(v) for k, v in stats.items()}, fh)
"""


def _yasa_in_process(psg: Path, out: Path) -> None:
    import mne
    import yasa

    raw = mne.io.read_raw_edf(psg, include=["EEG Fpz-Cz", "EOG horizontal"], preload=True, verbose="error")
    hypnogram = yasa.SleepStaging(raw, eeg_name="EEG Fpz-Cz", eog_name="EOG horizontal").predict()
    hypnogram.sleep_statistics()
    hypnogram.hypno.to_csv(out / "yasa.csv")


def _somna_in_process(stager: object, psg: Path, out: Path) -> None:
    hypnogram = stager.predict(psg)  # type: ignore[attr-defined]
    hypnogram.sleep_metrics()
    hypnogram.to_csv(out / "somna.csv")


def _interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time of each function, run in turn within every repeat (after one warm-up each)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _process(cmd: list[str]) -> Callable[[], object]:
    return lambda: subprocess.run(cmd, check=True, capture_output=True)


def _score_options(model: Path, backend: str, out: Path) -> list[str]:
    return [
        "--model",
        str(model),
        "--backend",
        backend,
        "--out",
        str(out / backend),
        "--no-report",
        "--force",
    ]


def _random_run(work: Path) -> Path:
    """A run folder holding a default-size model with random weights, exported to ONNX as training does."""
    import json

    import torch

    from somna.config import ModelConfig, PreprocessConfig
    from somna.io.channels import SLEEP_EDF_CHANNELS
    from somna.models.checkpoint import save_checkpoint
    from somna.models.network import StagingNetwork
    from somna.models.onnx import export_run
    from somna.stages import AASM

    run = work / "random-run"
    torch.manual_seed(0)
    save_checkpoint(
        run / "fold_00" / "best.pt",
        StagingNetwork(ModelConfig()).eval(),
        AASM,
        vars(PreprocessConfig()),
        channels=SLEEP_EDF_CHANNELS,
    )
    (run / "experiment.json").write_text(json.dumps({"experiment": {"data": {"label_set": "aasm"}}}))
    export_run(run)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="run folder (default: random weights)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "somna-bench" / "vs-yasa")
    args = parser.parse_args()

    from somna.inference import load_stager

    nights = {}
    for hours, label in ((8.0, "8h"), (None, "22h")):
        folder = args.work / label
        if not any(folder.glob("*-PSG.edf")):
            write_synthetic_cohort(
                folder, n_subjects=1, seed=7, nights=1, hours=hours, progress=False, variation="textbook"
            )
        nights[label] = sorted(folder.glob("*-PSG.edf"))[0]
    model = args.model or _random_run(args.work)
    weights = str(args.model) if args.model else "random (default-size model; weights do not change the time)"
    stagers = {backend: load_stager(model, backend) for backend in ("auto", "torch")}
    out = args.work / "out"
    out.mkdir(parents=True, exist_ok=True)
    somna = [sys.executable, "-m", "somna", "score"]
    rows = {}
    for label, psg in nights.items():
        whole = _interleaved_medians(
            {
                "yasa": _process([sys.executable, "-c", YASA_JOB, str(psg), str(out)]),
                **{
                    backend: _process([*somna, str(psg), *_score_options(model, backend, out)])
                    for backend in stagers
                },
            },
            args.repeats,
        )
        inside = _interleaved_medians(
            {
                "yasa": lambda p=psg: _yasa_in_process(p, out),
                **{b: (lambda s=s, p=psg: _somna_in_process(s, p, out)) for b, s in stagers.items()},
            },
            args.repeats,
        )
        row = {"psg": psg.name, "n_epochs": len(stagers["auto"].predict(psg))}
        for backend, stager in stagers.items():
            name = f"{backend} ({stager.backend})"
            row[name] = {
                "whole_process_s": whole[backend],
                "whole_process_speedup": whole["yasa"] / whole[backend],
                "in_process_s": inside[backend],
                "in_process_speedup": inside["yasa"] / inside[backend],
            }
            times = row[name]
            print(
                f"{label} {name}: whole process {whole[backend]:.2f} s "
                f"({times['whole_process_speedup']:.1f}x "
                f"YASA's {whole['yasa']:.2f} s); in process {inside[backend]:.3f} s "
                f"({times['in_process_speedup']:.1f}x YASA's {inside['yasa']:.2f} s)"
            )
        row["yasa"] = {"whole_process_s": whole["yasa"], "in_process_s": inside["yasa"]}
        rows[label] = row
    default = f"auto ({stagers['auto'].backend})"
    write_result(
        "vs_yasa_speed",
        {
            "data": "synthetic Sleep-EDF SC-layout nights (somna synth, seed 7): an 8-h and a 22-h recording",
            "job": "read EDF, stage every epoch, sleep statistics, hypnogram CSV",
            "nights": rows,
            "model": weights,
            "repeats": args.repeats,
            "target": "whole-process somna >= 8x faster than YASA (default backend)",
            "meets_target": all(r[default]["whole_process_speedup"] >= 8 for r in rows.values()),
        },
    )


if __name__ == "__main__":
    main()
