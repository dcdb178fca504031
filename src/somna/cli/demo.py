"""``somna demo``: the main job on built-in synthetic data."""

from __future__ import annotations

import argparse
from pathlib import Path

from somna.cli._options import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on built-in synthetic data (no download needed)",
        description="Synthesise a small Sleep-EDF-like cohort (8 subjects x 2 nights), prepare it, print "
        "per-subject stage counts and the per-stage spectra figure, train the 5-class model and "
        "hierarchical 3-class staging on a subject-wise train/validation/test split, print their "
        "evaluation, and score one held-out night end to end. Everything lands in the run folder, ready "
        "for `somna score` and `somna stream`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="runs/demo", help="run folder")
    p.add_argument("--subjects", type=positive_int, default=8, help="synthetic subjects (2 nights each)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--workers", type=positive_int, default=2, help="parallel worker processes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from somna.demo import run_demo

    run_demo(Path(args.out), n_subjects=args.subjects, seed=args.seed, workers=args.workers)
