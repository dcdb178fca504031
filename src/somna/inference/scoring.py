"""Scoring one recording: the hypnogram, its sleep metrics, agreement with a scorer, and every output file.

Used by ``somna score``: :func:`score_psg` stages a file with a :class:`~somna.inference.Stager` and
:func:`write_scored_night` writes ``hypnogram.csv``, ``probabilities.csv``, ``hypnogram.edf``, the
one-page ``report.html`` and ``metrics.json`` (last: its presence marks the folder complete).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from somna.errors import HypnogramError
from somna.evaluation.sleep_metrics import METRIC_LABELS, STAGED_REM_MIN_EPOCHS, sleep_metrics
from somna.hypnogram import Hypnogram
from somna.inference.stager import Stager
from somna.io.channels import ChannelSpec
from somna.stages import AASM, RK, LabelSet
from somna.storage import folder_lock, sha256_file, write_json_atomic

__all__ = [
    "COMPLETE_MARKER",
    "ScoreOptions",
    "ScoredNight",
    "score_psg",
    "write_outputs",
    "write_scored_night",
]

COMPLETE_MARKER = "metrics.json"
"""The output file written last (atomically): its presence marks a night's output folder complete."""

OUTPUT_FILES = ("hypnogram.csv", "probabilities.csv", "hypnogram.edf", "report.html", COMPLETE_MARKER)
"""Every file :func:`write_scored_night` may write."""


@dataclass(frozen=True)
class ScoreOptions:
    """How a night is scored beyond staging: its time in bed, the REM latency rule, the EDF+ strings.

    Parameters
    ----------
    lights_off, lights_on : str | float | None
        Given by hand: clock times (``"22:30"``, ``"22:30:15"``; after midnight understood) or seconds
        from the recording's start; ``None`` where not given.
    table : dict | None
        A lights table (:func:`somna.io.lights.read_lights_table`), looked up by each recording's name.
    table_name : str
        What the table is called in outputs (its file name).
    rem_min_epochs : int
        Shortest REM episode that ends the REM latency, in the scored and the estimated hypnogram alike
        (default 3: :data:`~somna.evaluation.sleep_metrics.STAGED_REM_MIN_EPOCHS`; 1 is the AASM's).
    edf_vocabulary : {"aasm", "sleep-edf"} | None
        Stage strings of ``hypnogram.edf`` (:meth:`somna.hypnogram.Hypnogram.to_edf`; ``None``: the
        label set's own, ``Sleep stage N1`` … for AASM).
    exports : tuple of {"bids", "nsrr"}
        More hypnogram files: ``hypnogram_events.tsv`` (BIDS events) and ``hypnogram_nsrr.xml`` (NSRR
        PSG annotation XML), AASM and R&K stagers only.
    """

    lights_off: str | float | None = None
    lights_on: str | float | None = None
    table: dict[str, tuple[str | None, str | None]] | None = None
    table_name: str = "lights table"
    rem_min_epochs: int = STAGED_REM_MIN_EPOCHS
    edf_vocabulary: str | None = None
    exports: tuple[str, ...] = ()


@dataclass
class ScoredNight:
    """A scored recording.

    Parameters
    ----------
    psg : Path
        The PSG file.
    hypnogram : Hypnogram
        Predicted stages with their probabilities (``hypnogram.proba``) and provenance
        (``hypnogram.info``), in the stager's label set.
    metrics : dict
        Sleep metrics of the predicted hypnogram.
    reference, agreement, reference_metrics : optional
        The scored hypnogram (aligned, in the stager's label set), epoch agreement with it and its metrics,
        when a reference hypnogram was given.
    options : ScoreOptions
        How it was scored (and how its files are written).
    """

    psg: Path
    hypnogram: Hypnogram
    metrics: dict[str, Any]
    reference: Hypnogram | None = None
    agreement: dict[str, Any] | None = None
    reference_metrics: dict[str, Any] | None = None
    options: ScoreOptions = field(default_factory=ScoreOptions)


def _reference_in(hypnogram: Hypnogram, label_set: LabelSet, path: Path) -> Hypnogram:
    if hypnogram.label_set is label_set:
        return hypnogram
    try:
        return hypnogram.to(label_set)
    except ValueError:
        raise HypnogramError(
            f"is scored in {hypnogram.label_set.name} stages, which cannot be compared with the model's "
            f"{label_set.name} stages",
            path,
        ) from None


