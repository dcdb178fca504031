"""Every somna figure: the night (step hypnogram, hypnodensity, stage percentages) and the agreement
with a scorer (confusion matrix, Bland–Altman plots of sleep metrics).

Every function returns a :class:`matplotlib.figure.Figure` built with the object-oriented API (no
pyplot, no global state, no display backend needed) and takes ``ax=`` to draw into axes of the
caller's figure instead; :func:`figure_png` turns a figure into PNG bytes and :func:`save_figure`
writes it atomically.

Stages are always taken by name from the hypnogram's label set, never by integer code. The y axis of
a hypnogram runs, top to bottom, W, REM, then the NREM stages from light to deep (AASM: W, REM, N1,
N2, N3; R&K: W, REM, S1, S2, S3, S4; 3-class: W, REM, NREM), the order clinicians read.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter

from somna.hypnogram import EPOCH_SECONDS, Hypnogram
from somna.stages import UNSCORED, LabelSet
from somna.storage import atomic_write

__all__ = [
    "STAGE_COLOURS",
    "figure_png",
    "plot_bland_altman",
    "plot_confusion_matrix",
    "plot_hypnodensity",
    "plot_hypnogram",
    "plot_stage_percentages",
    "save_figure",
]

STAGE_COLOURS: dict[str, str] = {
    "W": "#e69f00",
    "N1": "#56b4e9",
    "N2": "#0072b2",
    "N3": "#000080",
    "REM": "#cc0077",
}
"""One colour per AASM stage, used by every somna figure (colour-blind safe; wake and REM far apart)."""

# Colours of the stages of the other label sets, chosen to read as their AASM counterparts.
_EXTRA_COLOURS: dict[str, str] = {
    "S1": STAGE_COLOURS["N1"],
    "S2": STAGE_COLOURS["N2"],
    "S3": "#4848b4",  # lighter than S4, darker than N2: S3 + S4 = N3
    "S4": STAGE_COLOURS["N3"],
    "NREM": STAGE_COLOURS["N2"],
    "Sleep": STAGE_COLOURS["N2"],
}
_FALLBACK_COLOURS = ("#7f7f7f", "#009e73", "#cc79a7", "#f0e442", "#8c564b")
_WAKE = "W"
_REM = "REM"
_LIGHTS_COLOUR = "#444444"
_OUTSIDE_BED = "#ececec"  # the recording outside time in bed
_OUTSIDE_SHOWN_S = 1800.0  # how much of it a hypnogram shows either side of time in bed
_REFERENCE_LINE = "#555555"
_ESTIMATE_LINE = "#1a1a1a"
_TICK_STEPS_MIN = (5, 10, 15, 30, 60, 120, 180, 240, 360)


def _figure_and_axes(
    ax: Any, n: int, figsize: tuple[float, float], columns: int = 1, sharex: bool = False
) -> tuple[Figure, list[Axes], bool]:
    """The caller's axes (one Axes or a sequence of ``n``) and their figure, or a new figure of ``n``
    axes; the flag says whether the figure is new (then the caller lays it out)."""
    if ax is None:
        fig = Figure(figsize=figsize)
        grid = fig.subplots(-(-n // columns), columns, sharex=sharex, squeeze=False)
        axes = list(np.ravel(grid))
        for extra in axes[n:]:
            extra.set_visible(False)
        return fig, axes[:n], True
    axes = [ax] if isinstance(ax, Axes) else list(ax)
    if len(axes) != n:
        raise ValueError(f"this figure needs {n} axes, got {len(axes)}")
    return axes[0].figure, axes, False


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write a figure as a PNG file, atomically; returns ``path``."""
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))


def _stage_colour(label: str, index: int = 0) -> str:
    """Colour of a stage by short name; unknown names get a neutral colour from a small cycle."""
    if label in STAGE_COLOURS:
        return STAGE_COLOURS[label]
    if label in _EXTRA_COLOURS:
        return _EXTRA_COLOURS[label]
    return _FALLBACK_COLOURS[index % len(_FALLBACK_COLOURS)]


def _display_order(label_set: LabelSet) -> list[str]:
    """Stage names top to bottom as a clinical hypnogram shows them: W, REM, then the rest in code order."""
    first = [label for label in (_WAKE, _REM) if label in label_set.labels]
    return first + [label for label in label_set.labels if label not in first]


