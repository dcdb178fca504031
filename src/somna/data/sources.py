"""Which nights make a cohort: Sleep-EDF folders, manifests, and folders of your own scored recordings.

``somna prepare SOURCE CACHE`` takes any of:

* **a Sleep-EDF folder** (``*-PSG.edf`` with ``*-Hypnogram.edf``), paired by record
  (:func:`somna.io.find_sleep_edf_pairs`): subject and night come from the names;
* **a manifest**, a CSV file with one row per night and the columns ``psg``, ``hypnogram``, ``subject``
  (required), ``night``, ``record``, ``lights_off``, ``lights_on``, ``eeg``, ``eog``, ``emg``
  (optional; the channel columns use ``--eeg``'s syntax). Paths are relative to the manifest's folder.
  Subject-wise splits follow the ``subject`` column, so both nights of one person stay together;
* **a folder of your own files** with ``--pair REGEX``: the pattern is searched in every file name; its
  named groups ``subject`` (required) and ``night`` (optional) say whose night a file holds, and the
  files of one night are its PSG (an ``.edf``/``.bdf`` whose name does not mark a hypnogram) and its
  hypnogram (a name with ``hypnogram``, ``scoring``, ``stages`` …, or a scoring file such as ``.xml``,
  ``.csv``, ``.tsv``, ``.txt``, ``.json``). Without ``--pair``, a folder that holds no Sleep-EDF pairs
  is paired by file name (``patient01.edf`` with ``patient01_hypnogram.edf``), each night its own
  subject, which is said, since two nights of one person would then be split apart.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from somna.errors import SomnaError

__all__ = [
    "MANIFEST_COLUMNS",
    "NightSource",
    "cohort_nights",
    "is_hypnogram_file",
    "name_key",
    "pair_by_name",
    "pair_by_pattern",
    "read_cohort_manifest",
]

MANIFEST_COLUMNS = (
    "psg",
    "hypnogram",
    "subject",
    "night",
    "record",
    "lights_off",
    "lights_on",
    "eeg",
    "eog",
    "emg",
)
"""Columns a cohort manifest may have; the first three are required."""

_PSG_SUFFIXES = (".edf", ".bdf", ".rec")
_SCORING_SUFFIXES = (".xml", ".csv", ".tsv", ".txt", ".json", ".hyp", ".eannot")
_HYPNOGRAM_WORDS = (
    "hypnogram",
    "scoring",
    "sleepscoring",
    "stages",
    "staging",
    "annotation",
    "annot",
    "events",
)
_SEPARATORS = "-_. "


@dataclass(frozen=True)
class NightSource:
    """One night to prepare: its files and who it belongs to.

    Parameters
    ----------
    psg, hypnogram : Path
        The recording and its scored hypnogram.
    subject : str | None
        Whose night it is (splits keep a subject's nights together); ``None``: from Sleep-EDF's names,
        else the record.
    night : int | None
        Which of the subject's nights.
    record : str | None
        The night's name in the cache (unique; default: the PSG's name up to its first dot, without
        ``-PSG``).
    lights_off, lights_on : str | None
        Clock time or seconds from the start (:func:`somna.io.lights.parse_lights_time`).
    channels : dict of str to str
        Channel names of this night that differ from the config's, per modality (``--eeg`` syntax).
    """

    psg: Path
    hypnogram: Path
    subject: str | None = None
    night: int | None = None
    record: str | None = None
    lights_off: str | None = None
    lights_on: str | None = None
    channels: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The record: given, else the PSG's name up to its first dot, without ``-PSG``/``_PSG``."""
        if self.record:
            return self.record
        stem = self.psg.name.split(".")[0] or self.psg.name
        return re.sub(r"[-_]psg$", "", stem, flags=re.IGNORECASE)


def _cell(row: dict[str, str | None], key: str) -> str | None:
    value = (row.get(key) or "").strip()
    return value or None


