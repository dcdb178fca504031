"""Accuracy of somna's 5-class model on held-out synthetic subjects, beside YASA's pretrained stager.

A synthetic cohort (Sleep-EDF SC layout) is split subject-wise into train / validation / test with the
packaged ``demo`` experiment's settings (``somna.config.load_experiment("demo")``); somna trains on the
training subjects (``somna.training.experiment.run_experiment``, holdout mode, no ONNX export), and both
somna (the run's test predictions) and YASA's ``SleepStaging`` (EEG Fpz-Cz + EOG, pretrained on NSRR,
not retrained) score the same test nights, trimmed to the sleep period ± 30 min.

Run: ``.venv/bin/python benchmarks/model_accuracy.py [--subjects 10] [--work /tmp/somna-bench/accuracy]``
Writes ``benchmarks/results/model_accuracy.json`` (``--out`` another folder).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, synthetic_cohort, write_result, yasa_stages

from somna.config import load_experiment
from somna.data import Cohort
from somna.evaluation.agreement import epoch_agreement
from somna.report.run import format_comparison_table
from somna.stages import AASM, UNSCORED
from somna.training.experiment import run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--seed", type=int, default=202, help="seed of the synthetic cohort")
    parser.add_argument("--work", type=Path, default=Path("/tmp/somna-bench/accuracy"))
    parser.add_argument(
        "--run",
        type=Path,
        default=None,
        help="an existing holdout run (5-class) to use "
        "instead of synthesising and training; its cohort must still exist",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON result")
    args = parser.parse_args()
    if args.run is None:
        cohort = synthetic_cohort(args.work, n_subjects=args.subjects, seed=args.seed)
        demo = load_experiment("demo")
        experiment = replace(
            demo, name="accuracy-benchmark", data=replace(demo.data, cache=str(args.work / "cache"))
        )
        t0 = time.perf_counter()
        run_experiment(experiment, args.work / "run", mode="holdout", export=False)
        train_s: float | None = time.perf_counter() - t0
        run = args.work / "run"
    else:
        run, train_s = args.run, None
        cohort = Cohort.open(json.loads((run / "experiment.json").read_text())["cohort"])

    with np.load(run / "fold_00" / "predictions.npz", allow_pickle=False) as data:
        records, y_true, somna_pred = (
            data["record"],
            data["y_true"].astype(np.int64),
            data["y_pred"].astype(np.int64),
        )
    yasa_pred = np.empty_like(y_true)
    for record in np.unique(records):
        entry = next(e for e in cohort.entries if e.record == record)
        rows = records == record
        yasa_pred[rows] = yasa_stages(Path(entry.psg), entry.first_epoch, entry.n_epochs)
    scored = y_true != UNSCORED
    results = {
        "somna (trained on synthetic subjects)": epoch_agreement(y_true[scored], somna_pred[scored], AASM),
        "YASA SleepStaging (pretrained)": epoch_agreement(y_true[scored], yasa_pred[scored], AASM),
    }
    table = format_comparison_table(results)
    n_nights = len(np.unique(records))
    print(f"\nHeld-out synthetic subjects ({n_nights} nights, {int(scored.sum())} epochs):\n{table}")
    write_result(
        "model_accuracy",
        {
            "cohort": {"path": str(cohort.root), "subjects": len(cohort.subjects), "nights": len(cohort)},
            "run": str(run),
            "test_records": sorted(map(str, np.unique(records))),
            "train_and_test_s": train_s,
            "table": table,
            "results": {
                name: {
                    k: r[k]
                    for k in ("n_epochs", "accuracy", "cohen_kappa", "macro_f1", "per_class", "confusion")
                }
                for name, r in results.items()
            },
        },
        args.out,
    )


if __name__ == "__main__":
    main()
