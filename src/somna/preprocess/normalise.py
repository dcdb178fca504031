"""Per-recording robust normalisation."""

from __future__ import annotations

import numpy as np

__all__ = ["robust_scale"]

# IQR of a standard normal distribution: dividing by IQR / 1.349 makes the scale comparable to a z-score.
_IQR_OF_UNIT_NORMAL = 1.349


def robust_scale(
    signal: np.ndarray, clip: float | None = 20.0, reference: slice | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre each channel on its median and scale by its interquartile range.

    Robust to the artefacts (movement, electrode pops) that would dominate a mean/sd z-score.

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
    median = np.median(ref, axis=-1)
    q75, q25 = np.percentile(ref, [75, 25], axis=-1)
    scale = (q75 - q25) / _IQR_OF_UNIT_NORMAL
    if np.any(scale <= 0):
        flat = np.flatnonzero(scale <= 0).tolist()
        raise ValueError(f"channel(s) {flat} have zero interquartile range (flat signal)")
    scaled = (signal - median[:, None]) / scale[:, None]
    if clip is not None:
        np.clip(scaled, -clip, clip, out=scaled)
    return scaled.astype(np.float32), median, scale