def _stage_rows(label_set: LabelSet) -> np.ndarray:
    """For each code of ``label_set``, its y position (top row = ``n_classes - 1``, bottom = 0)."""
    order = _display_order(label_set)
    n = len(order)
    return np.array([n - 1 - order.index(label) for label in label_set.labels], dtype=float)


def _hours_axis(ax: Axes, start: datetime | None, span_h: tuple[float, float]) -> None:
    """Label an x axis in hours from the start: round clock times when ``start`` is known."""
    lo, hi = span_h
    length_min = max(hi - lo, 1e-9) * 60.0
    step_min = next((s for s in _TICK_STEPS_MIN if length_min / s <= 12), _TICK_STEPS_MIN[-1])
    # Minutes of the day (or from the start) at x = 0; ticks at multiples of the step from there.
    origin_min = 0.0
    if start is not None:
        origin_min = start.hour * 60 + start.minute + (start.second + start.microsecond / 1e6) / 60.0
    first = np.ceil((origin_min + lo * 60.0) / step_min - 1e-9) * step_min
    ticks = (np.arange(first, origin_min + hi * 60.0 + 1e-6, step_min) - origin_min) / 60.0
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    if start is None:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{round(x, 6) + 0.0:g}"))
        ax.set_xlabel("Time from recording start (h)")
        return
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda x, _pos: (start + timedelta(hours=float(x))).strftime("%H:%M"))
    )
    ax.set_xlabel(f"Clock time (recording started {start:%Y-%m-%d %H:%M:%S})")


def _offset_h(hypnogram: Hypnogram, origin: datetime | None) -> float:
    """Hours from ``origin`` to the hypnogram's first epoch (0 when either time is unknown)."""
    if origin is None or hypnogram.start is None:
        return 0.0
    return (hypnogram.start - origin).total_seconds() / 3600.0


