"""``somna download``: fetch Sleep-EDF Expanded from PhysioNet."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="download Sleep-EDF Expanded recordings from PhysioNet (checksums verified)",
        description="Fetch Sleep-EDF Expanded PSG and hypnogram files through MNE's fetcher, which verifies "
        "each file's checksum, and the study's subject table (checked against PhysioNet's SHA256SUMS.txt), "
        "whose lights-off times go into lights.csv beside the files for `somna score --lights`. "
        "Recordings missing from PhysioNet are skipped with a warning.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--subjects", default="0-19", help="subject numbers, e.g. '0-19' or '0-4,7'")
    p.add_argument("--study", choices=["sc", "st"], default="sc", help="Sleep Cassette or Sleep Telemetry")
    p.add_argument("--path", type=Path, default=None, help="download folder (default: MNE's data folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from somna.errors import SomnaError
    from somna.io.sleepedf import download_lights_table, download_sleep_edf, parse_subject_range

    pairs = download_sleep_edf(parse_subject_range(args.subjects), study=args.study, path=args.path)
    for pair in pairs:
        print(f"{pair.psg}\t{pair.hypnogram}")
    print(f"{len(pairs)} night(s) ready")
    if pairs:
        try:
            table = download_lights_table(args.study, Path(pairs[0].psg).parent)
        except SomnaError as err:
            print(f"WARNING: no lights table: {err}; time in bed will be estimated")
        else:
            print(f"lights off of each night (PhysioNet's subject table): {table} (use it with --lights)")
