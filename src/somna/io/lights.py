"""Lights off and lights on: reading them, and where a night's time in bed comes from.

Time in bed (TIB) sets every sleep metric that is not a plain count of sleep: sleep latency, sleep
efficiency, wake after sleep onset to lights on. It comes from the best source available, each bound on
its own (:func:`resolve_time_in_bed`), and always says which:

1. ``option``: given by hand (``--lights-off 22:30``);
2. ``table``: a lights table, CSV with columns ``record, lights_off, lights_on`` (:func:`read_lights_table`;
   ``somna download`` writes one from Sleep-EDF's subject tables, ``somna synth`` one for its nights);
3. ``annotation``: ``Lights off`` / ``Lights on`` annotations in the PSG's EDF+ file or the hypnogram file;
4. ``estimated``: the night's likely sleep window (:func:`somna.preprocess.sleep_window.likely_sleep_window`:
   30 minutes before the likely sleep onset to 30 minutes after the likely final awakening), or the
   recording's own start or end where the window reaches it. A sleep latency measured from an estimated
   lights off is not a clinical sleep latency: it is at most about 30 minutes by construction.

Times are clock times (``22:30``, ``22:30:15``; a time after midnight is understood as the next day) or
seconds from the recording's start (``24900``).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from somna.errors import SomnaError

__all__ = [
    "SOURCES",
    "TimeInBed",
    "lights_annotation",
    "parse_lights_time",
    "read_lights_table",
    "record_keys",
    "resolve_time_in_bed",
    "scored_window_s",
    "table_lights",
]

SOURCES = ("option", "table", "annotation", "estimated")
"""Where a bound of time in bed can come from, best first."""

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?$")
_EARLY_TOLERANCE = timedelta(hours=1)  # a clock time this much before the recording's start is before it
_OFF_TEXTS = {"lights off", "lights out", "lightsoff", "lights-off", "lights_off"}
_ON_TEXTS = {"lights on", "lightson", "lights-on", "lights_on"}


def lights_annotation(text: str) -> str | None:
    """``"off"`` or ``"on"`` when an annotation text marks lights off or on (``Lights off``, ``LIGHTS OUT``,
    ``lights_on`` …), else ``None``."""
    key = " ".join(text.lower().split())
    if key in _OFF_TEXTS:
        return "off"
    if key in _ON_TEXTS:
        return "on"
    return None


def _finite_seconds(seconds: float, what: str, given: object) -> float:
    if not math.isfinite(seconds):
        raise SomnaError(f"{what} {given!r} is not a time: give a clock time (22:30) or finite seconds")
    return seconds


def parse_lights_time(value: str | float, start: datetime | None, what: str = "lights time") -> float:
    """Seconds from a recording's start of a clock time or a number of seconds.

    Parameters
    ----------
    value : str | float
        ``"22:30"``, ``"22:30:15"`` (clock time: the first occurrence from one hour before ``start`` on,
        so ``"01:10"`` in a recording started at 22:00 is the next day's), or seconds from the start
        (``24900``, ``"24900"``; may be negative).
    start : datetime | None
        Clock time of the recording's first sample; needed for clock times.
    what : str
        What the value is, for error messages (``"--lights-off"``).

    Returns
    -------
    float

    Raises
    ------
    SomnaError
        For text that is neither, or a clock time without a start.

    Examples
    --------
    >>> from datetime import datetime
    >>> parse_lights_time("22:30", datetime(2024, 5, 1, 21, 0))
    5400.0
    >>> parse_lights_time("00:15:30", datetime(2024, 5, 1, 21, 0))
    11730.0
    >>> parse_lights_time("600", None)
    600.0
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _finite_seconds(float(value), what, value)
    text = str(value).strip()
    try:
        return _finite_seconds(float(text), what, text)
    except ValueError:
        pass
    match = _CLOCK.match(text)
    if not match:
        raise SomnaError(
            f"{what} {text!r} is neither a clock time (22:30, 22:30:15) nor seconds from the start"
        )
    hours, minutes, seconds = int(match[1]), int(match[2]), float(match[3] or 0)
    if hours > 23 or minutes > 59 or seconds >= 60:
        raise SomnaError(f"{what} {text!r} is not a time of day")
    if start is None:
        raise SomnaError(f"{what} {text!r} is a clock time, but the recording's start time is unknown")
    day = datetime(start.year, start.month, start.day)
    at = day + timedelta(hours=hours, minutes=minutes, seconds=seconds)
    while at < start - _EARLY_TOLERANCE:
        at += timedelta(days=1)
    return (at - start).total_seconds()


def read_lights_table(path: str | Path) -> dict[str, tuple[str | None, str | None]]:
    """A lights table: CSV with a header naming ``record``, ``lights_off`` and ``lights_on``.

    ``record`` names a recording (its file name, its name without ``.edf`` or ``-PSG.edf``, or its
    Sleep-EDF night, ``SC4001``); the times are clock times or seconds from the recording's start, an
    empty cell for a time that is not known. Other columns are ignored.

    Returns
    -------
    dict
        Record → (lights off, lights on) as written (``None`` when empty).

    Raises
    ------
    SomnaError
        For a missing file, a missing column, an empty or repeated record.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            fields = [f.strip().lower() for f in reader.fieldnames or []]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise SomnaError(
            f"cannot read lights table {path}: {getattr(err, 'strerror', None) or err}"
        ) from None
    missing = [name for name in ("record", "lights_off", "lights_on") if name not in fields]
    if missing:
        raise SomnaError(
            f"lights table {path} has no {', '.join(missing)} column (its header: "
            f"{', '.join(fields) or 'none'}); it needs record, lights_off, lights_on"
        )
    table: dict[str, tuple[str | None, str | None]] = {}
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        record = row["record"]
        if not record:
            raise SomnaError(f"lights table {path}, line {line}: empty record")
        if record in table:
            raise SomnaError(f"lights table {path}, line {line}: record {record!r} appears twice")
        table[record] = (row["lights_off"] or None, row["lights_on"] or None)
    return table


def record_keys(path: str | Path) -> list[str]:
    """The names a lights table may give a recording: its file name, without ``.edf``, without
    ``-PSG``, and its Sleep-EDF night (``SC4001`` for ``SC4001E0-PSG.edf``)."""
    from somna.io.sleepedf import parse_sleep_edf_name

    name = Path(path).name
    stem = name[:-4] if name.lower().endswith(".edf") else name
    keys = [name, stem, re.sub(r"-PSG$", "", stem, flags=re.IGNORECASE)]
    try:
        parse_sleep_edf_name(name)
        keys.append(name[:6])
    except ValueError:
        pass
    return list(dict.fromkeys(keys))


def table_lights(
    table: dict[str, tuple[str | None, str | None]], path: str | Path
) -> tuple[str | None, str | None] | None:
    """The (lights off, lights on) row of a recording in a lights table, ``None`` when it has none."""
    for key in record_keys(path):
        if key in table:
            return table[key]
    return None


@dataclass(frozen=True)
class TimeInBed:
    """Lights off and on of one recording, in seconds from its first epoch, each with its source.

    Parameters
    ----------
    lights_off_s, lights_on_s : float
        The bounds of time in bed.
    off_source, on_source : str
        One of :data:`SOURCES`.
    off_detail, on_detail : str
        Where exactly (``"--lights-off 22:30"``, ``"lights.csv"``, ``"the PSG's EDF+ annotations"``,
        ``"30 min before the likely sleep onset"``).
    start : datetime | None
        Clock time of the recording's first epoch, for clock times in descriptions.
    """

    lights_off_s: float
    lights_on_s: float
    off_source: str
    on_source: str
    off_detail: str
    on_detail: str
    start: datetime | None = None

    @property
    def estimated(self) -> bool:
        """Whether either bound is an estimate."""
        return "estimated" in (self.off_source, self.on_source)

    def _clock(self, seconds: float) -> str:
        if self.start is None:
            return f"{seconds:g} s"
        return (self.start + timedelta(seconds=seconds)).strftime("%H:%M:%S")

    def describe(self) -> str:
        """One line, e.g. ``lights off 22:30:00 (option: --lights-off 22:30), lights on 06:45:00 (…)``."""
        return (
            f"lights off {self._clock(self.lights_off_s)} ({self.off_source}: {self.off_detail}), "
            f"lights on {self._clock(self.lights_on_s)} ({self.on_source}: {self.on_detail})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (metrics.json)."""
        return {
            "lights_off_s": self.lights_off_s,
            "lights_on_s": self.lights_on_s,
            "lights_off_clock": None if self.start is None else self._clock(self.lights_off_s),
            "lights_on_clock": None if self.start is None else self._clock(self.lights_on_s),
            "lights_off_source": self.off_source,
            "lights_on_source": self.on_source,
            "lights_off_detail": self.off_detail,
            "lights_on_detail": self.on_detail,
            "description": self.describe(),
        }


def resolve_time_in_bed(
    duration_s: float,
    start: datetime | None,
    window_s: tuple[float, float],
    options: tuple[str | float | None, str | float | None] = (None, None),
    table: tuple[tuple[str | None, str | None], str] | None = None,
    annotations: list[tuple[tuple[float | None, float | None], str]] | None = None,
) -> TimeInBed:
    """Time in bed from the best source available for each bound (see the module docstring).

    Parameters
    ----------
    duration_s : float
        Length of the recording (its whole epochs), s.
    start : datetime | None
        Clock time of its first epoch.
    window_s : (float, float)
        The likely sleep window, seconds from the start (the estimate of last resort).
    options : (lights off, lights on)
        Given by hand (clock time or seconds), ``None`` when not.
    table : ((lights off, lights on), name) | None
        The recording's row of a lights table and the table's name.
    annotations : list of ((lights off s, lights on s), name) | None
        Lights from annotations, best first (the PSG's, then the hypnogram file's), seconds from the start.

    Returns
    -------
    TimeInBed

    Raises
    ------
    SomnaError
        For a time that cannot be read, or lights on not after lights off.
    """
    bounds: list[tuple[float, str, str]] = []
    for i, (flag, estimate, estimate_text, edge_text) in enumerate(
        (
            ("--lights-off", window_s[0], "30 min before the likely sleep onset", "the recording's start"),
            ("--lights-on", window_s[1], "30 min after the likely final awakening", "the recording's end"),
        )
    ):
        found: tuple[float, str, str] | None = None
        if options[i] is not None:
            found = (parse_lights_time(options[i], start, flag), "option", f"{flag} {options[i]}")
        elif table is not None and table[0][i] is not None:
            name = table[1]
            found = (parse_lights_time(table[0][i], start, f"{flag[2:]} in {name}"), "table", name)
        else:
            for pair, name in annotations or []:
                if pair[i] is not None:
                    found = (float(pair[i]), "annotation", name)
                    break
        if found is None:
            at_edge = estimate <= 0 if i == 0 else estimate >= duration_s
            found = (
                min(max(estimate, 0.0), duration_s),
                "estimated",
                edge_text if at_edge else estimate_text,
            )
        bounds.append(found)
    (off, off_source, off_detail), (on, on_source, on_detail) = bounds
    if not on > off:
        raise SomnaError(
            f"lights on ({on:g} s from the start, {on_source}: {on_detail}) is not after lights off "
            f"({off:g} s, {off_source}: {off_detail})"
        )
    return TimeInBed(off, on, off_source, on_source, off_detail, on_detail, start)


def scored_window_s(hypnogram: Any, margin_min: float = 30.0) -> tuple[float, float]:
    """The estimate of time in bed for a hypnogram alone: its sleep period ± ``margin_min``, from the
    recording's start where that would begin within 10 minutes of it (as
    :func:`~somna.preprocess.sleep_window.likely_sleep_window` does for signals); seconds from the start."""
    from somna.hypnogram import sleep_period_bounds

    first, stop = sleep_period_bounds(hypnogram, margin_min)
    if first * hypnogram.epoch_s < 600:
        first = 0
    return first * hypnogram.epoch_s, stop * hypnogram.epoch_s
