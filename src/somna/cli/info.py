"""``somna info``: summarise a prepared cohort."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="summarise a prepared cohort (per-subject stage counts)",
        description="Print the nights, subjects and per-subject stage counts of a cohort cache.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("cache", type=Path, help="cache folder written by `somna prepare`")
    p.add_argument("--verify", action="store_true", help="verify every night's checksum")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from somna.data import Cohort

    cohort = Cohort.open(args.cache, verify=args.verify)
    if args.verify:
        for record in cohort.records:
            cohort.night(record)
    print(f"{cohort!r}")
    print(cohort.format_stage_table())