def score_psg(
    psg: str | Path,
    stager: Stager,
    channels: ChannelSpec | None = None,
    reference: str | Path | None = None,
    options: ScoreOptions | None = None,
) -> ScoredNight:
    """Stage every 30-s epoch of a PSG file, with its sleep metrics (and agreement with a scorer).

    Parameters
    ----------
    psg : str | Path
        EDF/EDF+ file.
    stager : Stager
        Trained model(s) (:func:`somna.load_stager`).
    channels : ChannelSpec | None
        Channel mapping (:func:`somna.io.channels.channel_spec`); the stager's training channels by
        default.
    reference : str | Path | None
        A scored hypnogram of the same recording, for agreement and scored-vs-estimated metrics.
    options : ScoreOptions | None
        Lights given by hand or by a table, and the REM latency rule.

    Returns
    -------
    ScoredNight
        The estimated and the scored metrics share one time in bed, from the best source available
        (:func:`somna.io.lights.resolve_time_in_bed`: these options, the table (by default a
        ``lights.csv`` beside the PSG, as ``somna download`` and ``somna synth`` write), the PSG's or
        the reference's annotations, else the likely sleep window), and both say where it came from.

    Raises
    ------
    SomnaError
        For an unreadable file, missing channels, a mismatching channel count, a reference that does not
        fit the recording, lights that cannot be read, or signals that cannot be staged (flat, NaN,
        shorter than one epoch).
    """
    from somna.io.edf import read_psg
    from somna.io.lights import read_lights_table, resolve_time_in_bed, table_lights

    options = options or ScoreOptions()
    psg = Path(psg)
    recording = read_psg(psg, channels or stager.channels, stager.modalities)
    stager._check_channels(recording)
    hypnogram = stager.predict_recording(recording)
    ref = None
    annotations = [((recording.lights_off_s, recording.lights_on_s), "the PSG's EDF+ annotations")]
    if reference is not None:
        from somna.io.hypnogram_files import align_hypnogram, read_hypnogram

        reference = Path(reference)
        ref = align_hypnogram(read_hypnogram(reference), recording).crop(0, len(hypnogram))
        ref = _reference_in(ref, stager.label_set, reference)
        annotations.append(((ref.lights_off_s, ref.lights_on_s), f"the annotations of {reference.name}"))
    first, stop = hypnogram.info["night_window_epochs"]
    table, table_name = options.table, options.table_name
    beside = psg.parent / "lights.csv"  # what `somna download` and `somna synth` write beside the files
    if table is None and beside.is_file():
        table, table_name = read_lights_table(beside), f"{beside.name} beside the PSG"
    row = None if table is None else table_lights(table, psg)
    tib = resolve_time_in_bed(
        hypnogram.duration_s,
        hypnogram.start,
        (first * hypnogram.epoch_s, stop * hypnogram.epoch_s),
        options=(options.lights_off, options.lights_on),
        table=None if row is None else (row, table_name),
        annotations=annotations,
    )
    hypnogram = replace(
        hypnogram,
        lights_off_s=tib.lights_off_s,
        lights_on_s=tib.lights_on_s,
        info={**hypnogram.info, "time_in_bed": tib.to_dict()},
    )
    metrics = hypnogram.sleep_metrics(rem_min_epochs=options.rem_min_epochs)
    nights = nightly_metrics(hypnogram, options.rem_min_epochs)
    if nights:
        metrics["nights"] = nights
    scored = ScoredNight(psg, hypnogram, metrics, options=options)
    if ref is not None:
        ref = replace(
            ref,
            lights_off_s=tib.lights_off_s,
            lights_on_s=tib.lights_on_s,
            info={**ref.info, "time_in_bed": tib.to_dict()},
        )
        scored.reference = ref
        scored.reference_metrics = {
            **sleep_metrics(ref, rem_min_epochs=options.rem_min_epochs),
            "time_in_bed": tib.to_dict(),
        }
        scored.agreement = hypnogram.evaluate(ref)
    return scored


def nightly_metrics(hypnogram: Hypnogram, rem_min_epochs: int) -> list[dict[str, Any]]:
    """One summary per night of a multi-day recording (:func:`somna.preprocess.signal_quality.night_blocks`):
    each night's sleep metrics with its time in bed estimated from its own staged sleep period (±30 min);
    empty for a recording of one night.
    """
    from somna.io.lights import resolve_time_in_bed, scored_window_s
    from somna.preprocess.signal_quality import night_blocks

    nights = []
    for first, stop in night_blocks(len(hypnogram), hypnogram.epoch_s, hypnogram.start):
        night = replace(hypnogram.crop(first, stop), lights_off_s=None, lights_on_s=None, proba=None)
        tib = resolve_time_in_bed(night.duration_s, night.start, scored_window_s(night))
        night = replace(night, lights_off_s=tib.lights_off_s, lights_on_s=tib.lights_on_s)
        nights.append(
            {
                "epochs": [int(first), int(stop)],
                "start": None if night.start is None else night.start.isoformat(),
                **night.sleep_metrics(rem_min_epochs=rem_min_epochs),
                "time_in_bed": tib.to_dict(),
            }
        )
    return nights


def write_scored_night(scored: ScoredNight, out_dir: str | Path, report: bool = True) -> dict[str, Path]:
    """Write every output of a scored night into ``out_dir`` (each file atomically).

    Files: ``hypnogram.csv`` (:meth:`Hypnogram.to_csv`: epoch, onset, date and clock time, stage and its
    confidence), ``probabilities.csv`` (the same with every stage's probability),
    ``hypnogram.edf`` (EDF+ annotations that EDF viewers open; AASM and R&K stagers only, since EDF+ has
    no standard strings for 3- or 2-class stages), ``report.html`` (the one-page night report, unless
    ``report`` is false) and ``metrics.json`` (sleep metrics and provenance; with a reference also its
    metrics and the agreement).

    ``metrics.json`` is written last: its presence marks the folder complete. An earlier ``metrics.json``
    is removed before anything else is written, so an interrupted rewrite never looks complete. The
    folder is locked while it is written (:func:`somna.storage.folder_lock`): a second writer gets a
    clear error instead of mixing its files with the first's.

    Returns
    -------
    dict of str to Path
    """
    with folder_lock(out_dir) as out:
        return write_outputs(scored, out, report)


