"""``somna prepare``: preprocess PSG/hypnogram pairs into a cached cohort."""

from __future__ import annotations

import argparse
from pathlib import Path

from somna.cli._options import add_channel_arguments, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="preprocess scored recordings (a Sleep-EDF folder, your own files, or a manifest) into a cohort",
        description="Read every PSG/hypnogram pair of SOURCE, resample EEG/EOG to 100 Hz and band-pass them, "
        "turn EMG into a 1 Hz envelope, trim long wake, normalise each night as a live stream would, and "
        "cache it as one memory-mappable file per night plus a manifest. SOURCE is a Sleep-EDF folder "
        "(*-PSG.edf, *-Hypnogram.edf), a folder of your own files (paired by --pair, else by name: "
        "patient01.edf with patient01_hypnogram.edf), or a manifest CSV with columns psg,hypnogram,subject "
        "and optionally night,record,lights_off,lights_on,eeg,eog,emg. Subject-wise splits follow the "
        "subjects found. Resumable: nights cached from unchanged files are skipped.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "edf_folder",
        type=Path,
        metavar="SOURCE",
        help="a folder of PSG and hypnogram files, or a cohort manifest (CSV)",
    )
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
    add_channel_arguments(p)
    p.add_argument(
        "--pair",
        default=None,
        metavar="REGEX",
        help="pair a folder's files by the subject (and night) this pattern finds in their names, with named "
        "groups: '(?P<subject>patient\\d+)_night(?P<night>\\d)'",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from somna.config import load_cohort_config
    from somna.data import prepare_cohort

    config = load_cohort_config(args.config)
    if args.eeg or args.eog or args.emg:
        from somna.io.channels import override_channels

        config = replace(config, channels=override_channels(config.channels, args.eeg, args.eog, args.emg))
    if args.keep_wake is not None:
        trim = None if args.keep_wake < 0 else args.keep_wake
        config = replace(config, preprocess=replace(config.preprocess, trim_wake_min=trim))
    from somna.data.sources import cohort_nights

    _, note = cohort_nights(args.edf_folder, args.pair)
    if note:
        print(f"NOTE: {note}")
    cohort = prepare_cohort(
        args.edf_folder,
        args.cache,
        config=config,
        workers=args.workers,
        lights=args.lights,
        pair=args.pair,
    )
    print(f"{cohort!r}")
    with_lights = sum(e.lights_off_s is not None for e in cohort.entries)
    print(f"{with_lights} of {len(cohort.entries)} night(s) have a lights-off time")
    print(cohort.format_stage_table())
