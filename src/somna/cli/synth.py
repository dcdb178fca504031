"""``somna synth``: write synthetic nights as EDF files in Sleep-EDF's layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from somna.cli._options import positive_float, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write a synthetic PSG cohort as EDF files in Sleep-EDF's layout",
        description="Synthesise nights of PSG (EEG Fpz-Cz, Pz-Oz, EOG, EMG, ...) and their R&K hypnograms as "
        "EDF/EDF+ files named and laid out exactly like Sleep-EDF Expanded. Stage sequences follow real "
        "Sleep-EDF hypnograms; the physiology follows what an AASM scorer looks for.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--subjects", type=positive_int, default=4, help="number of synthetic subjects")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--layout",
        choices=["sc", "st"],
        default="sc",
        help="Sleep Cassette (1 Hz EMG envelope) or Sleep Telemetry (100 Hz EMG) layout",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.add_argument("--nights", type=int, choices=[1, 2], default=2, help="nights per subject")
    p.add_argument(
        "--hours",
        type=positive_float,
        default=None,
        help="cap each night at this many hours around the sleep period (default: full Sleep-EDF-like "
        "recordings)",
    )
    p.add_argument(
        "--variation",
        choices=["broad", "textbook"],
        default="broad",
        help="broad: every night draws its physiology and recording technique (montage, rate, EOG pickup "
        "of frontal EEG, chin tone, artefacts ...) from broad ranges; textbook: none of that",
    )
    p.add_argument(
        "--shift",
        default=None,
        metavar="NAME",
        help="push one factor to the far end of its range on every night, the others textbook: eog-frontal, "
        "emg-low, nrem-tone, rem-twitches, old-age, noise, ecg, sweat, movement, mains, clipping, "
        "flat-lead, montage, rate, or all (see somna.synth.variation)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from somna.synth import write_synthetic_cohort

    paths = write_synthetic_cohort(
        args.out,
        n_subjects=args.subjects,
        layout=args.layout,
        seed=args.seed,
        nights=args.nights,
        hours=args.hours,
        variation=args.shift or args.variation,
    )
    print(f"wrote {len(paths)} files to {args.out}")