def write_outputs(
    scored: ScoredNight, out: Path, report: bool, made_from: dict[str, Any] | None = None
) -> dict[str, Path]:
    """The body of :func:`write_scored_night`, for a caller that already holds the folder's lock.

    ``made_from`` (:func:`somna.inference.run_record.night_record`) is stored in ``metrics.json``
    with the SHA-256 of every file written; outputs of an earlier run that this one does not write
    (``hypnogram.edf`` of a 5-class model replaced by a 3-class one, ``report.html``) are removed.
    """
    from somna.inference.run_record import OUTPUT_NAMES

    (out / COMPLETE_MARKER).unlink(missing_ok=True)
    hyp = scored.hypnogram
    paths = {
        "hypnogram_csv": hyp.to_csv(out / "hypnogram.csv"),
        "probabilities": hyp.to_csv(out / "probabilities.csv", probabilities=True),
    }
    if hyp.label_set in (AASM, RK):
        # Lights off/on annotations only where a source gave them: an estimate is no annotation.
        tib = hyp.info.get("time_in_bed") or {}
        given = replace(
            hyp,
            lights_off_s=None if tib.get("lights_off_source") == "estimated" else hyp.lights_off_s,
            lights_on_s=None if tib.get("lights_on_source") == "estimated" else hyp.lights_on_s,
        )
        paths["hypnogram_edf"] = given.to_edf(out / "hypnogram.edf", scored.options.edf_vocabulary)
        if "bids" in scored.options.exports:
            paths["bids_events"] = given.to_bids_events(out / "hypnogram_events.tsv")
        if "nsrr" in scored.options.exports:
            paths["nsrr_xml"] = given.to_nsrr_xml(out / "hypnogram_nsrr.xml")
    summary: dict[str, Any] = {
        "psg": str(scored.psg),
        "label_set": hyp.label_set.name,
        "n_epochs": len(hyp),
        **hyp.info,
        "metrics": scored.metrics,
    }
    if scored.reference is not None:
        summary["reference_metrics"] = scored.reference_metrics
        summary["agreement"] = {k: v for k, v in (scored.agreement or {}).items() if k != "report"}
    if report:
        paths["report"] = _write_report(scored, out / "report.html")
    written = {path.name for path in paths.values()}
    for name in OUTPUT_NAMES:
        if name not in written and name != COMPLETE_MARKER:
            (out / name).unlink(missing_ok=True)
    if made_from is not None:
        summary["made_from"] = made_from
    summary["outputs"] = {path.name: sha256_file(path) for path in paths.values()}
    paths["metrics"] = write_json_atomic(out / COMPLETE_MARKER, summary)  # last: marks the folder complete
    return paths


def _write_report(scored: ScoredNight, path: Path) -> Path:
    from somna.provenance import describe, synthetic_caveat
    from somna.report.night import write_night_report  # matplotlib: only when a report is written

    hyp = scored.hypnogram
    seq_len = hyp.info.get("seq_len", 0)
    first, stop = hyp.info.get("night_window_epochs", [0, len(hyp)])
    caveat = synthetic_caveat(hyp.info.get("trained_on"))
    notes = [caveat] if caveat else []
    if hyp.info.get("out_of_distribution"):
        notes.append(
            "This night lies outside what the model was trained on, so its stages are less trustworthy than "
            f"the model's validation suggests: {'; '.join(hyp.info['out_of_distribution'])}."
        )
    notes += [f"Signals: {warning}." for warning in hyp.info.get("warnings", [])]
    notes += [
        f"Each epoch is staged from the {seq_len} epochs ending at it (causal); the first "
        f"{max(seq_len - 1, 0)} epochs of the recording have a context padded with copies of the first "
        "epoch.",
    ]
    if first > 0:
        notes.append(
            f"The night most likely lies in epochs {first}–{stop - 1}: filters and normalisation restart at "
            f"epoch {first}, as a recording started at bedtime would."
        )

    def clinical(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if metrics is None else {k: v for k, v in metrics.items() if k in METRIC_LABELS}

    return write_night_report(
        path,
        hyp,
        hyp.proba,
        clinical(scored.metrics),
        title=f"Sleep report — {scored.psg.name}",
        reference=scored.reference,
        agreement=scored.agreement,
        reference_metrics=clinical(scored.reference_metrics),
        notes=notes,
        info={
            "model": hyp.info.get("model", ""),
            "backend": hyp.info.get("backend", ""),
            "trained on": describe(hyp.info.get("trained_on")),
        },
    )
