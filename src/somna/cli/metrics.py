"""``somna metrics``: sleep metrics of any hypnogram file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from somna.cli._options import add_lights_arguments, score_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "metrics",
        help="print the sleep metrics of a hypnogram file",
        description="Read a hypnogram (EDF+ annotations; Compumedics Profusion, NSRR or Embla XML; BIDS "
        "events.tsv; Noxturnal CSV; CSV/TSV stage tables; one stage per line; DREAMS; Dreem JSON; recognised "
        "by content) and print its "
        "sleep metrics (TIB, TST, SPT, WASO, SE, latencies, time and percent per stage, awakenings). Time in "
        "bed comes from --lights-off/--lights-on, a --lights table, the file's Lights off/on annotations, "
        "or else is estimated as the scored sleep period ± 30 min; the output says which.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("hypnogram", type=Path, help="hypnogram file")
    add_lights_arguments(p, rem_min_epochs=1)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--to",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the hypnogram, in the format its name gives: .tsv (BIDS events), .xml (NSRR PSG "
        "annotation XML), .edf (EDF+ annotations) or .csv (one row per epoch)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import json
    from dataclasses import replace

    from somna.evaluation.sleep_metrics import format_metrics_table, sleep_metrics
    from somna.io.hypnogram_files import read_hypnogram
    from somna.io.lights import resolve_time_in_bed, scored_window_s, table_lights

    options = score_options(args)
    hypnogram = read_hypnogram(args.hypnogram)
    row = None if options.table is None else table_lights(options.table, args.hypnogram)
    tib = resolve_time_in_bed(
        hypnogram.duration_s,
        hypnogram.start,
        scored_window_s(hypnogram),
        options=(options.lights_off, options.lights_on),
        table=None if row is None else (row, options.table_name),
        annotations=[
            ((hypnogram.lights_off_s, hypnogram.lights_on_s), f"the annotations of {args.hypnogram.name}")
        ],
    )
    hypnogram = replace(hypnogram, lights_off_s=tib.lights_off_s, lights_on_s=tib.lights_on_s)
    metrics = {
        **sleep_metrics(hypnogram, rem_min_epochs=options.rem_min_epochs),
        "time_in_bed": tib.to_dict(),
    }
    print(json.dumps(metrics, indent=2) if args.json else format_metrics_table(metrics))
    if args.to is not None:
        given = replace(
            hypnogram,
            lights_off_s=None if tib.off_source == "estimated" else tib.lights_off_s,
            lights_on_s=None if tib.on_source == "estimated" else tib.lights_on_s,
        )
        print(f"written: {_write_as(given, args.to)}")


_WRITERS = {".tsv": "to_bids_events", ".xml": "to_nsrr_xml", ".edf": "to_edf", ".csv": "to_csv"}


def _write_as(hypnogram: Any, path: Path) -> Path:
    """Write a hypnogram in the format its file name gives."""
    from somna.errors import SomnaError

    method = _WRITERS.get(path.suffix.lower())
    if method is None:
        raise SomnaError(
            f"--to: unknown format {path.suffix or '(none)'}; use .tsv, .xml, .edf or .csv", path
        )
    return getattr(hypnogram, method)(path)
