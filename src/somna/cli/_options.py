"""Options shared by several commands, and argument types that check ranges at parse time."""

from __future__ import annotations

import argparse
import math

__all__ = ["add_backend_argument", "add_channel_arguments", "positive_float", "positive_int"]

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
