"""Figures that describe a prepared cohort."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from somna.data.cohort import Cohort
from somna.report.figures import STAGE_COLOURS, _figure_and_axes
from somna.stages import AASM

__all__ = ["cohort_stage_spectra", "plot_cohort_spectra"]


def cohort_stage_spectra(
    cohort: Cohort, max_epochs_per_stage: int = 200, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """Mean Welch power spectrum per AASM stage of each 100 Hz channel of a prepared cohort.

    Parameters
    ----------
    cohort : Cohort
        Prepared cohort (normalised signals, so powers are in robust-SD² / Hz).
    max_epochs_per_stage : int
        Epochs drawn per stage and night (at random, reproducibly) to keep this fast.
    seed : int
        Seed of that draw.

    Returns
    -------
    freqs : np.ndarray
        Frequencies, Hz.
    spectra : dict of str to np.ndarray
        Per stage, shape (n_channels, n_freqs); stages with no epochs are absent.
    channels : list of str
        Channel labels in row order.
    """
    from scipy.signal import welch

    rng = np.random.default_rng(seed)
    sfreq = float(cohort.manifest["config"]["preprocess"]["sfreq"])
    channel_map = cohort.manifest["config"]["channels"]
    fields = [m for m in ("eeg", "eog") if m in channel_map]
    channels = [aliases[0] for m in fields for aliases in channel_map[m]]
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    freqs = np.empty(0)
    for record in cohort.records:
        night = cohort.night(record)
        for code, label in enumerate(AASM.labels):
            idx = np.flatnonzero(night["stage"] == code)
            if idx.size == 0:
                continue
            idx = np.sort(rng.choice(idx, size=min(idx.size, max_epochs_per_stage), replace=False))
            x = np.concatenate(
                [np.asarray(night[m][idx]) for m in fields], axis=1
            )  # (n, n_channels, samples)
            freqs, p = welch(x, fs=sfreq, nperseg=int(4 * sfreq), axis=-1)
            sums[label] = sums.get(label, 0) + p.sum(axis=0)
            counts[label] = counts.get(label, 0) + idx.size
    spectra = {label: sums[label] / counts[label] for label in AASM.labels if label in sums}
    return freqs, spectra, channels


def plot_cohort_spectra(cohort: Cohort, max_freq: float = 30.0, ax: Any = None) -> Figure:
    """The mean spectrum per stage of each EEG/EOG channel of a cohort, one panel per channel.

    Parameters
    ----------
    cohort : Cohort
        Prepared cohort.
    max_freq : float
        Upper frequency shown, Hz.
    ax : sequence of matplotlib Axes | None
        One axes per channel to draw into; a new figure when ``None``.

    Returns
    -------
    Figure
    """
    freqs, spectra, channels = cohort_stage_spectra(cohort)
    shown = freqs <= max_freq
    fig, axes, own = _figure_and_axes(ax, len(channels), (4.2 * len(channels), 3.6), columns=len(channels))
    for i, (axis, channel) in enumerate(zip(axes, channels, strict=True)):
        for label, spectrum in spectra.items():
            axis.semilogy(freqs[shown], spectrum[i, shown], color=STAGE_COLOURS[label], label=label, lw=1.5)
        axis.set_title(channel)
        axis.set_xlabel("Frequency (Hz)")
        axis.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("Power (normalised units² / Hz)")
    axes[-1].legend(title="stage", frameon=False)
    if own:
        fig.suptitle(f"Mean spectrum per stage, {len(cohort)} nights of {len(cohort.subjects)} subjects")
        fig.tight_layout()
    return fig
