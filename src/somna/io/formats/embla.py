"""Embla / RemLogic event export XML (``<EventExport>``): stages as timed events with clock times.

The layout, as RemLogic exports it and as export2hdf5 (Finnish Institute of Occupational Health) reads
it: ``<EventExport>`` holding ``<Events>``, each ``<Event>`` with ``<Type>``, ``<StartTime>`` and
``<StopTime>`` as ISO clock times (``2019-01-01T22:30:00.000000``). Stage types are ``SLEEP-S0``
(wake), ``SLEEP-S1`` … ``SLEEP-S3`` (``SLEEP-S4`` where R&K was scored), ``SLEEP-REM``, ``SLEEP-MT``
(movement time, unscored) and ``SLEEP-UNSCORED``; ``LIGHTS-OFF``/``LIGHTS-ON`` mark lights; every
other type (``AROUSAL``, ``APNEA-OBSTRUCTIVE`` …) is kept as an event.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from xml.etree.ElementTree import Element

from somna.errors import HypnogramError
from somna.hypnogram import Hypnogram
from somna.io.formats._common import (
    TimedStage,
    child_text,
    children,
    descend,
    local_name,
    parse_timestamp,
    parse_xml,
    read_bytes,
    timed_hypnogram,
)

__all__ = ["EMBLA_STAGE_TYPES", "read_embla_xml"]

EMBLA_STAGE_TYPES: dict[str, str | None] = {
    "SLEEP-S0": "W",
    "SLEEP-S1": "1",
    "SLEEP-S2": "2",
    "SLEEP-S3": "3",
    "SLEEP-S4": "4",
    "SLEEP-REM": "REM",
    "SLEEP-MT": None,
    "SLEEP-UNSCORED": None,
}
"""Embla event types of stages to neutral stage names (``None``: unscored)."""


def read_embla_xml(path: str | Path, start: dt.datetime | None = None) -> Hypnogram:
    """Read an Embla / RemLogic event export (``<EventExport>``).

    Parameters
    ----------
    path : str | Path
        The XML file, whatever its name.
    start : datetime | None
        Clock time of epoch 0, e.g. the PSG's start; the stage events must lie on its 30-s grid, and
        epochs before the first stage are unscored. ``None``: the first stage event's start.

    Returns
    -------
    Hypnogram
        R&K when ``SLEEP-S4`` appears, AASM otherwise; ``start`` the clock time of epoch 0; lights and
        other events in seconds from it.

    Raises
    ------
    HypnogramError
        For XML that is not well formed (truncated), declares entities, or has another root element;
        an ``<Event>`` without type, an unknown ``SLEEP-…`` type, a start or stop that is not a clock
        time, a stop before its start (each naming the event), stages off the 30-s grid, before
        ``start``, or overlapping.
    """
    path = Path(path)
    return embla_hypnogram(parse_xml(read_bytes(path), path), path, start)


def embla_hypnogram(root: Element, path: Path, start: dt.datetime | None = None) -> Hypnogram:
    """The hypnogram of a parsed ``<EventExport>`` document (see :func:`read_embla_xml`)."""
    if local_name(root.tag) != "EventExport":
        raise HypnogramError(
            f"root element is <{local_name(root.tag)}>, not <EventExport> (Embla / RemLogic)", path
        )
    container = descend(root, "Events")
    elements = children(container if container is not None else root, "Event")
    timed: list[tuple[dt.datetime, float | None, str | None, str]] = []
    others: list[tuple[dt.datetime, str]] = []
    for i, event in enumerate(elements, 1):
        kind = child_text(event, "Type") or ""
        where = f"<Event> {i} ({kind[:40]!r})"
        if not kind:
            raise HypnogramError(f"<Event> {i} has no <Type>", path)
        begin = _clock(child_text(event, "StartTime"), f"{where} <StartTime>", path)
        key = kind.strip().upper()
        if key in EMBLA_STAGE_TYPES:
            stop_text = child_text(event, "StopTime")
            duration = None
            if stop_text:
                duration = (_clock(stop_text, f"{where} <StopTime>", path) - begin).total_seconds()
                if duration < 0:
                    raise HypnogramError(f"{where} stops before it starts", path)
            timed.append((begin, duration, EMBLA_STAGE_TYPES[key], where))
        elif key.startswith("SLEEP-"):
            raise HypnogramError(
                f"{where} is an unknown stage type (known: {', '.join(EMBLA_STAGE_TYPES)})", path
            )
        else:
            others.append((begin, kind))
    if not timed:
        raise HypnogramError("has no sleep-stage <Event> (SLEEP-S0 … SLEEP-REM)", path)
    reference = start.replace(tzinfo=None) if start is not None else min(t[0] for t in timed)
    stages = [
        TimedStage((begin - reference).total_seconds(), duration, stage, where)
        for begin, duration, stage, where in timed
    ]
    events = [((t - reference).total_seconds(), text) for t, text in others]
    return timed_hypnogram(stages, events, path, anchor_s=0.0, clock=reference)


def _clock(text: str | None, what: str, path: Path) -> dt.datetime:
    stamp = parse_timestamp(text or "")
    if stamp is None:
        raise HypnogramError(f"{what} is {(text or '')[:40]!r}, not a clock time (2019-01-01T22:30:00)", path)
    return stamp
