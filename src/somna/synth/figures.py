"""Figures of synthetic (or real) PSG: mean spectrum per stage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import welch

from somna.stages import LabelSet

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_stage_spectra"]


def plot_stage_spectra(
    signals: Mapping[str, np.ndarray],
    stages: np.ndarray,
    label_set: LabelSet,
    sfreq: float,
    *,
    epoch_s: float = 30.0,
    fmax: float = 30.0,
    title: str | None = None,
) -> Figure:
    """Plot the mean Welch spectrum of each stage, one panel per channel, on a log power axis.

    Parameters
    ----------
    signals : mapping of str to np.ndarray
        Channel name → samples in µV at ``sfreq``, all the same length, starting at epoch 0.
    stages : np.ndarray of int
        Stage code per epoch (``label_set``); unscored epochs are left out.
    label_set : LabelSet
        Vocabulary of ``stages`` (its labels name the curves).
    sfreq : float
        Sampling rate, Hz.
    epoch_s : float
        Epoch length, s.
    fmax : float
        Highest frequency shown, Hz.
    title : str | None
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not saved).
    """
    import matplotlib.pyplot as plt

    stages = np.asarray(stages)
    n_per_epoch = round(epoch_s * sfreq)
    fig, axes = plt.subplots(1, len(signals), figsize=(5.0 * len(signals), 4.0), squeeze=False, sharey=True)
    for ax, (name, data) in zip(axes[0], signals.items(), strict=True):
        n_epochs = min(stages.size, np.asarray(data).size // n_per_epoch)
        epochs = np.asarray(data[: n_epochs * n_per_epoch], dtype=np.float64).reshape(n_epochs, n_per_epoch)
        freqs, psd = welch(epochs, fs=sfreq, nperseg=int(4 * sfreq), axis=-1)
        keep = freqs <= fmax
        for code, label in enumerate(label_set.labels):
            mask = stages[:n_epochs] == code
            if mask.any():
                ax.semilogy(freqs[keep], psd[mask][:, keep].mean(axis=0), label=f"{label} (n={mask.sum()})")
        ax.set_title(name)
        ax.set_xlabel("Frequency (Hz)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel("Power (µV²/Hz)")
    axes[0, -1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
