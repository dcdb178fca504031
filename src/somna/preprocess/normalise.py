"""Per-recording robust normalisation."""

from __future__ import annotations

import numpy as np

__all__ = ["robust_scale"]

# IQR of a standard normal distribution: dividing by IQR / 1.349 makes the scale comparable to a z-score.
_IQR_OF_UNIT_NORMAL = 1.349

STATS_SAMPLES = 2**19
"""Most samples per channel the median and IQR are taken from (one from each run of equal length)."""


def _stats_sample(ref: np.ndarray) -> np.ndarray:
    n_times = ref.shape[-1]
    step = -(-n_times // STATS_SAMPLES)  # ceil: at most STATS_SAMPLES samples per channel
    if step == 1:
        return ref
    starts = np.arange(0, n_times, step)
    offsets = np.random.default_rng(0).integers(0, step, starts.size)
    return ref[..., np.minimum(starts + offsets, n_times - 1)]


def robust_scale(
    signal: np.ndarray, clip: float | None = 20.0, reference: slice | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre each channel on its median and scale by its interquartile range.

    Robust to the artefacts (movement, electrode pops) that would dominate a mean/sd z-score.

    The quantiles come from at most :data:`STATS_SAMPLES` (524,288) samples of each channel: every
    sample of a recording up to 87 min at 100 Hz, one drawn from each run of 6 of an 8-h night (a fixed
    random position in each run, so no rhythm can alias onto the grid; the same positions every call).
    Neighbouring samples of a signal low-passed at 35 Hz carry little new information, so the estimate
    moves by a few tenths of a percent of the IQR while the sort behind it costs a fraction of the
    time. Training and scoring share this estimator.

    Parameters
    ----------
    signal : np.ndarray, shape (n_channels, n_samples)
    clip : float | None
        Clip the scaled signal to ± this value; ``None`` leaves it unclipped.
    reference : slice | None
        Samples the median and IQR are taken from (default: all). Scoring a long recording uses its
        sleep period, so that the statistics match those of the trimmed recordings a model was trained on.

    Returns
    -------
    scaled : np.ndarray of float32, shape (n_channels, n_samples)
    median, scale : np.ndarray, shape (n_channels,)
        The statistics used, so the same transform can be reported or inverted.

    Raises
    ------
    ValueError
        If a channel has zero interquartile range (flat over most of the recording).
    """
    ref = signal if reference is None else signal[..., reference]
    q25, median, q75 = np.percentile(_stats_sample(ref), [25, 50, 75], axis=-1).astype(np.float64)
    scale = (q75 - q25) / _IQR_OF_UNIT_NORMAL
    if np.any(scale <= 0):
        flat = np.flatnonzero(scale <= 0).tolist()
        raise ValueError(f"channel(s) {flat} have zero interquartile range (flat signal)")
    scaled = np.asarray(signal, dtype=np.float32) - median[:, None].astype(np.float32)
    scaled /= scale[:, None].astype(np.float32)
    if clip is not None:
        np.clip(scaled, -clip, clip, out=scaled)
    return scaled, median, scale
