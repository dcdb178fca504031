"""``somna metrics``: sleep metrics of any hypnogram file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "metrics",
        help="print the sleep metrics of a hypnogram file",
        description="Read a hypnogram (EDF+ annotations, CSV/TSV stage table or Dreem JSON) and print its "
        "sleep metrics (TIB, TST, SPT, WASO, SE, latencies, time and percent per stage, awakenings).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("hypnogram", type=Path, help="hypnogram file")
    p.add_argument("--lights-off", type=float, default=None, help="lights off, seconds from the first epoch")
    p.add_argument("--lights-on", type=float, default=None, help="lights on, seconds from the first epoch")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import json

    from somna.evaluation.sleep_metrics import format_metrics_table, sleep_metrics
    from somna.io.hypnogram_files import read_hypnogram

    hypnogram = read_hypnogram(args.hypnogram)
    metrics = sleep_metrics(hypnogram, lights_off_s=args.lights_off, lights_on_s=args.lights_on)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics_table(metrics))
