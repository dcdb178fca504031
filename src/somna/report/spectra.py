"""Mean power spectrum per sleep stage: of a recording's signals, or of a prepared cohort, and its figure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from somna.data.cohort import Cohort
from somna.report.figures import _figure_and_axes, _stage_colour
from somna.stages import AASM, UNSCORED, LabelSet

__all__ = ["StageSpectra", "cohort_stage_spectra", "plot_stage_spectra", "stage_spectra"]

StageSpectra = tuple[np.ndarray, dict[str, np.ndarray], list[str]]
"""Frequencies (Hz); per stage, mean power of shape (n_channels, n_freqs); the channel names."""


def _welch(epochs: np.ndarray, sfreq: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import welch  # scipy.signal takes most of a second to import: only here

    return welch(epochs, fs=sfreq, nperseg=int(4 * sfreq), axis=-1)


def stage_spectra(
    signals: Mapping[str, np.ndarray],
    stages: np.ndarray,
    label_set: LabelSet,
    sfreq: float,
    epoch_s: float = 30.0,
) -> StageSpectra:
    """Mean Welch spectrum per stage of each channel of a recording.

    Parameters
    ----------
    signals : mapping of str to np.ndarray
        Channel name → samples (µV) at ``sfreq``, starting at epoch 0.
    stages : np.ndarray of int
        Stage code per epoch (``label_set``); unscored epochs are left out.
    label_set : LabelSet
        Vocabulary of ``stages``.
    sfreq, epoch_s : float
        Sampling rate (Hz) and epoch length (s).

    Returns
    -------
    StageSpectra
    """
    stages = np.asarray(stages)
    per_epoch = round(epoch_s * sfreq)
    n_epochs = min([stages.size, *(np.asarray(x).size // per_epoch for x in signals.values())])
    epochs = np.stack(
        [
            np.asarray(x[: n_epochs * per_epoch], dtype=np.float64).reshape(n_epochs, per_epoch)
            for x in signals.values()
        ],
        axis=1,
    )  # (n_epochs, n_channels, samples)
    freqs, power = _welch(epochs, sfreq)
    spectra = {
        label: power[stages[:n_epochs] == code].mean(axis=0)
        for code, label in enumerate(label_set.labels)
        if np.any(stages[:n_epochs] == code) and code != UNSCORED
    }
    return freqs, spectra, list(signals)


def cohort_stage_spectra(cohort: Cohort, max_epochs_per_stage: int = 200, seed: int = 0) -> StageSpectra:
    """Mean Welch spectrum per AASM stage of each 100 Hz channel of a prepared cohort.

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
    StageSpectra
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
            freqs, power = _welch(np.concatenate([np.asarray(night[m][idx]) for m in fields], axis=1), sfreq)
            sums[label] = sums.get(label, 0) + power.sum(axis=0)
            counts[label] = counts.get(label, 0) + idx.size
    return freqs, {label: sums[label] / counts[label] for label in AASM.labels if label in sums}, channels


def plot_stage_spectra(
    spectra: StageSpectra,
    max_freq: float = 30.0,
    title: str | None = None,
    unit: str = "µV²/Hz",
    ax: Any = None,
) -> Figure:
    """The mean spectrum of each stage, one panel per channel, on a log power axis.

    Parameters
    ----------
    spectra : StageSpectra
        From :func:`stage_spectra` or :func:`cohort_stage_spectra`.
    max_freq : float
        Upper frequency shown, Hz.
    title : str | None
        Figure title (only on a figure made here).
    unit : str
        Unit of power (``"normalised units²/Hz"`` for a prepared cohort).
    ax : sequence of matplotlib Axes | None
        One axes per channel to draw into; a new figure when ``None``.

    Returns
    -------
    Figure
    """
    freqs, per_stage, channels = spectra
    shown = freqs <= max_freq
    fig, axes, own = _figure_and_axes(ax, len(channels), (4.6 * len(channels), 3.8), columns=len(channels))
    for i, (axis, channel) in enumerate(zip(axes, channels, strict=True)):
        for k, (label, power) in enumerate(per_stage.items()):
            axis.semilogy(freqs[shown], power[i, shown], color=_stage_colour(label, k), label=label, lw=1.5)
        axis.set_title(channel)
        axis.set_xlabel("Frequency (Hz)")
        axis.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"Power ({unit})")
    axes[-1].legend(title="stage", frameon=False)
    if own:
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig
