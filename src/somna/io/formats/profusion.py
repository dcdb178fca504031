"""Compumedics Profusion XML (``<CMPStudyConfig>``): one ``<SleepStage>`` code per epoch.

The layout, as NSRR describes the Compumedics annotation format and as the NSRR/Case Western EDF viewer
reads it: ``<EpochLength>`` (s); ``<SleepStages>`` holding one ``<SleepStage>`` integer per epoch from
the recording's start; ``<ScoredEvents>``, each ``<ScoredEvent>`` with ``<Name>`` (``Hypopnea``,
``SpO2 desaturation``, ``Arousal (ASDA)`` …), ``<Start>`` and ``<Duration>`` in seconds from the
recording's start, and ``<Input>`` (the channel). Exports often begin with ``<?xml …?>`` and carry
comments (``<!--Compumedics compare-->``); settings, montage and step channels are ignored.

Stage codes: ``0`` W, ``1``–``3`` NREM stage 1–3, ``4`` NREM stage 4 (R&K S4), ``5`` REM; ``9``
(unscored, NSRR's ``Unscored|9``), ``6`` (movement) and any other integer are unscored. (YASA reads
Profusion's 9 as wake; a scorer's unscored epoch is not wake, so somna does not.)
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree.ElementTree import Element

from somna.errors import HypnogramError
from somna.hypnogram import EPOCH_SECONDS, Hypnogram
from somna.io.formats._common import (
    check_length,
    child_text,
    children,
    descend,
    local_name,
    parse_number,
    parse_xml,
    read_bytes,
    split_lights,
    stage_codes,
    whole_epochs,
    windows_to_epochs,
)

__all__ = ["PROFUSION_STAGE_CODES", "read_profusion_xml"]

PROFUSION_STAGE_CODES: dict[int, str | None] = {0: "W", 1: "1", 2: "2", 3: "3", 4: "4", 5: "REM"}
"""Profusion ``<SleepStage>`` codes to neutral stage names; every other integer is unscored."""

_INT = re.compile(r"^-?\d{1,9}$")


def read_profusion_xml(path: str | Path) -> Hypnogram:
    """Read a Compumedics Profusion XML scoring file (``<CMPStudyConfig>``).

    Parameters
    ----------
    path : str | Path
        The XML file, whatever its name.

    Returns
    -------
    Hypnogram
        R&K when an epoch is scored stage 4, AASM otherwise (stage 4 would be N3). Epoch 0 is the
        recording's first; ``start`` is unknown (the file has no clock time). ``<ScoredEvent>`` names
        become ``events`` (seconds from the recording's start), ``Lights off``/``Lights on`` names
        ``lights_off_s``/``lights_on_s``. An ``<EpochLength>`` shorter than 30 s that divides it
        (10, 15 s) is regrouped into 30-s epochs, an epoch whose windows disagree being unscored
        (:func:`~somna.io.formats._common.windows_to_epochs`; counts in ``info``).

    Raises
    ------
    HypnogramError
        For XML that is not well formed (truncated), declares entities, has another root element, no
        ``<SleepStage>``, a stage code that is not an integer (naming the element), an epoch length
        that does not divide 30 s, or an event whose ``<Start>`` is not a number.
    """
    path = Path(path)
    return profusion_hypnogram(parse_xml(read_bytes(path), path), path)


def profusion_hypnogram(root: Element, path: Path) -> Hypnogram:
    """The hypnogram of a parsed ``<CMPStudyConfig>`` document (see :func:`read_profusion_xml`)."""
    if local_name(root.tag) != "CMPStudyConfig":
        raise HypnogramError(
            f"root element is <{local_name(root.tag)}>, not <CMPStudyConfig> (Compumedics Profusion)", path
        )
    window_s = _epoch_length(root, path)
    stages_element = descend(root, "SleepStages")
    elements = [] if stages_element is None else children(stages_element, "SleepStage")
    if not elements:
        raise HypnogramError("has no <SleepStages> with <SleepStage> codes", path)
    per_epoch = whole_epochs(EPOCH_SECONDS, window_s) or 1
    check_length(len(elements) // per_epoch, path)
    names: list[str | None] = []
    for i, element in enumerate(elements):
        text = (element.text or "").strip()
        if not _INT.match(text):
            raise HypnogramError(
                f"<SleepStage> {i + 1} (epoch {i}) is {text[:40]!r}, not an integer stage code", path
            )
        names.append(PROFUSION_STAGE_CODES.get(int(text)))
    info = {}
    if per_epoch > 1:
        names, mixed, dropped = windows_to_epochs(names, per_epoch)
        if not names:
            raise HypnogramError(f"has {len(elements)} epochs of {window_s:g} s, less than one of 30 s", path)
        info = {"scored_window_s": window_s, "mixed_epochs": mixed, "dropped_windows": dropped}
    label_set, codes = stage_codes(names)
    lights_off, lights_on, events = split_lights(_scored_events(root, path), 0.0, path)
    return Hypnogram(
        stages=codes,
        label_set=label_set,
        lights_off_s=lights_off,
        lights_on_s=lights_on,
        source=path,
        events=events,
        info=info,
    )


def _epoch_length(root: Element, path: Path) -> float:
    text = child_text(root, "EpochLength")
    if text is None:
        return EPOCH_SECONDS  # not written by some converters; Profusion's own exports always have it
    seconds = parse_number(text, "<EpochLength>", path)
    if not (0 < seconds <= EPOCH_SECONDS and whole_epochs(EPOCH_SECONDS, seconds)):
        raise HypnogramError(
            f"<EpochLength> is {seconds:g} s; somna reads epochs of 30 s or of a length that divides 30 s",
            path,
        )
    return seconds


def _scored_events(root: Element, path: Path) -> list[tuple[float, str]]:
    events_element = descend(root, "ScoredEvents")
    out = []
    for i, event in enumerate([] if events_element is None else children(events_element, "ScoredEvent")):
        name = child_text(event, "Name") or ""
        if not name:
            continue
        start = parse_number(
            child_text(event, "Start"), f"<ScoredEvent> {i + 1} ({name[:40]!r}) <Start>", path
        )
        out.append((start, name))
    return out
