"""``somna evaluate``: (re)write the evaluation report of a run."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="(re)write the evaluation report of a run folder",
        description="Pool the test predictions of every fold of a run and write evaluation.json, "
        "evaluation.md and confusion_matrix.png (counts and row-normalised) into the run folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", type=Path, help="run folder written by `somna train`, `cv` or `ablate`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from somna.training.experiment import evaluate_run

    evaluate_run(args.run)
