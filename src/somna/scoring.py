"""Scoring a PSG file with a trained stager: hypnogram, probabilities, sleep metrics and the night report.

Used by ``somna score``. Models are trained on recordings normalised over their sleep period ± 30 min of
wake (Sleep-EDF's trimming). A recording to score is normalised with the statistics of the stretch that
looks most like a night in bed (:func:`~somna.preprocess.sleep_window.likely_sleep_window`): the whole
recording, unless it is much longer than a night, as Sleep-EDF SC recordings of 20+ hours are. (A second
pass normalised over the sleep period the first pass finds was tried and rejected: a few daytime epochs
staged as sleep stretch that period over the whole day, which undoes the point.)
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from somna.config import PreprocessConfig
from somna.data.sequences import NightArrays
from somna.errors import ChannelError, HypnogramError
from somna.evaluation import epoch_agreement
from somna.evaluation.sleep_metrics import METRIC_LABELS, sleep_metrics
from somna.hypnogram import Hypnogram
from somna.io import align_hypnogram, read_hypnogram, read_psg
from somna.io.edf_write import write_hypnogram_edf
from somna.io.recording import SLEEP_EDF_CHANNELS, ChannelSpec, Recording
from somna.preprocess import preprocess_night
from somna.preprocess.sleep_window import likely_sleep_window
from somna.stages import AASM, RK, UNSCORED, LabelSet
from somna.staging import SleepStager
from somna.storage import atomic_write, write_json_atomic

__all__ = ["ScoredNight", "channel_spec", "score_psg", "write_scored_night"]


@dataclass
class ScoredNight:
    """A scored recording.

    Parameters
    ----------
    psg : Path
        The PSG file.
    hypnogram : Hypnogram
        Predicted stages, in the stager's label set.
    probs : np.ndarray, shape (n_epochs, n_classes)
        Stage probabilities (the hypnodensity).
    metrics : dict
        Sleep metrics of the predicted hypnogram.
    normalised_epochs : tuple of int
        First and stop epoch of the span scored in the second pass (see the module docstring).
    model : str
        Name of the model, shown in the report.
    seq_len : int
        Epochs each prediction depends on.
    reference, agreement, reference_metrics : optional
        The scored hypnogram (aligned, in the stager's label set), epoch agreement with it and its metrics,
        when a reference hypnogram was given.
    """

    psg: Path
    hypnogram: Hypnogram
    probs: np.ndarray
    metrics: dict[str, Any]
    normalised_epochs: tuple[int, int]
    model: str
    seq_len: int
    reference: Hypnogram | None = None
    agreement: dict[str, Any] | None = None
    reference_metrics: dict[str, Any] | None = None


def channel_spec(eeg: str | None = None, eog: str | None = None, emg: str | None = None) -> ChannelSpec:
    """Channel mapping from command-line text, Sleep-EDF's names where not given.

    Each argument lists channels separated by commas; a channel's alternative names are separated by
    ``|``. ``eeg="C4-M1,O2-M1"`` asks for two EEG channels, ``emg="EMG chin|Chin1-Chin2"`` for one EMG
    channel under either name.
    """
    spec = {m: [list(a) for a in aliases] for m, aliases in SLEEP_EDF_CHANNELS.items()}
    for modality, text in (("eeg", eeg), ("eog", eog), ("emg", emg)):
        if text:
            spec[modality] = [
                [name.strip() for name in ch.split("|") if name.strip()] for ch in text.split(",")
            ]
    return spec


def _night(
    recording: Recording,
    hypnogram: Hypnogram,
    config: PreprocessConfig,
    stager: SleepStager,
    normalise_epochs: tuple[int, int],
) -> NightArrays:
    night = preprocess_night(recording, hypnogram, config, stager.modalities, normalise_epochs)
    return NightArrays(
        night.record, night.subject_id, night.signals, np.asarray(night.stages, dtype=np.int64)
    )


def _check_channel_counts(recording: Recording, stager: SleepStager) -> None:
    model = stager.members[0][next(iter(stager.members[0]))]
    wanted = dict(model.config.n_chans)
    for modality in stager.modalities:
        have = recording.signals[modality].shape[0]
        if have != wanted[modality]:
            raise ChannelError(
                f"the model reads {wanted[modality]} {modality.upper()} channel(s) but {have} were mapped "
                f"({', '.join(recording.channel_names[modality])}); pass --{modality} with "
                f"{wanted[modality]} comma-separated channel names",
                recording.path,
            )


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
    stager: SleepStager,
    channels: ChannelSpec | None = None,
    reference: str | Path | None = None,
    model_name: str = "",
) -> ScoredNight:
    """Stage every 30-s epoch of a PSG file.

    Parameters
    ----------
    psg : str | Path
        EDF/EDF+ file, any sampling rate from 50 Hz (EEG/EOG).
    stager : SleepStager
        Trained model(s) (:meth:`SleepStager.from_run`).
    channels : ChannelSpec | None
        Channel mapping (:func:`channel_spec`); Sleep-EDF's names by default.
    reference : str | Path | None
        A scored hypnogram of the same recording, for agreement and scored-vs-estimated metrics.
    model_name : str
        Shown in the report.

    Returns
    -------
    ScoredNight

    Raises
    ------
    SomnaError
        For an unreadable file, missing channels, a mismatching channel count, a reference that does not
        fit the recording, or signals that cannot be staged (flat, NaN, shorter than one epoch).
    """
    psg = Path(psg)
    recording = read_psg(psg, channels=channels or SLEEP_EDF_CHANNELS, modalities=stager.modalities)
    _check_channel_counts(recording, stager)
    config = PreprocessConfig(**{**stager.preprocess, "trim_wake_min": None})
    label_set = stager.label_set
    n_epochs = recording.n_epochs(config.epoch_s)
    unscored = Hypnogram(np.full(n_epochs, UNSCORED, dtype=np.int8), AASM)
    # Normalise as in training, where statistics came from the sleep period ± 30 min of wake.
    span = likely_sleep_window(
        recording, config.epoch_s, margin_min=stager.preprocess.get("trim_wake_min") or 30.0
    )
    probs, stages = stager.predict(_night(recording, unscored, config, stager, span))
    hypnogram = Hypnogram(
        stages.astype(np.int8), label_set, config.epoch_s, start=recording.start, source=psg
    )
    scored = ScoredNight(psg, hypnogram, probs, sleep_metrics(hypnogram), span, model_name, stager.seq_len)
    if reference is not None:
        reference = Path(reference)
        ref = align_hypnogram(read_hypnogram(reference), recording)
        ref = _reference_in(ref.crop(0, n_epochs), label_set, reference)
        scored.reference = ref
        scored.reference_metrics = sleep_metrics(ref)
        scored.agreement = epoch_agreement(ref.stages, stages, label_set)
        if ref.lights_off_s is not None or ref.lights_on_s is not None:
            # Metrics of both respect the scorer's lights off/on.
            scored.hypnogram = replace(hypnogram, lights_off_s=ref.lights_off_s, lights_on_s=ref.lights_on_s)
            scored.metrics = sleep_metrics(scored.hypnogram)
    return scored


def _csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_scored_night(scored: ScoredNight, out_dir: str | Path) -> dict[str, Path]:
    """Write every output of a scored night into ``out_dir`` (each file atomically).

    Files: ``hypnogram.csv`` (epoch, onset in s, clock time, stage), ``hypnogram.edf`` (EDF+ annotations
    that EDF viewers open, with Sleep-EDF/HMC stage strings; written for AASM and R&K stagers, since EDF+
    has no standard strings for 3- or 2-class stages),
    ``probabilities.csv`` (per-epoch stage probabilities), ``metrics.json`` (sleep metrics; with a
    reference also its metrics and the agreement) and ``report.html`` (the one-page night report).

    Returns
    -------
    dict of str to Path
    """
    from somna.night_report import write_night_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hyp = scored.hypnogram
    labels = hyp.label_set.labels
    onsets = np.arange(len(hyp)) * hyp.epoch_s
    clock = [
        (hyp.start + timedelta(seconds=float(t))).strftime("%H:%M:%S") if hyp.start else "" for t in onsets
    ]
    rows = [[i, f"{onsets[i]:.0f}", clock[i], hyp.label_set.label(int(s))] for i, s in enumerate(hyp.stages)]
    paths = {"hypnogram_csv": out / "hypnogram.csv", "probabilities": out / "probabilities.csv"}
    text = _csv_text(["epoch", "onset_s", "clock_time", "stage"], rows)
    atomic_write(paths["hypnogram_csv"], lambda tmp: tmp.write_text(text))
    prob_rows = [[i, *(f"{p:.4f}" for p in scored.probs[i])] for i in range(len(hyp))]
    prob_text = _csv_text(["epoch", *(f"p_{label}" for label in labels)], prob_rows)
    atomic_write(paths["probabilities"], lambda tmp: tmp.write_text(prob_text))
    if hyp.label_set in (AASM, RK) and hyp.start is not None:
        paths["hypnogram_edf"] = write_hypnogram_edf(out / "hypnogram.edf", hyp, hyp.start)
    summary: dict[str, Any] = {
        "psg": str(scored.psg),
        "model": scored.model,
        "label_set": hyp.label_set.name,
        "n_epochs": len(hyp),
        "normalised_epochs": list(scored.normalised_epochs),
        "metrics": scored.metrics,
    }
    if scored.reference is not None:
        summary["reference_metrics"] = scored.reference_metrics
        summary["agreement"] = {k: v for k, v in (scored.agreement or {}).items() if k != "report"}
    paths["metrics"] = write_json_atomic(out / "metrics.json", summary)
    first, stop = scored.normalised_epochs
    notes = [
        f"Each epoch is staged from the {scored.seq_len} epochs ending at it (causal); the first "
        f"{scored.seq_len - 1} epochs of the recording have a zero-padded context.",
        f"Signals were normalised with the statistics of epochs {first}–{stop - 1}, the stretch that looks "
        "most like a night in bed (training recordings were normalised over their sleep period ± 30 min).",
    ]

    def clinical(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if metrics is None else {k: v for k, v in metrics.items() if k in METRIC_LABELS}

    paths["report"] = write_night_report(
        out / "report.html",
        hyp,
        scored.probs,
        clinical(scored.metrics),
        title=f"Sleep report — {scored.psg.name}",
        reference=scored.reference,
        agreement=scored.agreement,
        reference_metrics=clinical(scored.reference_metrics),
        notes=notes,
        info={"model": scored.model},
    )
    return paths
