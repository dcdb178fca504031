"""Nox Medical Noxturnal event export (CSV): scored events with clock-time start and end.

What is documented publicly, from rsleep's ``read_events_noxturnal`` (Bouchequet et al., R package
rsleep) and its test exports: a UTF-16 (or UTF-8) text file with a byte-order mark, written in the
language of the Noxturnal installation. Its first columns are the start time, end time, event and
duration; the French export names them ``Heure de début``, ``Heure de fin``, ``Événement``, ``Durée``,
with times as ``dd/mm/yyyy hh:mm:ss``, sometimes a first row ``[]``, and wake as ``Éveil`` beside
``N1``, ``N2``, ``N3``, ``REM``; other rows are events such as ``Micro-Éveil`` (arousal),
``Hypopnée``, ``Désat``, ``Début de l'analyse`` or body positions (``Dos``). Noxturnal's own event
types for stages are ``sleep-wake``, ``sleep-n1`` … ``sleep-rem``.

Read here: the columns by their English (``Start Time``, ``End Time``, ``Event``, ``Duration``) or
French names (English names are the translation of the French ones: no English export was available
to check them), separated by tabs, semicolons or commas; stage names ``Wake``/``Sleep-Wake``/
``Éveil``/``W``, ``N1`` … ``N3`` (``Sleep-N1`` …), ``REM``/``R``/``Sleep-REM``, ``Unscored``; times with
a date (day first, or ISO) or clock times alone (``22:30:00``, a time before the previous one by
more than an hour being the next day). No other language's names are read, as none is documented.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from somna.errors import HypnogramError
from somna.hypnogram import Hypnogram
from somna.io.formats._common import (
    TimedStage,
    decode_text,
    parse_number,
    parse_time_of_day,
    parse_timestamp,
    read_bytes,
    seconds_after,
    table_rows,
    timed_hypnogram,
)

__all__ = ["NOX_COLUMNS", "NOX_STAGE_NAMES", "is_nox_header", "read_noxturnal_csv"]

NOX_COLUMNS: dict[str, tuple[str, ...]] = {
    "start": ("start time", "start", "heure de début", "début"),
    "end": ("end time", "end", "heure de fin", "fin"),
    "event": ("event", "événement", "evenement", "type"),
    "duration": ("duration", "durée", "duree"),
}
"""Header names of each column, English and French, lower case."""
NOX_STAGE_NAMES: dict[str, str | None] = {
    "wake": "W",
    "sleep-wake": "W",
    "éveil": "W",
    "eveil": "W",
    "w": "W",
    "n1": "1",
    "sleep-n1": "1",
    "n2": "2",
    "sleep-n2": "2",
    "n3": "3",
    "sleep-n3": "3",
    "rem": "REM",
    "r": "REM",
    "sleep-rem": "REM",
    "unscored": None,
    "sleep-unscored": None,
}
"""Stage names of Noxturnal exports (lower case) to neutral stage names (``None``: unscored)."""


def is_nox_header(cells: list[str]) -> bool:
    """Whether a header row names a start time, an event, and an end time or a duration."""
    names = {c.strip().lower() for c in cells}
    has = {key: any(n in names for n in options) for key, options in NOX_COLUMNS.items()}
    return has["start"] and has["event"] and (has["end"] or has["duration"])


def read_noxturnal_csv(path: str | Path) -> Hypnogram:
    """Read a Noxturnal scored-event export (see the module docstring for what it is read as).

    Parameters
    ----------
    path : str | Path
        The file, whatever its name.

    Returns
    -------
    Hypnogram
        AASM stages (Noxturnal scores N1–N3), epoch 0 at the first stage event's start; ``start`` that
        clock time when the file's times have dates (``None`` for clock times alone); lights and other
        events in seconds from epoch 0.

    Raises
    ------
    HypnogramError
        For text that is not UTF-8/UTF-16, a header without start, event and end (or duration)
        columns, a row with a time that is not one (naming the row), dates on some rows but not on
        others, an end before the start, stages off the 30-s grid or overlapping.
    """
    path = Path(path)
    rows = table_rows(decode_text(read_bytes(path), path, fallback="cp1252"), path)
    header = [c.lower() for c in rows[0][1]]
    if not is_nox_header(header):
        raise HypnogramError(
            f"has no start time, event and end time (or duration) columns (its header: "
            f"{', '.join(rows[0][1])[:120]})",
            path,
        )
    col = {
        key: next((header.index(n) for n in options if n in header), None)
        for key, options in NOX_COLUMNS.items()
    }
    entries: list[tuple[int, dt.datetime | float, float | None, str]] = []
    for n, cells in rows[1:]:
        if all(c in ("", "[]") for c in cells):
            continue  # rsleep: exports may begin with a row "[]"
        if len(cells) <= max(i for i in col.values() if i is not None):
            raise HypnogramError(f"row {n} has {len(cells)} cells, fewer than the header's columns", path)
        start = _time(cells[col["start"]], f"row {n}: start time", path)
        duration = None
        if col["end"] is not None and cells[col["end"]]:
            end = _time(cells[col["end"]], f"row {n}: end time", path)
            duration = _elapsed(start, end, n, path)
        elif col["duration"] is not None and cells[col["duration"]]:
            duration = _duration(cells[col["duration"]], n, path)
        entries.append((n, start, duration, cells[col["event"]]))
    dated = {isinstance(start, dt.datetime) for _, start, _, _ in entries}
    if len(dated) > 1:
        raise HypnogramError("gives dates with some start times and clock times alone with others", path)
    stage_entries = [e for e in entries if e[3].lower() in NOX_STAGE_NAMES]
    if not stage_entries:
        raise HypnogramError("has no sleep-stage rows (Wake/Éveil, N1, N2, N3, REM)", path)
    # Clock times alone are read in file order from the first row's, so that a night runs past midnight.
    day = entries[0][1]
    onsets = [_seconds_from(day, start) for _, start, _, _ in entries]
    is_stage = [event.lower() in NOX_STAGE_NAMES for _, _, _, event in entries]
    first = min((i for i in range(len(entries)) if is_stage[i]), key=lambda i: onsets[i])
    stages = []
    others = []
    for (n, _, duration, event), onset in zip(entries, onsets, strict=True):
        if event.lower() in NOX_STAGE_NAMES:
            name = NOX_STAGE_NAMES[event.lower()]
            stages.append(TimedStage(onset - onsets[first], duration, name, f"row {n} ({event[:40]!r})"))
        elif event:
            others.append((onset - onsets[first], event))
    reference = entries[first][1]
    clock = reference if isinstance(reference, dt.datetime) else None
    return timed_hypnogram(stages, others, path, anchor_s=0.0, clock=clock, rk=False)


def _time(text: str, what: str, path: Path) -> dt.datetime | float:
    stamp = parse_timestamp(text)
    if stamp is not None:
        return stamp
    seconds = parse_time_of_day(text)
    if seconds is None:
        raise HypnogramError(f"{what} is {text[:40]!r}, not a time (dd/mm/yyyy hh:mm:ss or hh:mm:ss)", path)
    return seconds


def _seconds_from(reference: dt.datetime | float, time: dt.datetime | float) -> float:
    if isinstance(reference, dt.datetime) and isinstance(time, dt.datetime):
        return (time - reference).total_seconds()
    if isinstance(reference, float) and isinstance(time, float):
        return seconds_after(reference, time)
    raise TypeError("dates and clock times alone are not mixed here")  # checked by the caller


def _elapsed(start: dt.datetime | float, end: dt.datetime | float, n: int, path: Path) -> float:
    if isinstance(start, dt.datetime) != isinstance(end, dt.datetime):
        raise HypnogramError(f"row {n}: start and end time are not both dates with times", path)
    seconds = _seconds_from(start, end)
    if seconds < 0:
        raise HypnogramError(f"row {n}: the end time is before the start time", path)
    return seconds


def _duration(text: str, n: int, path: Path) -> float:
    clock = parse_time_of_day(text)
    if clock is not None:
        return clock  # hh:mm:ss
    seconds = parse_number(text.replace(",", "."), f"row {n}: duration", path)
    if seconds < 0:
        raise HypnogramError(f"row {n}: duration {seconds:g} s is negative", path)
    return seconds
