"""Figures that describe a cohort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.signal import welch

from somna.data.cohort import Cohort
from somna.stages import AASM
from somna.storage import atomic_write

__all__ = ["STAGE_COLOURS", "cohort_stage_spectra", "plot_cohort_spectra"]

STAGE_COLOURS: dict[str, str] = {
    "W": "#e69f00",
    "N1": "#56b4e9",
    "N2": "#0072b2",
    "N3": "#000080",
    "REM": "#d55e00",
}
"""One colour per AASM stage, used by every somna figure."""


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


def plot_cohort_spectra(cohort: Cohort, path: str | Path, max_freq: float = 30.0) -> Path:
    """Plot the mean spectrum per stage for each EEG/EOG channel and save it as a PNG (atomically).

    Parameters
    ----------
    cohort : Cohort
        Prepared cohort.
    path : str | Path
        Output PNG.
    max_freq : float
        Upper frequency shown, Hz.

    Returns
    -------
    Path
        ``path``.
    """
    freqs, spectra, channels = cohort_stage_spectra(cohort)
    shown = freqs <= max_freq
    # Figure rather than pyplot: no global state and no display backend needed on headless machines.
    fig = Figure(figsize=(4.2 * len(channels), 3.6))
    axes = fig.subplots(1, len(channels), sharey=True, squeeze=False)
    for i, (ax, channel) in enumerate(zip(axes[0], channels, strict=True)):
        for label, spectrum in spectra.items():
            ax.semilogy(freqs[shown], spectrum[i, shown], color=STAGE_COLOURS[label], label=label, lw=1.5)
        ax.set_title(channel)
        ax.set_xlabel("Frequency (Hz)")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("Power (normalised units² / Hz)")
    axes[0, -1].legend(title="stage", frameon=False)
    fig.suptitle(f"Mean spectrum per stage, {len(cohort)} nights of {len(cohort.subjects)} subjects")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return path
