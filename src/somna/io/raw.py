"""PSG signals from an MNE :class:`mne.io.Raw` (what ``mne.io.read_raw_*`` return) as a :class:`Recording`.

MNE keeps one sampling rate per Raw: reading a mixed-rate EDF it resamples every channel to the highest
rate, so Sleep-EDF SC's 1 Hz chin-EMG envelope arrives as a 100 Hz signal. Taken as raw EMG, that
signal would be high-pass filtered at 10 Hz into nothing (the model then sees no muscle tone at all and
stops scoring REM). :func:`recording_from_raw` recognises such an upsampled envelope by its spectrum and
takes back the original samples, which MNE's band-limited resampling keeps exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from somna.io.channels import ChannelSpec, derivation_label, pick_channels
from somna.io.lights import lights_annotation
from somna.io.recording import Recording

__all__ = ["ENVELOPE_RATES", "recording_from_raw", "upsampled_envelope_rate"]

ENVELOPE_RATES: tuple[float, ...] = (1.0, 2.0, 4.0, 5.0, 8.0, 10.0, 16.0, 20.0)
"""Rates a stored EMG envelope may have been recorded at, Hz (Sleep-EDF SC: 1 Hz)."""

_NEGLIGIBLE = 1e-6  # share of a signal's variance that counts as no power at all


def upsampled_envelope_rate(signal: np.ndarray, sfreq: float) -> float | None:
    """The rate a signal was recorded at before it was upsampled to ``sfreq``, if it was.

    A signal resampled up from rate ``r`` by band-limited (FFT) interpolation, as MNE does, has no
    power above ``r / 2``. The lowest rate of :data:`ENVELOPE_RATES` (below ``sfreq / 2``, dividing it)
    above whose Nyquist frequency the signal has less than a millionth of its variance is returned.

    Parameters
    ----------
    signal : np.ndarray, shape (n_samples,)
    sfreq : float
        Its present rate, Hz.

    Returns
    -------
    float | None
        The original rate, or ``None`` for a signal with power near its own Nyquist frequency.
    """
    x = np.asarray(signal, dtype=np.float64)
    x = x - x.mean()
    power = np.abs(np.fft.rfft(x)) ** 2
    total = power[1:].sum()
    if total <= 0:
        return None
    freqs = np.fft.rfftfreq(x.size, 1.0 / sfreq)
    for rate in ENVELOPE_RATES:
        factor = sfreq / rate
        if rate >= sfreq / 2 or abs(factor - round(factor)) > 1e-9:
            continue
        if power[freqs > rate / 2 + 1e-9].sum() < _NEGLIGIBLE * total:
            return rate
    return None


def _start(raw: Any) -> datetime | None:
    meas_date = raw.info.get("meas_date")
    return None if meas_date is None else meas_date.replace(tzinfo=None)


def recording_from_raw(
    raw: Any, channels: ChannelSpec, modalities: Sequence[str] = ("eeg", "eog", "emg")
) -> Recording:
    """The staging channels of an MNE Raw, in µV, with a low-rate EMG envelope restored.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Any Raw (loaded or not); its channel names are matched like an EDF file's.
    channels : ChannelSpec
        Per modality, the wanted channels as alias lists (:func:`somna.io.channels.channel_spec`).
    modalities : sequence of str
        Modalities to take.

    Returns
    -------
    Recording
        Every modality at the Raw's rate, except an EMG channel that MNE upsampled from a stored
        envelope (:func:`upsampled_envelope_rate`): it gets its original rate and samples back, and
        ``extra["emg_envelope_restored_from_hz"]`` says from which rate.

    Raises
    ------
    ChannelError
        If a channel is missing, ambiguous, or sampled too slowly.
    SignalQualityError
        If a channel is empty, flat or not finite.
    """
    path = Path(raw.filenames[0]) if getattr(raw, "filenames", None) and raw.filenames[0] else None
    name = path.name if path else "<mne.Raw>"
    picked = pick_channels(channels, modalities, list(raw.ch_names), path or name)
    sfreq = float(raw.info["sfreq"])
    signals, rates, names = {}, {}, {}
    extra: dict[str, Any] = {}
    for modality in modalities:
        derivations = picked[modality]
        labels = [derivation_label(raw.ch_names, d) for d in derivations]
        data = raw.get_data(picks=[a for a, _ in derivations], units="uV").astype(np.float32)
        for row, (_, reference) in enumerate(derivations):
            if reference is not None:
                data[row] -= raw.get_data(picks=[reference], units="uV")[0].astype(np.float32)
        rate = sfreq
        if modality == "emg":
            original = upsampled_envelope_rate(data[0], sfreq)
            if original is not None:
                step = round(sfreq / original)
                data = np.ascontiguousarray(data[:, ::step])
                rate = original
                extra["emg_envelope_restored_from_hz"] = sfreq
        signals[modality], rates[modality], names[modality] = data, rate, labels
    recording = Recording.from_arrays(signals, rates, names, _start(raw), name=name)
    if path is not None:
        recording.path = path
        recording.extra["record"] = path.name.split("-")[0].split(".")[0]
    recording.extra.update(extra)
    # MNE counts annotation onsets from the measurement start when they have one (orig_time), and the
    # signals start at first_time after it; without orig_time both count from the first sample.
    offset = 0.0 if raw.annotations.orig_time is None else float(raw.first_time)
    for onset, text in zip(raw.annotations.onset, raw.annotations.description, strict=True):
        which = lights_annotation(str(text))
        if which and getattr(recording, f"lights_{which}_s") is None:
            setattr(recording, f"lights_{which}_s", float(onset) - offset)
    return recording
