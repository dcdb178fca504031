"""Fuzz the file readers: corrupted EDF/EDF+ files and hypnogram files must never crash somna.

Issue (faults): a randomly corrupted PSG or hypnogram file ends either in a clear somna error (a
:class:`somna.errors.SomnaError` whose message names the file) or in a valid result (a ``Recording`` /
``Hypnogram`` that passes basic invariants). Anything else (another exception type, an error not naming
the file, a result breaking an invariant) is a bug.

Mutations (``KINDS``):

* PSG EDF (Sleep-EDF SC layout: EEG Fpz-Cz/Pz-Oz and EOG horizontal at 100 Hz, EMG submental at 1 Hz):
  a main-header field replaced (version, patient, recording, start date/time, header bytes, reserved
  ``EDF+C``/``EDF+D``, number of records incl. -1, record duration incl. 0/negative/garbage, number of
  signals), a per-signal header field replaced (label, dimension, physical/digital min/max incl. equal
  values, samples per record incl. 0, ...), random header bytes flipped/overwritten, truncation at a
  random point, appended garbage, data-record bytes randomised, an empty file, and stacks of these.
* Hypnogram EDF+ files: the same header mutations, plus the annotation bytes (TALs) corrupted: onsets
  without sign, negative onsets, missing ``\\x14``/``\\x00``, non-UTF-8 bytes, huge or garbage
  durations, random stage texts, random byte flips.
* Tables (CSV/TSV/TXT): random headers, columns, delimiters, cells (stage names, codes, junk, huge or
  negative epochs), row widths, encodings (UTF-8, BOM, UTF-16, Latin-1), empty files, byte flips.
* JSON: lists of valid codes or names mixed with wrong types (strings, floats, NaN, infinities, huge
  ints, bools, nulls, nested lists, dicts), other top-level values, deep nesting, truncation, bad bytes.
* Scoring files of :mod:`somna.io.formats` (``_fuzz_scoring.py``): XML (Profusion, NSRR, Embla), event
  tables (BIDS ``events.tsv``, Noxturnal CSV) and stage text (one stage per line, DREAMS), generated
  from pools of real and corner-case values and corrupted from valid seeds, under misleading names.

Run: ``.venv/bin/python benchmarks/fuzz_readers.py [--cases 7000] [--seed 0] [--work DIR]`` (the cases
are spread evenly over the 7 targets).
Writes ``benchmarks/results/fuzz_readers.json`` (counts per outcome and per mutation kind, seed,
command) and exits 1 when a case fails. ``tests/test_fuzz.py`` drives the same mutators from hypothesis.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from somna.errors import SomnaError
from somna.hypnogram import Hypnogram
from somna.io import (
    EdfChannel,
    Recording,
    align_hypnogram,
    read_hypnogram,
    read_psg,
    write_hypnogram_edf,
    write_psg_edf,
)
from somna.io.formats import read_dreams_hypnogram
from somna.stages import RK, UNSCORED

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fuzz_scoring import make_event_table, make_stage_text, make_xml, xml_seeds

START = dt.datetime(1989, 4, 24, 16, 13)
SECONDS = 120  # 4 data records of 30 s
OUTCOMES = ("error", "valid")

# --- seed files -------------------------------------------------------------------------------


def write_seed_psg(path: Path, seed: int = 0) -> Path:
    """Write a small valid PSG in Sleep-EDF SC layout (4 records of 30 s)."""
    rng = np.random.default_rng(seed)
    channels = [
        EdfChannel("EEG Fpz-Cz", rng.normal(0, 40, SECONDS * 100), 100),
        EdfChannel("EEG Pz-Oz", rng.normal(0, 30, SECONDS * 100), 100),
        EdfChannel("EOG horizontal", rng.normal(0, 60, SECONDS * 100), 100),
        EdfChannel("EMG submental", np.abs(rng.normal(0, 5, SECONDS)) + 1, 1, physical_range=(-5.0, 50.0)),
    ]
    return write_psg_edf(path, channels, START)


def write_seed_hypnogram(path: Path) -> Path:
    """Write a valid Sleep-EDF-style hypnogram (R&K, 4 epochs, lights off) as EDF+."""
    stages = np.array([RK.code("W"), RK.code("S1"), RK.code("S2"), UNSCORED], dtype=np.int8)
    return write_hypnogram_edf(path, Hypnogram(stages=stages, label_set=RK, lights_off_s=0.0), START)


# --- EDF header layout ------------------------------------------------------------------------

# (name, offset, width) of the fixed 256-byte header.
MAIN_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("version", 0, 8),
    ("patient", 8, 80),
    ("recording", 88, 80),
    ("startdate", 168, 8),
    ("starttime", 176, 8),
    ("header_bytes", 184, 8),
    ("reserved", 192, 44),
    ("n_records", 236, 8),
    ("record_duration", 244, 8),
    ("n_signals", 252, 4),
)
# (name, width) of the per-signal fields, each stored for all signals in turn.
SIGNAL_FIELDS: tuple[tuple[str, int], ...] = (
    ("label", 16),
    ("transducer", 80),
    ("physical_dimension", 8),
    ("physical_min", 8),
    ("physical_max", 8),
    ("digital_min", 8),
    ("digital_max", 8),
    ("prefiltering", 80),
    ("samples_per_record", 8),
    ("reserved", 32),
)
_NUMBERS = (
    "0", "-1", "-0", "1", "2", "3", "4", "30", "-30", "0.5", "1e-9", "1e9", "99999999", "-9999999",
    "nan", "inf", "-inf", "1e309", "", " ", "abc", "1,5", "0x10", "+5", "3.", ".5", "1 2",
)  # fmt: skip
_FIELD_VALUES: dict[str, tuple[str, ...]] = {
    "version": ("0", "1", "", "0       x", "EDF", "\x00"),
    "startdate": ("01.01.85", "31.02.89", "99.99.99", "00.00.00", "24.04.89", "24-04-89", "aa.bb.cc", ""),
    "starttime": ("00.00.00", "23.59.59", "24.00.00", "99.99.99", "16:13:00", "aa.bb.cc", ""),
    "reserved": ("EDF+C", "EDF+D", "EDF+", "BIOSEMI", "24BIT", ""),
    "n_records": ("-1", "0", "1", "3", "4", "5", "-2", "99999999", "nan", "", "4.5"),
    "record_duration": ("0", "-30", "30", "15", "60", "1e-9", "0.000001", "nan", "inf", "-0", "abc", "1e308"),
    "n_signals": ("0", "1", "3", "4", "5", "-1", "9999", "", "abc"),
    "header_bytes": ("0", "256", "1024", "1280", "1536", "-1", "", "99999999"),
    "label": ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "EMG submental", "EDF Annotations", "", "\xff"),
    "physical_dimension": ("uV", "mV", "V", "nV", "", "DegC", "\xb5V"),
    "samples_per_record": ("0", "1", "30", "3000", "3001", "-1", "-3000", "99999999", "nan", "", "1.5"),
}  # fmt: skip


def _field_value(name: str, width: int, rng: random.Random) -> bytes:
    """A replacement for a header field: an interesting value, a random one, or random bytes."""
    roll = rng.random()
    if roll < 0.15:
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, width)))
    elif roll < 0.3:
        raw = "".join(rng.choice("0123456789+-.eE ") for _ in range(rng.randint(0, width))).encode()
    else:
        raw = rng.choice(_FIELD_VALUES.get(name, ()) + _NUMBERS).encode("latin-1")
    return raw[:width].ljust(width, b" ")


def _n_signals(data: bytes) -> int:
    try:
        return max(0, min(int(data[252:256].decode("ascii")), (len(data) - 256) // 256))
    except (UnicodeDecodeError, ValueError):
        return max(0, (len(data) - 256) // 256)


def _put(data: bytearray, offset: int, raw: bytes) -> None:
    end = min(len(data), offset + len(raw))
    if offset < end:
        data[offset:end] = raw[: end - offset]


def mutate_main_field(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Replace one field of the fixed 256-byte header."""
    name, offset, width = rng.choice(MAIN_FIELDS)
    out = bytearray(data)
    _put(out, offset, _field_value(name, width, rng))
    return f"main:{name}", bytes(out)


