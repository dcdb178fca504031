"""The :class:`Recording`: a night of PSG signals grouped by modality at their native rates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from somna.errors import SignalQualityError

__all__ = ["MODALITIES", "SLEEP_EDF_CHANNELS", "ChannelSpec", "Recording", "check_signals"]

MODALITIES: tuple[str, ...] = ("eeg", "eog", "emg")
"""Modalities somna stages from, in the order models see them."""

ChannelSpec = dict[str, list[list[str]]]
"""Per modality, one entry per wanted channel: the names it may carry in a file (aliases), first
preferred. Matching ignores case and surrounding spaces."""

SLEEP_EDF_CHANNELS: ChannelSpec = {
    "eeg": [["EEG Fpz-Cz", "Fpz-Cz"], ["EEG Pz-Oz", "Pz-Oz"]],
    "eog": [["EOG horizontal", "EOG", "HEOG", "EOG E1-E2", "E1-E2"]],
    "emg": [["EMG submental", "EMG", "EMG chin", "Chin", "EMG Chin1-Chin2", "Chin1-Chin2"]],
}
"""Sleep-EDF Expanded's channel names (SC and ST), with the aliases other files use."""


@dataclass
class Recording:
    """One PSG recording, signals grouped by modality at their native sampling rates.

    Parameters
    ----------
    path : Path
        The PSG file.
    signals : dict of str to np.ndarray
        Per modality (``"eeg"``, ``"eog"``, ``"emg"``), an array of shape (n_channels, n_samples)
        in µV (float32 from :func:`somna.io.read_psg`; float64 works as well).
    sfreq : dict of str to float
        Sampling rate of each modality in Hz (all channels of one modality share it).
    channel_names : dict of str to list of str
        The channels' labels as written in the file, per modality.
    start : datetime
        Recording start (EDF header start date and time).
    subject, night, study : str | None, int | None, str | None
        Identifiers parsed from Sleep-EDF names (``SC4001E0`` → study ``"SC"``, subject ``"SC00"``,
        night 1), ``None`` for files named otherwise.
    """

    path: Path
    signals: dict[str, np.ndarray]
    sfreq: dict[str, float]
    channel_names: dict[str, list[str]]
    start: datetime
    subject: str | None = None
    night: int | None = None
    study: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        """Modalities present, in :data:`MODALITIES` order."""
        return [m for m in MODALITIES if m in self.signals]

    @property
    def duration_s(self) -> float:
        """Length of the shortest modality, in seconds."""
        return min(self.signals[m].shape[-1] / self.sfreq[m] for m in self.signals)

    def n_epochs(self, epoch_s: float = 30.0) -> int:
        """Number of whole epochs the signals cover."""
        return int(np.floor(self.duration_s / epoch_s + 1e-9))


def check_signals(recording: Recording) -> None:
    """Refuse signals that cannot be staged: empty, non-finite or flat channels.

    Called by preprocessing on every recording, including those built in memory;
    :func:`somna.io.edf.read_psg` refuses empty and flat channels the same way while reading (on the
    file's integers, which cannot be non-finite).

    Parameters
    ----------
    recording : Recording
        Signals per modality, shape (n_channels, n_samples).

    Raises
    ------
    SignalQualityError
        Naming the file, the modality and the channel, if a channel has no samples, contains NaN or
        infinite values, or is flat (one constant value over the whole recording, as a disconnected
        or saturated electrode gives).
    """
    for modality, data in recording.signals.items():
        data = np.asarray(data)
        names = recording.channel_names.get(modality, [])
        if data.ndim != 2:
            raise SignalQualityError(
                f"{modality} signals must have shape (n_channels, n_samples), got {data.shape}",
                recording.path,
            )
        for i, channel in enumerate(data):
            name = names[i] if i < len(names) else f"#{i}"
            where = f"{modality} channel {name!r}"
            if channel.size == 0:
                raise SignalQualityError(f"{where} has no samples", recording.path)
            # Two passes: NaN anywhere makes the minimum and maximum NaN, an infinity one of them.
            low, high = channel.min(), channel.max()
            if not (np.isfinite(low) and np.isfinite(high)):
                finite = np.isfinite(channel)
                bad = int(channel.size - np.count_nonzero(finite))
                first = int(np.argmin(finite))
                rate = recording.sfreq.get(modality)
                at = f" (first at {first / rate:.2f} s)" if rate else f" (first at sample {first})"
                raise SignalQualityError(
                    f"{where} contains {bad} non-finite (NaN or infinite) samples{at}", recording.path
                )
            if low == high:
                raise SignalQualityError(
                    f"{where} is flat: every sample equals {channel[0]:g} over the whole recording "
                    "(electrode disconnected or signal not recorded)",
                    recording.path,
                )