def read_cohort_manifest(path: str | Path) -> list[NightSource]:
    """Read a cohort manifest (see the module docstring for its columns).

    Parameters
    ----------
    path : str | Path
        The CSV file (comma, semicolon or tab separated; a UTF-8 byte-order mark is allowed).

    Returns
    -------
    list of NightSource
        One per row, in order, paths resolved against the manifest's folder.

    Raises
    ------
    SomnaError
        Naming the manifest and the row, for a missing required column or cell, an unknown column, a
        file that does not exist, a night that is not a whole number, or a record named twice.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("p1.edf", "p1.xml"):
    ...     _ = (folder / name).write_text("")
    >>> _ = (folder / "cohort.csv").write_text("psg,hypnogram,subject\\np1.edf,p1.xml,patient-1\\n")
    >>> [(n.name, n.subject) for n in read_cohort_manifest(folder / "cohort.csv")]
    [('p1', 'patient-1')]
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise SomnaError(
            f"cannot read the cohort manifest: {getattr(err, 'strerror', None) or err}", path
        ) from None
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else "", delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    columns = [c.strip().lower() for c in (reader.fieldnames or [])]
    missing = [c for c in ("psg", "hypnogram", "subject") if c not in columns]
    if missing:
        raise SomnaError(
            f"the cohort manifest lacks the column(s) {', '.join(missing)} (it has {columns})", path
        )
    unknown = [c for c in columns if c not in MANIFEST_COLUMNS]
    if unknown:
        raise SomnaError(
            f"unknown column(s) {', '.join(unknown)} in the cohort manifest; known: "
            + ", ".join(MANIFEST_COLUMNS),
            path,
        )
    nights: list[NightSource] = []
    for number, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): v for k, v in raw.items()}
        where = f"row {number}"
        files = {}
        for key in ("psg", "hypnogram"):
            value = _cell(row, key)
            if value is None:
                raise SomnaError(f"{where}: no {key}", path)
            file = Path(value) if Path(value).is_absolute() else path.parent / value
            if not file.is_file():
                raise SomnaError(f"{where}: {key} {value} does not exist", path)
            files[key] = file
        subject = _cell(row, "subject")
        if subject is None:
            raise SomnaError(f"{where}: no subject (splits keep a subject's nights together)", path)
        night_text = _cell(row, "night")
        try:
            night = None if night_text is None else int(night_text)
        except ValueError:
            raise SomnaError(f"{where}: night {night_text!r} is not a whole number", path) from None
        nights.append(
            NightSource(
                psg=files["psg"],
                hypnogram=files["hypnogram"],
                subject=subject,
                night=night,
                record=_cell(row, "record"),
                lights_off=_cell(row, "lights_off"),
                lights_on=_cell(row, "lights_on"),
                channels={m: v for m in ("eeg", "eog", "emg") if (v := _cell(row, m))},
            )
        )
    if not nights:
        raise SomnaError("the cohort manifest lists no night", path)
    _check_unique(nights, path)
    return nights


def _check_unique(nights: list[NightSource], where: Path) -> None:
    seen: dict[str, NightSource] = {}
    for night in nights:
        other = seen.setdefault(night.name, night)
        if other is not night:
            raise SomnaError(
                f"two nights would be cached as {night.name!r} ({other.psg.name}, {night.psg.name}); "
                "give each a distinct record",
                where,
            )


def is_hypnogram_file(path: Path) -> bool:
    """Whether a file's name or extension marks a hypnogram (a scoring export, or a name with
    ``hypnogram``, ``scoring``, ``stages`` …)."""
    lower = path.name.lower()
    return path.suffix.lower() in _SCORING_SUFFIXES or any(word in lower for word in _HYPNOGRAM_WORDS)


def _is_psg_file(path: Path) -> bool:
    return path.suffix.lower() in _PSG_SUFFIXES and not any(w in path.name.lower() for w in _HYPNOGRAM_WORDS)


def pair_by_pattern(folder: str | Path, pattern: str) -> list[NightSource]:
    """Pair a folder's PSG and hypnogram files by the subject and night a pattern finds in their names.

    Parameters
    ----------
    folder : str | Path
        Searched with its sub-folders.
    pattern : str
        A regular expression searched in each file's path relative to ``folder``, with a named group
        ``subject`` and optionally ``night`` (digits), e.g.
        ``'(?P<subject>patient\\d+)_night(?P<night>\\d)'``.

    Returns
    -------
    list of NightSource
        Sorted by subject and night.

    Raises
    ------
    SomnaError
        For a pattern without a ``subject`` group or that does not compile, a folder where it matches
        nothing, or a night with no PSG, no hypnogram, or two of either (all listed at once).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("p01_n1.edf", "p01_n1_hypnogram.edf", "p01_n2.edf", "p01_n2.xml"):
    ...     _ = (folder / name).write_text("")
    >>> nights = pair_by_pattern(folder, r"(?P<subject>p\\d+)_n(?P<night>\\d)")
    >>> [(n.subject, n.night, n.hypnogram.name) for n in nights]
    [('p01', 1, 'p01_n1_hypnogram.edf'), ('p01', 2, 'p01_n2.xml')]
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SomnaError("is not a folder", folder)
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise SomnaError(f"--pair {pattern!r} is not a regular expression: {err}") from None
    if "subject" not in regex.groupindex:
        raise SomnaError(f"--pair {pattern!r} needs a named group (?P<subject>...) for the subject")
    groups: dict[tuple[str, int | None], dict[str, list[Path]]] = defaultdict(lambda: {"psg": [], "hyp": []})
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        match = regex.search(path.relative_to(folder).as_posix())
        if not match or not match.group("subject"):
            continue
        night_text = match.groupdict().get("night")
        night = int(night_text) if night_text and night_text.isdigit() else None
        key = (match.group("subject"), night)
        if _is_psg_file(path):
            groups[key]["psg"].append(path)
        elif is_hypnogram_file(path):
            groups[key]["hyp"].append(path)
    if not groups:
        raise SomnaError(f"--pair {pattern!r} matches no PSG or hypnogram file here", folder)
    return _nights_from_groups(groups, folder, f"--pair {pattern!r}")


