"""End-to-end scoring time, somna against YASA's ``SleepStaging``, on the same synthetic EDF nights.

EDF in → hypnogram + sleep metrics out, for an 8-h and a 22-h night in Sleep-EDF SC layout, measured
in the same run on the same machine (median of ``--repeats`` runs each, after one warm-up; the tools
take turns within each repeat, so a slow spell of the machine falls on all of them alike):
- somna, torch backend (what ``somna score`` does by default): ``somna.scoring.score_psg`` (read with
  edfio, preprocess, stage with the default-size model, sleep metrics);
- somna, ONNX backend (``somna score --backend onnx`` after ``somna export --onnx``): the same, with the
  model run by onnxruntime (skipped when onnxruntime is not installed);
- YASA: ``mne.io.read_raw_edf`` (EEG Fpz-Cz + EOG), ``yasa.SleepStaging(...).predict()``,
  ``Hypnogram.sleep_statistics()``.
For the torch backend the time is also split into reading the EDF, staging (the model alone, on the
preprocessed night) and the rest (sleep-window guess, filtering, normalisation, metrics).
Weights do not change the time; without ``--model`` a default-size model with random weights is saved
as a checkpoint and scored like a trained one (said in the JSON). ``--compare-width W`` (default 8)
also times the same design with a CNN of width W (random weights, the measured model's
preprocessing), to show what a narrower encoder would buy. Target (issue: streaming, edge and
benchmarks): somna ≥ 10× faster.

Run: ``.venv/bin/python benchmarks/vs_yasa_speed.py [--model runs/demo/model] [--repeats 3]``
Writes ``benchmarks/results/vs_yasa_speed.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result

from somna.config import PreprocessConfig
from somna.data.sequences import NightArrays
from somna.demo import DEMO_EXPERIMENT
from somna.hypnogram import Hypnogram
from somna.io import read_psg
from somna.io.recording import SLEEP_EDF_CHANNELS
from somna.models import StagingNetwork
from somna.preprocess import preprocess_night
from somna.scoring import score_psg
from somna.stages import AASM, UNSCORED
from somna.staging import SleepStager, load_stager
from somna.synth import write_synthetic_cohort
from somna.models.checkpoint import save_checkpoint


def _yasa(psg: Path) -> None:
    import mne
    import yasa

    mne.set_log_level("ERROR")
    raw = mne.io.read_raw_edf(psg, include=["EEG Fpz-Cz", "EOG horizontal"], preload=True)
    hypno = yasa.SleepStaging(raw, eeg_name="EEG Fpz-Cz", eog_name="EOG horizontal").predict()
    hypno.sleep_statistics()


def _interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time of each function, run in turn within every repeat (after one warm-up each), so that
    a slow spell of the machine falls on all of them alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    return _interleaved_medians({"fn": fn}, repeats)["fn"]


def _random_checkpoint(path: Path, preprocess: dict, **sizes: int) -> Path:
    """The default design (``sizes`` overriding the demo's), random weights: scoring time does not
    depend on them."""
    config = DEMO_EXPERIMENT.model_config({"eeg": 2, "eog": 1, "emg": 1}, 3000, 30, 5)
    torch.manual_seed(0)
    return save_checkpoint(path, StagingNetwork(replace(config, **sizes)).eval(), AASM, preprocess)


def _model_path(model: Path | None, work: Path) -> tuple[Path, str]:
    if model is not None:
        return model, str(model)
    path = _random_checkpoint(work / "random-model.pt", vars(PreprocessConfig()))
    return path, "random (default-size model; weights do not change the time)"


def _width_stager(width: int, preprocess: dict, work: Path) -> SleepStager:
    """The default design at another CNN width, with the measured model's preprocessing."""
    return SleepStager.from_run(
        _random_checkpoint(work / f"random-width{width}.pt", preprocess, cnn_width=width)
    )


def _onnx_stager(model: Path, work: Path) -> SleepStager | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    from somna.export import export_onnx

    export_onnx(model, work / "onnx")
    return load_stager(work / "onnx", "onnx")


def _split(psg: Path, stager: SleepStager, repeats: int) -> dict[str, float]:
    """Median time of reading alone and of the model alone (on the preprocessed night)."""
    recording = read_psg(psg, channels=SLEEP_EDF_CHANNELS, modalities=stager.modalities)
    read_s = _median_time(lambda: read_psg(psg, SLEEP_EDF_CHANNELS, stager.modalities), repeats)
    config = PreprocessConfig(**{**stager.preprocess, "trim_wake_min": None})
    n_epochs = recording.n_epochs(config.epoch_s)
    unscored = Hypnogram(np.full(n_epochs, UNSCORED, dtype=np.int8), AASM)
    epoched = preprocess_night(recording, unscored, config, stager.modalities)
    night = NightArrays(epoched.record, epoched.subject_id, epoched.signals, np.zeros(n_epochs, np.int64))
    model_s = _median_time(lambda: stager.predict(night), repeats)
    return {"read_edf_s": read_s, "model_s": model_s, "n_epochs": n_epochs}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="run folder or checkpoint (default: random)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/somna-bench/vs-yasa"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--compare-width",
        type=int,
        default=8,
        help="also time a model whose CNN has this width (random weights; 0: skip)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nights = {}
    for hours, label in ((8.0, "8h"), (None, "22h")):
        folder = args.work / label
        if not any(folder.glob("*-PSG.edf")):
            write_synthetic_cohort(folder, n_subjects=1, seed=7, nights=1, hours=hours, progress=False)
        nights[label] = sorted(folder.glob("*-PSG.edf"))[0]
    model_path, weights = _model_path(args.model, args.work)
    stager = SleepStager.from_run(model_path)
    onnx = _onnx_stager(model_path, args.work)
    narrow = _width_stager(args.compare_width, stager.preprocess, args.work) if args.compare_width else None
    rows = {}
    for label, psg in nights.items():
        row: dict[str, object] = {"psg": psg.name}
        runs: dict[str, Callable[[], object]] = {
            "somna": lambda p=psg: score_psg(p, stager),
            "yasa": lambda p=psg: _yasa(p),
        }
        if onnx is not None:
            runs["onnx"] = lambda p=psg: score_psg(p, onnx)
        if narrow is not None:
            runs["narrow"] = lambda p=psg: score_psg(p, narrow)
        medians = _interleaved_medians(runs, args.repeats)
        somna_s, yasa_s = medians["somna"], medians["yasa"]
        split = _split(psg, stager, args.repeats)
        row |= {
            "n_epochs": split["n_epochs"],
            "somna_s": somna_s,
            "somna_split_s": {
                "read_edf": split["read_edf_s"],
                "model": split["model_s"],
                "window_filter_normalise_metrics": somna_s - split["read_edf_s"] - split["model_s"],
            },
            "yasa_s": yasa_s,
            "speedup": yasa_s / somna_s,
        }
        line = f"{label}: somna {somna_s:.2f} s ({yasa_s / somna_s:.1f}x)"
        if onnx is not None:
            onnx_s = medians["onnx"]
            row |= {"somna_onnx_s": onnx_s, "speedup_onnx": yasa_s / onnx_s}
            line += f", somna ONNX {onnx_s:.2f} s ({yasa_s / onnx_s:.1f}x)"
        if narrow is not None:
            key = f"width{args.compare_width}"
            narrow_s = medians["narrow"]
            row |= {f"somna_{key}_s": narrow_s, f"speedup_{key}": yasa_s / narrow_s}
            line += f", somna CNN width {args.compare_width} {narrow_s:.2f} s ({yasa_s / narrow_s:.1f}x)"
        rows[label] = row
        print(f"{line}, YASA {yasa_s:.2f} s")
    best = [max(r["speedup"], r.get("speedup_onnx", 0.0)) for r in rows.values()]  # type: ignore[type-var]
    write_result(
        "vs_yasa_speed",
        {
            "nights": rows,
            "model": weights,
            "threads": args.threads,
            "compare_width": args.compare_width or None,
            "preprocess_stats_samples": stager.preprocess["stats_samples"],
            "target_speedup": 10.0,
            "meets_target": all(b >= 10 for b in best),
        },
    )


if __name__ == "__main__":
    main()
