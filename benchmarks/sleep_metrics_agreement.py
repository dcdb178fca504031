"""Sleep metrics on whole recordings: somna's estimates against the scored hypnogram, same time in bed.

Every held-out night is staged end to end from its raw, day-long EDF file (``score_psg``: the model's
hypnogram and metrics), with its lights off and on from the cohort's lights table, and its metrics are
compared with the scored hypnogram's over the same time in bed: bias, MAE, 95 % limits of agreement,
median and largest absolute error of TST, sleep latency (SOL), latency to persistent sleep (LPS), REM
latency, WASO and sleep efficiency.

* ``--run RUN``: a holdout run (the demo's ``runs/demo/model``): its test nights with its model;
* ``--cv RUN``: a cross-validation run (``somna cv --config demo``): every fold's test nights, each with
  its own fold's model, so every night of the cohort is staged by a model that never saw its subject.

``--edf`` is the folder of the cohort's EDF files and ``lights.csv`` (the demo's ``runs/demo/edf``).
REM latency is reported with each ``--rem-min-epochs`` rule given: 3 (``somna score``'s default for a model's
hypnogram) and 1 (the AASM's first REM epoch), applied to the scored and the estimated hypnogram alike.

Targets (issue 14): median |error| of SOL ≤ 10 min and none > 30, TST ≤ 15 min, SE ≤ 3 points, WASO ≤ 15
min, REM latency ≤ 15 min. The nights are synthetic (somna's generator): the numbers say how the metric
pipeline behaves around a model of this accuracy, not how it does on real recordings.

Run::

    .venv/bin/python benchmarks/sleep_metrics_agreement.py --run runs/demo/model --cv runs/demo-cv \\
        --edf runs/demo/edf

Writes ``benchmarks/results/sleep_metrics_agreement.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result

from somna.evaluation.metric_agreement import metric_agreement
from somna.evaluation.sleep_metrics import sleep_metrics
from somna.inference import load_stager
from somna.inference.scoring import ScoreOptions, score_psg
from somna.io.lights import read_lights_table
from somna.io.sleepedf import find_sleep_edf_pairs

METRICS = {
    "TST": "tst_min",
    "SOL": "sleep_latency_min",
    "LPS": "persistent_sleep_latency_min",
    "REM latency": "rem_latency_min",
    "WASO": "waso_min",
    "SE": "sleep_efficiency_pct",
}
TARGETS = {"SOL": 10.0, "TST": 15.0, "SE": 3.0, "WASO": 15.0, "REM latency": 15.0}
SOL_MAX = 30.0


def _held_out(run: Path) -> list[tuple[Path, list[str]]]:
    """(model folder, test subjects) of each fold of a run."""
    experiment = json.loads((run / "experiment.json").read_text())
    folds = experiment["folds"]
    if len(folds) == 1:
        return [(run, folds[0]["test"])]
    return [(run / f"fold_{fold['index']:02d}", fold["test"]) for fold in folds]


def _score(
    models: list[tuple[Path, list[str]]], edf: Path, rem_rules: list[int]
) -> dict[int, list[dict[str, Any]]]:
    pairs = find_sleep_edf_pairs(edf)
    table = read_lights_table(edf / "lights.csv")
    nights: dict[int, list[dict[str, Any]]] = {rule: [] for rule in rem_rules}
    for model, subjects in models:
        stager = load_stager(model)
        for pair in pairs:
            if pair.id.subject_id not in subjects:
                continue
            options = ScoreOptions(table=table, table_name="lights.csv", rem_min_epochs=rem_rules[0])
            scored = score_psg(pair.psg, stager, reference=pair.hypnogram, options=options)
            for rule in rem_rules:  # the other rules: the same hypnograms, metrics taken again
                estimated = scored.hypnogram.sleep_metrics(rem_min_epochs=rule)
                reference = sleep_metrics(scored.reference, rem_min_epochs=rule)
                nights[rule].append(
                    {
                        "night": Path(pair.psg).name,
                        "model": str(model),
                        "kappa": scored.agreement["cohen_kappa"] if scored.agreement else None,
                        "time_in_bed": scored.metrics["time_in_bed"]["description"],
                        "scored": {k: reference[k] for k in METRICS.values()},
                        "estimated": {k: estimated[k] for k in METRICS.values()},
                    }
                )
            row = nights[rem_rules[0]][-1]
            errors = ", ".join(
                f"{name} {_error(row, key):+.1f}" if _error(row, key) is not None else f"{name} –"
                for name, key in METRICS.items()
            )
            print(f"{row['night']}: kappa {row['kappa']:.3f}; estimated − scored: {errors}")
    return nights


def _error(row: dict[str, Any], key: str) -> float | None:
    s, e = row["scored"][key], row["estimated"][key]
    return None if s is None or e is None else float(e) - float(s)


def _summary(nights: list[dict[str, Any]]) -> dict[str, Any]:
    agreement = metric_agreement(
        [n["scored"] for n in nights], [n["estimated"] for n in nights], list(METRICS.values())
    )
    out = {}
    for name, key in METRICS.items():
        errors = np.array([e for n in nights if (e := _error(n, key)) is not None])
        entry = {
            **{k: agreement[key][k] for k in ("n", "bias", "mae", "loa_lower", "loa_upper", "pearson_r")},
            "median_abs_error": float(np.median(np.abs(errors))) if errors.size else None,
            "max_abs_error": float(np.max(np.abs(errors))) if errors.size else None,
        }
        if name in TARGETS:
            entry["target_median_abs_error"] = TARGETS[name]
            entry["target_met"] = entry["median_abs_error"] is not None and (
                entry["median_abs_error"] <= TARGETS[name]
                and (name != "SOL" or entry["max_abs_error"] <= SOL_MAX)
            )
        out[name] = entry
    return out


def _table(summary: dict[str, Any]) -> str:
    lines = [
        "| metric | n | bias | MAE | median abs error | largest | 95 % limits | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in summary.items():

        def f(v: float | None) -> str:
            return "–" if v is None else f"{v:+.1f}" if v < 0 else f"{v:.1f}"

        target = "" if "target_met" not in e else ("met" if e["target_met"] else "missed")
        lines.append(
            f"| {name} | {e['n']} | {f(e['bias'])} | {f(e['mae'])} | {f(e['median_abs_error'])} | "
            f"{f(e['max_abs_error'])} | {f(e['loa_lower'])} to {f(e['loa_upper'])} | {target} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=None, help="a holdout run folder (its test nights)")
    parser.add_argument("--cv", type=Path, default=None, help="a cross-validation run folder")
    parser.add_argument("--edf", type=Path, required=True, help="the cohort's EDF files and lights.csv")
    parser.add_argument("--rem-min-epochs", type=int, nargs="+", default=[3, 1])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.run is None and args.cv is None:
        parser.error("give --run, --cv or both")

    result: dict[str, Any] = {
        "command": " ".join([".venv/bin/python benchmarks/sleep_metrics_agreement.py", *sys.argv[1:]]),
        "data": f"synthetic day-long nights in {args.edf} (somna's generator) with their lights.csv; "
        "every metric over the same time in bed for the scored and the estimated hypnogram",
        "targets": {
            **{f"{k} median abs error": v for k, v in TARGETS.items()},
            "SOL largest abs error": SOL_MAX,
        },
    }
    for name, run in (("holdout", args.run), ("cv", args.cv)):
        if run is None:
            continue
        print(f"=== {name}: {run}")
        nights = _score(_held_out(run), args.edf, args.rem_min_epochs)
        result[name] = {}
        for rule, rows in nights.items():
            summary = _summary(rows)
            print(f"REM latency rule: first REM episode of ≥ {rule} epoch(s)")
            print(_table(summary))
            result[name][f"rem_min_epochs_{rule}"] = {"summary": summary, "nights": rows}
    write_result("sleep_metrics_agreement", result, args.out)


if __name__ == "__main__":
    main()
