"""The :class:`Recording`: a night of PSG signals grouped by modality at their native rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from somna.errors import ChannelError, SignalQualityError
from somna.io.channels import MODALITIES

__all__ = ["MAX_HZ", "MIN_EEG_EOG_HZ", "MIN_HZ", "Recording", "check_rates", "check_signals"]

MIN_EEG_EOG_HZ: float = 50.0
"""Lowest usable EEG/EOG rate: below it the 12–16 Hz spindles and alpha are not representable with margin."""
MIN_HZ: float = 1.0
"""Lowest usable rate for other modalities (Sleep-EDF SC's EMG is a 1-Hz envelope)."""
MAX_HZ: float = 100_000.0
"""Above this no PSG records: such a rate means a corrupt header (e.g. a data-record duration of 1e-9 s)."""


def check_rates(modality: str, rates: dict[str, float], path: str | Path | None = None) -> float:
    """The one sampling rate of a modality's channels, checked.

    Parameters
    ----------
    modality : str
        ``"eeg"``, ``"eog"`` or ``"emg"``.
    rates : dict of str to float
        Each channel's label and rate, Hz.
    path : str | Path | None
        The recording, named in errors.

    Raises
    ------
    ChannelError
        If the channels' rates differ, an EEG/EOG rate is below :data:`MIN_EEG_EOG_HZ`, another below
        :data:`MIN_HZ`, or any is not finite or above :data:`MAX_HZ`.
    """
    if len(set(rates.values())) > 1:
        raise ChannelError(
            f"{modality} channels must share one sampling rate, got "
            + ", ".join(f"{label!r} {rate:g} Hz" for label, rate in rates.items()),
            path,
        )
    label, rate = next(iter(rates.items()))
    floor = MIN_EEG_EOG_HZ if modality in ("eeg", "eog") else MIN_HZ
    if not rate >= floor:
        raise ChannelError(
            f"{modality} channel {label!r} is sampled at {rate:g} Hz; at least {floor:g} Hz is needed", path
        )
    if not rate <= MAX_HZ:
        raise ChannelError(
            f"{modality} channel {label!r} is sampled at {rate:g} Hz, above the {MAX_HZ:g} Hz any PSG uses "
            "(corrupt header?)",
            path,
        )
    return rate


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
    extra : dict
        What else the reader noted (assumed units, an anonymised date, ...).
    lights_off_s, lights_on_s : float | None
        ``Lights off`` / ``Lights on`` annotations of the file (EDF+, an MNE Raw's annotations), seconds
        from the start; ``None`` when it has none.
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
    lights_off_s: float | None = None
    lights_on_s: float | None = None

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

    @classmethod
    def from_arrays(
        cls,
        signals: Mapping[str, Any],
        sfreq: float | Mapping[str, float],
        channel_names: Mapping[str, Sequence[str]] | None = None,
        start: datetime | None = None,
        name: str = "<arrays>",
    ) -> Recording:
        """A recording from arrays in memory.

        Parameters
        ----------
        signals : mapping of str to array-like
            Per modality (``"eeg"``, ``"eog"``, ``"emg"``), samples in µV: shape (n_samples,) for one
            channel or (n_channels, n_samples).
        sfreq : float | mapping of str to float
            Sampling rate in Hz, one for all modalities or one per modality.
        channel_names : mapping of str to sequence of str | None
            Channel labels per modality (default ``EEG 1``, ``EEG 2``, ...).
        start : datetime | None
            Clock time of the first sample (default: none known, shown as 00:00 on the EDF+ placeholder
            date 1985-01-01).
        name : str
            Shown in messages instead of a file name.

        Returns
        -------
        Recording

        Raises
        ------
        ChannelError
            For an unknown modality or an unusable rate.
        SignalQualityError
            For arrays of another shape, or channels that are empty, flat or not finite.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> rec = Recording.from_arrays({"eeg": rng.normal(0, 30, (2, 3000 * 4))}, sfreq=100)
        >>> rec.n_epochs(), rec.channel_names["eeg"]
        (4, ['EEG 1', 'EEG 2'])
        """
        path = Path(name)
        unknown = sorted(set(signals) - set(MODALITIES))
        if unknown:
            raise ChannelError(f"unknown modality {unknown}; somna reads {list(MODALITIES)}", path)
        rates = sfreq if isinstance(sfreq, Mapping) else dict.fromkeys(signals, sfreq)
        arrays: dict[str, np.ndarray] = {}
        names: dict[str, list[str]] = {}
        rate_of: dict[str, float] = {}
        for modality in (m for m in MODALITIES if m in signals):
            data = np.asarray(signals[modality], dtype=np.float32)
            data = data[None] if data.ndim == 1 else data
            if data.ndim != 2:
                raise SignalQualityError(
                    f"{modality} samples must have shape (n_samples,) or (n_channels, n_samples), "
                    f"got {data.shape}",
                    path,
                )
            given = list((channel_names or {}).get(modality, []))
            names[modality] = given or [f"{modality.upper()} {i + 1}" for i in range(data.shape[0])]
            if len(names[modality]) != data.shape[0]:
                raise ChannelError(
                    f"{len(names[modality])} {modality} channel name(s) for {data.shape[0]} channel(s)", path
                )
            if modality not in rates:
                raise ChannelError(f"no sampling rate given for {modality}", path)
            try:
                rate = float(rates[modality])
            except (TypeError, ValueError):
                raise ChannelError(
                    f"{modality} sampling rate {rates[modality]!r} is not a number", path
                ) from None
            rate_of[modality] = check_rates(modality, {names[modality][0]: rate}, path)
            arrays[modality] = data
        if not arrays:
            raise ChannelError("no signals given", path)
        recording = cls(
            path=path,
            signals=arrays,
            sfreq=rate_of,
            channel_names=names,
            start=start or datetime(1985, 1, 1),
            extra={"record": name.strip("<>") or "arrays", "start_known": start is not None},
        )
        check_signals(recording)
        return recording


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
