"""``somna prepare``: preprocess PSG/hypnogram pairs into a cached cohort."""

from __future__ import annotations

import argparse
from pathlib import Path

from somna.cli._options import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="preprocess a folder of PSG/hypnogram pairs into a cached cohort",
        description="Read every Sleep-EDF PSG/hypnogram pair in EDF_FOLDER, resample EEG/EOG to 100 Hz and "
        "band-pass them, turn EMG into a 1 Hz envelope, trim long wake, normalise each night as a live "
        "stream would, and cache it as one memory-mappable file per night plus a manifest. Resumable: "
        "cached nights are skipped.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("edf_folder", type=Path, help="folder with *-PSG.edf and *-Hypnogram.edf files")
    p.add_argument("cache", type=Path, help="cache folder to create or resume")
    p.add_argument(
        "--config",
        default=None,
        help="cohort config: a TOML file with [channels] and [preprocess], or a packaged name "
        "(default: sleep-edf)",
    )
    p.add_argument("--workers", type=positive_int, default=2, help="parallel worker processes")
    p.add_argument(
        "--keep-wake",
        type=float,
        default=None,
        help="minutes of wake kept around the sleep period (overrides the config; negative keeps whole "
        "recordings)",
    )
    p.add_argument(
        "--lights",
        type=Path,
        default=None,
        metavar="TABLE",
        help="lights table (CSV: record,lights_off,lights_on) recorded with each night for its evaluation's "
        "sleep metrics (default: EDF_FOLDER/lights.csv when there, as `somna download` and `somna synth` "
        "write it)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from somna.config import load_cohort_config
    from somna.data import prepare_cohort

    config = load_cohort_config(args.config)
    if args.keep_wake is not None:
        trim = None if args.keep_wake < 0 else args.keep_wake
        config = replace(config, preprocess=replace(config.preprocess, trim_wake_min=trim))
    cohort = prepare_cohort(
        args.edf_folder, args.cache, config=config, workers=args.workers, lights=args.lights
    )
    print(f"{cohort!r}")
    with_lights = sum(e.lights_off_s is not None for e in cohort.entries)
    print(f"{with_lights} of {len(cohort.entries)} night(s) have a lights-off time")
    print(cohort.format_stage_table())
