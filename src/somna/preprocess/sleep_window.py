"""A model-free guess of where the night's sleep lies in a long recording.

Sleep-EDF SC recordings run 20+ hours, mostly wake. A model trained on recordings normalised over their
sleep period must see a long recording normalised the same way, before any stage is known; this module
finds the stretch that most likely holds the sleep period, from two things every sleep scorer looks at:
slow (delta) against fast (beta) EEG power, and chin EMG tone.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from somna.io.recording import Recording
from somna.preprocess.filters import preprocess_threads

__all__ = ["likely_sleep_window", "sleep_likeness"]


def _robust_z(x: np.ndarray) -> np.ndarray:
    q25, median, q75 = np.percentile(x, [25, 50, 75])
    return (x - median) / max(q75 - q25, 1e-9)


def _epoch_power(x: np.ndarray, sfreq: float, bands: list[tuple[float, float]]) -> list[np.ndarray]:
    """Power of each epoch (row of ``x``) in each band, from one batched real FFT. Bands start above
    0 Hz, so an epoch's mean (the DC bin) never enters them."""
    x = np.asarray(x, dtype=np.float32)  # a coarse guess: single precision is plenty
    freqs = np.fft.rfftfreq(x.shape[1], 1.0 / sfreq)
    spectrum = scipy.fft.rfft(x, axis=1, workers=preprocess_threads())
    power = spectrum.real**2 + spectrum.imag**2
    return [power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1).astype(np.float64) for lo, hi in bands]


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    padded = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    running = np.concatenate([[0.0], np.cumsum(padded)])
    return (running[width:] - running[:-width]) / width


def sleep_likeness(recording: Recording, epoch_s: float = 30.0) -> np.ndarray:
    """Per-epoch sleep likeness: high delta/beta EEG power ratio and low chin-EMG tone.

    The robust z-score of log(delta 0.5–4 Hz / beta 15–30 Hz) power of the first EEG channel, minus the
    robust z-score of log chin-EMG amplitude when the recording has EMG.
    """
    n = recording.n_epochs(epoch_s)
    sfreq = recording.sfreq["eeg"]
    per_epoch = round(sfreq * epoch_s)
    eeg = recording.signals["eeg"][0, : n * per_epoch].reshape(n, per_epoch)
    delta, beta = _epoch_power(eeg, sfreq, [(0.5, 4.0), (15.0, min(30.0, 0.45 * sfreq))])
    likeness = _robust_z(np.log(delta + 1e-12) - np.log(beta + 1e-12))
    if "emg" in recording.signals:
        emg_rate = recording.sfreq["emg"]
        emg_per_epoch = max(1, round(emg_rate * epoch_s))
        emg = recording.signals["emg"][0, : n * emg_per_epoch].reshape(n, emg_per_epoch)
        # Raw EMG: its spread is the tone; an envelope (Sleep-EDF SC's 1 Hz EMG) is the tone itself.
        tone = emg.std(axis=1) if emg_rate >= 40 else np.abs(emg).mean(axis=1)
        likeness = likeness - _robust_z(np.log(tone + 1e-9))
    return likeness


def likely_sleep_window(
    recording: Recording, epoch_s: float = 30.0, margin_min: float = 30.0, long_h: float = 14.0
) -> tuple[int, int]:
    """Epoch range that most likely holds the night's sleep period, plus ``margin_min`` of wake each side.

    For recordings longer than ``long_h`` hours only (others are returned whole): the per-epoch
    :func:`sleep_likeness`, smoothed over 10 minutes, is split at the midpoint between its 10th and
    90th percentiles (a long recording holds both a day's wake and a night's sleep); runs above it less
    than 90 minutes apart are joined (long awakenings belong to the night), and the longest joined run,
    widened by ``margin_min`` on each side, is the sleep window: the span training recordings were
    trimmed to.

    Parameters
    ----------
    recording : Recording
        Signals at their native rates.
    epoch_s : float
        Epoch length, s.
    margin_min : float
        Minutes of wake kept on each side (the training trimming's margin).
    long_h : float
        Recordings up to this many hours are taken whole.

    Returns
    -------
    first_epoch, stop_epoch : int
    """
    n = recording.n_epochs(epoch_s)
    if n * epoch_s <= long_h * 3600:
        return 0, n
    per_min = 60.0 / epoch_s
    smooth = _moving_average(sleep_likeness(recording, epoch_s), max(1, round(10 * per_min)))
    low, high = np.percentile(smooth, [10, 90])
    asleep = smooth > (low + high) / 2
    starts = np.flatnonzero(np.diff(np.concatenate([[0], asleep.astype(np.int8)])) == 1)
    stops = np.flatnonzero(np.diff(np.concatenate([asleep.astype(np.int8), [0]])) == -1) + 1
    gap = round(90 * per_min)
    runs: list[list[int]] = []
    for first, stop in zip(starts, stops, strict=True):
        if runs and first - runs[-1][1] < gap:
            runs[-1][1] = int(stop)
        else:
            runs.append([int(first), int(stop)])
    first, stop = max(runs, key=lambda r: r[1] - r[0])
    margin = round(margin_min * per_min)
    return max(0, first - margin), min(n, stop + margin)