def _runs(stages: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal codes as ``(first_epoch, stop_epoch, code)``."""
    if stages.size == 0:
        return []
    change = np.flatnonzero(np.diff(stages.astype(np.int16))) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [stages.size]])
    return [(int(a), int(b), int(stages[a])) for a, b in zip(starts, stops, strict=True)]


def _draw_steps(ax: Axes, hypnogram: Hypnogram, offset_h: float, line_colour: str) -> None:
    """Draw one hypnogram as a step line; REM runs as thick bars; unscored epochs as gaps."""
    label_set = hypnogram.label_set
    rows = _stage_rows(label_set)
    epoch_h = hypnogram.epoch_s / 3600.0
    runs = _runs(hypnogram.stages)
    xs: list[float] = []
    ys: list[float] = []
    previous_scored = False
    for first, stop, code in runs:
        x0, x1 = offset_h + first * epoch_h, offset_h + stop * epoch_h
        if code == UNSCORED:
            # A NaN breaks the line: no connector into or out of an unscored stretch.
            xs.append(x0)
            ys.append(np.nan)
            previous_scored = False
            continue
        y = float(rows[code])
        if not previous_scored:
            xs.append(np.nan)
            ys.append(np.nan)
        xs.extend([x0, x1])
        ys.extend([y, y])
        previous_scored = True
    ax.plot(xs, ys, color=line_colour, lw=1.0, solid_joinstyle="miter", zorder=2)
    if _REM in label_set.labels:
        rem = label_set.code(_REM)
        y_rem = float(rows[rem])
        for first, stop, code in runs:
            if code == rem:
                ax.hlines(
                    y_rem,
                    offset_h + first * epoch_h,
                    offset_h + stop * epoch_h,
                    colors=STAGE_COLOURS["REM"],
                    lw=6,
                    capstyle="butt",
                    zorder=3,
                )
    # Light shading marks unscored stretches so that a gap is not mistaken for missing data.
    for first, stop, code in runs:
        if code == UNSCORED:
            ax.axvspan(
                offset_h + first * epoch_h,
                offset_h + stop * epoch_h,
                color="#d9d9d9",
                alpha=0.6,
                lw=0,
                zorder=0,
            )


def _draw_lights(ax: Axes, hypnogram: Hypnogram, offset_h: float, label: bool) -> None:
    """Lights off / on as dashed vertical lines, and the time outside them shaded, when the hypnogram
    knows them; a bound estimated rather than given is labelled so."""
    tib = hypnogram.info.get("time_in_bed") or {}
    end_h = offset_h + hypnogram.duration_s / 3600.0
    for seconds, name in ((hypnogram.lights_off_s, "off"), (hypnogram.lights_on_s, "on")):
        if seconds is None:
            continue
        x = offset_h + seconds / 3600.0
        outside = (offset_h, x) if name == "off" else (x, end_h)
        if outside[1] > outside[0]:
            ax.axvspan(*outside, color=_OUTSIDE_BED, lw=0, zorder=0)
        ax.axvline(x, color=_LIGHTS_COLOUR, ls="--", lw=1.0, zorder=1)
        name = f"lights {name}" + (" (estimated)" if tib.get(f"lights_{name}_source") == "estimated" else "")
        if label:
            ax.annotate(
                name,
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -2),
                textcoords="offset points",
                ha="left",
                va="top",
                fontsize=8,
                color=_LIGHTS_COLOUR,
            )


def _style_stage_axis(ax: Axes, label_set: LabelSet, title: str) -> None:
    order = _display_order(label_set)
    n = len(order)
    ax.set_yticks(range(n), labels=list(reversed(order)))
    ax.set_ylim(-0.6, n - 0.4)
    for tick, label in zip(ax.get_yticklabels(), reversed(order), strict=True):
        if label == _REM:
            tick.set_color(STAGE_COLOURS["REM"])
            tick.set_fontweight("bold")
    ax.grid(axis="y", alpha=0.25)
    ax.grid(axis="x", alpha=0.15)
    ax.set_title(title, loc="left", fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def plot_hypnogram(hypnogram: Hypnogram, reference: Hypnogram | None = None, ax: Any = None) -> Figure:
    """Classic clinical step hypnogram of one night.

    Time of night runs along x (clock time when ``hypnogram.start`` is known, else hours from the
    start); stages along y, top to bottom W, REM, then NREM from light to deep. REM is drawn as a thick
    red bar, unscored epochs as gaps (lightly shaded), lights off / on as dashed vertical lines. When the
    hypnogram knows both, the panel spans time in bed and half an hour either side, greyed.

    Parameters
    ----------
    hypnogram : Hypnogram
        The (estimated) hypnogram.
    reference : Hypnogram | None
        A scored hypnogram of the same night, drawn in a second panel above for comparison. Both
        panels share the time axis; when both have a ``start`` they are aligned on clock time.
    ax : matplotlib Axes | sequence of Axes | None
        Axes to draw into (two with a reference); a new figure when ``None``.

    Returns
    -------
    Figure
        The figure (not saved; see :func:`save_figure`).
    """
    panels = [hypnogram] if reference is None else [reference, hypnogram]
    titles = ["Hypnogram"] if reference is None else ["Scored (reference)", "Estimated"]
    origin = hypnogram.start
    height_per_panel = 0.32 * max(p.label_set.n_classes for p in panels) + 0.9
    fig, axes, own = _figure_and_axes(
        ax, len(panels), (11.0, height_per_panel * len(panels) + 0.7), sharex=True
    )
    spans: list[float] = []
    for ax, night, title, colour in zip(
        axes, panels, titles, [_REFERENCE_LINE, _ESTIMATE_LINE][-len(panels) :], strict=True
    ):
        offset = _offset_h(night, origin)
        _draw_steps(ax, night, offset, colour)
        _draw_lights(ax, night, offset, label=ax is axes[0])
        _style_stage_axis(ax, night.label_set, f"{title} ({night.label_set.name}, {len(night)} epochs)")
        spans.extend([offset, offset + night.duration_s / 3600.0])
    lo, hi = (min(spans), max(spans)) if spans else (0.0, 1.0)
    if hypnogram.lights_off_s is not None and hypnogram.lights_on_s is not None:
        # the night in bed fills the panel; half an hour either side shows what lies outside it (greyed)
        lo = max(lo, (hypnogram.lights_off_s - _OUTSIDE_SHOWN_S) / 3600.0)
        hi = min(hi, (hypnogram.lights_on_s + _OUTSIDE_SHOWN_S) / 3600.0)
    if hi <= lo:
        hi = lo + 1.0 / 60.0
    for axis in axes:
        axis.set_xlim(lo, hi)
    _hours_axis(axes[-1], origin, (lo, hi))
    if own:
        fig.tight_layout()
    return fig


def plot_hypnodensity(
    probs: np.ndarray | Sequence[Sequence[float]],
    label_set: LabelSet,
    epoch_s: float = EPOCH_SECONDS,
    start: datetime | None = None,
    ax: Any = None,
) -> Figure:
    """Stacked area of per-epoch stage probabilities (a "hypnodensity").

    Stages are stacked in hypnogram order, W on top and the deepest stage at the bottom, each in its
    usual colour; every epoch is drawn as a flat step over its 30 s. Epochs whose row holds NaN (no
    estimate) are left blank.

    Parameters
    ----------
    probs : array-like, shape (n_epochs, n_classes)
        Probabilities per epoch, columns in the code order of ``label_set``; rows need not sum
        exactly to 1 (they are drawn as given, clipped to ``[0, 1]``).
    label_set : LabelSet
        The label set of the columns.
    epoch_s : float
        Epoch length in seconds.
    start : datetime | None
        Clock time of the first epoch; the x axis shows clock times when given.
    ax : matplotlib Axes | None
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    Figure
        The figure.

    Raises
    ------
    ValueError
        If ``probs`` is not 2-D with one column per stage of ``label_set``.
    """
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] != label_set.n_classes:
        raise ValueError(
            f"probs has shape {p.shape}; expected (n_epochs, {label_set.n_classes}) for the "
            f"{label_set.name} label set {label_set.labels}"
        )
    p = np.clip(p, 0.0, 1.0)
    n = p.shape[0]
    epoch_h = epoch_s / 3600.0
    edges = np.arange(n + 1) * epoch_h
    # Each epoch as a flat step: x = e0 e1 e1 e2 e2 ..., values repeated to match.
    x = np.repeat(edges, 2)[1:-1]
    bottom_up = list(reversed(_display_order(label_set)))
    fig, (ax,), own = _figure_and_axes(ax, 1, (11.0, 2.6))
    base = np.zeros(2 * n)
    for i, label in enumerate(bottom_up):
        column = np.repeat(p[:, label_set.code(label)], 2)
        ax.fill_between(x, base, base + column, color=_stage_colour(label, i), lw=0, label=label)
        base = base + column
    ax.set_xlim(0.0, max(edges[-1], epoch_h))
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("Probability")
    ax.set_title(f"Hypnodensity ({label_set.name}, {n} epochs)", loc="left", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    # Legend above the axes (not beside) so that the time axis lines up with the hypnogram's.
    ax.legend(
        handles[::-1],
        labels[::-1],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=len(labels),
        frameon=False,
        fontsize=8,
        handlelength=1.2,
        columnspacing=1.0,
        borderaxespad=0.2,
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    _hours_axis(ax, start, (0.0, max(edges[-1], epoch_h)))
    if own:
        fig.tight_layout()
    return fig


def _time_in_bed(hypnogram: Hypnogram) -> np.ndarray:
    """Stages of the epochs whose midpoint lies in ``[lights_off, lights_on)`` (all epochs when unknown)."""
    mid = (np.arange(len(hypnogram)) + 0.5) * hypnogram.epoch_s
    keep = np.ones(len(hypnogram), dtype=bool)
    if hypnogram.lights_off_s is not None:
        keep &= mid >= hypnogram.lights_off_s
    if hypnogram.lights_on_s is not None:
        keep &= mid < hypnogram.lights_on_s
    return hypnogram.stages[keep]


def _stage_shares(hypnogram: Hypnogram) -> tuple[list[str], np.ndarray, float | None, float]:
    """Sleep stages (code order), their % of TST, wake minutes and TST minutes."""
    label_set = hypnogram.label_set
    stages = _time_in_bed(hypnogram)
    sleep_labels = [label for label in label_set.labels if label != _WAKE]
    minutes = np.array([np.sum(stages == label_set.code(label)) for label in sleep_labels], dtype=float)
    minutes *= hypnogram.epoch_s / 60.0
    tst = float(minutes.sum())
    shares = 100.0 * minutes / tst if tst > 0 else np.full(minutes.shape, np.nan)
    wake = None
    if _WAKE in label_set.labels:
        wake = float(np.sum(stages == label_set.code(_WAKE)) * hypnogram.epoch_s / 60.0)
    return sleep_labels, shares, wake, tst


def plot_stage_percentages(
    hypnogram: Hypnogram, reference: Hypnogram | None = None, ax: Any = None
) -> Figure:
    """Bar chart of each sleep stage as % of total sleep time, with wake and TST minutes annotated.

    Only epochs between lights off and lights on count when the hypnogram knows them (the time in
    bed, as the sleep metrics define it). With a ``reference`` the scored and estimated bars stand side
    by side; a reference in a finer label set (R&K for an AASM estimate, say) is converted first.

    Parameters
    ----------
    hypnogram : Hypnogram
        The (estimated) hypnogram.
    reference : Hypnogram | None
        The scored hypnogram of the same night.
    ax : matplotlib Axes | None
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    Figure
        The figure.
    """
    if reference is not None and reference.label_set != hypnogram.label_set:
        try:
            reference = reference.to(hypnogram.label_set)
        except ValueError:
            pass  # not convertible: the two are drawn on the union of their stage names
    series = (
        [("Estimated", hypnogram)] if reference is None else [("Scored", reference), ("Estimated", hypnogram)]
    )
    computed = [(name, *_stage_shares(night)) for name, night in series]
    labels: list[str] = []
    for _, night_labels, _, _, _ in computed:
        labels.extend(label for label in night_labels if label not in labels)
    fig, (ax,), own = _figure_and_axes(ax, 1, (5.4, 3.0))
    positions = np.arange(len(labels), dtype=float)
    width = 0.8 / len(computed)
    notes = []
    for j, (name, night_labels, shares, wake, tst) in enumerate(computed):
        values = np.array(
            [shares[night_labels.index(label)] if label in night_labels else np.nan for label in labels]
        )
        colours = [_stage_colour(label, i) for i, label in enumerate(labels)]
        x = positions + (j - (len(computed) - 1) / 2) * width
        bars = ax.bar(
            x,
            np.nan_to_num(values),
            width=width * 0.92,
            color=colours,
            alpha=1.0 if name == "Estimated" else 0.45,
            edgecolor="#333333",
            lw=0.6,
            hatch=None if name == "Estimated" or len(computed) == 1 else "//",
            label=name,
        )
        for bar, value in zip(bars, values, strict=True):
            text = "–" if np.isnan(value) else f"{value:.0f}"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        wake_text = "–" if wake is None else f"{wake:.1f}"
        notes.append(f"{name}: TST {tst:.1f} min, wake {wake_text} min")
    ax.set_xticks(positions, labels=labels)
    for tick, label in zip(ax.get_xticklabels(), labels, strict=True):
        if label == _REM:
            tick.set_color(STAGE_COLOURS["REM"])
    ax.set_ylabel("% of total sleep time")
    top = max(
        (float(np.nanmax(s)) for _, _, s, _, _ in computed if s.size and np.isfinite(s).any()), default=0.0
    )
    ax.set_ylim(0, max(10.0, top * 1.18))
    ax.set_title("Sleep stages, % of TST", loc="left", fontsize=10)
    ax.set_xlabel("\n".join(notes), fontsize=8, color="#333333")
    if len(computed) > 1:
        ax.legend(
            handles=[
                Patch(facecolor="#bbbbbb", edgecolor="#333333", alpha=0.45, hatch="//", label="Scored"),
                Patch(facecolor="#bbbbbb", edgecolor="#333333", label="Estimated"),
            ],
            loc="upper right",
            frameon=False,
            fontsize=8,
        )
    ax.grid(axis="y", alpha=0.25)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if own:
        fig.tight_layout()
    return fig


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
    confusion: Sequence[Sequence[float]] | np.ndarray, labels: Sequence[str], title: str = "", ax: Any = None
) -> Figure:
    """A confusion matrix as counts and as row-normalised percentages.

    Left panel: epoch counts. Right panel: each row divided by its reference total, in %, so the
    diagonal reads as each stage's recall (sensitivity). Reference stages are on the rows (with their
    number of epochs), predicted stages on the columns; every cell is annotated. A stage absent from
    the reference has no percentages and its row shows dashes.

    Parameters
    ----------
    confusion : array-like, shape (n_classes, n_classes)
        Counts, rows = reference, columns = predicted (``Hypnogram.evaluate(...)["confusion"]``).
    labels : sequence of str
        Stage names in code order.
    title : str
        Figure title; empty for none.
    ax : matplotlib Axes | pair of Axes | None
        Two axes (counts, percentages), or one for the percentages alone; a new figure when ``None``.

    Returns
    -------
    Figure

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
    side = max(4.2, 0.75 * n + 1.8)
    panels = 1 if isinstance(ax, Axes) else 2
    fig, axes, own = _figure_and_axes(ax, panels, (2 * side + 1.4, side + (0.5 if title else 0.1)), columns=2)
    # A stage absent from the reference has no percentages: a dash, not a misleading row of zeros.
    percent_texts = [
        [f"{v:.1f}" if t > 0 else "–" for v in row] for row, t in zip(percent, totals, strict=True)
    ]
    drawn = [(axes[-1], percent, percent_texts, 100.0, "Greens", "% of reference row (diagonal = recall)")]
    if panels == 2:
        count_texts = [[f"{int(v)}" for v in row] for row in counts]
        drawn.insert(0, (axes[0], counts, count_texts, float(counts.max(initial=0.0)), "Blues", "Epochs"))
    for axis, values, texts, vmax, cmap, subtitle in drawn:
        _draw_matrix(axis, values, texts, labels, vmax, cmap)
        axis.set_yticklabels(row_labels)
        axis.set_ylabel("Reference stage")
        axis.set_title(subtitle, pad=28, fontsize=11)
    if title and own:
        fig.suptitle(title, fontsize=13)
    if own:
        fig.tight_layout()
    return fig


