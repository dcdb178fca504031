"""What the scoring-file readers share: limits, text decoding, safe XML, clock times, and the placing of
timed stage events (onset, duration) on 30-s epochs.

Stage names here are *neutral*: ``"W"``, ``"1"`` … ``"4"`` (NREM stage k), ``"REM"`` and ``None``
(unscored). The label set is chosen once the whole file is read (:func:`stage_codes`): R&K when stage 4
appears, AASM otherwise, as a vendor's integer codes do not say which rules the scorer followed.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import numpy as np

from somna.errors import HypnogramError
from somna.hypnogram import EPOCH_SECONDS, Hypnogram
from somna.io.lights import lights_annotation
from somna.stages import AASM, RK, UNSCORED, LabelSet

MAX_EPOCHS = 14 * 24 * 120
"""Longest hypnogram read: 14 days of 30-s epochs. Longer means a corrupt file (a huge onset, duration
or epoch index), which would otherwise allocate gigabytes."""
GRID_TOLERANCE_S = 1e-3
"""How far (s) an onset or duration may be off the 30-s grid (exporters round to the millisecond)."""
NEUTRAL_STAGES = ("W", "1", "2", "3", "4", "REM")
"""Neutral stage names of vendor codes: wake, NREM stage 1–4, REM (``None`` is unscored)."""

_NAMES = {
    "rk": {"W": "W", "1": "S1", "2": "S2", "3": "S3", "4": "S4", "REM": "REM"},
    "aasm": {"W": "W", "1": "N1", "2": "N2", "3": "N3", "4": "N3", "REM": "REM"},
}


def check_length(n_epochs: int, path: Path) -> None:
    """Refuse a hypnogram of more than :data:`MAX_EPOCHS` epochs (a corrupt file)."""
    if n_epochs > MAX_EPOCHS:
        raise HypnogramError(
            f"spans {n_epochs} epochs of 30 s, more than the {MAX_EPOCHS} ({MAX_EPOCHS // 2880} days) "
            "a hypnogram may have (corrupt file?)",
            path,
        )


def whole_epochs(seconds: float, epoch: float) -> int | None:
    """``seconds`` as a whole number of ``epoch``-s epochs (within :data:`GRID_TOLERANCE_S`), else None."""
    n = round(seconds / epoch)
    return int(n) if abs(n * epoch - seconds) <= GRID_TOLERANCE_S else None


def stage_codes(names: Sequence[str | None], rk: bool | None = None) -> tuple[LabelSet, np.ndarray]:
    """Codes of neutral stage names (:data:`NEUTRAL_STAGES`, ``None`` unscored).

    ``rk``: ``True`` for R&K, ``False`` for AASM (stage 4 becomes N3), ``None`` for R&K exactly when
    stage 4 appears.
    """
    if rk is None:
        rk = "4" in names
    label_set = RK if rk else AASM
    table = _NAMES[label_set.name]
    codes = [UNSCORED if name is None else label_set.code(table[name]) for name in names]
    return label_set, np.asarray(codes, dtype=np.int8)


# --- text -------------------------------------------------------------------------------------

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def _encoding(data: bytes) -> str:
    """UTF-8 or UTF-16 by the byte-order mark, UTF-16 without one when every other byte is zero."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    head = data[:400]
    if len(head) >= 4 and head[1::2].count(0) > 0.9 * (len(head) // 2):
        return "utf-16-le"
    if len(head) >= 4 and head[0::2].count(0) > 0.9 * (len(head) // 2):
        return "utf-16-be"
    return "utf-8"


def decode_text(data: bytes, path: Path, fallback: str | None = None) -> str:
    """Text of a file: UTF-8 or UTF-16 by its byte-order mark, UTF-16 without one when every other
    byte is zero, else UTF-8 (or ``fallback``, e.g. ``"cp1252"`` for Windows exports, when that fails)."""
    encoding = _encoding(data)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        if fallback is not None and encoding == "utf-8":
            return data.decode(fallback, errors="replace")
        name = encoding.upper().removesuffix("-SIG")
        raise HypnogramError(f"is not {name} text: byte {err.start} cannot be decoded", path) from None


def sniff_text(head: bytes) -> str:
    """The first bytes of a file as text, undecodable bytes replaced (to recognise its format)."""
    return head.decode(_encoding(head), errors="replace").removeprefix("\ufeff")


def read_bytes(path: Path) -> bytes:
    """A file's bytes, an unreadable file being a :class:`HypnogramError`."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise HypnogramError(f"cannot be read: {err.strerror or err}", path) from None


def parse_number(text: str | None, what: str, path: Path) -> float:
    """A finite number (seconds) from a cell or element; ``what`` names it in the message
    (``"row 4: onset"``, ``"<ScoredEvent> 3 <Start>"``)."""
    value = (text or "").strip()
    try:
        number = float(value)
    except ValueError:
        raise HypnogramError(f"{what} is {value[:40]!r}, not a number", path) from None
    if not math.isfinite(number):
        raise HypnogramError(f"{what} is {value[:40]!r}, not a finite number", path)
    return number


def parse_optional_number(text: str | None, what: str, path: Path) -> float | None:
    """As :func:`parse_number`, but a missing value (absent, empty, BIDS's ``n/a``) is ``None``."""
    if (text or "").strip().lower() in ("", "n/a"):
        return None
    return parse_number(text, what, path)


def table_rows(text: str, path: Path, delimiters: str = "\t;,") -> list[tuple[int, list[str]]]:
    """(line number, stripped cells) of each non-blank line of a delimited table.

    The delimiter is the first of ``delimiters`` found in the first non-blank line (one column when
    none is); quoted cells may hold it.
    """
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise HypnogramError("is empty: no header and no rows", path)
    delimiter = next((d for d in delimiters if d in lines[0][1]), None)
    rows = []
    for n, line in lines:
        if delimiter is None:
            rows.append((n, [line.strip()]))
            continue
        try:
            cells = next(csv.reader([line], delimiter=delimiter))
        except csv.Error as err:
            raise HypnogramError(f"row {n} cannot be split into cells: {err}", path) from None
        rows.append((n, [c.strip() for c in cells]))
    return rows


# --- XML --------------------------------------------------------------------------------------


def parse_xml(data: bytes, path: Path) -> Element:
    """The root element of an XML document, refusing DTDs and entity declarations.

    Uses :mod:`defusedxml`, so that a ``<!DOCTYPE>`` with entities (the "billion laughs") is an error
    instead of gigabytes of expanded text. Comments and processing instructions are dropped.
    """
    import defusedxml.ElementTree as SafeElementTree
    from defusedxml import DefusedXmlException

    try:
        return SafeElementTree.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as err:
        raise HypnogramError(
            f"declares a DTD or entities ({type(err).__name__}); somna does not expand them", path
        ) from None
    except ParseError as err:
        raise HypnogramError(f"is not well-formed XML ({err}); truncated or corrupt?", path) from None
    except (ValueError, LookupError, RecursionError) as err:  # unknown encoding, deep nesting
        raise HypnogramError(f"is not readable XML: {type(err).__name__}: {str(err)[:200]}", path) from None


def local_name(tag: Any) -> str:
    """An element's tag without its namespace (``{http://…}SleepStage`` → ``SleepStage``)."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def children(element: Element, name: str) -> list[Element]:
    """Child elements named ``name``, in any namespace."""
    return [child for child in element if local_name(child.tag) == name]


def child_text(element: Element, name: str) -> str | None:
    """Stripped text of the first child named ``name`` (``""`` when empty), ``None`` when absent."""
    found = children(element, name)
    return None if not found else (found[0].text or "").strip()


def descend(element: Element, *names: str) -> Element | None:
    """The first element along a path of child names, ``None`` where one is missing."""
    for name in names:
        found = children(element, name)
        if not found:
            return None
        element = found[0]
    return element


# --- clock times ------------------------------------------------------------------------------

_DATE_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S")
_FRACTION = re.compile(r"^(.*\d:\d{2}:\d{2})(?:[.,](\d{1,9}))?$")
_TIME_OF_DAY = re.compile(r"^(\d{1,2})[:.](\d{2})[:.](\d{2}(?:[.,]\d+)?)$")


def parse_timestamp(text: str) -> dt.datetime | None:
    """A date and clock time: ISO 8601 (``2019-01-01T22:30:00.000000``, space or ``T``), or day first
    (``01/02/2019 22:30:00``, with ``/``, ``.`` or ``-``, optional fraction); ``None`` when it is not one.
    A time zone, when given, is dropped (EDF clock times carry none)."""
    value = text.strip()
    if not value or len(value) > 40:
        return None
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=None)
    except ValueError:
        pass
    match = _FRACTION.match(value)
    if not match:
        return None
    for fmt in _DATE_FORMATS:
        try:
            stamp = dt.datetime.strptime(match[1], fmt)
        except ValueError:
            continue
        return stamp + dt.timedelta(seconds=float(f"0.{match[2]}")) if match[2] else stamp
    return None


def parse_time_of_day(text: str) -> float | None:
    """Seconds after midnight of ``HH:MM:SS`` (or ``HH.MM.SS``, optional fraction); ``None`` if not one."""
    match = _TIME_OF_DAY.match(text.strip())
    if not match:
        return None
    hours, minutes, seconds = int(match[1]), int(match[2]), float(match[3].replace(",", "."))
    if hours > 23 or minutes > 59 or seconds >= 60:
        return None
    return hours * 3600.0 + minutes * 60.0 + seconds


def seconds_after(reference: float, time_of_day: float) -> float:
    """Seconds from ``reference`` (seconds after a midnight) to the first ``time_of_day`` from one hour
    before it on (so ``00:10`` after ``23:50`` is 20 minutes later, the next day), as lights times are read
    (:func:`somna.io.lights.parse_lights_time`)."""
    delta = time_of_day - reference
    while delta < -3600.0:
        delta += 86400.0
    return delta


# --- timed stages on 30-s epochs --------------------------------------------------------------


@dataclass(frozen=True)
class TimedStage:
    """A stage event of a file: onset and duration in seconds from the file's time zero.

    ``stage`` is a neutral name (:data:`NEUTRAL_STAGES`) or ``None`` for unscored; ``where`` names the
    event in messages (``"ScoredEvent 12 ('Stage 2 sleep|2')"``, ``"row 7"``). A duration of ``None`` or
    0 marks one epoch, as some exporters write one event per epoch without duration.
    """

    onset_s: float
    duration_s: float | None
    stage: str | None
    where: str


def timed_hypnogram(
    stages: list[TimedStage],
    others: Iterable[tuple[float, str]],
    path: Path,
    *,
    anchor_s: float | None = None,
    clock: dt.datetime | None = None,
    rk: bool | None = None,
    info: dict[str, Any] | None = None,
) -> Hypnogram:
    """Place timed stage events on 30-s epochs and build the :class:`Hypnogram`.

    Parameters
    ----------
    stages : list of TimedStage
        The stage events (any order).
    others : iterable of (onset s, text)
        The file's other events; lights off/on (:func:`somna.io.lights.lights_annotation`) become
        ``lights_off_s``/``lights_on_s`` (first of each), the rest ``events``.
    path : Path
        The file, for messages and ``source``.
    anchor_s : float | None
        Time of epoch 0, seconds from the file's time zero. ``None``: time zero itself when the first
        stage lies on its 30-s grid at or after it (epochs before the first stage are then unscored,
        so that epoch 0 is the recording's first), else the first stage's onset.
    clock : datetime | None
        Clock time of the file's time zero; the hypnogram starts at ``clock + anchor_s``.
    rk : bool | None
        Label set, as in :func:`stage_codes`.
    info : dict | None
        Put in :attr:`Hypnogram.info`.

    Raises
    ------
    HypnogramError
        For no stage event, a stage off the grid, of a duration that is not a whole number of epochs,
        overlapping an earlier one, or a hypnogram beyond the 14-day limit.
    """
    if not stages:
        raise HypnogramError("has no sleep-stage events", path)
    limit_s = MAX_EPOCHS * EPOCH_SECONDS
    for event in stages:
        duration = event.duration_s or 0.0
        if not (abs(event.onset_s) <= limit_s and 0 <= duration <= limit_s):
            raise HypnogramError(
                f"{event.where} has onset {event.onset_s:g} s and duration {duration:g} s, beyond the "
                f"{limit_s / 86400:g}-day limit (corrupt file?)",
                path,
            )
    ordered = sorted(stages, key=lambda e: e.onset_s)
    first_onset = ordered[0].onset_s
    if anchor_s is None:
        on_grid = whole_epochs(first_onset, EPOCH_SECONDS)
        anchor_s = 0.0 if on_grid is not None and on_grid >= 0 else first_onset
    label_set, codes = stage_codes([e.stage for e in ordered], rk)
    spans = []
    for event, code in zip(ordered, codes, strict=True):
        first = whole_epochs(event.onset_s - anchor_s, EPOCH_SECONDS)
        if first is None or first < 0:
            problem = "lies before" if event.onset_s < anchor_s else "is not on the 30-s grid of"
            raise HypnogramError(
                f"{event.where} at {event.onset_s:g} s {problem} epoch 0 (at {anchor_s:g} s)", path
            )
        n = 1 if not event.duration_s else whole_epochs(event.duration_s, EPOCH_SECONDS)
        if n is None or n < 1:
            raise HypnogramError(
                f"{event.where} lasts {event.duration_s:g} s, not a whole number of 30-s epochs", path
            )
        spans.append((first, n, int(code), event))
    n_epochs = max(first + n for first, n, _, _ in spans)
    check_length(n_epochs, path)
    out = np.full(n_epochs, UNSCORED, dtype=np.int8)
    filled = np.zeros(n_epochs, dtype=bool)
    for first, n, code, event in spans:
        if filled[first : first + n].any():
            raise HypnogramError(f"{event.where} at {event.onset_s:g} s overlaps an earlier stage", path)
        out[first : first + n] = code
        filled[first : first + n] = True
    lights_off, lights_on, events = split_lights(others, anchor_s, path)
    try:
        start = None if clock is None else clock + dt.timedelta(seconds=anchor_s)
    except OverflowError:
        raise HypnogramError(f"starts at {clock} + {anchor_s:g} s, beyond the calendar", path) from None
    return Hypnogram(
        stages=out,
        label_set=label_set,
        start=start,
        lights_off_s=lights_off,
        lights_on_s=lights_on,
        source=path,
        events=events,
        info=info or {},
    )


def split_lights(
    others: Iterable[tuple[float, str]], anchor_s: float, path: Path
) -> tuple[float | None, float | None, list[tuple[float, str]]]:
    """(lights off, lights on, other events), seconds from ``anchor_s``; the first lights off and the
    first lights on count, later ones stay events."""
    limit_s = MAX_EPOCHS * EPOCH_SECONDS
    lights_off = lights_on = None
    events = []
    for onset, text in sorted(others, key=lambda e: e[0]):
        if not abs(onset) <= limit_s:
            raise HypnogramError(
                f"event {text[:40]!r} has onset {onset:g} s, beyond the {limit_s / 86400:g}-day limit", path
            )
        which = lights_annotation(text)
        if which == "off" and lights_off is None:
            lights_off = onset - anchor_s
        elif which == "on" and lights_on is None:
            lights_on = onset - anchor_s
        else:
            events.append((onset - anchor_s, text))
    return lights_off, lights_on, events


def stage_runs(stages: Sequence[int] | np.ndarray) -> list[tuple[int, int, int]]:
    """(first epoch, number of epochs, code) of each run of one stage, in order."""
    runs = []
    i = 0
    while i < len(stages):
        j = i
        while j < len(stages) and stages[j] == stages[i]:
            j += 1
        runs.append((i, j - i, int(stages[i])))
        i = j
    return runs


def seconds_text(value: float) -> str:
    """Seconds as a writer puts them: ``30.0``, ``45.5``, ``0.333333`` (microseconds at most)."""
    return f"{value:.1f}" if value == int(value) else f"{value:.6f}".rstrip("0").rstrip(".")


def windows_to_epochs(values: Sequence[Any], per_epoch: int) -> tuple[list[Any], int, int]:
    """Group scoring windows shorter than 30 s into 30-s epochs, ``per_epoch`` windows each.

    An epoch takes its windows' stage when all of them agree; windows that disagree make it ``None``
    (unscored), never a majority's guess. A final incomplete epoch is dropped, as the last partial epoch
    of a PSG is not scored either.

    Returns
    -------
    epochs : list
        One value per 30-s epoch (``None`` where windows disagree).
    mixed : int
        Epochs whose windows disagree.
    dropped : int
        Windows left over after the last whole epoch.
    """
    n = len(values) // per_epoch
    epochs: list[Any] = []
    mixed = 0
    for i in range(n):
        window = values[i * per_epoch : (i + 1) * per_epoch]
        if all(v == window[0] for v in window):
            epochs.append(window[0])
        else:
            epochs.append(None)
            mixed += 1
    return epochs, mixed, len(values) - n * per_epoch
