"""Signal quality per channel and per 30-s epoch: flat, clipped, disconnected, implausibly scaled.

A recording can be readable and still be partly unusable: an electrode that came off for six hours, an
amplifier pinned at its rails, a channel stored in volts instead of microvolts. The model stages such
epochs anyway (flat EEG/EOG epochs reach it as zeros, as the flat stretches of its training
augmentation do), so somna says which channels and how many epochs are affected, marks those epochs,
and says what happened instead of staging them without a word.

What is checked, on the raw signals in µV:

- **flat**: an epoch whose standard deviation is below :data:`FLAT_UV` (EEG, EOG) or exactly constant
  (an EMG envelope);
- **clipped**: an epoch with at least :data:`CLIPPED_FRACTION` of its samples at the channel's extreme
  values (the amplifier's or the file's digital range), as saturation gives;
- **disconnected**: a channel flat in at least :data:`DISCONNECTED_FRACTION` of its epochs;
- **implausibly scaled**: a channel whose median epoch standard deviation lies outside
  :data:`PLAUSIBLE_SD_UV` for its modality (a unit error, a wrong gain, or noise only).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from somna.io.recording import Recording

__all__ = [
    "CLIPPED_FRACTION",
    "DISCONNECTED_FRACTION",
    "FLAT_UV",
    "LONGEST_NIGHT_H",
    "MULTI_DAY_H",
    "PLAUSIBLE_SD_UV",
    "WARN_EPOCHS",
    "WARN_FRACTION",
    "ChannelQuality",
    "SignalQuality",
    "assess_signal_quality",
    "length_warnings",
    "night_blocks",
]

FLAT_UV = 0.5
"""Standard deviation (µV) below which an EEG or EOG epoch is flat: below an amplifier's noise floor."""
CLIPPED_FRACTION = 0.05
"""Share of an epoch's samples at the channel's extreme values from which the epoch counts as clipped
(1.5 s of 30: a movement artefact that touches the rails for a moment is not a clipped epoch)."""
DISCONNECTED_FRACTION = 0.5
"""Share of flat epochs from which a channel counts as disconnected."""
WARN_FRACTION = 0.05
"""Share of a channel's epochs flat or clipped from which the terminal, metrics.json and the report warn."""
WARN_EPOCHS = 60
"""Number of flat or clipped epochs (30 min) from which they warn whatever the recording's length."""
PLAUSIBLE_SD_UV: dict[str, tuple[float, float]] = {
    "eeg": (2.0, 400.0),
    "eog": (2.0, 1000.0),
    "emg": (0.05, 500.0),
}
"""Range of a channel's median epoch standard deviation (µV) that scalp PSG gives, per modality."""
_RAIL_TOLERANCE = 1e-3  # of the channel's range: samples this close to its minimum or maximum are "at" it


@dataclass
class ChannelQuality:
    """The quality of one channel.

    Parameters
    ----------
    modality, channel : str
        Where it is (``"eeg"``, ``"EEG Fpz-Cz"``).
    flat, clipped : np.ndarray
        Per epoch, bool: flat, clipped.
    median_sd_uv : float
        Median standard deviation of its non-flat epochs, µV (NaN when all are flat).
    """

    modality: str
    channel: str
    flat: np.ndarray
    clipped: np.ndarray
    median_sd_uv: float

    @property
    def disconnected(self) -> bool:
        """Flat in at least :data:`DISCONNECTED_FRACTION` of the epochs."""
        return bool(self.flat.size) and float(self.flat.mean()) >= DISCONNECTED_FRACTION

    @property
    def implausible_scale(self) -> str | None:
        """Why the channel's amplitude is implausible for its modality, or None."""
        low, high = PLAUSIBLE_SD_UV[self.modality]
        sd = self.median_sd_uv
        if not np.isfinite(sd) or low <= sd <= high:
            return None
        side = "below" if sd < low else "above"
        return (
            f"its typical epoch SD is {sd:.3g} µV, {side} the {low:g}–{high:g} µV of {self.modality.upper()}"
        )

    def problems(self) -> list[str]:
        """Its problems worth a warning, in words: disconnected, implausibly scaled, or flat or clipped
        in at least :data:`WARN_FRACTION` of the epochs or :data:`WARN_EPOCHS` of them (a few clipped
        movement artefacts are marked per epoch, not warned about). Empty when there are none."""
        found = []
        n = self.flat.size

        def worth(count: int) -> bool:
            return count > 0 and (count >= WARN_FRACTION * n or count >= WARN_EPOCHS)

        if self.disconnected:
            found.append(f"disconnected (flat in {int(self.flat.sum())} of {n} epochs)")
        elif worth(int(self.flat.sum())):
            found.append(f"flat in {int(self.flat.sum())} of {n} epochs")
        if worth(int(self.clipped.sum())):
            found.append(f"clipped in {int(self.clipped.sum())} of {n} epochs")
        scale = self.implausible_scale
        if scale:
            found.append(f"implausibly scaled ({scale})")
        return found