def mutate_signal_field(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Replace one per-signal header field of one signal (or copy physical/digital min into max)."""
    ns = _n_signals(data)
    if ns == 0:
        return mutate_main_field(data, rng)
    i = rng.randrange(ns)
    offsets = {}
    offset = 256
    for name, width in SIGNAL_FIELDS:
        offsets[name] = (offset, width)
        offset += width * ns
    out = bytearray(data)
    if rng.random() < 0.15:
        # Equal minimum and maximum: a zero physical or digital range.
        kind = rng.choice(("physical", "digital"))
        lo, width = offsets[f"{kind}_min"]
        hi, _ = offsets[f"{kind}_max"]
        _put(out, hi + i * width, bytes(out[lo + i * width : lo + (i + 1) * width]))
        return f"signal:{kind}_min=max", bytes(out)
    name, width = rng.choice(SIGNAL_FIELDS)
    start, width = offsets[name]
    _put(out, start + i * width, _field_value(name, width, rng))
    return f"signal:{name}", bytes(out)


def _header_size(data: bytes) -> int:
    return min(len(data), 256 + 256 * _n_signals(data))


def mutate_header_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Flip bits in, or overwrite, a few random bytes of the header (main or per-signal)."""
    if not data:
        return "empty", b""
    out = bytearray(data)
    size = _header_size(data)
    for _ in range(rng.randint(1, 8)):
        pos = rng.randrange(size)
        if rng.random() < 0.5:
            out[pos] ^= 1 << rng.randrange(8)
        else:
            out[pos] = rng.choice((rng.randrange(256), *b"0123456789 -+.\x00\xff"))
    return "header_bytes", bytes(out)


def mutate_truncate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Cut the file at a random point (inside the header, at its end, or inside the data)."""
    header = _header_size(data)
    cut = rng.choice((rng.randrange(max(header, 1)), header, rng.randrange(len(data) + 1), len(data) - 1))
    return "truncate", data[: max(cut, 0)]


def mutate_append(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Append random garbage bytes."""
    n = rng.choice((1, 2, rng.randint(1, 4096)))
    return "append", data + bytes(rng.randrange(256) for _ in range(n))


def mutate_data_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Randomise bytes of the data records (a few bytes, a span, or every byte)."""
    header = _header_size(data)
    if len(data) <= header:
        return mutate_header_bytes(data, rng) if data else ("empty", b"")
    out = bytearray(data)
    roll = rng.random()
    if roll < 0.4:
        for _ in range(rng.randint(1, 32)):
            out[rng.randrange(header, len(out))] = rng.randrange(256)
    elif roll < 0.8:
        lo = rng.randrange(header, len(out))
        hi = min(len(out), lo + rng.randint(1, 4096))
        out[lo:hi] = rng.randbytes(hi - lo)
    else:
        out[header:] = np.random.default_rng(rng.getrandbits(32)).bytes(len(out) - header)
    return "data_bytes", bytes(out)


def mutate_empty(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A zero-length file."""
    return "empty", b""


_EDF_MUTATORS: tuple[tuple[Callable[[bytes, random.Random], tuple[str, bytes]], float], ...] = (
    (mutate_main_field, 0.3),
    (mutate_signal_field, 0.25),
    (mutate_header_bytes, 0.12),
    (mutate_truncate, 0.08),
    (mutate_append, 0.05),
    (mutate_data_bytes, 0.13),
    (mutate_empty, 0.02),
)


def mutate_edf(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Apply one EDF mutation (85 %) or a stack of 2–4 (15 %); returns (kind, mutated bytes)."""
    funcs, weights = zip(*_EDF_MUTATORS, strict=True)
    if rng.random() < 0.85:
        return rng.choices(funcs, weights)[0](data, rng)
    kinds = []
    for _ in range(rng.randint(2, 4)):
        kind, data = rng.choices(funcs, weights)[0](data, rng)
        kinds.append(kind.split(":")[0])
    return "stack:" + "+".join(sorted(set(kinds))), data


# --- EDF+ annotations -------------------------------------------------------------------------

_STAGE_TEXTS = (
    "Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage 4", "Sleep stage R",
    "Sleep stage ?", "Movement time", "Sleep stage N1", "Sleep stage N2", "Sleep stage N3", "Lights off",
    "Lights on", "Sleep stage X", "Sleep stage", "", "Sleep stage W@@EEG Fpz-Cz", "Arousal",
)  # fmt: skip
_ONSETS = (
    "+0",
    "+30",
    "+60",
    "-30",
    "0",
    "30",
    "+1e5",
    "+0.0001",
    "+15",
    "+99999999999999999999",
    "+",
    "++0",
)
_DURATIONS = (
    "30",
    "60",
    "0",
    "15",
    "90",
    "99999999999999999999",
    "1e400",
    "-30",
    "30.0001",
    "",
    "abc",
    "3e9",
)


def _tal(rng: random.Random) -> bytes:
    onset = rng.choice(_ONSETS) if rng.random() < 0.6 else f"+{30 * rng.randint(0, 6)}"
    timing = onset.encode()
    if rng.random() < 0.7:
        dur = rng.choice(_DURATIONS) if rng.random() < 0.5 else str(30 * rng.randint(1, 3))
        timing += b"\x15" + dur.encode()
    texts = [rng.choice(_STAGE_TEXTS).encode() for _ in range(rng.choice((1, 1, 1, 2, 0)))]
    if rng.random() < 0.1:
        texts.append(rng.randbytes(rng.randint(1, 12)))
    end = rng.choice((b"\x14\x00",) * 6 + (b"\x14", b"\x00", b"", b"\x00\x00"))
    return timing + b"\x14" + b"\x14".join(texts) + end


def _annotation_region(data: bytes) -> tuple[int, int]:
    """Data bytes of a seed hypnogram (one annotation signal): start and end offsets."""
    return _header_size(data), len(data)


def mutate_annotations(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Corrupt the TALs of an annotation-only EDF+ file, keeping its size unless asked otherwise."""
    lo, hi = _annotation_region(data)
    out = bytearray(data)
    region = bytes(out[lo:hi])
    roll = rng.random()
    if roll < 0.35:
        kind = "tal:rewritten"
        keep = b"+0\x14\x14\x00" if rng.random() < 0.7 else b""  # the record's time-keeping TAL
        new = keep + b"".join(_tal(rng) for _ in range(rng.randint(0, 8)))
    elif roll < 0.5:
        kind = "tal:unsigned_onsets"
        new = region.replace(b"\x00+", b"\x00")
    elif roll < 0.6:
        kind = "tal:negative_onsets"
        new = region.replace(b"\x00+", b"\x00-", rng.randint(1, 6))
    elif roll < 0.7:
        kind = "tal:missing_separators"
        sep = rng.choice((b"\x14", b"\x00", b"\x15"))
        positions = [i for i, b in enumerate(region) if b == sep[0]]
        drop = set(rng.sample(positions, min(len(positions), rng.randint(1, 4))))
        new = bytes(b for i, b in enumerate(region) if i not in drop)
    elif roll < 0.8:
        kind = "tal:non_utf8"
        new = bytearray(region)
        for _ in range(rng.randint(1, 4)):
            new[rng.randrange(len(new))] = rng.choice((0xFF, 0xFE, 0xC3, 0x80, 0xE2))
        new = bytes(new)
    elif roll < 0.9:
        kind = "tal:huge_durations"
        new = region.replace(
            b"\x15", b"\x15" + rng.choice((b"9999999999", b"1e400", b"99999999999999999")), 1
        )
    else:
        kind = "tal:byte_flips"
        new = bytearray(region)
        for _ in range(rng.randint(1, 8)):
            new[rng.randrange(len(new))] ^= 1 << rng.randrange(8)
        new = bytes(new)
    if rng.random() < 0.85:
        new = new[: hi - lo].ljust(hi - lo, b"\x00")  # same record size, as a corrupted file keeps
    out[lo:hi] = new
    return kind, bytes(out)


def mutate_hypnogram_edf(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Corrupt an EDF+ hypnogram: its annotations (60 %) or anything an EDF mutation reaches."""
    if rng.random() < 0.6:
        return mutate_annotations(data, rng)
    return mutate_edf(data, rng)


# --- tables -----------------------------------------------------------------------------------

_CELLS = (
    "W", "N1", "N2", "N3", "REM", "R", "S1", "S2", "S3", "S4", "1", "2", "0", "4", "5", "-1", "?",
    "Sleep stage W", "Sleep stage 2", "Movement time", "wake", "", " ", "x", "NaN", "3.0", "1e3",
    "99999999999999999999", "-5", '"N2"', '"unbalanced', "N2\x00", "é", "\ufeffW",
)  # fmt: skip
_EPOCHS = ("0", "1", "2", "-1", "1.5", "", "99999999", "99999999999999999999", "x", "0x1", "+3")
_HEADERS = ("stage", "epoch", "Stage", "label", "time", "onset", "", "sleep stage", "epoch index")


_CLEAN_CELLS = (
    ("W", "N1", "N2", "N3", "REM", "?"),
    ("W", "S1", "S2", "S3", "S4", "R"),
    ("-1", "0", "2", "4"),
)


def _clean_table(rng: random.Random) -> list[list[str]]:
    """A readable table: optional header, ``stage`` or ``epoch,stage`` columns, one label family."""
    cells = rng.choice(_CLEAN_CELLS)
    with_epochs = rng.random() < 0.4
    rows = [["epoch", "stage"] if with_epochs else ["stage"]] if rng.random() < 0.6 else []
    for i in range(rng.randint(1, 10)):
        stage = rng.choice(cells)
        rows.append([str(i), stage] if with_epochs else [stage])
    return rows


def make_table(rng: random.Random) -> tuple[str, bytes]:
    """A random stage table: (kind, file bytes); the suffix is chosen by the caller from the kind."""
    if rng.random() < 0.45:
        rows = _clean_table(rng)
        if rng.random() < 0.5:  # one corrupted cell or row
            row = rng.choice(rows)
            if row and rng.random() < 0.7:
                row[rng.randrange(len(row))] = rng.choice(_CELLS + _EPOCHS)
            else:
                row.append(rng.choice(_CELLS))
        return _encode_table(rows, rng.choice((",", "\t", ";")), rng, "table_clean")
    delimiter = rng.choice((",", "\t", ";", "|", " ", ""))
    width = rng.choice((1, 1, 2, 2, 3))
    header = rng.random() < 0.6
    rows: list[list[str]] = []
    if header:
        rows.append([rng.choice(_HEADERS) for _ in range(width)])
        if rng.random() < 0.5:
            rows[0][:2] = (["epoch", "stage"] if width >= 2 else ["stage"])[:width]
    for i in range(rng.randint(0, 12)):
        row_width = width if rng.random() < 0.85 else rng.randint(0, 4)
        row = []
        for j in range(row_width):
            if width >= 2 and j == 0 and rng.random() < 0.7:
                row.append(str(i) if rng.random() < 0.7 else rng.choice(_EPOCHS))
            else:
                row.append(rng.choice(_CELLS))
        rows.append(row)
    return _encode_table(rows, delimiter or ",", rng, "table")


def _encode_table(
    rows: list[list[str]], delimiter: str, rng: random.Random, family: str
) -> tuple[str, bytes]:
    lines = [delimiter.join(row) for row in rows]
    if rng.random() < 0.1:
        lines.insert(rng.randint(0, len(lines)), "# comment")
    text = rng.choice(("\n", "\r\n", "\r")).join(lines) + rng.choice(("", "\n"))
    encoding = rng.choice(("utf-8",) * 5 + ("utf-8-sig", "utf-16", "latin-1", "cp1252"))
    data = text.encode(encoding, errors="replace")
    kind = f"{family}:{encoding}"
    roll = rng.random()
    if roll < 0.05:
        data, kind = b"", f"{family}:empty"
    elif roll < 0.1:
        data, kind = rng.randbytes(rng.randint(1, 200)), f"{family}:random_bytes"
    elif roll < 0.2 and data:
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        data, kind = bytes(out), f"{family}:byte_flips"
    return kind, data


# --- JSON -------------------------------------------------------------------------------------


def _json_value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if roll < 0.35:
        return rng.choice((-1, 0, 1, 2, 3, 4))
    if roll < 0.5:
        return rng.choice(("W", "N1", "N2", "N3", "REM", "S4", "Sleep stage R", "?", "", "bogus", "1"))
    if roll < 0.6:
        return rng.choice((5, -2, 10**30, -(10**30), 2**63, 127, 128, -129))
    if roll < 0.7:
        return rng.choice((0.0, 1.0, 2.5, float("nan"), float("inf"), float("-inf"), 1e308))
    if roll < 0.78:
        return rng.choice((True, False, None))
    if roll < 0.9 and depth < 3:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(("stage", "epoch", "")): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 2))}


def make_json(rng: random.Random) -> tuple[str, bytes]:
    """A random JSON hypnogram: (kind, file bytes)."""
    roll = rng.random()
    if roll < 0.25:
        names = rng.random() < 0.5
        family = rng.choice(_CLEAN_CELLS[:2]) if names else (-1, 0, 1, 2, 3, 4)
        value: object = [rng.choice(family) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.4:  # one wrong element
            value[rng.randrange(len(value))] = _json_value(rng)
        kind = "json:clean_list"
    elif roll < 0.6:
        homogeneous = rng.random() < 0.4
        first = _json_value(rng)
        value = [
            first if homogeneous and rng.random() < 0.8 else _json_value(rng)
            for _ in range(rng.randint(0, 10))
        ]
        kind = "json:list"
    elif roll < 0.7:
        value, kind = _json_value(rng), "json:scalar_or_dict"
    elif roll < 0.75:
        value, kind = {"stages": [0, 1, 2]}, "json:dict"
    else:
        value, kind = None, "json:raw"
    if value is not None or kind != "json:raw":
        text = json.dumps(value)  # NaN/Infinity written as JSON's common extension
        data = text.encode()
    else:
        data = rng.choice(
            (
                b"[" * rng.choice((10, 5000, 200000)) + b"]" * rng.choice((0, 10)),
                b"[0, 1, 2",
                b"[0, 1, 2]]",
                b"\xef\xbb\xbf[0, 1]",
                b"[0, \xff\xfe]",
                b"",
                b"   ",
                b"[1e999999]",
                b"[-0]",
                b"[" + b"9" * 5000 + b"]",
                b"[" + b",".join([b"2"] * 100000) + b"]",
                b'["W", 1]',
                b"[NaN, Infinity]",
                "[0, 1]".encode("utf-16"),
            )
        )
    if rng.random() < 0.1 and data:
        out = bytearray(data)
        out[rng.randrange(len(out))] = rng.randrange(256)
        data, kind = bytes(out), kind + "+byte_flip"
    return kind, data


# --- invariants and outcomes ------------------------------------------------------------------


class InvariantError(AssertionError):
    """A reader returned a result that breaks a basic invariant."""


def check_recording(rec: Recording) -> None:
    """Raise :class:`InvariantError` unless ``rec`` is a usable recording."""
    if not isinstance(rec, Recording) or not rec.signals:
        raise InvariantError(f"not a Recording with signals: {rec!r}")
    durations = []
    for modality, data in rec.signals.items():
        rate = rec.sfreq.get(modality)
        names = rec.channel_names.get(modality, [])
        if not isinstance(data, np.ndarray) or data.dtype != np.float32:
            raise InvariantError(
                f"{modality}: not a float32 array ({type(data)}, {getattr(data, 'dtype', '')})"
            )
        if data.ndim != 2 or data.shape[0] != len(names) or data.shape[1] == 0:
            raise InvariantError(f"{modality}: shape {data.shape} for channels {names}")
        if not np.isfinite(data).all():
            raise InvariantError(f"{modality}: non-finite samples")
        if not isinstance(rate, float) or not math.isfinite(rate) or rate <= 0:
            raise InvariantError(f"{modality}: sampling rate {rate!r}")
        durations.append(data.shape[1] / rate)
    if max(durations) - min(durations) > 1.0 / min(rec.sfreq.values()) + 1e-9:
        raise InvariantError(f"modalities of different durations: {durations}")
    if not isinstance(rec.start, dt.datetime):
        raise InvariantError(f"start {rec.start!r}")


def check_hypnogram(hyp: Hypnogram) -> None:
    """Raise :class:`InvariantError` unless ``hyp`` is a usable hypnogram."""
    if not isinstance(hyp, Hypnogram):
        raise InvariantError(f"not a Hypnogram: {hyp!r}")
    stages = hyp.stages
    if not isinstance(stages, np.ndarray) or stages.ndim != 1 or stages.size == 0:
        raise InvariantError(f"stages {stages!r}")
    ok = (stages == UNSCORED) | ((stages >= 0) & (stages < hyp.label_set.n_classes))
    if not ok.all():
        raise InvariantError(f"stage codes outside {hyp.label_set.name}: {np.unique(stages[~ok])}")
    if hyp.epoch_s != 30.0:
        raise InvariantError(f"epoch {hyp.epoch_s}")
    times = [t for t in (hyp.lights_off_s, hyp.lights_on_s) if t is not None] + [t for t, _ in hyp.events]
    if not all(math.isfinite(t) for t in times):
        raise InvariantError(f"non-finite times {times}")


@dataclass
class Outcome:
    """What one case gave: ``"error"`` (a SomnaError naming the file) or ``"valid"``; else a bug."""

    kind: str
    outcome: str
    detail: str = ""


def run_case(path: Path, reader: str, recording: Recording | None = None) -> Outcome:
    """Read ``path`` with ``reader`` (``"psg"``, ``"hypnogram"``, or ``"dreams:<window s>:<vocabulary>"``
    for :func:`~somna.io.formats.read_dreams_hypnogram`) and classify what happened.

    Outcomes: ``error`` (a :class:`SomnaError` whose message names ``path``), ``valid`` (a result
    passing :func:`check_recording` / :func:`check_hypnogram`; hypnograms are also aligned to
    ``recording``, which must again give a valid hypnogram or a SomnaError). Bugs: ``crash`` (any
    other exception), ``unnamed_error`` (a SomnaError not naming the file), ``invalid`` (a result
    breaking an invariant), ``warning`` (a warning escaped the reader: edfio warns, for instance,
    when it returns unscaled samples).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = _run_case(path, reader, recording)
    if caught and outcome.outcome in OUTCOMES:
        return Outcome(
            "", "warning", f"{caught[0].category.__name__}: {caught[0].message} ({outcome.outcome})"
        )
    return outcome


def _run_case(path: Path, reader: str, recording: Recording | None) -> Outcome:
    try:
        if reader == "psg":
            check_recording(read_psg(path))
        else:
            if reader.startswith("dreams:"):  # dreams:<window s>:<vocabulary or empty>
                _, window, vocabulary = reader.split(":")
                hyp = read_dreams_hypnogram(path, window_s=float(window), vocabulary=vocabulary or None)
            else:
                hyp = read_hypnogram(path)
            check_hypnogram(hyp)
            if recording is not None:
                try:
                    check_hypnogram(align_hypnogram(hyp, recording))
                except SomnaError as err:
                    if str(path) not in str(err):
                        return Outcome("", "unnamed_error", f"align: {type(err).__name__}: {err}")
        return Outcome("", "valid")
    except InvariantError as err:
        return Outcome("", "invalid", str(err))
    except SomnaError as err:
        if str(path) not in str(err):
            return Outcome("", "unnamed_error", f"{type(err).__name__}: {err}")
        return Outcome("", "error", type(err).__name__)
    except Exception as err:  # every other exception is what the fuzzer looks for
        tb = traceback.extract_tb(err.__traceback__)[-1]
        return Outcome("", "crash", f"{type(err).__name__}: {str(err)[:200]} at {tb.filename}:{tb.lineno}")


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Seeds:
    """The valid seed files, their bytes, and the seed recording (to align hypnograms to)."""

    psg: bytes
    hypnogram: bytes
    recording: Recording
    xml: tuple[bytes, ...] = ()


def make_seeds(work: Path) -> Seeds:
    """Write the seed files under ``work`` and read them back (they must be valid)."""
    psg = write_seed_psg(work / "seed-PSG.edf")
    hyp = write_seed_hypnogram(work / "seed-Hypnogram.edf")
    recording = read_psg(psg)
    check_recording(recording)
    check_hypnogram(read_hypnogram(hyp))
    xml = xml_seeds(work)
    for i, data in enumerate(xml):
        (work / f"seed-{i}.xml").write_bytes(data)
        check_hypnogram(read_hypnogram(work / f"seed-{i}.xml"))
    return Seeds(psg.read_bytes(), hyp.read_bytes(), recording, xml)


TARGETS = ("psg_edf", "hypnogram_edf", "table", "json", "xml", "event_table", "stage_text")


def make_case(target: str, seeds: Seeds, rng: random.Random) -> tuple[str, str, bytes, str]:
    """One fuzz case: (mutation kind, file suffix, bytes, reader)."""
    if target == "psg_edf":
        kind, data = mutate_edf(seeds.psg, rng)
        return f"psg:{kind}", ".edf", data, "psg"
    if target == "hypnogram_edf":
        kind, data = mutate_hypnogram_edf(seeds.hypnogram, rng)
        return f"hyp_edf:{kind}", rng.choice((".edf", ".edf", ".rec", "")), data, "hypnogram"
    if target == "table":
        kind, data = make_table(rng)
        return kind, rng.choice((".csv", ".tsv", ".txt", "")), data, "hypnogram"
    if target == "xml":
        kind, data = make_xml(seeds.xml, rng)
        return kind, rng.choice((".xml", ".xml", ".XML", ".txt", ".csv", ".edf", "")), data, "hypnogram"
    if target == "event_table":
        kind, data = make_event_table(rng)
        return kind, rng.choice((".tsv", ".csv", ".txt", ".xls", "")), data, "hypnogram"
    if target == "stage_text":
        kind, data, reader = make_stage_text(rng)
        return kind, rng.choice((".txt", ".csv", ".hypno", "")), data, reader
    kind, data = make_json(rng)
    return kind, rng.choice((".json", ".json", "")), data, "hypnogram"


def fuzz_one(target: str, seeds: Seeds, rng: random.Random, work: Path, name: str = "case") -> Outcome:
    """Make one case of ``target`` with ``rng``, write it under ``work`` and classify the read."""
    kind, suffix, data, reader = make_case(target, seeds, rng)
    path = work / f"{name}{suffix}"
    path.write_bytes(data)
    outcome = run_case(path, reader, seeds.recording)
    outcome.kind = kind
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", type=int, default=7000, help=f"cases per run, spread over the {len(TARGETS)} targets"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="folder for the case files (default: temp)")
    parser.add_argument("--no-write", action="store_true", help="print the counts, do not write the JSON")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    by_outcome: Counter[str] = Counter()
    by_target: dict[str, Counter[str]] = defaultdict(Counter)
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    errors: Counter[str] = Counter()
    failures: list[dict[str, str]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        seeds = make_seeds(work)
        for i in range(args.cases):
            target = TARGETS[i % len(TARGETS)]
            outcome = fuzz_one(target, seeds, rng, work, name=f"case{i:05d}")
            by_outcome[outcome.outcome] += 1
            by_target[target][outcome.outcome] += 1
            by_kind[outcome.kind][outcome.outcome] += 1
            if outcome.outcome == "error":
                errors[outcome.detail] += 1
            elif outcome.outcome != "valid":
                failures.append({"case": str(i), "kind": outcome.kind, **vars(outcome)})
                print(f"case {i} [{outcome.kind}] {outcome.outcome}: {outcome.detail}", file=sys.stderr)
    seconds = time.perf_counter() - t0
    result = {
        "cases": args.cases,
        "seed": args.seed,
        "command": " ".join(["python benchmarks/fuzz_readers.py", *(sys.argv[1:] if argv is None else argv)]),
        "seconds": round(seconds, 1),
        "failures": len(failures),
        "by_outcome": dict(sorted(by_outcome.items())),
        "error_types": dict(errors.most_common()),
        "by_target": {t: dict(sorted(c.items())) for t, c in by_target.items()},
        "by_kind": {k: dict(sorted(by_kind[k].items())) for k in sorted(by_kind)},
        "failed_cases": failures[:50],
    }
    print(json.dumps({k: result[k] for k in ("cases", "seconds", "failures", "by_outcome", "by_target")}))
    if not args.no_write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _common import write_result  # imports torch: only when writing

        write_result("fuzz_readers", result)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
