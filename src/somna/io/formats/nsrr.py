"""NSRR PSG annotation XML (``<PSGAnnotation>``), as the National Sleep Research Resource publishes it
for SHHS, MESA, CFS, CHAT, MrOS and others, and its writer.

The layout (NSRR's EDF Editor and Translator output, as Luna and NSRR's tools read it):
``<EpochLength>30</EpochLength>`` and ``<ScoredEvents>`` of ``<ScoredEvent>`` elements, each with
``<EventType>`` (``Stages|Stages``, ``Arousals|Arousals``, ``Respiratory|Respiratory`` …),
``<EventConcept>``, ``<Start>`` and ``<Duration>`` in seconds from the recording's start. The first
event is usually ``Recording Start Time`` with a ``<ClockTime>`` such as ``01.01.85 20.29.59``
(``dd.mm.yy hh.mm.ss``; NSRR's de-identified dates are 1 January 1985).

Stage concepts are ``name|code``: ``Wake|0``, ``Stage 1 sleep|1`` … ``Stage 4 sleep|4``, ``REM
sleep|5``, ``Movement|6`` and ``Unscored|9`` (the code after ``|`` decides, as the names vary between
cohorts), or the ontology terms ``SDO:WakeState``, ``SDO:NonRapidEyeMovementSleep-N1`` … ``-N4``,
``SDO:RapidEyeMovementSleep`` (and ``SRO:Stage1Sleep`` …). A stage event is one whose type is
``Stages`` or whose concept is one of these; its concept must be known. Lights are events whose
concept's name or code says so (``Lights off|LightsOff``); every other event is kept as its concept.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from xml.etree.ElementTree import Element, ElementTree, SubElement, indent

from somna.errors import HypnogramError
from somna.hypnogram import EPOCH_SECONDS, Hypnogram
from somna.io.formats._common import (
    TimedStage,
    child_text,
    children,
    descend,
    local_name,
    parse_number,
    parse_optional_number,
    parse_xml,
    read_bytes,
    seconds_text,
    stage_runs,
    timed_hypnogram,
)
from somna.io.lights import lights_annotation
from somna.stages import AASM, RK, UNSCORED

__all__ = ["NSRR_STAGE_CONCEPTS", "read_nsrr_xml", "write_nsrr_xml"]

_CODES: dict[str, str | None] = {
    "0": "W",
    "1": "1",
    "2": "2",
    "3": "3",
    "4": "4",
    "5": "REM",
    "6": None,
    "9": None,
}
_ONTOLOGY: dict[str, str] = {
    "sdo:wakestate": "W",
    "sdo:nonrapideyemovementsleep-n1": "1",
    "sdo:nonrapideyemovementsleep-n2": "2",
    "sdo:nonrapideyemovementsleep-n3": "3",
    "sdo:nonrapideyemovementsleep-n4": "4",
    "sdo:rapideyemovementsleep": "REM",
    "sro:stage1sleep": "1",
    "sro:stage2sleep": "2",
    "sro:stage3sleep": "3",
    "sro:stage4sleep": "4",
    "sro:stage34sleep": "3",
    "sro:rapideyemovement": "REM",
}
NSRR_STAGE_CONCEPTS: dict[str | None, str] = {
    "W": "Wake|0",
    "1": "Stage 1 sleep|1",
    "2": "Stage 2 sleep|2",
    "3": "Stage 3 sleep|3",
    "4": "Stage 4 sleep|4",
    "REM": "REM sleep|5",
    None: "Unscored|9",
}
"""The concept NSRR writes for each neutral stage name (``None``: unscored)."""
_KNOWN_CONCEPTS = {c.lower() for c in NSRR_STAGE_CONCEPTS.values()} | {"movement|6"}
_CLOCK = re.compile(r"^(\d{2})\.(\d{2})\.(\d{2}|\d{4})\s+(\d{2})[.:](\d{2})[.:](\d{2})$")
_LIGHTS_CONCEPTS = {"off": "Lights off|LightsOff", "on": "Lights on|LightsOn"}


def read_nsrr_xml(path: str | Path) -> Hypnogram:
    """Read an NSRR PSG annotation XML file (``<PSGAnnotation>``).

    Parameters
    ----------
    path : str | Path
        The XML file, whatever its name.

    Returns
    -------
    Hypnogram
        R&K when a stage-4 epoch appears (older cohorts such as SHHS), AASM otherwise. Epoch 0 is the
        recording's start when the stages lie on its 30-s grid (epochs before the first stage event are
        then unscored), else the first stage event. ``start`` is the ``Recording Start Time``'s
        ``<ClockTime>`` plus that offset, when it has a valid date; lights and other events are seconds
        from epoch 0, other events keeping their full concept (``Arousal|Arousal (ASDA)``).

    Raises
    ------
    HypnogramError
        For XML that is not well formed (truncated), declares entities, or has another root element;
        an ``<EpochLength>`` other than 30 s; a stage event with an unknown concept (naming the
        ``<ScoredEvent>``), a ``<Start>``/``<Duration>`` that is not a number, stages off the 30-s
        grid, of a duration that is not a whole number of epochs, or overlapping.
    """
    path = Path(path)
    return nsrr_hypnogram(parse_xml(read_bytes(path), path), path)


def nsrr_hypnogram(root: Element, path: Path) -> Hypnogram:
    """The hypnogram of a parsed ``<PSGAnnotation>`` document (see :func:`read_nsrr_xml`)."""
    if local_name(root.tag) != "PSGAnnotation":
        raise HypnogramError(
            f"root element is <{local_name(root.tag)}>, not <PSGAnnotation> (NSRR annotation XML)", path
        )
    epoch = child_text(root, "EpochLength")
    if epoch and parse_number(epoch, "<EpochLength>", path) != EPOCH_SECONDS:
        raise HypnogramError(f"<EpochLength> is {epoch[:20]!r} s; somna reads 30-s epochs", path)
    events_element = descend(root, "ScoredEvents")
    stages: list[TimedStage] = []
    others: list[tuple[float, str]] = []
    clock = None
    for i, event in enumerate([] if events_element is None else children(events_element, "ScoredEvent"), 1):
        event_type = child_text(event, "EventType") or ""
        concept = child_text(event, "EventConcept") or ""
        where = f"<ScoredEvent> {i} ({concept[:40]!r})"
        if concept.lower() == "recording start time":
            clock = _clock_time(child_text(event, "ClockTime") or "")
            continue
        is_stage, stage = _stage(event_type, concept, where, path)
        if not is_stage and not concept:
            continue
        start = parse_number(child_text(event, "Start"), f"{where} <Start>", path)
        if is_stage:
            duration = parse_optional_number(child_text(event, "Duration"), f"{where} <Duration>", path)
            stages.append(TimedStage(start, duration, stage, where))
        else:
            # Lights events' concepts vary (Lights off|LightsOff): either part may say so.
            which = next((w for part in concept.split("|") if (w := lights_annotation(part))), None)
            others.append((start, f"Lights {which}" if which else concept))
    if not stages:
        raise HypnogramError("has no sleep-stage <ScoredEvent> (EventType 'Stages|Stages')", path)
    return timed_hypnogram(stages, others, path, clock=clock)


def _stage(event_type: str, concept: str, where: str, path: Path) -> tuple[bool, str | None]:
    """(is a stage event, neutral stage name)."""
    key = concept.strip().lower()
    if key in _ONTOLOGY:
        return True, _ONTOLOGY[key]
    if event_type.split("|")[0].strip().lower() != "stages" and key not in _KNOWN_CONCEPTS:
        return False, None
    code = concept.rsplit("|", 1)[-1].strip() if "|" in concept else ""
    if code not in _CODES:
        raise HypnogramError(
            f"{where} has EventType {event_type[:40]!r} and an unknown stage concept {concept[:60]!r} "
            "(known: Wake|0, Stage 1 sleep|1 … Stage 4 sleep|4, REM sleep|5, Movement|6, Unscored|9, SDO:…)",
            path,
        )
    return True, _CODES[code]


def _clock_time(text: str) -> dt.datetime | None:
    """``dd.mm.yy hh.mm.ss`` (or a 4-digit year); ``None`` when absent or its date is not one
    (``00.00.00``). Two-digit years follow EDF: 85–99 are 1985–1999, 00–84 are 2000–2084."""
    match = _CLOCK.match(text.strip())
    if not match:
        return None
    day, month, year, hours, minutes, seconds = (int(g) for g in match.groups())
    if len(match[3]) == 2:
        year += 1900 if year >= 85 else 2000
    try:
        return dt.datetime(year, month, day, hours, minutes, seconds)
    except ValueError:
        return None


# --- writing ----------------------------------------------------------------------------------


def write_nsrr_xml(hypnogram: Hypnogram, path: str | Path) -> Path:
    """Write a hypnogram as NSRR PSG annotation XML, atomically.

    One ``Stages|Stages`` event per run of a stage (``Wake|0``, ``Stage 1 sleep|1`` … ``REM sleep|5``,
    ``Unscored|9``; AASM N3 as ``Stage 3 sleep|3``, R&K S4 as ``Stage 4 sleep|4``), a ``Recording
    Start Time`` event at 0 s (with ``<ClockTime>`` when :attr:`~Hypnogram.start` is known), lights as
    ``Lights off|LightsOff`` / ``Lights on|LightsOn`` and other events by their text, with duration 0.
    Times are seconds from epoch 0. :func:`read_nsrr_xml` reads it back; an R&K hypnogram without a
    stage-4 epoch comes back as AASM, as NSRR files do not say which rules were followed.

    Parameters
    ----------
    hypnogram : Hypnogram
        AASM or R&K stages.
    path : str | Path
        The file to write (``.xml``).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        For a hypnogram of another label set (3-class, 2-class), which NSRR concepts cannot express.
    """
    from somna import __version__
    from somna.storage import atomic_write

    if hypnogram.label_set not in (AASM, RK):
        raise ValueError(f"NSRR XML has no stage concepts for {hypnogram.label_set.name} stages")
    neutral = {
        code: None if code == UNSCORED else _neutral_name(hypnogram.label_set.label(code))
        for code in (UNSCORED, *range(hypnogram.label_set.n_classes))
    }
    epoch = hypnogram.epoch_s
    root = Element("PSGAnnotation")
    SubElement(root, "SoftwareVersion").text = f"somna {__version__}"
    SubElement(root, "EpochLength").text = f"{epoch:g}"
    events = SubElement(root, "ScoredEvents")
    start = _event(events, "", "Recording Start Time", 0.0, len(hypnogram) * epoch)
    if hypnogram.start is not None:
        SubElement(start, "ClockTime").text = hypnogram.start.strftime("%d.%m.%y %H.%M.%S")
    for first, n, code in stage_runs(hypnogram.stages):
        concept = NSRR_STAGE_CONCEPTS[neutral[code]]
        _event(events, "Stages|Stages", concept, first * epoch, n * epoch)
    timed = [
        (hypnogram.lights_off_s, _LIGHTS_CONCEPTS["off"]),
        (hypnogram.lights_on_s, _LIGHTS_CONCEPTS["on"]),
    ]
    for onset, text in sorted([(t, c) for t, c in timed if t is not None] + list(hypnogram.events)):
        _event(events, "", text, onset, 0.0)
    indent(root, space=" ")
    return atomic_write(
        path, lambda tmp: ElementTree(root).write(tmp, encoding="UTF-8", xml_declaration=True)
    )


def _neutral_name(label: str) -> str:
    return {"W": "W", "REM": "REM"}.get(label, label[-1])  # N1/S1 → "1" … N3 → "3", S4 → "4"


def _event(parent: Element, event_type: str, concept: str, start: float, duration: float) -> Element:
    event = SubElement(parent, "ScoredEvent")
    SubElement(event, "EventType").text = event_type or None
    SubElement(event, "EventConcept").text = concept
    SubElement(event, "Start").text = seconds_text(start)
    SubElement(event, "Duration").text = seconds_text(duration)
    return event
