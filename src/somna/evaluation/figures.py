"""Figures of agreement between a reference hypnogram and a prediction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from somna.storage import atomic_write

__all__ = ["plot_confusion_matrix"]


def _row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum; rows that sum to 0 stay 0."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)


def _draw_matrix(
    ax: Axes, values: np.ndarray, texts: list[list[str]], labels: Sequence[str], vmax: float, cmap: str
) -> None:
    """Heat map with one annotation per cell, text white on dark cells and black on light ones."""
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=vmax if vmax > 0 else 1.0, aspect="equal")
    n = len(labels)
    ax.set_xticks(range(n), labels=list(labels))
    ax.set_yticks(range(n))
    ax.set_xlabel("Predicted stage")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    threshold = 0.5 * (vmax if vmax > 0 else 1.0)
    fontsize = 11 if n <= 5 else 9
    for i in range(n):
        for j in range(n):
            colour = "white" if values[i, j] > threshold else "black"
            weight = "bold" if i == j else "normal"
            ax.text(
                j,
                i,
                texts[i][j],
                ha="center",
                va="center",
                color=colour,
                fontsize=fontsize,
                fontweight=weight,
            )
    # Thin white grid between cells so neighbouring values stay apart.
    ax.set_xticks(np.arange(-0.5, n, 1.0), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1.0), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def plot_confusion_matrix(
    confusion: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Plot a confusion matrix as counts and as row-normalised percentages, and save it as a PNG.

    Left panel: epoch counts. Right panel: each row divided by its reference total, in %, so the
    diagonal reads as each stage's recall (sensitivity). Reference stages are on the rows (with their
    number of epochs), predicted stages on the columns; every cell is annotated. A stage absent from
    the reference has no percentages and its row shows dashes.

    Parameters
    ----------
    confusion : array-like, shape (n_classes, n_classes)
        Counts, rows = reference, columns = predicted (``epoch_agreement(...)["confusion"]``).
    labels : sequence of str
        Stage names in code order (``epoch_agreement(...)["labels"]``).
    path : str | Path
        Output PNG, written atomically.
    title : str
        Figure title; empty for none.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If ``confusion`` is not square or does not match ``labels``.
    """
    counts = np.asarray(confusion, dtype=float)
    n = len(labels)
    if counts.ndim != 2 or counts.shape != (n, n):
        raise ValueError(f"confusion has shape {counts.shape}; expected ({n}, {n}) for labels {list(labels)}")
    percent = 100.0 * _row_normalised(counts)
    totals = counts.sum(axis=1)
    row_labels = [f"{label}\n(n={int(total)})" for label, total in zip(labels, totals, strict=True)]

    # Figure rather than pyplot: no global state and no display backend needed on headless machines.
    side = max(4.2, 0.75 * n + 1.8)
    fig = Figure(figsize=(2 * side + 1.4, side + (0.5 if title else 0.1)))
    ax_counts, ax_percent = fig.subplots(1, 2)
    count_texts = [[f"{int(v)}" for v in row] for row in counts]
    # A stage absent from the reference has no percentages: a dash, not a misleading row of zeros.
    percent_texts = [
        [f"{v:.1f}" if t > 0 else "–" for v in row] for row, t in zip(percent, totals, strict=True)
    ]
    _draw_matrix(ax_counts, counts, count_texts, labels, float(counts.max(initial=0.0)), "Blues")
    _draw_matrix(ax_percent, percent, percent_texts, labels, 100.0, "Greens")
    for ax, subtitle in ((ax_counts, "Epochs"), (ax_percent, "% of reference row (diagonal = recall)")):
        ax.set_yticklabels(row_labels)
        ax.set_ylabel("Reference stage")
        ax.set_title(subtitle, pad=28, fontsize=11)
    if title:
        fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return path
