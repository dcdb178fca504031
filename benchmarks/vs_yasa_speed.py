"""End-to-end scoring time, somna against YASA's ``SleepStaging``, on the same synthetic EDF nights.

EDF in → hypnogram + sleep metrics out, for an 8-h and a 22-h night in Sleep-EDF SC layout, measured
in the same run on the same machine (median of ``--repeats`` runs each, after one warm-up):
- somna: ``somna.scoring.score_psg`` (read with edfio, preprocess, stage with the default-size model,
  sleep metrics);
- YASA: ``mne.io.read_raw_edf`` (EEG Fpz-Cz + EOG), ``yasa.SleepStaging(...).predict()``,
  ``Hypnogram.sleep_statistics()``.
Weights do not change somna's speed; without ``--model`` a default-size model with random weights is
used (said in the JSON). Target (issue: streaming, edge and benchmarks): somna ≥ 10× faster.

Run: ``.venv/bin/python benchmarks/vs_yasa_speed.py [--model runs/demo/model] [--repeats 3]``
Writes ``benchmarks/results/vs_yasa_speed.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result

from somna.demo import DEMO_EXPERIMENT
from somna.models import SequenceStager
from somna.scoring import score_psg
from somna.staging import SleepStager
from somna.synth import write_synthetic_cohort


def _somna(psg: Path, stager: SleepStager) -> None:
    score_psg(psg, stager)


def _yasa(psg: Path) -> None:
    import mne
    import yasa

    mne.set_log_level("ERROR")
    raw = mne.io.read_raw_edf(psg, include=["EEG Fpz-Cz", "EOG horizontal"], preload=True)
    hypno = yasa.SleepStaging(raw, eeg_name="EEG Fpz-Cz", eog_name="EOG horizontal").predict()
    hypno.sleep_statistics()


def _median_time(fn: Callable[..., None], *args: object, repeats: int) -> float:
    fn(*args)  # warm-up: imports, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="run folder or checkpoint (default: random)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/somna-bench/vs-yasa"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nights = {}
    for hours, label in ((8.0, "8h"), (None, "22h")):
        folder = args.work / label
        if not any(folder.glob("*-PSG.edf")):
            write_synthetic_cohort(folder, n_subjects=1, seed=7, nights=1, hours=hours, progress=False)
        nights[label] = sorted(folder.glob("*-PSG.edf"))[0]
    if args.model is not None:
        stager, weights = SleepStager.from_run(args.model), str(args.model)
    else:
        config = DEMO_EXPERIMENT.model_config({"eeg": 2, "eog": 1, "emg": 1}, 3000, 30, 5)
        model = SequenceStager(config).eval()
        stager = SleepStager([{"model": model}], "aasm", config.modalities, {"trim_wake_min": 30.0})
        weights = "random (default-size model; weights do not change the time)"
    rows = {}
    for label, psg in nights.items():
        somna_s = _median_time(_somna, psg, stager, repeats=args.repeats)
        yasa_s = _median_time(_yasa, psg, repeats=args.repeats)
        rows[label] = {"psg": psg.name, "somna_s": somna_s, "yasa_s": yasa_s, "speedup": yasa_s / somna_s}
        print(f"{label}: somna {somna_s:.2f} s, YASA {yasa_s:.2f} s, somna {yasa_s / somna_s:.1f}x faster")
    write_result(
        "vs_yasa_speed",
        {
            "nights": rows,
            "model": weights,
            "threads": args.threads,
            "target_speedup": 10.0,
            "meets_target": all(r["speedup"] >= 10 for r in rows.values()),
        },
    )


if __name__ == "__main__":
    main()
