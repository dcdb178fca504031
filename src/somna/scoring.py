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
import glob
import io
import json
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from somna.config import PreprocessConfig
from somna.data.sequences import NightArrays
from somna.errors import ChannelError, HypnogramError, SomnaError
from somna.evaluation import epoch_agreement
from somna.evaluation.sleep_metrics import METRIC_LABELS, sleep_metrics
from somna.hypnogram import Hypnogram
from somna.io import align_hypnogram, read_hypnogram, read_psg
from somna.io.edf_write import write_hypnogram_edf
from somna.io.recording import SLEEP_EDF_CHANNELS, ChannelSpec, Recording
from somna.io.sleepedf import parse_sleep_edf_name
from somna.preprocess import preprocess_night
from somna.preprocess.signals import set_filter_threads
from somna.preprocess.sleep_window import likely_sleep_window
from somna.stages import AASM, RK, UNSCORED, LabelSet
from somna.staging import SleepStager, load_stager
from somna.storage import atomic_write, writable_folder, write_json_atomic

__all__ = [
    "SCORED",
    "SKIPPED",
    "ScoredNight",
    "channel_spec",
    "expand_psgs",
    "night_folder",
    "night_is_scored",
    "pair_hypnograms",
    "score_many",
    "score_psg",
    "score_to_folder",
    "write_scored_night",
]

SCORED = "scored"
"""Status of a night :func:`score_many` scored."""
SKIPPED = "skipped"
"""Status of a night whose output folder already held a complete result."""

