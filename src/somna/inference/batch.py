"""Scoring many recordings: one output folder per night, in parallel, resumable.

``somna score`` with several files, folders or patterns: each night goes to ``OUT/<PSG name>/`` with the
files of :func:`~somna.inference.scoring.write_scored_night`; a folder that already holds a complete
result is skipped, and a night that fails is reported while the others go on.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from somna.data.sources import is_hypnogram_file, name_key
from somna.errors import SomnaError
from somna.inference.backends import load_stager
from somna.inference.run_record import folder_record, night_record, record_differences
from somna.inference.scoring import (
    ScoredNight,
    ScoreOptions,
    score_psg,
    write_outputs,
)
from somna.inference.stager import Stager
from somna.io.channels import ChannelSpec
from somna.io.sleepedf import parse_sleep_edf_name
from somna.runner import Failure, run_nights
from somna.storage import LOCK_NAME, folder_lock, writable_folder

__all__ = [
    "SCORED",
    "SKIPPED",
    "expand_psgs",
    "night_folder",
    "night_is_scored",
    "pair_hypnograms",
    "score_many",
    "score_to_folder",
]

SCORED = "scored"
"""Status of a night :func:`score_many` scored."""
SKIPPED = "skipped"
"""Status of a night whose output folder already held a complete result."""


_HYPNOGRAM_WORDS = ("hypnogram", "scoring", "annotation")
"""A file whose name holds one of these is a hypnogram (Sleep-EDF ``-Hypnogram``, HMC ``_sleepscoring``)."""


def _is_hypnogram_name(path: Path) -> bool:
    lower = path.name.lower()
    return any(word in lower for word in _HYPNOGRAM_WORDS)


def _is_psg_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".edf", ".bdf") and not _is_hypnogram_name(path)


def expand_psgs(items: Sequence[str | Path]) -> list[Path]:
    """PSG files named by paths, folders and glob patterns, in order, each once.

    Parameters
    ----------
    items : sequence of str | Path
        A file is taken as is. A folder gives every ``*.edf``/``*.bdf`` file directly inside it whose
        name does not mark a hypnogram (``*-Hypnogram.edf``, ``*_sleepscoring.edf``, ...). A pattern
        with ``*``, ``?`` or ``[`` (``**`` recurses) gives the matching ``.edf``/``.bdf`` files that are
        not hypnograms.

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
                problems.append(f"{text}: no PSG .edf/.bdf file in this folder")
        elif path.is_file():
            matches = [path]
        elif any(c in text for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if _is_psg_file(Path(p)))
            if not matches:
                problems.append(f"{text}: no PSG .edf/.bdf file matches")
        else:
            problems.append(f"{text}: no such file or folder")
            matches = []
        for match in matches:
            found.setdefault(match.resolve(), match)
    if problems:
        raise SomnaError("nothing to score for " + "; ".join(problems))
    return list(found.values())


_UNSAFE = re.compile(r"[^\w.+-]+")


def night_folder(out_dir: str | Path, psg: str | Path) -> Path:
    """Output folder of a PSG in a batch: ``out_dir/<PSG name up to the first dot>``.

    The name is made safe for any file name: characters other than letters, digits, ``_ . + -`` (and
    bytes that are not text) become ``_``, and a name that would be empty or start with a dot
    (``..edf``, ``.x.edf``) becomes ``_`` plus the name, so that no night writes into ``out_dir`` itself
    or a hidden folder.

    Examples
    --------
    >>> night_folder("scores", "SC4001E0-PSG.edf").as_posix()
    'scores/SC4001E0-PSG'
    >>> night_folder("scores", "..edf").as_posix()
    'scores/_..edf'
    """
    name = Path(psg).name
    stem = name.split(".")[0] or name
    stem = _UNSAFE.sub("_", stem.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    stem = stem.replace("\ufffd", "_")
    if not stem or stem.startswith("."):
        stem = "_" + stem
    return Path(out_dir) / stem


def night_is_scored(night_dir: str | Path) -> bool:
    """Whether a night's output folder holds a complete result (a readable ``metrics.json``, written last)."""
    return folder_record(night_dir) is not None


def pair_hypnograms(psgs: Sequence[str | Path], folder: str | Path) -> dict[Path, Path]:
    """Reference hypnograms of PSG files, found in ``folder`` by their night.

    A Sleep-EDF PSG and its hypnogram are matched on the parsed record (``SC4001E0-PSG.edf`` with
    ``SC4001EC-Hypnogram.edf``; see :func:`~somna.io.parse_sleep_edf_name`); other PSGs on their name
    without extension and hypnogram words (``patient01.edf`` with ``patient01_hypnogram.xml`` or
    ``patient01.scoring.csv``: :func:`somna.data.sources.name_key`), when exactly one file matches.

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
    by_name: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and is_hypnogram_file(path):
            by_name.setdefault(name_key(path), []).append(path)
    pairs = {}
    for psg in psgs:
        try:
            record = parse_sleep_edf_name(psg).record
        except ValueError:
            record = None
        if record in by_record:
            pairs[Path(psg)] = by_record[record]
        elif len(by_name.get(name_key(Path(psg)), [])) == 1:  # patient01.edf: patient01_hypnogram.xml
            pairs[Path(psg)] = by_name[name_key(Path(psg))][0]
    return pairs


def score_to_folder(
    psg: str | Path,
    stager: Stager,
    night_dir: str | Path,
    channels: ChannelSpec | None = None,
    reference: str | Path | None = None,
    force: bool = False,
    report: bool = True,
    options: ScoreOptions | None = None,
) -> ScoredNight | None:
    """Score one PSG into its output folder unless that folder already holds its complete result.

    The folder is locked from the check to the last write (:func:`somna.storage.folder_lock`): a
    second writer gets "being written by process N". "Already scored" means the folder's
    ``metrics.json`` records the same PSG and reference (by checksum), model files, channels and
    options (:mod:`somna.inference.run_record`); a folder holding any other result is refused unless
    ``force``, which replaces every output.

    Parameters
    ----------
    psg, stager, channels, reference, options
        As for :func:`~somna.inference.scoring.score_psg`.
    night_dir : str | Path
        The night's output folder (see :func:`~somna.inference.scoring.write_scored_night`).
    force : bool
        Score again even when the folder holds a complete result, its own or another's.
    report : bool
        Write ``report.html``.

    Returns
    -------
    ScoredNight | None
        None when the folder already held this night's result from the same model and options.

    Raises
    ------
    SomnaError
        As :func:`~somna.inference.scoring.score_psg`; for a folder being written by another process,
        or holding another result without ``force``. A complete earlier result is left as it was.
    """
    options = options or ScoreOptions()
    with folder_lock(night_dir) as out:
        made_from = night_record(psg, stager, channels, reference, options, report)
        earlier = folder_record(out)
        if earlier is not None and not force:
            changes = record_differences(earlier, made_from)
            if not changes:
                return None
            raise SomnaError(
                f"already holds the results of {', '.join(changes)}; --force replaces them, or choose "
                "another output folder",
                out,
            )
        try:
            scored = score_psg(psg, stager, channels, reference=reference, options=options)
        except BaseException:
            _remove_if_empty(out)  # a night that failed leaves no empty folder behind
            raise
        write_outputs(scored, out, report, made_from)
    return scored


def _remove_if_empty(folder: Path) -> None:
    """Remove a night folder that holds nothing but its lock (called while holding that lock)."""
    try:
        if {p.name for p in folder.iterdir()} <= {LOCK_NAME}:
            (folder / LOCK_NAME).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass


def _holds_this_night(
    folder: Path,
    psg: Path,
    stager: Stager,
    channels: ChannelSpec | None,
    references: Mapping[Path, Path],
    report: bool,
    options: ScoreOptions | None,
) -> bool:
    """Whether a batch can skip a night without starting a worker (the worker checks again, locked)."""
    earlier = folder_record(folder)
    if not earlier:
        return False
    try:
        made_from = night_record(
            psg, stager, channels, references.get(psg), options or ScoreOptions(), report
        )
    except SomnaError:
        return False  # the worker reports an unreadable file
    return not record_differences(earlier, made_from)


_WORKER: dict[str, Any] = {}
"""Per worker process: the stager, loaded once by :func:`_init_worker`."""


def _init_worker(stager_path: str, threads: int, backend: str) -> None:
    from somna.preprocess.filters import set_filter_threads

    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    set_filter_threads(threads)
    _WORKER["stager"] = load_stager(stager_path, backend, threads=threads)


def _score_job(
    job: tuple[str, str, ChannelSpec | None, str | None, bool, bool, ScoreOptions | None],
) -> str:
    """One night in a worker: :data:`SCORED` or :data:`SKIPPED` (failures raise)."""
    psg, night_dir, channels, reference, force, report, options = job
    scored = score_to_folder(psg, _WORKER["stager"], night_dir, channels, reference, force, report, options)
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
    backend: str = "auto",
    report: bool = True,
    options: ScoreOptions | None = None,
) -> dict[Path, str]:
    """Score many PSG files in parallel, one output folder per night; resumable.

    Each night goes to ``out_dir/<PSG name>/`` (:func:`night_folder`). A folder that already holds a
    complete result is skipped unless ``force``, so rerunning an interrupted batch finishes the rest; a
    half-written folder (no ``metrics.json``) is scored again. A night that fails (a
    :class:`~somna.errors.SomnaError`: unreadable or truncated file, missing channels, ...) gets its reason
    as status and the others go on.

    Parameters
    ----------
    psgs : sequence of str | Path
        PSG files (see :func:`expand_psgs` for folders and patterns).
    stager_path : str | Path
        Anything :func:`somna.load_stager` loads; each worker loads it once.
    out_dir : str | Path
        Folder of the night folders; created if needed.
    channels : ChannelSpec | None
        Channel mapping; the stager's training channels by default.
    workers : int
        Worker processes (1 scores in this process). Each uses ``cpu_count // workers`` threads.
    force : bool
        Score nights again even when their folder is complete.
    progress : bool
        Show a progress bar.
    references : Mapping of Path to Path | None
        Scored hypnograms of some of the PSGs (keys as in ``psgs``), e.g. from :func:`pair_hypnograms`.
    backend : str
        How the stager runs (:func:`somna.load_stager`).
    report : bool
        Write each night's ``report.html``.
    options : ScoreOptions | None
        Lights (by hand, or a table looked up by each PSG's name) and the REM latency rule.

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
        if not force and _holds_this_night(folders[psg], psg, stager, channels, references, report, options):
            status[psg] = SKIPPED
        else:
            todo.append(psg)
    jobs = [
        (
            str(psg),
            str(folders[psg]),
            channels,
            str(references[psg]) if psg in references else None,
            force,
            report,
            options,
        )
        for psg in todo
    ]
    in_process = workers <= 1 or len(todo) <= 1
    if in_process:
        _WORKER["stager"] = stager
    try:
        results = run_nights(
            jobs,
            _score_job,
            workers=workers,
            initializer=_init_worker,
            initargs=(str(stager_path), max(1, (os.cpu_count() or 1) // max(workers, 1)), stager.backend),
            desc="score",
            progress=progress,
            already_done=len(psgs) - len(todo),
        )
    finally:
        _WORKER.clear()
    for psg, result in zip(todo, results, strict=True):
        status[psg] = result.reason if isinstance(result, Failure) else result
    return {psg: status[psg] for psg in psgs}
