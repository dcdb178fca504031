"""Options shared by several commands, and argument types that check ranges at parse time."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

__all__ = [
    "add_backend_argument",
    "add_channel_arguments",
    "add_lights_arguments",
    "positive_float",
    "positive_int",
    "score_options",
]

# The choices of somna.inference.BACKENDS, written out: importing it here would load the inference code
# for `somna --help` (a test keeps the two equal).
BACKEND_CHOICES = ("auto", "torch", "onnx", "onnx-int8")


def positive_int(text: str) -> int:
    """An argparse type: a whole number ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def add_backend_argument(p: argparse.ArgumentParser) -> None:
    """``--backend`` of ``score`` and ``stream``."""
    p.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help="what runs the model: auto (the run's ONNX export when current, else torch), torch, "
        "onnx or onnx-int8 (--model may then be the export folder itself)",
    )


def add_channel_arguments(p: argparse.ArgumentParser) -> None:
    """``--eeg/--eog/--emg``: the channel mapping of ``score`` and ``stream``."""
    p.add_argument(
        "--eeg",
        default=None,
        help="EEG channel names, comma-separated; alternatives with '|' (default: the model's training "
        "channels, Sleep-EDF's 'EEG Fpz-Cz|Fpz-Cz,EEG Pz-Oz|Pz-Oz')",
    )
    p.add_argument("--eog", default=None, help="EOG channel name(s) (default: the model's, 'EOG horizontal')")
    p.add_argument(
        "--emg", default=None, help="chin EMG channel name (default: the model's, 'EMG submental')"
    )


def add_lights_arguments(p: argparse.ArgumentParser, table: bool = True, rem_min_epochs: int = 3) -> None:
    """``--lights-off/--lights-on`` (and ``--lights`` TABLE) and ``--rem-min-epochs``: how a night's
    time in bed and REM latency are taken (:mod:`somna.io.lights`, :mod:`somna.evaluation.sleep_metrics`)."""
    when = "clock time (22:30, 22:30:15; after midnight understood) or seconds from the recording's start"
    p.add_argument("--lights-off", default=None, help=f"lights off: {when}")
    p.add_argument("--lights-on", default=None, help=f"lights on: {when}")
    if table:
        p.add_argument(
            "--lights",
            type=Path,
            default=None,
            metavar="TABLE",
            help="lights table, CSV with columns record,lights_off,lights_on (record: the PSG's file name, "
            "its name without -PSG.edf, or its Sleep-EDF night such as SC4001); `somna download` and "
            "`somna synth` write one beside the files, and a lights.csv beside a PSG is used when no table "
            "is given. Without lights from an option, a table or the file's annotations, time in bed is "
            "estimated from the night's likely sleep window (and said so)",
        )
    p.add_argument(
        "--rem-min-epochs",
        type=positive_int,
        default=rem_min_epochs,
        help="REM latency ends at the first REM episode of at least this many epochs (1: the AASM's "
        "first REM epoch; 3, for a model's hypnogram, passes over the isolated REM epochs models put in "
        "N1)",
    )


def score_options(args: argparse.Namespace) -> Any:
    """The :class:`~somna.inference.scoring.ScoreOptions` of parsed :func:`add_lights_arguments` (and
    ``--edf-stages`` where the command has it)."""
    from somna.inference.scoring import ScoreOptions
    from somna.io.lights import read_lights_table

    table = getattr(args, "lights", None)
    return ScoreOptions(
        lights_off=args.lights_off,
        lights_on=args.lights_on,
        table=None if table is None else read_lights_table(table),
        table_name=table.name if table is not None else "lights table",
        rem_min_epochs=args.rem_min_epochs,
        edf_vocabulary=getattr(args, "edf_stages", None),
    )
