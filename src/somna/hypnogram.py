"""The :class:`Hypnogram`: one stage per 30-s epoch, with its label set, timing and probabilities.

It is what somna reads (:func:`somna.read_hypnogram`) and what a stager predicts
(:meth:`somna.inference.Stager.predict`), and the hub of what follows: sleep metrics, agreement with a
scorer, figures, and every output format (CSV, EDF+, BIDS events.tsv, NSRR XML, MNE annotations, YASA).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from somna.stages import AASM, RK, UNSCORED, LabelSet, convert, stage_counts

__all__ = ["EPOCH_SECONDS", "Hypnogram", "sleep_period_bounds"]

EPOCH_SECONDS: float = 30.0
"""Scoring epoch length in seconds (AASM and R&K)."""

# AASM stage names as MNE and EDF+ files (HMC, NSRR exports) spell them; YASA's names.
_ANNOTATION_TEXT = {
    "W": "Sleep stage W",
    "N1": "Sleep stage N1",
    "N2": "Sleep stage N2",
    "N3": "Sleep stage N3",
    "REM": "Sleep stage R",
    "S1": "Sleep stage 1",
    "S2": "Sleep stage 2",
    "S3": "Sleep stage 3",
    "S4": "Sleep stage 4",
    "NREM": "Sleep stage NREM",
    "Sleep": "Sleep",
}
_YASA_STAGES = {"aasm": 5, "3class": 3, "2class": 2}


@dataclass
class Hypnogram:
    """Stages of consecutive scoring epochs.

    Parameters
    ----------
    stages : array-like of int, shape (n_epochs,)
        Stage codes of ``label_set``; :data:`somna.stages.UNSCORED` (-1) for epochs without a stage.
    label_set : LabelSet
        The vocabulary of ``stages`` (:data:`somna.stages.AASM` W/N1/N2/N3/REM, R&K, 3- or 2-class).
    epoch_s : float
        Epoch length in seconds.
    start : datetime | None
        Wall-clock time of the first epoch's start, when known.
    lights_off_s, lights_on_s : float | None
        Lights off / lights on, in seconds from the first epoch's start, when known.
    source : Path | None
        The file it was read from or staged from.
    events : list of (float, str)
        Other annotations of the source (onset in s from the first epoch, text).
    proba : np.ndarray | None, shape (n_epochs, n_classes)
        Stage probabilities of a predicted hypnogram, in ``label_set`` order (each row sums to 1).
    info : dict
        Provenance of a predicted hypnogram (model, backend, channels, ...).
    signal_notes : list of str | None
        Per epoch of a predicted hypnogram, what was wrong with its signals (``"flat EEG Fpz-Cz"``;
        ``""`` when nothing was): :mod:`somna.preprocess.signal_quality`.

    Examples
    --------
    >>> from somna.stages import AASM
    >>> hyp = Hypnogram([0, 0, 1, 2, 2, 3, 3, 2, 4, 4, 0], AASM)
    >>> len(hyp), hyp.duration_s
    (11, 330.0)
    >>> hyp.labels[:4]
    ['W', 'W', 'N1', 'N2']
    >>> hyp.counts()["N2"]
    3
    >>> hyp.sleep_metrics()["tst_min"]
    4.0
    """

    stages: np.ndarray
    label_set: LabelSet
    epoch_s: float = EPOCH_SECONDS
    start: datetime | None = None
    lights_off_s: float | None = None
    lights_on_s: float | None = None
    source: Path | None = None
    events: list[tuple[float, str]] = field(default_factory=list)
    proba: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    signal_notes: list[str] | None = None

    def __post_init__(self) -> None:
        self.stages = np.asarray(self.stages, dtype=np.int8)
        if self.stages.ndim != 1:
            raise ValueError(f"stages must be one-dimensional, got shape {self.stages.shape}")
        bad = (self.stages != UNSCORED) & ((self.stages < 0) | (self.stages >= self.label_set.n_classes))
        if bad.any():
            raise ValueError(
                f"stage code {int(self.stages[bad][0])} is not one of {self.label_set.name}'s "
                f"0 … {self.label_set.n_classes - 1} (or {UNSCORED} for unscored)"
            )
        if self.proba is not None:
            self.proba = np.asarray(self.proba, dtype=np.float32)
            if self.proba.shape != (len(self), self.label_set.n_classes):
                raise ValueError(
                    f"proba must have shape ({len(self)}, {self.label_set.n_classes}), got {self.proba.shape}"
                )

    def __len__(self) -> int:
        return int(self.stages.size)

    @property
    def duration_s(self) -> float:
        """Length covered by the epochs, in seconds."""
        return len(self) * self.epoch_s

    @property
    def labels(self) -> list[str]:
        """The stage of every epoch by short name (``"?"`` for unscored)."""
        return [self.label_set.label(int(code)) for code in self.stages]

    @property
    def confidence(self) -> np.ndarray | None:
        """Probability of the chosen stage of every epoch (``None`` without :attr:`proba`)."""
        if self.proba is None:
            return None
        chosen = np.clip(self.stages.astype(np.int64), 0, None)
        out = self.proba[np.arange(len(self)), chosen]
        return np.where(self.stages == UNSCORED, np.nan, out).astype(np.float32)

    def onsets_s(self) -> np.ndarray:
        """Start of every epoch, seconds from the first."""
        return np.arange(len(self)) * self.epoch_s

    def clock_times(self) -> list[datetime] | None:
        """Wall-clock start of every epoch (``None`` when :attr:`start` is unknown)."""
        if self.start is None:
            return None
        return [self.start + timedelta(seconds=float(t)) for t in self.onsets_s()]

    def to(self, label_set: LabelSet) -> Hypnogram:
        """This hypnogram in a coarser label set (see :func:`somna.stages.convert`); probabilities are
        summed into the coarser stages.

        Examples
        --------
        >>> from somna.stages import AASM, THREE_CLASS
        >>> Hypnogram([0, 1, 2, 3, 4], AASM).to(THREE_CLASS).labels
        ['W', 'NREM', 'NREM', 'NREM', 'REM']
        """
        proba = None
        if self.proba is not None:
            mapping = convert(np.arange(self.label_set.n_classes), self.label_set, label_set)
            proba = np.zeros((len(self), label_set.n_classes), dtype=np.float32)
            for source_code, target_code in enumerate(mapping):
                if target_code != UNSCORED:
                    proba[:, target_code] += self.proba[:, source_code]
        return replace(
            self, stages=convert(self.stages, self.label_set, label_set), label_set=label_set, proba=proba
        )

    def counts(self) -> dict[str, int]:
        """Epochs per stage by short name, unscored under ``"?"``."""
        return stage_counts(self.stages, self.label_set)

    def crop(self, first_epoch: int, stop_epoch: int) -> Hypnogram:
        """Epochs ``first_epoch`` up to (not including) ``stop_epoch``, timings shifted to match."""
        shift = first_epoch * self.epoch_s
        start = None if self.start is None else self.start + timedelta(seconds=shift)

        def _shift(t: float | None) -> float | None:
            return None if t is None else t - shift

        return replace(
            self,
            stages=self.stages[first_epoch:stop_epoch].copy(),
            start=start,
            lights_off_s=_shift(self.lights_off_s),
            lights_on_s=_shift(self.lights_on_s),
            events=[(t - shift, text) for t, text in self.events],
            proba=None if self.proba is None else self.proba[first_epoch:stop_epoch].copy(),
            signal_notes=None if self.signal_notes is None else self.signal_notes[first_epoch:stop_epoch],
        )

    # --- what follows from a hypnogram ---------------------------------------------------------------

    def sleep_metrics(self, **options: Any) -> dict[str, Any]:
        """Sleep metrics of this night (:func:`somna.evaluation.sleep_metrics.sleep_metrics`, whose
        docstring defines each one); ``options`` are passed on (e.g. ``lights_off_s=...``,
        ``rem_min_epochs=1``). A staged hypnogram (one with :attr:`proba`) takes its REM latency to the
        first REM episode of 3 epochs unless told otherwise
        (:data:`~somna.evaluation.sleep_metrics.STAGED_REM_MIN_EPOCHS`), and its metrics also say where
        its time in bed came from (``"time_in_bed"``), unless ``options`` set lights of their own."""
        from somna.evaluation.sleep_metrics import STAGED_REM_MIN_EPOCHS, sleep_metrics

        if self.proba is not None:
            options.setdefault("rem_min_epochs", STAGED_REM_MIN_EPOCHS)
        metrics = sleep_metrics(self, **options)
        tib = self.info.get("time_in_bed")
        own_lights = options.get("lights_off_s") is not None or options.get("lights_on_s") is not None
        if (
            tib
            and not own_lights
            and (tib["lights_off_s"], tib["lights_on_s"])
            == (
                self.lights_off_s,
                self.lights_on_s,
            )
        ):
            metrics["time_in_bed"] = tib
        return metrics

    def evaluate(self, reference: Hypnogram) -> dict[str, Any]:
        """Epoch-by-epoch agreement of this hypnogram with a reference scoring of the same recording.

        The reference is converted to this hypnogram's stages when it is finer (R&K → AASM → 3-class).
        When both know their start time they are compared on the epochs they share (a scorer's file often
        ends before or after the recording); otherwise they must have the same length. Unscored epochs
        of either are left out.

        Parameters
        ----------
        reference : Hypnogram
            The same recording, scored by an expert (or another model).

        Returns
        -------
        dict
            ``accuracy``, ``macro_f1``, ``cohen_kappa``, ``per_class`` (precision, recall, F1,
            support), ``confusion`` (rows: reference), ``n_epochs`` and ``report`` (scikit-learn's text).

        Raises
        ------
        ValueError
            If the two share no epoch, their epochs are not aligned, or their stages cannot be compared.

        Examples
        --------
        >>> from somna.stages import AASM
        >>> scored = Hypnogram([0, 1, 2, 2, 3, 4], AASM)
        >>> predicted = Hypnogram([0, 2, 2, 2, 3, 4], AASM)
        >>> round(predicted.evaluate(scored)["accuracy"], 3)
        0.833
        """
        from somna.evaluation.agreement import epoch_agreement

        ref = reference if reference.label_set is self.label_set else reference.to(self.label_set)
        if ref.epoch_s != self.epoch_s:
            raise ValueError(f"the reference has {ref.epoch_s:g}-s epochs, this hypnogram {self.epoch_s:g}-s")
        mine, theirs = self.stages, ref.stages
        if self.start is not None and ref.start is not None:
            offset = (ref.start - self.start).total_seconds() / self.epoch_s
            if abs(offset - round(offset)) > 1e-6:
                raise ValueError("the reference's epochs do not line up with this hypnogram's (start times)")
            shift = round(offset)  # reference epoch 0 is this hypnogram's epoch `shift`
            first, stop = max(0, shift), min(len(self), shift + len(ref))
            if stop <= first:
                raise ValueError("the reference and this hypnogram share no epoch")
            mine, theirs = self.stages[first:stop], ref.stages[first - shift : stop - shift]
        elif len(ref) != len(self):
            raise ValueError(
                f"the reference has {len(ref)} epochs, this hypnogram {len(self)}, and without both start "
                "times they cannot be lined up"
            )
        return epoch_agreement(theirs, mine, self.label_set)

    def plot(self, ax: Any = None, reference: Hypnogram | None = None) -> Any:
        """The hypnogram as a step plot (``reference`` drawn beneath); returns the matplotlib Figure."""
        from somna.report.figures import plot_hypnogram

        return plot_hypnogram(self, reference=reference, ax=ax)

    def to_csv(self, path: str | Path, probabilities: bool = False) -> Path:
        """Write one row per epoch (atomically).

        Columns: epoch, onset_s, date and clock_time (empty when :attr:`start` is unknown), stage, and
        with :attr:`proba` the confidence (probability of the chosen stage) and, with
        ``probabilities``, one ``p_<stage>`` column per stage; last, for a hypnogram staged from signals
        (:attr:`signal_notes`), ``signal_problem``: what was wrong with the epoch's signals, empty when
        nothing was.
        """
        from somna.storage import atomic_write

        clock = self.clock_times()
        confidence = self.confidence
        header = ["epoch", "onset_s", "date", "clock_time", "stage"]
        if confidence is not None:
            header.append("confidence")
            if probabilities:
                header += [f"p_{label}" for label in self.label_set.labels]
        notes = self.signal_notes
        if notes is not None:
            header.append("signal_problem")
        rows = []
        for i, (onset, label) in enumerate(zip(self.onsets_s(), self.labels, strict=True)):
            when = ["", ""] if clock is None else [clock[i].date().isoformat(), clock[i].strftime("%H:%M:%S")]
            row = [i, f"{onset:g}", *when, label]
            if confidence is not None:
                row.append(f"{confidence[i]:.4f}")
                if probabilities and self.proba is not None:
                    row += [f"{p:.4f}" for p in self.proba[i]]
            if notes is not None:
                row.append(notes[i] if i < len(notes) else "")
            rows.append(row)

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerow(header)
                writer.writerows(rows)

        return atomic_write(path, write)

    def to_edf(self, path: str | Path, vocabulary: str | None = None) -> Path:
        """Write an EDF+ annotation file (one annotation per run of a stage) that EDF viewers and
        :func:`mne.read_annotations` open. AASM and R&K hypnograms only.

        ``vocabulary``: ``None`` (default) writes AASM stages as HMC and NSRR exports do (``Sleep stage
        N1``) and R&K stages as Sleep-EDF does (``Sleep stage 1`` … ``4``); ``"aasm"`` or ``"sleep-edf"``
        chooses one (:func:`somna.io.edf_write.hypnogram_annotation_text`)."""
        from somna.io.edf_write import write_hypnogram_edf

        if self.label_set not in (AASM, RK):
            raise ValueError(f"EDF+ has no standard stage strings for {self.label_set.name} stages")
        return write_hypnogram_edf(path, self, self.start or datetime(1985, 1, 1), vocabulary)

    def to_bids_events(self, path: str | Path) -> Path:
        """Write a BIDS ``events.tsv`` file (atomically): ``onset``, ``duration``, ``trial_type`` with one
        row per run of a stage (``Sleep stage N1`` …, R&K as Sleep-EDF), lights and other events. AASM and
        R&K hypnograms only (:func:`somna.io.formats.write_bids_events`)."""
        from somna.io.formats import write_bids_events

        return write_bids_events(self, path)

    def to_nsrr_xml(self, path: str | Path) -> Path:
        """Write NSRR PSG annotation XML (atomically): ``Stages|Stages`` events (``Wake|0`` … ``REM
        sleep|5``), lights and other events, the start as ``Recording Start Time``. AASM and R&K
        hypnograms only (:func:`somna.io.formats.write_nsrr_xml`)."""
        from somna.io.formats import write_nsrr_xml

        return write_nsrr_xml(self, path)

    def to_mne_annotations(self) -> Any:
        """The stages as :class:`mne.Annotations` (``Sleep stage W`` … ``Sleep stage R``), one per epoch,
        anchored at :attr:`start` when known (as UTC, which is how MNE reads EDF start times too), so
        that ``raw.set_annotations(hypnogram.to_mne_annotations())`` puts them on the recording."""
        import mne

        scored = self.stages != UNSCORED
        descriptions = [_ANNOTATION_TEXT.get(label, label) for label in np.array(self.labels)[scored]]
        return mne.Annotations(
            onset=self.onsets_s()[scored],
            duration=np.full(int(scored.sum()), self.epoch_s),
            description=descriptions,
            # MNE wants an aware time in UTC; EDF clock times carry no zone, so they are taken as UTC
            orig_time=None if self.start is None else self.start.replace(tzinfo=UTC),
        )

    def to_yasa(self) -> Any:
        """A :class:`yasa.Hypnogram` of the same epochs (with its ``proba`` when known); R&K is merged
        to AASM first. Needs ``yasa``, which is imported only here."""
        import yasa

        hyp = self.to(AASM) if self.label_set is RK else self
        if hyp.label_set.name not in _YASA_STAGES:
            raise ValueError(f"YASA has no hypnogram of {hyp.label_set.name} stages")
        yasa_names = {"W": "WAKE", "Sleep": "SLEEP"}
        values = [
            "UNS" if code == UNSCORED else yasa_names.get(label, label)
            for code, label in zip(hyp.stages, hyp.labels, strict=True)
        ]
        proba = None
        if hyp.proba is not None:
            import pandas as pd

            columns = [yasa_names.get(label, label) for label in hyp.label_set.labels]
            proba = pd.DataFrame(hyp.proba.astype(np.float64), columns=columns)
            proba = proba.div(proba.sum(axis=1), axis=0)
        return yasa.Hypnogram(
            values,
            n_stages=_YASA_STAGES[hyp.label_set.name],
            freq=f"{hyp.epoch_s:g}s",
            start=hyp.start,
            scorer=hyp.info.get("model") or None,
            proba=proba,
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
