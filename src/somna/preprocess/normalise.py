"""Running robust normalisation: each epoch scaled by what the recording has shown so far.

Per channel, every epoch's median and interquartile range (IQR) are taken; epoch ``k`` is then centred
on the median of the epoch medians of epochs ``0 … k`` and divided by the median of their IQRs (over
1.349, the IQR of a unit normal distribution, so the result is in robust standard deviations), and
clipped. This runs live (each epoch needs only the epochs before it), gives the same numbers whether a
recording is pushed whole or in pieces, and is robust where a pooled IQR is not: a flat stretch from a
loose lead or an hour of artefact moves a median over epochs only once it covers half of them.

With ``mask_flat``, an epoch that is flat on a channel (its IQR under 2 % of the running median IQR, or
zero) is a missing channel, not a signal: it comes out as zeros, which is what training's modality
dropout shows the model for a missing channel, and it does not enter the statistics.
"""

from __future__ import annotations

import bisect

import numpy as np

__all__ = ["RunningRobustScaler", "epoch_quartiles"]

# IQR of a standard normal distribution: dividing by IQR / 1.349 makes the scale comparable to a z-score.
_IQR_OF_UNIT_NORMAL = 1.349
_MIN_SCALE = 1e-6  # a floor, not an error: a stream may start on a flat stretch; its epochs clip
_STATS_SAMPLES = 500
_FLAT_SHARE = 0.02  # an epoch this much quieter than the recording so far has no signal


def epoch_quartiles(epochs: np.ndarray, max_samples: int = _STATS_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Median and IQR of every epoch of every channel, from at most ``max_samples`` evenly spaced
    samples of each epoch (500 of a 30-s epoch at 100 Hz, one every 60 ms: the quartiles of an epoch's
    amplitude distribution, not of its waveform).

    Parameters
    ----------
    epochs : np.ndarray, shape (n_chans, n_epochs, n_samples)
    max_samples : int
        Most samples per epoch the quartiles are taken from.

    Returns
    -------
    median, iqr : np.ndarray of float64, shape (n_chans, n_epochs)
    """
    step = -(-epochs.shape[-1] // max_samples)
    q25, q50, q75 = np.percentile(epochs[..., ::step], (25, 50, 75), axis=-1)
    return q50.astype(np.float64), (q75 - q25).astype(np.float64)


class RunningRobustScaler:
    """The running median of epoch medians and of epoch IQRs, per channel (see the module docstring).

    Parameters
    ----------
    n_chans : int
        Channels.
    clip : float | None
        Clip level in robust standard deviations; ``None`` leaves the output unclipped.
    mask_flat : bool
        Flat epochs of a channel come out as zeros and stay out of the statistics.
    """

    def __init__(self, n_chans: int, clip: float | None = 20.0, mask_flat: bool = False):
        self.n_chans, self.clip, self.mask_flat = n_chans, clip, mask_flat
        self._medians: list[list[float]] = [[] for _ in range(n_chans)]  # kept sorted
        self._iqrs: list[list[float]] = [[] for _ in range(n_chans)]
        self.n_epochs = 0

    @staticmethod
    def _middle(values: list[float]) -> float:
        n = len(values)
        return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])

    def scale(self, epochs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Add consecutive epochs to the statistics and return them normalised.

        Parameters
        ----------
        epochs : np.ndarray, shape (n_chans, n_epochs, n_samples)
            The next epochs of the stream (any number, in order).
        out : np.ndarray | None, shape (n_epochs, n_chans, n_samples), float32
            Where to write the result (e.g. a slice of a whole night's array); a new array when ``None``.

        Returns
        -------
        np.ndarray of float32, shape (n_epochs, n_chans, n_samples)
            Epoch ``k`` scaled with the statistics of every epoch up to and including it.
        """
        epochs = np.asarray(epochs, dtype=np.float32)
        n_new = epochs.shape[1]
        centre = np.zeros((self.n_chans, n_new))
        spread = np.ones((self.n_chans, n_new))
        missing = np.zeros((self.n_chans, n_new), dtype=bool)
        median, iqr = epoch_quartiles(epochs)
        for c in range(self.n_chans):
            medians, iqrs = self._medians[c], self._iqrs[c]
            for k in range(n_new):
                if self.mask_flat and (
                    iqr[c, k] <= 0 or (iqrs and iqr[c, k] < _FLAT_SHARE * self._middle(iqrs))
                ):
                    missing[c, k] = True
                    continue
                bisect.insort(medians, float(median[c, k]))
                bisect.insort(iqrs, float(iqr[c, k]))
                centre[c, k] = self._middle(medians)
                spread[c, k] = self._middle(iqrs)
        self.n_epochs += n_new
        scale = np.maximum(spread / _IQR_OF_UNIT_NORMAL, _MIN_SCALE)
        if out is None:
            out = np.empty(
                (n_new, self.n_chans, epochs.shape[2]), dtype=np.float32
            )  # epoch-major: model input
        np.subtract(epochs.transpose(1, 0, 2), centre.T[:, :, None].astype(np.float32), out=out)
        out *= (1.0 / scale.T[:, :, None]).astype(np.float32)
        if self.clip is not None:
            np.clip(out, -self.clip, self.clip, out=out)
        if missing.any():
            out[missing.T] = 0.0
        return out
