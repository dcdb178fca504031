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


def _log_slow_fast_and_tone(recording: Recording, epoch_s: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Per epoch: log(delta 0.5–4 Hz / beta 15–30 Hz) power of the first EEG channel, and log chin-EMG
    tone (``None`` without EMG)."""
    n = recording.n_epochs(epoch_s)
    sfreq = recording.sfreq["eeg"]
    per_epoch = round(sfreq * epoch_s)
    eeg = recording.signals["eeg"][0, : n * per_epoch].reshape(n, per_epoch)
    delta, beta = _epoch_power(eeg, sfreq, [(0.5, 4.0), (15.0, min(30.0, 0.45 * sfreq))])
    ratio = np.log(delta + 1e-12) - np.log(beta + 1e-12)
    if "emg" not in recording.signals:
        return ratio, None
    emg_rate = recording.sfreq["emg"]
    emg_per_epoch = max(1, round(emg_rate * epoch_s))
    emg = recording.signals["emg"][0, : n * emg_per_epoch].reshape(n, emg_per_epoch)
    # Raw EMG: its spread is the tone; an envelope (Sleep-EDF SC's 1 Hz EMG) is the tone itself.
    tone = emg.std(axis=1) if emg_rate >= 40 else np.abs(emg).mean(axis=1)
    return ratio, np.log(tone + 1e-9)


def sleep_likeness(recording: Recording, epoch_s: float = 30.0) -> np.ndarray:
    """Per-epoch sleep likeness: high delta/beta EEG power ratio and low chin-EMG tone.

    The robust z-score of log(delta 0.5–4 Hz / beta 15–30 Hz) power of the first EEG channel, minus the
    robust z-score of log chin-EMG amplitude when the recording has EMG.
    """
    ratio, tone = _log_slow_fast_and_tone(recording, epoch_s)
    return _robust_z(ratio) if tone is None else _robust_z(ratio) - _robust_z(tone)


_ONSET_LEVEL = 0.25  # sleep onset: a quarter of the way from the wake level to the sleep level


def _local_onset(score: np.ndarray, coarse: int, half: int) -> int:
    """Where ``score`` first rises a quarter of the way from its median in the ``half`` epochs before
    ``coarse`` to its median in those after: a sleep onset that depends only on the time around it, not
    on how much of the day the recording holds (whole-recording percentiles do), and that falls where
    light sleep begins rather than where sleep deepens."""
    lo, hi = max(0, coarse - half), min(score.size, coarse + half)
    if coarse - lo < half // 2 or hi - coarse < half // 2:
        return coarse
    wake, sleep = np.median(score[lo:coarse]), np.median(score[coarse:hi])
    level = wake + _ONSET_LEVEL * (sleep - wake)
    above = np.flatnonzero(score[lo:hi] > level)
    return lo + int(above[0]) if above.size else coarse


def likely_sleep_window(
    recording: Recording, epoch_s: float = 30.0, margin_min: float = 30.0, min_h: float = 3.0
) -> tuple[int, int]:
    """Epoch range that most likely holds the night's sleep period, plus ``margin_min`` of wake each side.

    For recordings of at least ``min_h`` hours (shorter ones are returned whole): the per-epoch
    :func:`sleep_likeness`, smoothed over 10 minutes, is split at the midpoint between its 10th and
    90th percentiles; runs above it less than 90 minutes apart are joined (long awakenings belong to the
    night), and the longest joined run, widened by ``margin_min`` on each side, is the sleep window: the
    span training recordings were trimmed to. Its start is then refined from the 90 minutes around it
    alone (the first rise of the smoothed, unnormalised sleep likeness a quarter of the way from its
    median before to its median after), so that a recording cropped to its night finds the same start; a start
    within 10 minutes of the recording's is the recording's. A recording started at bedtime gets a
    window from its start; one that holds hours of evening or daytime wake, one that starts later.

    Parameters
    ----------
    recording : Recording
        Signals at their native rates.
    epoch_s : float
        Epoch length, s.
    margin_min : float
        Minutes of wake kept on each side (the training trimming's margin).
    min_h : float
        Recordings shorter than this many hours are taken whole.

    Returns
    -------
    first_epoch, stop_epoch : int
    """
    n = recording.n_epochs(epoch_s)
    if n * epoch_s < min_h * 3600:
        return 0, n
    per_min = 60.0 / epoch_s
    width = max(1, round(10 * per_min))
    ratio, tone = _log_slow_fast_and_tone(recording, epoch_s)
    likeness = _robust_z(ratio) if tone is None else _robust_z(ratio) - _robust_z(tone)
    smooth = _moving_average(likeness, width)
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
    local = ratio if tone is None else ratio - tone  # no whole-recording statistics in it
    first = _local_onset(_moving_average(local, width), first, round(45 * per_min))
    margin = round(margin_min * per_min)
    start = first - margin
    # a window that would start within 10 minutes of the recording's start starts at it
    return (start if start >= 10 * per_min else 0), min(n, stop + margin)