def _nights_from_groups(
    groups: dict[tuple[str, int | None], dict[str, list[Path]]], folder: Path, how: str
) -> list[NightSource]:
    problems, nights = [], []
    for (subject, night), files in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        label = subject if night is None else f"{subject} night {night}"
        psgs, hyps = files["psg"], files["hyp"]
        if len(psgs) != 1 or len(hyps) != 1:
            listed = ", ".join(p.name for p in psgs + hyps) or "nothing"
            problems.append(f"{label}: {len(psgs)} PSG and {len(hyps)} hypnogram file(s) ({listed})")
            continue
        nights.append(NightSource(psgs[0], hyps[0], subject=subject, night=night))
    if problems:
        raise SomnaError(f"{how}: each night needs one PSG and one hypnogram; " + "; ".join(problems), folder)
    _check_unique(nights, folder)
    return nights


def name_key(path: Path) -> str:
    """A file's name without extension, hypnogram words and ``PSG``, for pairing by name.

    Examples
    --------
    >>> name_key(Path("Patient01_Hypnogram.xml")), name_key(Path("patient01-PSG.edf"))
    ('patient01', 'patient01')
    """
    stem = path.name.split(".")[0].lower()
    for word in (*_HYPNOGRAM_WORDS, "psg"):
        stem = re.sub(rf"[{re.escape(_SEPARATORS)}]*{word}$", "", stem)
    return stem.strip(_SEPARATORS)


def pair_by_name(folder: str | Path) -> list[NightSource]:
    """Pair a folder's PSG files with hypnograms of the same name plus a hypnogram word
    (``patient01.edf`` with ``patient01_hypnogram.edf``, ``night3-PSG.edf`` with ``night3.xml``); each
    night is its own subject.

    Raises
    ------
    SomnaError
        If nothing pairs, or a PSG or hypnogram has no partner or two (all listed at once).
    """
    folder = Path(folder)
    groups: dict[tuple[str, int | None], dict[str, list[Path]]] = defaultdict(lambda: {"psg": [], "hyp": []})
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if _is_psg_file(path):
            groups[(name_key(path), None)]["psg"].append(path)
        elif is_hypnogram_file(path) and path.name != "lights.csv":
            groups[(name_key(path), None)]["hyp"].append(path)
    if not groups:
        raise SomnaError(
            "no PSG/hypnogram pairs here: name them alike (patient01.edf, patient01_hypnogram.edf), or give "
            "--pair REGEX or a manifest (CSV: psg,hypnogram,subject)",
            folder,
        )
    return _nights_from_groups(groups, folder, "pairing by file name")


def cohort_nights(
    source: str | Path | Sequence[NightSource | tuple[str | Path, str | Path]], pair: str | None = None
) -> tuple[list[NightSource], str | None]:
    """The nights of a cohort source (see the module docstring), and a note when subjects were guessed.

    Parameters
    ----------
    source : path or sequence
        A Sleep-EDF folder, a folder of own files, a manifest (``.csv``), or nights / (psg, hypnogram)
        pairs.
    pair : str | None
        ``--pair``'s pattern, for a folder.

    Returns
    -------
    nights : list of NightSource
    note : str | None
        Set when each night was taken as its own subject (pairing by file name).

    Raises
    ------
    SomnaError
        As the reader or pairing used.
    """
    from somna.io.sleepedf import find_sleep_edf_pairs

    if not isinstance(source, (str, Path)):
        nights = [n if isinstance(n, NightSource) else NightSource(Path(n[0]), Path(n[1])) for n in source]
        return nights, None
    source = Path(source)
    if source.is_file():
        if pair is not None:
            raise SomnaError("--pair pairs the files of a folder; a manifest names its pairs itself", source)
        return read_cohort_manifest(source), None
    if not source.is_dir():
        raise SomnaError("no such folder or manifest", source)
    if pair is not None:
        return pair_by_pattern(source, pair), None
    sleep_edf = find_sleep_edf_pairs(source)
    if sleep_edf:
        return [NightSource(p.psg, p.hypnogram) for p in sleep_edf], None
    nights = pair_by_name(source)
    note = (
        f"{len(nights)} night(s) paired by file name, each taken as its own subject: if one person has "
        "several nights, give --pair '(?P<subject>...)' or a manifest with a subject column, so that "
        "splits keep their nights together"
    )
    return nights, note
