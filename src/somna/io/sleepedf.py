"""Sleep-EDF Expanded specifics: file names, PSG/hypnogram pairing, and downloading via MNE.

Sleep-EDF Expanded (PhysioNet ``sleep-edfx``) has two studies:

* SC (*Sleep Cassette*, age effects): records ``SC4ssN``, subject ``ss`` 00–82, night ``N`` 1–2.
* ST (*Sleep Telemetry*, temazepam effects): records ``ST7ssN``, subject ``ss`` 01–24, night 1–2.

Each night is a ``<record><2 letters>-PSG.edf`` file and a ``<record><2 letters>-Hypnogram.edf``
file whose two letters differ (``SC4001E0-PSG.edf`` ↔ ``SC4001EC-Hypnogram.edf``,
``ST7011J0-PSG.edf`` ↔ ``ST7011JP-Hypnogram.edf``): they are paired by record, never by editing
the name.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from somna.errors import SomnaError

__all__ = [
    "SC_SUBJECTS",
    "ST_SUBJECTS",
    "SleepEdfId",
    "SleepEdfPair",
    "download_sleep_edf",
    "find_sleep_edf_pairs",
    "parse_sleep_edf_name",
    "parse_subject_range",
]

SC_SUBJECTS: range = range(0, 83)
"""Subject numbers of the SC study (as in ``SC4ssN``); 39, 68, 69, 78 and 79 were never published."""
ST_SUBJECTS: range = range(1, 25)
"""Subject numbers of the ST study (as in ``ST7ssN``); 3 and 23 were never published."""

_NAME = re.compile(
    r"^(?:(?P<sc>SC)4|(?P<st>ST)7)(?P<subject>\d{2})(?P<night>[12])(?P<suffix>[A-Z][A-Z0-9])?(?=$|[-_.])",
    re.IGNORECASE,
)


@dataclass(frozen=True, order=True)
class SleepEdfId:
    """Identity of one Sleep-EDF night, parsed from a file name.

    Parameters
    ----------
    study : {"SC", "ST"}
        Sleep Cassette or Sleep Telemetry.
    subject : int
        Subject number as written in the name (SC 0–82, ST 1–24).
    night : int
        Night number, 1 or 2.
    record : str
        The record, e.g. ``"SC4001"`` or ``"ST7011"``.
    subject_id : str
        Study plus two-digit subject, e.g. ``"SC00"`` or ``"ST01"``: the unit to split cohorts by.
    """

    study: str
    subject: int
    night: int
    record: str
    subject_id: str


@dataclass(frozen=True)
class SleepEdfPair:
    """A PSG file and its hypnogram file, of one night.

    Parameters
    ----------
    psg : Path
        The ``*-PSG.edf`` file.
    hypnogram : Path
        The ``*-Hypnogram.edf`` file.
    id : SleepEdfId
        The night both belong to.
    """

    psg: Path
    hypnogram: Path
    id: SleepEdfId


def parse_sleep_edf_name(name: str | Path) -> SleepEdfId:
    """Parse a Sleep-EDF Expanded file or record name.

    Parameters
    ----------
    name : str | Path
        A file name or path (``"SC4001E0-PSG.edf"``, ``".../ST7011JP-Hypnogram.edf"``,
        ``"SC4001E0.csv"``) or a bare record (``"SC4001"``). Case is ignored.

    Returns
    -------
    SleepEdfId

    Raises
    ------
    ValueError
        If the name is not a Sleep-EDF name (an SC name is ``SC4ssN…``, an ST name ``ST7ssN…``) or
        its subject is out of the study's range.
    """
    base = Path(name).name
    match = _NAME.match(base)
    if match is None:
        raise ValueError(
            f"{base!r} is not a Sleep-EDF Expanded name (expected SC4ssN… or ST7ssN…, e.g. SC4001E0-PSG.edf)"
        )
    study = "SC" if match["sc"] else "ST"
    subject = int(match["subject"])
    valid = SC_SUBJECTS if study == "SC" else ST_SUBJECTS
    if subject not in valid:
        raise ValueError(
            f"{base!r}: subject {subject} is outside the {study} study ({valid.start}–{valid.stop - 1})"
        )
    night = int(match["night"])
    record = f"{study}{4 if study == 'SC' else 7}{subject:02d}{night}"
    return SleepEdfId(study, subject, night, record, f"{study}{subject:02d}")


def _kind(path: Path) -> str | None:
    lower = path.name.lower()
    if lower.endswith("-psg.edf"):
        return "psg"
    if lower.endswith("-hypnogram.edf"):
        return "hypnogram"
    return None


def _pair(
    psgs: Iterable[Path], hypnograms: Iterable[Path], where: Path | None, on_unpaired: str
) -> list[SleepEdfPair]:
    if on_unpaired not in ("raise", "warn"):
        raise ValueError(f"on_unpaired must be 'raise' or 'warn', got {on_unpaired!r}")
    problems: list[str] = []
    found: dict[str, dict[SleepEdfId, Path]] = {"psg": {}, "hypnogram": {}}
    for kind, paths in (("psg", psgs), ("hypnogram", hypnograms)):
        for path in sorted(Path(p) for p in paths):
            try:
                night = parse_sleep_edf_name(path)
            except ValueError as err:
                problems.append(f"{path.name} (not a Sleep-EDF name: {err})")
                continue
            if night in found[kind]:
                problems.append(
                    f"{path.name} (second {kind} file for {night.record}: {found[kind][night].name})"
                )
                continue
            found[kind][night] = path
    psg_ids, hyp_ids = set(found["psg"]), set(found["hypnogram"])
    for night in sorted(psg_ids - hyp_ids):
        problems.append(f"{found['psg'][night].name} (no hypnogram for {night.record})")
    for night in sorted(hyp_ids - psg_ids):
        problems.append(f"{found['hypnogram'][night].name} (no PSG for {night.record})")
    if problems:
        message = f"{len(problems)} Sleep-EDF file(s) without a partner: " + "; ".join(problems)
        if on_unpaired == "raise":
            raise SomnaError(message, where)
        warnings.warn(f"{where}: {message}; skipped" if where else f"{message}; skipped", stacklevel=3)
    return [SleepEdfPair(found["psg"][n], found["hypnogram"][n], n) for n in sorted(psg_ids & hyp_ids)]


def find_sleep_edf_pairs(
    folder: str | Path, on_unpaired: Literal["raise", "warn"] = "raise"
) -> list[SleepEdfPair]:
    """Pair the ``*-PSG.edf`` and ``*-Hypnogram.edf`` files of a folder by study, subject and night.

    The two letters after the record differ between a PSG and its hypnogram and vary between nights
    (``SC4001E0``/``SC4001EC``, ``SC4011E0``/``SC4011EH``, ``ST7011J0``/``ST7011JP``), so files are
    matched on the parsed record, never by rewriting one name into the other. Only the folder itself
    is searched (not sub-folders); other files are ignored.

    Parameters
    ----------
    folder : str | Path
        The folder holding the files (MNE's ``physionet-sleep-data``, say).
    on_unpaired : {"raise", "warn"}
        What to do with a PSG without hypnogram, a hypnogram without PSG, a second file for the same
        night, or a ``-PSG.edf``/``-Hypnogram.edf`` file whose name is not a Sleep-EDF name: raise
        (default: a half-downloaded cohort should not train silently on fewer nights) or warn and
        skip them.

    Returns
    -------
    list of SleepEdfPair
        Sorted by study, subject and night.

    Raises
    ------
    SomnaError
        If the folder does not exist, or with ``on_unpaired="raise"`` if any file lacks a partner;
        the message lists every such file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SomnaError("is not a folder (expected Sleep-EDF *-PSG.edf and *-Hypnogram.edf files)", folder)
    files = [p for p in folder.iterdir() if p.is_file()]
    psgs = [p for p in files if _kind(p) == "psg"]
    hypnograms = [p for p in files if _kind(p) == "hypnogram"]
    return _pair(psgs, hypnograms, folder, on_unpaired)


def parse_subject_range(text: str) -> list[int]:
    """Parse a subject selection such as ``"0-19,25"``.

    Parameters
    ----------
    text : str
        Comma-separated numbers and inclusive ranges ``a-b``; spaces are ignored.

    Returns
    -------
    list of int
        Sorted, without duplicates.

    Raises
    ------
    ValueError
        On an empty selection, a non-number, a negative number or a range whose end is before its start.
    """
    subjects: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise ValueError(
                f"cannot read subject selection {text!r}: {part!r} is not a number or a range a-b"
            )
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first:
            raise ValueError(f"cannot read subject selection {text!r}: range {part!r} ends before it starts")
        subjects.update(range(first, last + 1))
    if not subjects:
        raise ValueError(f"subject selection {text!r} selects no subject")
    return sorted(subjects)


def _mne_records(filename: str) -> list[dict[str, str]]:
    # MNE's own record table: what its fetchers can download (and therefore what PhysioNet has).
    import mne.datasets.sleep_physionet as sp

    with open(Path(sp.__file__).parent / filename, newline="") as f:
        return list(csv.DictReader(f))


def download_sleep_edf(
    subjects: Sequence[int],
    study: Literal["sc", "st"] = "sc",
    path: str | Path | None = None,
    recordings: Sequence[int] = (1, 2),
) -> list[SleepEdfPair]:
    """Download (or find already downloaded) Sleep-EDF Expanded nights with MNE's fetchers.

    Wraps ``mne.datasets.sleep_physionet.age.fetch_data`` (SC) and ``.temazepam.fetch_data`` (ST),
    which verify each file's SHA-1 checksum (via pooch) and skip files already present.

    Nights that PhysioNet does not have are skipped with one :class:`UserWarning` naming them,
    rather than failing the whole download: SC subjects 39, 68, 69, 78, 79 (never published), SC
    night 2 of subject 13 and night 1 of subjects 36 and 52 (lost), ST subjects 3 and 23. MNE's ST
    fetcher only provides each subject's *placebo* night (night 1 or 2 depending on the subject), so
    ST temazepam nights are skipped with the same warning.

    Parameters
    ----------
    subjects : sequence of int
        Subject numbers as in the file names: SC 0–82 (``SC4ssN``), ST 1–24 (``ST7ssN``; MNE's own
        ST fetcher counts 0–21 over the published subjects, the translation is done here).
    study : {"sc", "st"}
        Sleep Cassette or Sleep Telemetry.
    path : str | Path | None
        Where MNE keeps the data (``None``: MNE's ``PHYSIONET_SLEEP_PATH`` config, else ``~/mne_data``).
    recordings : sequence of int
        Nights to get, among 1 and 2.

    Returns
    -------
    list of SleepEdfPair
        The downloaded nights, sorted by subject and night.

    Raises
    ------
    ValueError
        If a subject is outside the study's range, a night is not 1 or 2, or ``study`` is unknown.
    SomnaError
        If the files MNE returns cannot be paired.
    """
    study_key = str(study).lower()
    if study_key not in ("sc", "st"):
        raise ValueError(f"study must be 'sc' or 'st', got {study!r}")
    subjects = sorted({int(s) for s in subjects})
    if not subjects:
        raise ValueError("no subject requested")
    nights = sorted({int(n) for n in recordings})
    if not nights or any(n not in (1, 2) for n in nights):
        raise ValueError(f"recordings must be nights among 1 and 2, got {tuple(recordings)}")
    valid = SC_SUBJECTS if study_key == "sc" else ST_SUBJECTS
    outside = [s for s in subjects if s not in valid]
    if outside:
        raise ValueError(f"{study_key.upper()} subjects are {valid.start}–{valid.stop - 1}; got {outside}")
    if study_key == "sc":
        return _download_sc(subjects, nights, path)
    return _download_st(subjects, nights, path)


def _warn_skipped(skipped: list[str]) -> None:
    if skipped:
        warnings.warn(
            f"Sleep-EDF nights not available on PhysioNet, skipped: {', '.join(skipped)}", stacklevel=3
        )


def _pairs_from_fetcher(fetched: Iterable[Sequence[str]]) -> list[SleepEdfPair]:
    files = [Path(f) for pair in fetched for f in pair]
    return _pair(
        [f for f in files if _kind(f) == "psg"], [f for f in files if _kind(f) == "hypnogram"], None, "raise"
    )


def _download_sc(subjects: list[int], nights: list[int], path: str | Path | None) -> list[SleepEdfPair]:
    from mne.datasets.sleep_physionet import age

    available = {(int(r["subject"]), int(r["night"])) for r in _mne_records("age_records.csv")}
    wanted = [(s, n) for s in subjects for n in nights]
    skipped = [f"SC4{s:02d}{n}" for s, n in wanted if (s, n) not in available]
    _warn_skipped(skipped)
    fetch_subjects = sorted({s for s, n in wanted if (s, n) in available})
    if not fetch_subjects:
        return []
    # Missing nights were reported above; "ignore" stops MNE raising on them (13/2, 36/1, 52/1).
    fetched = age.fetch_data(
        subjects=fetch_subjects,
        recording=nights,
        path=None if path is None else str(path),
        on_missing="ignore",
    )
    return _pairs_from_fetcher(fetched)


def _download_st(subjects: list[int], nights: list[int], path: str | Path | None) -> list[SleepEdfPair]:
    from mne.datasets.sleep_physionet import temazepam

    records = _mne_records("temazepam_records.csv")
    # MNE numbers ST subjects 0..21 over the published ones; the files say the original number.
    mne_index = {int(r["subject_orig"]): int(r["subject"]) for r in records}
    placebo = {(int(r["subject_orig"]), int(r["night nr"])) for r in records if r["drug"] == "Placebo"}
    wanted = [(s, n) for s in subjects for n in nights]
    skipped = []
    for s, n in wanted:
        if s not in mne_index:
            skipped.append(f"ST7{s:02d}{n} (subject not published)")
        elif (s, n) not in placebo:
            skipped.append(f"ST7{s:02d}{n} (temazepam night; MNE fetches placebo nights only)")
    _warn_skipped(skipped)
    fetch = sorted({s for s, n in wanted if (s, n) in placebo})
    if not fetch:
        return []
    fetched = temazepam.fetch_data(
        subjects=[mne_index[s] for s in fetch], path=None if path is None else str(path)
    )
    return [p for p in _pairs_from_fetcher(fetched) if p.id.night in nights]


PHYSIONET_SLEEP_EDF = "https://physionet.org/files/sleep-edfx/1.0.0/"
"""Where PhysioNet serves Sleep-EDF Expanded."""
SUBJECT_TABLES = {"sc": "SC-subjects.xls", "st": "ST-subjects.xls"}
"""PhysioNet's subject tables, which hold each night's lights-off time (no lights-on time)."""
LIGHTS_TABLE = "lights.csv"


def _fetch(url: str) -> bytes:
    from urllib.request import urlopen

    with urlopen(url, timeout=120) as response:
        return response.read()


def lights_from_subject_table(path: str | Path, study: Literal["sc", "st"]) -> dict[str, str]:
    """Lights off of every night in a Sleep-EDF subject table, by Sleep-EDF night (``SC4001``, ``ST7011``).

    ``SC-subjects.xls`` has a row per night (subject, night, age, sex, lights off);
    ``ST-subjects.xls`` a row per subject (number, age, sex, placebo night and its lights off,
    temazepam night and its lights off). Times are Excel fractions of a day; rows whose first cell is
    not a number (headers) are skipped.

    Raises
    ------
    SomnaError
        For a file that is not such a table.
    """
    import xlrd

    path = Path(path)
    try:
        sheet = xlrd.open_workbook(path).sheet_by_index(0)
    except Exception as err:  # xlrd raises its own XLRDError and others for a file it cannot parse
        raise SomnaError(f"cannot read the Sleep-EDF subject table: {err}", path) from None

    def clock(value: object) -> str:
        seconds = round((float(value) % 1.0) * 86400) % 86400
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

    lights: dict[str, str] = {}
    columns = ((1, 4),) if study == "sc" else ((3, 4), (5, 6))
    for r in range(sheet.nrows):
        row = sheet.row_values(r)
        if not row or not isinstance(row[0], float):
            continue
        try:
            for night_col, time_col in columns:
                night = int(row[night_col])
                prefix = "SC4" if study == "sc" else "ST7"
                lights[f"{prefix}{int(row[0]):02d}{night}"] = clock(row[time_col])
        except (IndexError, ValueError, TypeError):
            raise SomnaError(f"row {r + 1} is not a {study.upper()} subject-table row: {row}", path) from None
    if not lights:
        raise SomnaError(f"holds no {study.upper()} night", path)
    return lights


def download_lights_table(
    study: Literal["sc", "st"], folder: str | Path, fetch: Callable[[str], bytes] = _fetch
) -> Path:
    """Fetch PhysioNet's subject table of a study, check it against PhysioNet's ``SHA256SUMS.txt``, and
    write its lights-off times into ``folder/lights.csv`` (merged with the other study's, if there).

    Sleep-EDF publishes lights off only: lights on is left empty (somna estimates it, and says so).

    Returns
    -------
    Path
        The lights table.

    Raises
    ------
    SomnaError
        If PhysioNet cannot be reached, lists no checksum for the table, or the file does not match it.
    """
    import hashlib

    from somna.io.lights import read_lights_table
    from somna.storage import atomic_write

    folder = Path(folder)
    name = SUBJECT_TABLES[study]
    try:
        sums = fetch(PHYSIONET_SLEEP_EDF + "SHA256SUMS.txt").decode("utf-8", "replace")
        data = fetch(PHYSIONET_SLEEP_EDF + name)
    except OSError as err:
        raise SomnaError(f"cannot fetch {name} from PhysioNet: {err}") from None
    expected = {
        parts[1].lstrip("*"): parts[0].lower()
        for parts in (line.split() for line in sums.splitlines())
        if len(parts) == 2
    }.get(name)
    if expected is None:
        raise SomnaError(f"PhysioNet's SHA256SUMS.txt lists no checksum for {name}")
    if hashlib.sha256(data).hexdigest() != expected:
        raise SomnaError(f"{name} from PhysioNet does not match its SHA-256 checksum; not used")
    xls = atomic_write(folder / name, lambda tmp: tmp.write_bytes(data))
    rows = {record: (off, None) for record, off in lights_from_subject_table(xls, study).items()}
    table = folder / LIGHTS_TABLE
    if table.is_file():
        rows = {**read_lights_table(table), **rows}

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["record", "lights_off", "lights_on"])
            writer.writerows([record, off or "", on or ""] for record, (off, on) in sorted(rows.items()))

    return atomic_write(table, write)
