"""The :class:`Hypnogram`: one stage per 30-s epoch, with its label set and timing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from somna.stages import UNSCORED, LabelSet, convert, stage_counts

__all__ = ["EPOCH_SECONDS", "Hypnogram", "sleep_period_bounds"]

EPOCH_SECONDS: float = 30.0
"""Scoring epoch length in seconds (AASM and R&K)."""


@dataclass
class Hypnogram:
    """Stages of consecutive scoring epochs.

    Parameters
    ----------
    stages : np.ndarray of int8, shape (n_epochs,)
        Stage codes of ``label_set``; :data:`somna.stages.UNSCORED` for epochs without a stage.
    label_set : LabelSet
        The vocabulary of ``stages`` (R&K for Sleep-EDF files, AASM for AASM-scored files).
    epoch_s : float
        Epoch length in seconds.
    start : datetime | None
        Wall-clock time of the first epoch's start, when the source says.
    lights_off_s, lights_on_s : float | None
        Lights off / lights on, in seconds from the first epoch's start, when the source says.
    source : Path | None
        The file it was read from.
    """

    stages: np.ndarray
    label_set: LabelSet
    epoch_s: float = EPOCH_SECONDS
    start: datetime | None = None
    lights_off_s: float | None = None
    lights_on_s: float | None = None
    source: Path | None = None
    events: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stages = np.asarray(self.stages, dtype=np.int8)

    def __len__(self) -> int:
        return int(self.stages.size)

    @property
    def duration_s(self) -> float:
        """Length covered by the epochs, in seconds."""
        return len(self) * self.epoch_s

    def to(self, label_set: LabelSet) -> Hypnogram:
        """Return this hypnogram in a coarser label set (see :func:`somna.stages.convert`)."""
        return replace(self, stages=convert(self.stages, self.label_set, label_set), label_set=label_set)

    def counts(self) -> dict[str, int]:
        """Epochs per stage by short name, unscored under ``"?"``."""
        return stage_counts(self.stages, self.label_set)

    def crop(self, first_epoch: int, stop_epoch: int) -> Hypnogram:
        """Return epochs ``first_epoch`` up to (not including) ``stop_epoch``, timings shifted to match."""
        shift = first_epoch * self.epoch_s
        start = None
        if self.start is not None:
            from datetime import timedelta

            start = self.start + timedelta(seconds=shift)

        def _shift(t: float | None) -> float | None:
            return None if t is None else t - shift

        return replace(
            self,
            stages=self.stages[first_epoch:stop_epoch].copy(),
            start=start,
            lights_off_s=_shift(self.lights_off_s),
            lights_on_s=_shift(self.lights_on_s),
            events=[(t - shift, text) for t, text in self.events],
        )


def sleep_period_bounds(hypnogram: Hypnogram, wake_margin_min: float | None = 30.0) -> tuple[int, int]:
    """Epoch range that keeps the sleep period plus a margin of wake on each side.

    The literature's trimming of Sleep-EDF SC nights (20+ h, mostly wake): keep ``wake_margin_min``
    minutes before the first sleep epoch and after the last sleep epoch, limited by the recording.

    Parameters
    ----------
    hypnogram : Hypnogram
        Any label set; sleep is every scored stage other than W.
    wake_margin_min : float | None
        Minutes kept on each side. ``None`` keeps the whole recording.

    Returns
    -------
    first_epoch, stop_epoch : int
        Slice bounds (``stop_epoch`` excluded). The whole range when there is no sleep at all.
    """
    n = len(hypnogram)
    if wake_margin_min is None:
        return 0, n
    wake = hypnogram.label_set.code(hypnogram.label_set.labels[0])
    sleep = np.flatnonzero((hypnogram.stages != UNSCORED) & (hypnogram.stages != wake))
    if sleep.size == 0:
        return 0, n
    margin = round(wake_margin_min * 60.0 / hypnogram.epoch_s)
    return max(0, int(sleep[0]) - margin), min(n, int(sleep[-1]) + 1 + margin)