def _axis_unit(unit: str) -> str:
    return "" if unit == "count" else f" ({unit})"


def plot_bland_altman(
    scored: list[dict[str, Any]], estimated: list[dict[str, Any]], metrics: Sequence[str], ax: Any = None
) -> Figure:
    """Bland–Altman plots of estimated against scored night-level metrics, one panel per metric.

    Each panel: one dot per night at (mean of scored and estimated, estimated − scored), the bias
    (solid line), the 95 % limits of agreement (dashed) and zero (thin grey); units on both axes. A
    metric without any paired night gets an empty panel saying so.

    Parameters
    ----------
    scored, estimated, metrics
        As for :func:`somna.evaluation.metric_agreement.metric_agreement`.
    ax : sequence of matplotlib Axes | None
        One axes per metric; a new figure when ``None``.

    Returns
    -------
    Figure
    """
    from somna.evaluation.metric_agreement import metric_agreement, paired_values
    from somna.evaluation.sleep_metrics import METRIC_LABELS

    if not metrics:
        raise ValueError("no metric to plot")
    stats = metric_agreement(scored, estimated, metrics)
    ncols = min(3, len(metrics))
    fig, axes, own = _figure_and_axes(
        ax, len(metrics), (4.6 * ncols, 3.9 * math.ceil(len(metrics) / ncols)), columns=ncols
    )
    for axis, metric in zip(axes, metrics, strict=True):
        entry = stats[metric]
        key, unit = entry["key"], entry["unit"]
        x, y, _ = paired_values(scored, estimated, metric)
        axis.set_title(f"{METRIC_LABELS.get(key, key)}\n(n = {entry['n']} nights)", fontsize=10)
        axis.set_xlabel(f"Mean of scored and estimated{_axis_unit(unit)}")
        axis.set_ylabel(f"Estimated − scored{_axis_unit(unit)}")
        axis.axhline(0.0, color="0.7", linewidth=0.8)
        if entry["n"] == 0:
            axis.text(0.5, 0.5, "no paired nights", ha="center", va="center", transform=axis.transAxes)
            continue
        axis.scatter((x + y) / 2, y - x, s=18, alpha=0.75, color="tab:blue", edgecolor="none")
        axis.axhline(entry["bias"], color="tab:red", linewidth=1.5, label=f"bias {entry['bias']:+.1f}")
        if entry["loa_lower"] is not None:
            for value, tag in ((entry["loa_upper"], "+1.96 SD"), (entry["loa_lower"], "−1.96 SD")):
                axis.axhline(
                    value, color="tab:red", linestyle="--", linewidth=1.0, label=f"{tag} {value:+.1f}"
                )
        axis.legend(fontsize=8, loc="best", frameon=False)
    if own:
        fig.tight_layout()
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes.

    Parameters
    ----------
    fig : Figure
        Any figure (for instance from :func:`plot_hypnogram`).
    dpi : int
        Resolution.

    Returns
    -------
    bytes
        The PNG file's content.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