@dataclass
class SignalQuality:
    """The quality of a recording's channels (:func:`assess_signal_quality`)."""

    channels: list[ChannelQuality] = field(default_factory=list)
    n_epochs: int = 0

    def epoch_problems(self) -> list[str]:
        """Per epoch, what is wrong with it (``"flat EEG Fpz-Cz; clipped EOG horizontal"``), or ``""``."""
        notes: list[list[str]] = [[] for _ in range(self.n_epochs)]
        for ch in self.channels:
            for kind, flags in (("flat", ch.flat), ("clipped", ch.clipped)):
                for i in np.flatnonzero(flags[: self.n_epochs]):
                    notes[i].append(f"{kind} {ch.channel}")
        return ["; ".join(n) for n in notes]

    @property
    def affected(self) -> np.ndarray:
        """Per epoch, bool: any channel flat or clipped."""
        out = np.zeros(self.n_epochs, dtype=bool)
        for ch in self.channels:
            out |= ch.flat[: self.n_epochs] | ch.clipped[: self.n_epochs]
        return out

    def warnings(self) -> list[str]:
        """One line per channel with a problem, and what staging does about it; empty when all is well."""
        lines = [f"{ch.channel} ({ch.modality.upper()}): {', '.join(ch.problems())}" for ch in self.channels]
        lines = [line for line, ch in zip(lines, self.channels, strict=True) if ch.problems()]
        if lines:
            n = int(self.affected.sum())
            lines.append(
                f"{n} of {self.n_epochs} epochs have a flat or clipped channel, marked in hypnogram.csv "
                "(signal_problem); the model stages "
                "them from the remaining channels (a flat EEG/EOG epoch reaches it as zeros), so their "
                "stages are less trustworthy"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: per channel its problems and counts, and the affected epochs' count."""
        return {
            "channels": {
                ch.channel: {
                    "modality": ch.modality,
                    "flat_epochs": int(ch.flat.sum()),
                    "clipped_epochs": int(ch.clipped.sum()),
                    "disconnected": ch.disconnected,
                    "median_epoch_sd_uv": None
                    if not np.isfinite(ch.median_sd_uv)
                    else round(ch.median_sd_uv, 3),
                    "problems": ch.problems(),
                }
                for ch in self.channels
            },
            "affected_epochs": int(self.affected.sum()),
            "n_epochs": self.n_epochs,
        }


def _channel_quality(
    modality: str, name: str, signal: np.ndarray, per_epoch: int, n_epochs: int
) -> ChannelQuality:
    epochs = np.asarray(signal)[: n_epochs * per_epoch].reshape(n_epochs, per_epoch)  # a view
    sd = epochs.std(axis=1)
    top, bottom = epochs.max(axis=1), epochs.min(axis=1)
    flat = top == bottom if modality == "emg" else sd < FLAT_UV
    clipped = np.zeros(n_epochs, dtype=bool)
    low, high = float(bottom.min()), float(top.max())
    if modality != "emg" and high > low:  # an envelope's floor is its resting value, not a rail
        tolerance = (high - low) * _RAIL_TOLERANCE
        # only epochs that reach a rail can be clipped: count their samples there
        for i in np.flatnonzero((top >= high - tolerance) | (bottom <= low + tolerance)):
            at_rails = np.count_nonzero((epochs[i] >= high - tolerance) | (epochs[i] <= low + tolerance))
            clipped[i] = at_rails >= CLIPPED_FRACTION * per_epoch and not flat[i]
    lively = sd[~flat]
    median_sd = float(np.median(lively)) if lively.size else float("nan")
    return ChannelQuality(modality, name, flat, clipped, median_sd)


def assess_signal_quality(recording: Recording, epoch_s: float = 30.0) -> SignalQuality:
    """Check every channel of a recording, epoch by epoch (see the module docstring for the rules).

    Parameters
    ----------
    recording : Recording
        Raw signals in µV, at their native rates.
    epoch_s : float
        Epoch length, s.

    Returns
    -------
    SignalQuality
        Per channel its flat and clipped epochs, whether it looks disconnected or implausibly scaled.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> eeg = rng.normal(0, 20, (2, 100 * 300))
    >>> eeg[1, : 100 * 240] = 0.0  # the second derivation off for the first 8 epochs
    >>> quality = assess_signal_quality(Recording.from_arrays({"eeg": eeg}, 100.0))
    >>> quality.warnings()[0]
    'EEG 2 (EEG): disconnected (flat in 8 of 10 epochs)'
    """
    n_epochs = recording.n_epochs(epoch_s)
    quality = SignalQuality(n_epochs=n_epochs)
    if n_epochs == 0:
        return quality
    for modality, data in recording.signals.items():
        per_epoch = round(recording.sfreq[modality] * epoch_s)
        names = recording.channel_names.get(modality, [])
        for i, signal in enumerate(np.asarray(data)):
            name = names[i] if i < len(names) else f"{modality.upper()} #{i}"
            quality.channels.append(_channel_quality(modality, name, signal, per_epoch, n_epochs))
    return quality


LONGEST_NIGHT_H = 16.0
"""Time in bed longer than this is not one night: the recording is said to be too long for one summary."""
MULTI_DAY_H = 30.0
"""A recording longer than this gets one summary per night (:func:`night_blocks`)."""


def length_warnings(n_epochs: int, epoch_s: float, seq_len: int, time_in_bed: Any) -> list[str]:
    """Warnings about a recording's length: shorter than the model's context, longer than one night.

    Parameters
    ----------
    n_epochs, epoch_s : int, float
        The recording's whole epochs and their length.
    seq_len : int
        Epochs each prediction depends on.
    time_in_bed : TimeInBed
        Its time in bed (:func:`somna.io.lights.resolve_time_in_bed`).

    Examples
    --------
    >>> length_warnings(2, 30.0, 20, None)[0][:60]
    'the recording holds 2 epochs (1.0 min), fewer than the 20 ep'
    """
    found = []
    if n_epochs < seq_len:
        found.append(
            f"the recording holds {n_epochs} epochs ({n_epochs * epoch_s / 60:.1f} min), fewer than the "
            f"{seq_len} epochs of context the model stages each epoch from: every epoch was staged from a "
            "context padded with copies of the first epoch, and sleep metrics of so short a recording mean "
            "little"
        )
    hours = n_epochs * epoch_s / 3600
    if hours > MULTI_DAY_H:
        found.append(
            f"the recording spans {hours:.1f} h, more than one night: metrics.json has one summary per night "
            "(noon to noon) besides the whole recording's"
        )
    elif (
        time_in_bed is not None
        and time_in_bed.lights_on_s - time_in_bed.lights_off_s > LONGEST_NIGHT_H * 3600
    ):
        tib_h = (time_in_bed.lights_on_s - time_in_bed.lights_off_s) / 3600
        found.append(
            f"time in bed is {tib_h:.1f} h, longer than any night ({LONGEST_NIGHT_H:g} h): set lights off/on "
            "(--lights-off/--lights-on) for sleep latency, efficiency and WASO to mean anything"
        )
    return found


def night_blocks(n_epochs: int, epoch_s: float, start: Any) -> list[tuple[int, int]]:
    """Epoch ranges of the nights of a multi-day recording: noon to noon of its clock (every 24 h from
    its start when the clock time is unknown), leaving out stretches under 3 h at the ends; empty for a
    recording of :data:`MULTI_DAY_H` or less.

    Examples
    --------
    >>> from datetime import datetime
    >>> night_blocks(72 * 120, 30.0, datetime(2024, 1, 1, 20, 0))[:2]
    [(0, 1920), (1920, 4800)]
    """
    if n_epochs * epoch_s <= MULTI_DAY_H * 3600:
        return []
    per_day = round(86400 / epoch_s)
    if start is not None:
        since_noon = (start.hour - 12) * 3600 + start.minute * 60 + start.second
        first = round(((-since_noon) % 86400) / epoch_s)
    else:
        first = per_day
    edges = [0, *range(first, n_epochs, per_day), n_epochs]
    edges = sorted(set(e for e in edges if 0 <= e <= n_epochs))
    return [(a, b) for a, b in itertools.pairwise(edges) if b - a >= round(3 * 3600 / epoch_s)]
