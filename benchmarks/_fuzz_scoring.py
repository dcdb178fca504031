"""Fuzz cases for the scoring-file readers of :mod:`somna.io.formats` (used by ``fuzz_readers.py``).

Three families, each a mix of generated files (valid and invalid parts drawn from pools of real values
and corner cases) and corrupted valid seeds:

* ``xml``: Compumedics Profusion (``<CMPStudyConfig>``), NSRR (``<PSGAnnotation>``) and Embla
  (``<EventExport>``) documents: stage codes and concepts (unknown, huge, empty), onsets and durations
  (off-grid, negative, ``n/a``, NaN, 1e308), clock times (impossible dates, year 9999, time zones),
  namespaces, comments, declarations and encodings (UTF-16, Latin-1), entity bombs (``<!DOCTYPE>``),
  deep nesting, foreign roots; then truncation, byte flips, duplicated chunks, random bytes.
* ``event_table``: BIDS ``events.tsv`` and Noxturnal exports: headers with missing or renamed
  columns, cells (``n/a``, junk, huge, negative, clock times across midnight or out of range, dates
  alone, ``[]`` rows), row widths, delimiters and encodings (UTF-16 with and without BOM, cp1252).
* ``stage_text``: one stage per line (YASA names and codes, junk, huge integers) and DREAMS files
  (headers, codes -4 … 7), read by :func:`~somna.io.read_hypnogram` or, a quarter of the time, by
  :func:`~somna.io.formats.read_dreams_hypnogram` with a window of 1–30 s and a vocabulary.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import numpy as np

from somna.hypnogram import Hypnogram
from somna.stages import AASM

# --- XML ------------------------------------------------------------------------------------------

_PROFUSION_CODES = ("0", "1", "2", "3", "4", "5", "9", "6", "-1", "7", "x", "", " 2 ", "1.5", "99999999999")
_EPOCH_LENGTHS = ("30", "30", "30", "15", "10", "20", "0", "-30", "nan", "inf", "abc", "", "1e308", "30.0")
_CONCEPTS = (
    "Wake|0", "Stage 1 sleep|1", "Stage 2 sleep|2", "Stage 3 sleep|3", "Stage 4 sleep|4", "REM sleep|5",
    "Unscored|9", "Movement|6", "SDO:WakeState", "SDO:NonRapidEyeMovementSleep-N2", "Stage 7 sleep|7",
    "Wake", "Lights off|LightsOff", "Lights on|LightsOn", "Arousal|Arousal ()", "", "Recording Start Time",
    "Obstructive apnea|Obstructive Apnea", "Wake|", "|0", "REM sleep|5|5",
)  # fmt: skip
_EVENT_TYPES = ("Stages|Stages",) * 4 + (
    "",
    "Arousals|Arousals",
    "Stages",
    "stages|stages",
    "Respiratory|Respiratory",
)
_SECONDS = (
    "0",
    "30",
    "60",
    "90.0",
    "15",
    "-30",
    "n/a",
    "",
    "abc",
    "nan",
    "inf",
    "-inf",
    "1e20",
    "1e308",
    "45",
)
_CLOCKS = (
    "01.01.85 20.29.59", "00.00.00 22.00.00", "31.12.9999 23.59.59", "99.99.99 99.99.99", "garbage",
    "29.02.85 22.00.00", "01.01.2019 22:30:00", "",
)  # fmt: skip
_EMBLA_TYPES = (
    "SLEEP-S0", "SLEEP-S1", "SLEEP-S2", "SLEEP-S3", "SLEEP-S4", "SLEEP-REM", "SLEEP-MT", "SLEEP-UNSCORED",
    "SLEEP-S9", "LIGHTS-OFF", "LIGHTS-ON", "AROUSAL", "", "sleep-s2",
)  # fmt: skip
_ODD_TIMES = (
    "9999-12-31T23:59:59", "0001-01-01T00:00:00", "garbage", "", "2019-01-01T22:30:00+05:00",
    "2019-02-30T00:00:00", "31/12/2019 23:59:59", "2019-01-01 22:30:00.123456789",
)  # fmt: skip
_NAMESPACES = ("", ' xmlns="http://www.example.org/scoring"', ' xmlns:x="urn:x"')
_ENTITY_BOMB = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
)


def _pick(rng: random.Random, clean: tuple[str, ...], odd: tuple[str, ...], p_odd: float = 0.15) -> str:
    return rng.choice(odd) if rng.random() < p_odd else rng.choice(clean)


def _profusion(rng: random.Random) -> str:
    epoch = _pick(rng, ("30",), _EPOCH_LENGTHS, 0.2)
    stages = "".join(
        f"<SleepStage>{_pick(rng, _PROFUSION_CODES[:7], _PROFUSION_CODES, 0.1)}</SleepStage>"
        for _ in range(rng.randint(0, 20))
    )
    events = "".join(
        f"<ScoredEvent><Name>{rng.choice(('Hypopnea', 'Arousal (ASDA)', 'Lights Off', ''))}</Name>"
        f"<Start>{_pick(rng, ('30', '95.5'), _SECONDS)}</Start><Duration>10</Duration></ScoredEvent>"
        for _ in range(rng.randint(0, 3))
    )
    parts = [f"<EpochLength>{epoch}</EpochLength>" if rng.random() < 0.9 else ""]
    parts.append(f"<ScoredEvents>{events}</ScoredEvents>")
    parts.append(f"<SleepStages>{stages}</SleepStages>" if rng.random() < 0.95 else "")
    return "CMPStudyConfig", "<!--Compumedics compare-->".join(parts) if rng.random() < 0.3 else "".join(
        parts
    )


def _nsrr(rng: random.Random) -> tuple[str, str]:
    events = []
    if rng.random() < 0.6:
        events.append(
            "<ScoredEvent><EventType/><EventConcept>Recording Start Time</EventConcept><Start>0</Start>"
            f"<Duration>300</Duration><ClockTime>{rng.choice(_CLOCKS)}</ClockTime></ScoredEvent>"
        )
    t = 0
    for _ in range(rng.randint(0, 12)):
        n = rng.choice((1, 1, 2, 3))
        start = _pick(rng, (str(t),), _SECONDS, 0.1)
        duration = _pick(rng, (str(30 * n),), _SECONDS, 0.1)
        kind = rng.choice(_EVENT_TYPES)
        concept = _pick(rng, _CONCEPTS[:10], _CONCEPTS, 0.3)
        events.append(
            f"<ScoredEvent><EventType>{kind}</EventType><EventConcept>{concept}</EventConcept>"
            f"<Start>{start}</Start><Duration>{duration}</Duration></ScoredEvent>"
        )
        t += 30 * n if rng.random() < 0.9 else rng.choice((15, -30, 0))
    epoch = f"<EpochLength>{_pick(rng, ('30',), _EPOCH_LENGTHS, 0.1)}</EpochLength>"
    return (
        "PSGAnnotation",
        f"<SoftwareVersion>Compumedics</SoftwareVersion>{epoch}<ScoredEvents>{''.join(events)}</ScoredEvents>",
    )


def _embla(rng: random.Random) -> tuple[str, str]:
    start = dt.datetime(2019, 1, 1, 23, 58, 30)
    events = []
    t = 0
    for _ in range(rng.randint(0, 12)):
        n = rng.choice((1, 1, 2))
        begin = (start + dt.timedelta(seconds=t)).isoformat(timespec="microseconds")
        stop = (start + dt.timedelta(seconds=t + 30 * n)).isoformat(timespec="microseconds")
        begin = _pick(rng, (begin,), _ODD_TIMES, 0.1)
        stop_element = (
            f"<StopTime>{_pick(rng, (stop,), _ODD_TIMES, 0.1)}</StopTime>" if rng.random() < 0.9 else ""
        )
        kind = _pick(rng, _EMBLA_TYPES[:8], _EMBLA_TYPES, 0.25)
        events.append(f"<Event><Type>{kind}</Type><StartTime>{begin}</StartTime>{stop_element}</Event>")
        t += 30 * n if rng.random() < 0.9 else rng.choice((10, -30, 86400 * 400))
    return "EventExport", f"<Events>{''.join(events)}</Events>" if rng.random() < 0.9 else "".join(events)


def _document(root: str, body: str, rng: random.Random) -> bytes:
    declaration = rng.choice(('<?xml version="1.0" encoding="utf-8"?>\n', "", '<?xml version="1.0"?>'))
    encoding = rng.choice(("utf-8",) * 6 + ("utf-16", "latin-1", "utf-8-sig"))
    if encoding == "utf-16":
        declaration = '<?xml version="1.0" encoding="UTF-16"?>\n'
    elif encoding == "latin-1" and declaration:
        declaration = '<?xml version="1.0" encoding="ISO-8859-1"?>\n' if rng.random() < 0.7 else declaration
    comment = "<!-- exported -->\n" if rng.random() < 0.3 else ""
    text = f"{declaration}{comment}<{root}{rng.choice(_NAMESPACES)}>{body}</{root}>\n"
    return text.encode(encoding, errors="replace")


def make_xml(seeds: tuple[bytes, ...], rng: random.Random) -> tuple[str, bytes]:
    """A random XML scoring file: (kind, bytes)."""
    roll = rng.random()
    if roll < 0.55:
        family = rng.choice((_profusion, _nsrr, _embla))
        root, body = family(rng)
        return f"xml:{root}", _document(root, body, rng)
    data = rng.choice(seeds)
    roll = rng.random()
    if roll < 0.25:
        cut = rng.randrange(len(data) + 1)
        return "xml:truncate", data[:cut]
    if roll < 0.45:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.choice((rng.randrange(256), *b"<>&/\"'\x00"))
        return "xml:byte_flips", bytes(out)
    if roll < 0.55:
        head, _, tail = data.partition(b"?>")
        return "xml:entity_bomb", head + b"?>" + _ENTITY_BOMB.encode() + tail.replace(b"Wake|0", b"&lol3;", 1)
    if roll < 0.65:
        lo = rng.randrange(len(data))
        hi = min(len(data), lo + rng.randint(1, 400))
        return "xml:duplicate_chunk", data[:hi] + data[lo:hi] + data[hi:]
    if roll < 0.72:
        depth = rng.choice((100, 5000))
        return "xml:deep_nesting", b"<PSGAnnotation>" + b"<a>" * depth + b"</a>" * depth + b"</PSGAnnotation>"
    if roll < 0.8:
        root = rng.choice((b"Annotations", b"html", b"CMPStudyConfig", b"x:PSGAnnotation"))
        return "xml:foreign_root", b"<" + root + b"><ScoredEvents/></" + root + b">"
    if roll < 0.9:
        return "xml:random_bytes", b"<" + rng.randbytes(rng.randint(0, 300))
    return "xml:empty_or_blank", rng.choice(
        (b"", b"   \n", b"<?xml version='1.0'?>", b"<", b"<PSGAnnotation/>")
    )


def xml_seeds(work: Path) -> tuple[bytes, ...]:
    """Valid Profusion, NSRR and Embla files (the NSRR one by somna's writer) to corrupt."""
    profusion = (
        '<?xml version="1.0" encoding="utf-8"?>\n<!--Compumedics compare-->\n<CMPStudyConfig>'
        "<EpochLength>30</EpochLength><ScoredEvents><ScoredEvent><Name>Arousal (ASDA)</Name><Start>35</Start>"
        "<Duration>4</Duration></ScoredEvent></ScoredEvents><SleepStages>"
        + "".join(f"<SleepStage>{c}</SleepStage>" for c in (0, 1, 2, 9))
        + "</SleepStages></CMPStudyConfig>\n"
    ).encode()
    hyp = Hypnogram(
        np.array([0, 1, 2, -1], dtype=np.int8),
        AASM,
        start=dt.datetime(1989, 4, 24, 16, 13),
        lights_off_s=0.0,
        events=[(40.0, "Arousal|Arousal ()")],
    )
    nsrr = hyp.to_nsrr_xml(work / "seed-nsrr.xml").read_bytes()
    embla = (
        '<?xml version="1.0" encoding="utf-8"?>\n<EventExport><Events>'
        + "".join(
            f"<Event><Type>{kind}</Type><StartTime>1989-04-24T16:{13 + i // 2:02d}:{30 * (i % 2):02d}.000000"
            f"</StartTime><StopTime>1989-04-24T16:{13 + (i + 1) // 2:02d}:{30 * ((i + 1) % 2):02d}.000000"
            "</StopTime></Event>"
            for i, kind in enumerate(("SLEEP-S0", "SLEEP-S1", "SLEEP-S2", "SLEEP-UNSCORED"))
        )
        + "</Events></EventExport>\n"
    ).encode()
    return profusion, nsrr, embla


# --- event tables (BIDS, Noxturnal) ---------------------------------------------------------------

_BIDS_HEADERS = (
    ("onset", "duration", "trial_type"), ("onset", "duration", "trial_type", "value", "sample"),
    ("onset", "duration", "description"), ("onset", "duration", "value"), ("onset", "trial_type"),
    ("duration", "onset", "trial_type"),
)  # fmt: skip
_BIDS_LABELS = (
    "Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage 4", "Sleep stage R",
    "Sleep stage ?", "Sleep stage N1", "Sleep stage N2", "Sleep stage N3", "Movement time", "Lights off",
    "Lights on", "Arousal", "n/a", "", "Sleep stage X", "1", "W", "N2", "REM", '"quoted', "é\x00",
)  # fmt: skip
_NOX_HEADERS = (
    ("Heure de début", "Heure de fin", "Événement", "Durée"), ("Start Time", "End Time", "Event", "Duration"),
    ("Start Time", "Event", "Duration"), ("Start Time", "End Time", "Event"), ("Start", "Event", "Comment"),
)  # fmt: skip
_NOX_EVENTS = (
    "Éveil", "Wake", "Sleep-Wake", "N1", "N2", "N3", "REM", "Sleep-REM", "Unscored", "Lights Off",
    "Lights On", "Micro-Éveil", "Début de l'analyse", "[]", "", "Dos", "N4",
)  # fmt: skip
_NOX_KEYS = {
    "heure de début": "start", "start time": "start", "start": "start", "heure de fin": "end",
    "end time": "end", "événement": "event", "event": "event", "durée": "duration", "duration": "duration",
    "comment": "comment",
}  # fmt: skip
_ODD_CLOCKS = (
    "25:61:00", "31/12/9999 23:59:59", "01/01/0001 00:00:00", "", "garbage", "2019-01-01T22:30:00",
    "31/02/2019 22:00:00", "12:00", "23.59.59", "01/02/2019 23:59:59,5",
)  # fmt: skip


def _bids_rows(rng: random.Random) -> list[list[str]]:
    header = list(rng.choice(_BIDS_HEADERS))
    rows = [header]
    t = rng.choice((0, 0, 45, -30))
    for _ in range(rng.randint(0, 12)):
        n = rng.choice((1, 1, 2))
        values = {
            "onset": _pick(rng, (str(t),), _SECONDS, 0.1),
            "duration": _pick(rng, (str(30 * n), "n/a"), _SECONDS, 0.1),
            "trial_type": _pick(rng, _BIDS_LABELS[:7], _BIDS_LABELS, 0.3),
            "description": rng.choice(_BIDS_LABELS),
            "value": rng.choice(("1", "2", "n/a", "Sleep stage W")),
            "sample": str(t * 100),
        }
        row = [values[c] for c in header]
        if rng.random() < 0.05:
            row = row[: rng.randint(0, len(row))]
        rows.append(row)
        t += 30 * n
    return rows


def _nox_rows(rng: random.Random) -> list[list[str]]:
    header = list(rng.choice(_NOX_HEADERS))
    dated = rng.random() < 0.6
    start = dt.datetime(2019, 2, 1, 23, 58, 0)
    rows = [header] + ([["[]"] + [""] * (len(header) - 1)] if rng.random() < 0.3 else [])
    t = 0
    for _ in range(rng.randint(0, 12)):
        n = rng.choice((1, 1, 2))
        begin, end = start + dt.timedelta(seconds=t), start + dt.timedelta(seconds=t + 30 * n)
        fmt = "%d/%m/%Y %H:%M:%S" if dated else "%H:%M:%S"
        values = {
            "start": _pick(rng, (begin.strftime(fmt),), _ODD_CLOCKS, 0.1),
            "end": _pick(rng, (end.strftime(fmt),), _ODD_CLOCKS, 0.1),
            "event": _pick(rng, _NOX_EVENTS[:9], _NOX_EVENTS, 0.3),
            "duration": _pick(rng, (str(30 * n),), ("-30", "x", "00:00:30", "30,5", "1e308", ""), 0.1),
            "comment": "",
        }
        row = [values[_NOX_KEYS[h.lower()]] for h in header]
        rows.append(row)
        t += 30 * n if rng.random() < 0.9 else rng.choice((10, -3600 * 3, 0))
    return rows


def make_event_table(rng: random.Random) -> tuple[str, bytes]:
    """A random BIDS events.tsv or Noxturnal export: (kind, bytes)."""
    bids = rng.random() < 0.5
    rows = _bids_rows(rng) if bids else _nox_rows(rng)
    family = "bids" if bids else "nox"
    delimiter = rng.choice(("\t", "\t", ",")) if bids else rng.choice(("\t", ";", ","))
    text = rng.choice(("\n", "\r\n")).join(delimiter.join(row) for row in rows) + "\n"
    encoding = rng.choice(("utf-8", "utf-8", "utf-16", "utf-16-le", "cp1252", "utf-8-sig"))
    data = text.encode(encoding, errors="replace")
    roll = rng.random()
    if roll < 0.1 and data:
        out = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return f"{family}:byte_flips", bytes(out)
    if roll < 0.15:
        return f"{family}:truncate", data[: rng.randrange(len(data) + 1)]
    return f"{family}:{encoding}", data


# --- stage text (one per line, DREAMS) ------------------------------------------------------------

_LINE_TOKENS = (
    "W", "WAKE", "N1", "N2", "N3", "R", "REM", "ART", "UNS", "ND", "S1", "S2", "S3", "S4", "?", "0", "1", "2",
    "3", "4", "-1", "-2", "-3", "5", "7", "99999999999999999999", "x", "Sleep stage W", "1.5", "n/a",
)  # fmt: skip
_DREAMS_HEADERS = ("[HypnogramR&K]", "[HypnogramAASM]", "[hypnogram]", "[Hypnogram XYZ]", "HypnogramR&K")
_DREAMS_CODES = ("5", "4", "3", "2", "1", "0", "-1", "-2", "-3")
_WINDOWS = (5.0, 5.0, 10.0, 15.0, 30.0, 1.0, 2.5)


def make_stage_text(rng: random.Random) -> tuple[str, bytes, str]:
    """A random one-stage-per-line or DREAMS file: (kind, bytes, reader)."""
    if rng.random() < 0.5:
        family = "lines"
        clean = rng.choice((_LINE_TOKENS[:7], _LINE_TOKENS[15:22], _LINE_TOKENS[:14]))
        lines = [_pick(rng, clean, _LINE_TOKENS, 0.1) for _ in range(rng.randint(0, 20))]
        if rng.random() < 0.1:
            lines.insert(rng.randint(0, len(lines)), "# comment")
    else:
        family = "dreams"
        lines = [rng.choice(_DREAMS_HEADERS)] if rng.random() < 0.8 else []
        run = rng.choice(_DREAMS_CODES)
        for _ in range(rng.randint(0, 40)):
            if rng.random() < 0.2:
                run = rng.choice(_DREAMS_CODES)
            lines.append(_pick(rng, (run,), ("6", "-4", "x", "", "5.0", "99999999999999999999"), 0.05))
    text = rng.choice(("\n", "\r\n")).join(lines) + rng.choice(("", "\n"))
    encoding = rng.choice(("utf-8",) * 4 + ("utf-16", "utf-8-sig", "latin-1"))
    data = text.encode(encoding, errors="replace")
    reader = "hypnogram"
    if family == "dreams" and rng.random() < 0.25:
        reader = f"dreams:{rng.choice(_WINDOWS)}:{rng.choice(('', 'rk', 'aasm'))}"
    if rng.random() < 0.05 and data:
        out = bytearray(data)
        out[rng.randrange(len(out))] = rng.randrange(256)
        return f"{family}:byte_flip", bytes(out), reader
    return f"{family}:{encoding}", data, reader