COMPLETE_MARKER = "metrics.json"
"""The output file written last (atomically): its presence marks a night's output folder complete."""


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
    ``probabilities.csv`` (per-epoch stage probabilities), ``report.html`` (the one-page night report)
    and ``metrics.json`` (sleep metrics; with a reference also its metrics and the agreement).

    ``metrics.json`` is written last: its presence marks the folder complete (:func:`night_is_scored`).
    An earlier ``metrics.json`` is removed before anything else is written, and temporary files left
    by a killed writer are removed, so an interrupted rewrite never looks complete. One process writes
    a folder at a time.

    Returns
    -------
    dict of str to Path
    """
    from somna.night_report import write_night_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPLETE_MARKER).unlink(missing_ok=True)
    for stale in out.glob(".*.tmp"):  # left by a killed writer
        stale.unlink(missing_ok=True)
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
    first, stop = scored.normalised_epochs
    notes = [
        f"Each epoch is staged from the {scored.seq_len} epochs ending at it (causal); the first "
        f"{scored.seq_len - 1} epochs of the recording have a context padded with copies of the first epoch.",
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
    paths["metrics"] = write_json_atomic(out / COMPLETE_MARKER, summary)  # last: marks the folder complete
    return paths


# --- batch scoring ----------------------------------------------------------------------------------------

_HYPNOGRAM_WORDS = ("hypnogram", "scoring", "annotation")
"""A file whose name holds one of these is a hypnogram (Sleep-EDF ``-Hypnogram``, HMC ``_sleepscoring``)."""


def _is_hypnogram_name(path: Path) -> bool:
    lower = path.name.lower()
    return any(word in lower for word in _HYPNOGRAM_WORDS)


def _is_psg_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".edf" and not _is_hypnogram_name(path)


def expand_psgs(items: Sequence[str | Path]) -> list[Path]:
    """PSG files named by paths, folders and glob patterns, in order, each once.

    Parameters
    ----------
    items : sequence of str | Path
        A file is taken as is. A folder gives every ``*.edf`` file directly inside it whose name does not
        mark a hypnogram (``*-Hypnogram.edf``, ``*_sleepscoring.edf``, ...). A pattern with ``*``, ``?``
        or ``[`` (``**`` recurses) gives the matching ``.edf`` files that are not hypnograms.

    Returns
    -------
    list of Path
        Sorted within each folder or pattern; a file named twice is kept once (first place).

    Raises
    ------
    SomnaError
        Listing every item that names no file, a folder or pattern without PSG files, all at once.
    """
    found: dict[Path, Path] = {}
    problems: list[str] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if _is_psg_file(p))
            if not matches:
                problems.append(f"{text}: no PSG .edf file in this folder")
        elif path.is_file():
            matches = [path]
        elif any(c in text for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if _is_psg_file(Path(p)))
            if not matches:
                problems.append(f"{text}: no PSG .edf file matches")
        else:
            problems.append(f"{text}: no such file or folder")
            matches = []
        for match in matches:
            found.setdefault(match.resolve(), match)
    if problems:
        raise SomnaError("nothing to score for " + "; ".join(problems))
    return list(found.values())


def night_folder(out_dir: str | Path, psg: str | Path) -> Path:
    """Output folder of a PSG in a batch: ``out_dir/<PSG name up to the first dot>``."""
    return Path(out_dir) / Path(psg).name.split(".")[0]


def night_is_scored(night_dir: str | Path) -> bool:
    """Whether a night's output folder holds a complete result (a readable ``metrics.json``, written last)."""
    marker = Path(night_dir) / COMPLETE_MARKER
    try:
        json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return True


def pair_hypnograms(psgs: Sequence[str | Path], folder: str | Path) -> dict[Path, Path]:
    """Reference hypnograms of Sleep-EDF PSG files, found in ``folder`` by their night.

    A PSG and its hypnogram are matched on the parsed Sleep-EDF record (``SC4001E0-PSG.edf`` with
    ``SC4001EC-Hypnogram.edf``; see :func:`~somna.io.parse_sleep_edf_name`), never by editing names.

    Returns
    -------
    dict of Path to Path
        PSG (as given) to hypnogram, for the PSGs that have one; the others are left out.

    Raises
    ------
    SomnaError
        If the folder does not exist or holds two hypnograms of one night.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SomnaError("is not a folder (expected *-Hypnogram.edf files)", folder)
    by_record: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and path.name.lower().endswith("-hypnogram.edf")):
            continue
        try:
            record = parse_sleep_edf_name(path).record
        except ValueError:
            continue
        if record in by_record:
            raise SomnaError(f"two hypnograms of {record}: {by_record[record].name}, {path.name}", folder)
        by_record[record] = path
    pairs = {}
    for psg in psgs:
        try:
            record = parse_sleep_edf_name(psg).record
        except ValueError:
            continue
        if record in by_record:
            pairs[Path(psg)] = by_record[record]
    return pairs


def score_to_folder(
    psg: str | Path,
    stager: SleepStager,
    night_dir: str | Path,
    channels: ChannelSpec | None = None,
    reference: str | Path | None = None,
    model_name: str = "",
    force: bool = False,
) -> ScoredNight | None:
    """Score one PSG into its output folder unless that folder already holds a complete result.

    Parameters
    ----------
    psg, stager, channels, reference, model_name
        As for :func:`score_psg`.
    night_dir : str | Path
        The night's output folder (see :func:`write_scored_night`).
    force : bool
        Score again even when the folder is complete.

    Returns
    -------
    ScoredNight | None
        None when the night was skipped.

    Raises
    ------
    SomnaError
        As :func:`score_psg`; a complete earlier result is left as it was.
    """
    if not force and night_is_scored(night_dir):
        return None
    scored = score_psg(psg, stager, channels, reference=reference, model_name=model_name)
    write_scored_night(scored, night_dir)
    return scored


_WORKER: dict[str, Any] = {}
"""Per worker process: the stager, loaded once by :func:`_init_worker`, and its name."""


def _init_worker(stager_path: str, threads: int, backend: str) -> None:
    import torch

    torch.set_num_threads(threads)
    set_filter_threads(threads)
    _WORKER["stager"] = load_stager(stager_path, backend)
    _WORKER["name"] = stager_path


def _score_job(
    psg: str, night_dir: str, channels: ChannelSpec | None, reference: str | None, force: bool
) -> str:
    """One night in a worker: its status (:data:`SCORED`, :data:`SKIPPED` or the error text)."""
    try:
        scored = score_to_folder(
            psg, _WORKER["stager"], night_dir, channels, reference, _WORKER["name"], force
        )
    except SomnaError as err:
        return str(err)
    return SKIPPED if scored is None else SCORED


def score_many(
    psgs: Sequence[str | Path],
    stager_path: str | Path,
    out_dir: str | Path,
    channels: ChannelSpec | None = None,
    workers: int = 2,
    force: bool = False,
    progress: bool = True,
    references: Mapping[Path, Path] | None = None,
    backend: str = "torch",
) -> dict[Path, str]:
    """Score many PSG files in parallel, one output folder per night; resumable.

    Each night goes to ``out_dir/<PSG name>/`` (:func:`night_folder`; files as
    :func:`write_scored_night`). A folder that already holds a complete result is skipped unless
    ``force``, so rerunning an interrupted batch finishes the rest; a half-written folder (no
    ``metrics.json``) is scored again. A night that fails (a :class:`~somna.errors.SomnaError`: unreadable
    or truncated file, missing channels, ...) gets its reason as status and the others go on.

    Parameters
    ----------
    psgs : sequence of str | Path
        PSG files (see :func:`expand_psgs` for folders and patterns).
    stager_path : str | Path
        Run folder or checkpoint (:meth:`SleepStager.from_run`); each worker loads it once.
    out_dir : str | Path
        Folder of the night folders; created if needed.
    channels : ChannelSpec | None
        Channel mapping (:func:`channel_spec`); Sleep-EDF's names by default.
    workers : int
        Worker processes (1 scores in this process). Each uses ``cpu_count // workers`` torch threads.
    force : bool
        Score nights again even when their folder is complete.
    progress : bool
        Show a progress bar.
    references : Mapping of Path to Path | None
        Scored hypnograms of some of the PSGs (keys as in ``psgs``), e.g. from :func:`pair_hypnograms`.
    backend : {"torch", "onnx", "onnx-int8"}
        How the stager runs (:func:`somna.staging.load_stager`).

    Returns
    -------
    dict of Path to str
        For each PSG in order: :data:`SCORED`, :data:`SKIPPED` or the error text.

    Raises
    ------
    SomnaError
        Before any night is scored: for an output folder that is a file or cannot be written, two PSGs
        with the same output folder, a night folder that is a file, or a model that cannot be loaded.
    """
    psgs = [Path(p) for p in psgs]
    out = writable_folder(out_dir)
    folders = {psg: night_folder(out, psg) for psg in psgs}
    problems = []
    seen: dict[Path, Path] = {}
    for psg, folder in folders.items():
        if folder in seen:
            problems.append(f"{seen[folder]} and {psg} would both write {folder.name}/")
        seen.setdefault(folder, psg)
        if folder.exists() and not folder.is_dir():
            problems.append(f"{folder} is a file, not a night's output folder")
    if problems:
        raise SomnaError("; ".join(problems), out)
    references = {Path(k): Path(v) for k, v in (references or {}).items()}
    stager = load_stager(stager_path, backend)  # a bad model fails here, before any work
    status: dict[Path, str] = {}
    todo = []
    for psg in psgs:
        if not force and night_is_scored(folders[psg]):
            status[psg] = SKIPPED
        else:
            todo.append(psg)
    bar = tqdm(
        total=len(psgs), initial=len(psgs) - len(todo), desc="score", unit="night", disable=not progress
    )

    def done(psg: Path, result: str) -> None:
        status[psg] = result
        bar.update()
        failed = sum(s not in (SCORED, SKIPPED) for s in status.values())
        if failed:
            bar.set_postfix(failed=failed)

    def job_args(psg: Path) -> tuple[str, str, ChannelSpec | None, str | None, bool]:
        ref = references.get(psg)
        return str(psg), str(folders[psg]), channels, None if ref is None else str(ref), force

    try:
        if workers <= 1 or len(todo) <= 1:
            _WORKER.update(stager=stager, name=str(stager_path))
            for psg in todo:
                done(psg, _score_job(*job_args(psg)))
        else:
            del stager
            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(
                max_workers=min(workers, len(todo)),
                # a fresh interpreter per worker: a forked child of a process whose torch (OpenMP)
                # threads have run can hang in its own first parallel torch call
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(str(stager_path), threads, backend),
            ) as pool:
                futures: dict[Future[str], Path] = {pool.submit(_score_job, *job_args(p)): p for p in todo}
                try:
                    for future in as_completed(futures):
                        try:
                            result = future.result()
                        except BrokenProcessPool:
                            result = f"{futures[future]}: a worker process died (killed, or out of memory?)"
                        done(futures[future], result)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        _WORKER.clear()
        bar.close()
    return {psg: status[psg] for psg in psgs}
