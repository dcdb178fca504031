"""Read hypnograms from any scoring file somna knows, and align them to a PSG.

Files are recognised by their content, whatever their names (an XML export saved as ``.txt`` is read
as XML): the first bytes of an EDF header, an XML root element, a DREAMS first line, a table's header
row, else one stage per line; the name's extension decides only between an EDF file and the rest, and
for JSON. Supported:

* EDF+ annotation files: Sleep-EDF's ``*-Hypnogram.edf`` (R&K ``Sleep stage W/1/2/3/4/R/?``,
  ``Movement time``) and AASM files such as HMC's (``Sleep stage W/N1/N2/N3/R``, ``Lights off``,
  ``Lights on``). MNE appends ``@@<channel>`` to annotations tied to a channel; that suffix is
  dropped.
* Compumedics Profusion XML (``<CMPStudyConfig>``, one ``<SleepStage>`` code per epoch), NSRR PSG
  annotation XML (``<PSGAnnotation>``, ``Stages|Stages`` events, lights events) and Embla / RemLogic
  event exports (``<EventExport>``, ``SLEEP-S0`` … with clock times): :mod:`somna.io.formats`.
* BIDS ``events.tsv`` (``onset``, ``duration``, ``trial_type``) and Noxturnal event exports (UTF-16
  CSV, English or French columns and stage names, clock times): :mod:`somna.io.formats`.
* Tables (CSV/TSV) with a header or two columns: one stage per row. With an ``epoch`` column stages
  are placed by epoch index and missing epochs are unscored.
* One stage per line without header (YASA's stage names or integer codes) and the DREAMS databases'
  5-s codes (first line ``[HypnogramR&K]``), grouped into 30-s epochs: :mod:`somna.io.formats.text`.
* JSON (``.json``): a list with one stage per 30-s epoch, as the Dreem open datasets give
  (``-1`` not scored, ``0`` W, ``1`` N1, ``2`` N2, ``3`` N3, ``4`` REM), or a list of stage names.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import numpy as np

from somna.errors import HypnogramError
from somna.hypnogram import EPOCH_SECONDS, Hypnogram
from somna.io import formats
from somna.io.edf import _read_edf, _start
from somna.io.formats._common import (
    GRID_TOLERANCE_S,
    MAX_EPOCHS,
    check_length,
    decode_text,
    read_bytes,
    sniff_text,
    whole_epochs,
)
from somna.io.lights import lights_annotation
from somna.io.recording import Recording
from somna.stages import AASM, UNSCORED, LabelSet, is_stage_annotation, parse_stage, stage_codes_from_strings

__all__ = ["align_hypnogram", "read_hypnogram"]

_EDF_SUFFIXES = {".edf", ".rec", ".edf+"}
_STAGE_COLUMNS = (
    "stage",
    "stages",
    "sleep_stage",
    "sleep stage",
    "label",
    "hypnogram",
    "annotation",
    "scoring",
)
_EPOCH_COLUMNS = ("epoch", "epochs", "epoch_index", "epoch_idx", "epoch index")
_INT = re.compile(r"^-?\d{1,15}$")  # bounded: longer is no stage code or epoch index


def read_hypnogram(path: str | Path, int_codes: LabelSet = AASM) -> Hypnogram:
    """Read a hypnogram file of any format somna knows (see the module docstring), recognised by its
    content.

    Parameters
    ----------
    path : str | Path
        The file, whatever its name: an EDF header, an XML root element (``<CMPStudyConfig>``,
        ``<PSGAnnotation>``, ``<EventExport>``), a DREAMS first line, a header with ``onset`` and
        ``duration`` (BIDS) or with start time, event and end time (Noxturnal), JSON ``[``/``{``, one
        stage per line, else a table. An ``.edf``/``.rec`` name is read as EDF unless it holds XML, a
        ``.json`` name as JSON. Text may be UTF-8 or UTF-16.
    int_codes : LabelSet
        Label set of stages written as bare integers in JSON lists, in one-stage-per-line files and in
        table columns made only of integers (default AASM: ``0`` W … ``4`` REM; ``-1`` is always
        unscored, and ``-2`` too in one-stage-per-line files, as YASA writes them). Table columns that
        hold any stage *name* are parsed as names instead, where digits follow Sleep-EDF's R&K usage
        (``1``–``4`` are S1–S4). Vendor formats have their own codes.

    Returns
    -------
    Hypnogram
        R&K stages for R&K EDF+ files (``Sleep stage 1..4``) and for vendor files with a stage-4 epoch
        (Profusion, NSRR, Embla) or R&K codes (DREAMS), AASM otherwise (files with only W, REM and
        unscored epochs give AASM). ``start`` is known for EDF+ files (the header start plus the first
        stage annotation's onset; ``None`` when the header's date is hidden as ``X``), NSRR files with a
        dated ``Recording Start Time``, and Embla and Noxturnal files (clock times); ``lights_off_s``,
        ``lights_on_s`` and ``events`` are seconds from the first epoch. The readers are in
        :mod:`somna.io.formats`.

    Raises
    ------
    HypnogramError
        For an unknown stage (naming the string, the file and the row, position or element), R&K and
        AASM names mixed in one file, stage events off the 30-s grid, overlapping or of a duration
        that is not a whole number of epochs, duplicate epoch rows, an unreadable table/JSON/XML
        (truncated, or declaring entities), an XML root element of no known format, or a hypnogram
        longer than 14 days (an onset or duration, or an epoch index, beyond that is taken for a
        corrupt file).
    EDFReadError
        If an EDF file is not a readable EDF+ file (not EDF, truncated, corrupt header).
    """
    path = Path(path)
    if not path.is_file():
        raise HypnogramError("no such file", path)
    kind = _kind(path)
    if kind == "edf":
        return _read_edf_annotations(path)
    if kind == "xml":
        return formats.read_scoring_xml(path)
    if kind == "dreams":
        return formats.read_dreams_hypnogram(path)
    if kind == "json":
        return _read_json(path, int_codes)
    if kind == "bids":
        return formats.read_bids_events(path)
    if kind == "nox":
        return formats.read_noxturnal_csv(path)
    if kind == "lines":
        return formats.read_stage_lines(path, int_codes)
    return _read_table(path, int_codes)


def _kind(path: Path) -> str:
    """Which reader a file needs, from its first 64 KiB (and its extension, for EDF and JSON)."""
    suffix = path.suffix.lower()
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if head.startswith(b"0       "):
        return "edf"
    text = sniff_text(head).lstrip()
    if text.startswith("<"):  # never the first byte of an EDF header
        return "xml"
    if suffix in _EDF_SUFFIXES:
        return "edf"
    lines = text.splitlines()
    first = lines[0].strip() if lines else ""
    if formats.is_dreams_header(first):
        return "dreams"
    if suffix == ".json" or text.startswith(("[", "{")):
        return "json"
    delimiter = next((d for d in "\t;," if d in first), None)
    cells = [c.strip().strip('"').lower() for c in first.split(delimiter)] if delimiter else [first.lower()]
    if "onset" in cells and "duration" in cells:
        return "bids"
    if formats.is_nox_header(cells):
        return "nox"
    stage_line = next((line.strip() for line in lines if line.strip() and not line.startswith("#")), "")
    if not any(d in stage_line for d in "\t;,") and formats.is_stage_line(stage_line):
        return "lines"
    return "table"


# --- EDF+ annotations -------------------------------------------------------------------------


def _read_edf_annotations(path: Path) -> Hypnogram:
    edf = _read_edf(path)
    annotations = list(edf.annotations)
    clock, anonymised = _start(edf, path)
    header_start = None if anonymised else clock

    limit_s = MAX_EPOCHS * EPOCH_SECONDS
    for i, ann in enumerate(annotations):
        # edfio parses any run of digits, so an onset or duration may be inf or absurdly large.
        duration = 0.0 if ann.duration is None else float(ann.duration)
        if not (abs(float(ann.onset)) <= limit_s and 0 <= duration <= limit_s):
            raise HypnogramError(
                f"annotation {i} ({ann.text[:40]!r}) has onset {float(ann.onset):g} s and duration "
                f"{duration:g} s, beyond the {limit_s / 86400:g}-day limit (corrupt annotations?)",
                path,
            )
    annotations.sort(key=lambda a: a.onset)
    stage_entries: list[tuple[int, float, float | None, str]] = []
    others: list[tuple[float, str]] = []
    for i, ann in enumerate(annotations):
        text = ann.text.split("@@", 1)[0].strip()
        if is_stage_annotation(text):
            stage_entries.append((i, float(ann.onset), ann.duration, text))
        elif text:
            others.append((float(ann.onset), text))
    if not stage_entries:
        raise HypnogramError("has no sleep-stage annotations ('Sleep stage …')", path)

    for i, onset, _duration, text in stage_entries:
        try:
            parse_stage(text)
        except ValueError:
            raise HypnogramError(
                f"unknown sleep stage {text!r} in annotation {i} (onset {onset:g} s)", path
            ) from None
    try:
        label_set, codes = stage_codes_from_strings([text for _, _, _, text in stage_entries])
    except ValueError as err:
        raise HypnogramError(str(err), path) from None

    t0 = stage_entries[0][1]
    epoch = EPOCH_SECONDS
    spans = []
    for (i, onset, duration, text), code in zip(stage_entries, codes, strict=True):
        first = whole_epochs(onset - t0, epoch)
        if first is None:
            raise HypnogramError(
                f"stage annotation {i} ({text!r} at {onset:g} s) is not on the 30-s grid of the first "
                f"stage annotation (at {t0:g} s)",
                path,
            )
        # A stage without duration (or 0) marks one epoch, as some exporters write one per epoch.
        n = 1 if not duration else whole_epochs(float(duration), epoch)
        if n is None or n < 1:
            raise HypnogramError(
                f"stage annotation {i} ({text!r} at {onset:g} s) lasts {duration:g} s, "
                "not a whole number of 30-s epochs",
                path,
            )
        spans.append((first, n, int(code), i, onset))
    check_length(max(first + n for first, n, *_ in spans), path)
    stages = np.full(max(first + n for first, n, *_ in spans), UNSCORED, dtype=np.int8)
    filled = np.zeros(stages.size, dtype=bool)
    for first, n, code, i, onset in spans:
        if filled[first : first + n].any():
            raise HypnogramError(f"stage annotation {i} (at {onset:g} s) overlaps an earlier one", path)
        stages[first : first + n] = code
        filled[first : first + n] = True

    lights_off = lights_on = None
    events = []
    for onset, text in others:
        which = lights_annotation(text)
        if which == "off" and lights_off is None:
            lights_off = onset - t0
        elif which == "on" and lights_on is None:
            lights_on = onset - t0
        else:
            events.append((onset - t0, text))
    start = None if header_start is None else header_start + dt.timedelta(seconds=t0)
    return Hypnogram(
        stages=stages,
        label_set=label_set,
        epoch_s=epoch,
        start=start,
        lights_off_s=lights_off,
        lights_on_s=lights_on,
        source=path,
        events=events,
    )


# --- JSON -------------------------------------------------------------------------------------


def _read_json(path: Path, int_codes: LabelSet) -> Hypnogram:
    try:
        values = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError) as err:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and integers over Python's digit
        # limit; RecursionError deeply nested lists.
        raise HypnogramError(f"is not valid JSON: {type(err).__name__}: {str(err)[:200]}", path) from None
    if not isinstance(values, list) or not values:
        raise HypnogramError("must hold a non-empty JSON list with one stage per 30-s epoch", path)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        label_set, codes = int_codes, _int_codes([int(v) for v in values], int_codes, path, "position")
    elif all(isinstance(v, str) for v in values):
        label_set, codes = _name_codes(values, path, "position", offset=0)
    else:
        bad = next(
            (i for i, v in enumerate(values) if not isinstance(v, (int, str)) or isinstance(v, bool)), None
        )
        if bad is not None:
            raise HypnogramError(f"unknown sleep stage {values[bad]!r} at position {bad}", path)
        raise HypnogramError("mixes integer codes and stage names", path)
    check_length(codes.size, path)
    return Hypnogram(stages=codes, label_set=label_set, source=path)


def _int_codes(values: list[int], label_set: LabelSet, path: Path, unit: str, offset: int = 0) -> np.ndarray:
    for i, v in enumerate(values):
        if v != UNSCORED and not 0 <= v < label_set.n_classes:
            raise HypnogramError(
                f"unknown sleep stage {v!r} at {unit} {i + offset}: {label_set.name} codes are "
                f"{UNSCORED} (unscored) and 0..{label_set.n_classes - 1}",
                path,
            )
    return np.asarray(values, dtype=np.int8)


def _name_codes(values: list[str], path: Path, unit: str, offset: int) -> tuple[LabelSet, np.ndarray]:
    for i, v in enumerate(values):
        try:
            parse_stage(v)
        except ValueError:
            raise HypnogramError(f"unknown sleep stage {v!r} at {unit} {i + offset}", path) from None
    try:
        return stage_codes_from_strings(values)
    except ValueError as err:
        raise HypnogramError(str(err), path) from None


# --- tables -----------------------------------------------------------------------------------


def _is_stage(cell: str) -> bool:
    try:
        parse_stage(cell)
    except ValueError:
        return False
    return True


def _read_table(path: Path, int_codes: LabelSet) -> Hypnogram:
    text = decode_text(read_bytes(path), path)
    numbered = [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.startswith("#")
    ]
    if not numbered:
        raise HypnogramError("is empty: no stage rows", path)
    if path.suffix.lower() == ".tsv" or "\t" in numbered[0][1]:
        delimiter = "\t"
    elif "," in numbered[0][1]:
        delimiter = ","
    elif ";" in numbered[0][1]:
        delimiter = ";"
    else:
        delimiter = None  # one column
    rows = [
        (
            n,
            [
                c.strip()
                for c in (next(csv.reader(io.StringIO(line), delimiter=delimiter)) if delimiter else [line])
            ],
        )
        for n, line in numbered
    ]
    first = rows[0][1]
    header = not any(_is_stage(c) for c in first) or any(
        c.lower() in _STAGE_COLUMNS + _EPOCH_COLUMNS for c in first
    )
    stage_col, epoch_col = _columns(first if header else None, len(first), rows, path)
    body = rows[1:] if header else rows

    line_numbers = []
    cells = []
    epochs = []
    for n, row in body:
        if len(row) <= max(stage_col, epoch_col if epoch_col is not None else 0):
            raise HypnogramError(f"row {n} has {len(row)} column(s), expected at least {len(first)}", path)
        line_numbers.append(n)
        cells.append(row[stage_col])
        if epoch_col is not None:
            if not _INT.match(row[epoch_col]) or int(row[epoch_col]) < 0:
                raise HypnogramError(f"row {n}: epoch {row[epoch_col]!r} is not a non-negative integer", path)
            epochs.append(int(row[epoch_col]))
    if not cells:
        raise HypnogramError("has a header but no stage rows", path)

    if all(_INT.match(c) for c in cells):
        label_set = int_codes
        values = [int(c) for c in cells]
        for v, n in zip(values, line_numbers, strict=True):
            if v != UNSCORED and not 0 <= v < int_codes.n_classes:
                raise HypnogramError(
                    f"unknown sleep stage {v!r} in row {n}: {int_codes.name} codes are {UNSCORED} and "
                    f"0..{int_codes.n_classes - 1}",
                    path,
                )
        codes = np.asarray(values, dtype=np.int8)
    else:
        for c, n in zip(cells, line_numbers, strict=True):
            if not _is_stage(c):
                raise HypnogramError(f"unknown sleep stage {c!r} in row {n}", path)
        try:
            label_set, codes = stage_codes_from_strings(cells)
        except ValueError as err:
            raise HypnogramError(str(err), path) from None

    check_length(max(epochs) + 1 if epochs else codes.size, path)
    if epoch_col is None:
        stages = codes
    else:
        index = np.asarray(epochs)
        unique, counts = np.unique(index, return_counts=True)
        if (counts > 1).any():
            dup = int(unique[counts > 1][0])
            raise HypnogramError(f"epoch {dup} appears {int(counts[unique == dup][0])} times", path)
        stages = np.full(int(index.max()) + 1, UNSCORED, dtype=np.int8)
        stages[index] = codes
    return Hypnogram(stages=stages, label_set=label_set, source=path)


def _columns(
    header: list[str] | None, width: int, rows: list[tuple[int, list[str]]], path: Path
) -> tuple[int, int | None]:
    """Return (stage column, epoch column or None)."""
    if header is not None:
        lower = [c.lower() for c in header]
        stage = next((i for i, c in enumerate(lower) if c in _STAGE_COLUMNS), None)
        epoch = next((i for i, c in enumerate(lower) if c in _EPOCH_COLUMNS), None)
        if stage is None:
            others = [i for i in range(width) if i != epoch]
            if len(others) != 1:
                raise HypnogramError(
                    f"cannot tell which column holds the stages among {header}; name it 'stage'", path
                )
            stage = others[0]
        return stage, epoch
    if width == 1:
        return 0, None
    if width == 2 and all(_INT.match(row[0]) for _, row in rows if row):
        return 1, 0  # headerless "epoch,stage"
    raise HypnogramError(
        f"has {width} columns and no header; add a header naming the 'stage' (and 'epoch') column", path
    )


# --- alignment --------------------------------------------------------------------------------


def align_hypnogram(hypnogram: Hypnogram, recording: Recording) -> Hypnogram:
    """Place a hypnogram on a PSG's 30-s epochs: one stage per whole epoch of the signals.

    Policy:

    1. **Offset.** When both have a start time, the hypnogram starts
       ``hypnogram.start - recording.start`` after the PSG; this offset must be a whole number of
       epochs (within 1 ms), since PSG epoch *k* is samples ``[k·30 s, (k+1)·30 s)`` and a
       hypnogram on another grid would need its stages re-cut. A hypnogram without start (tables,
       JSON, EDF+ with hidden date) is taken to start at the PSG start. Sleep-EDF's hypnograms start
       with their PSG (offset 0).
    2. **Before the signal.** Hypnogram epochs before the PSG start are dropped if unscored;
       a scored one there is an error. PSG epochs before a later-starting hypnogram are unscored.
    3. **After the signal.** Hypnogram epochs after the last whole PSG epoch are dropped if unscored
       (Sleep-EDF's final ``Sleep stage ?`` run often runs past the signal end); a scored one there
       is an error ("hypnogram is longer than the signals").
    4. **Short hypnogram.** A hypnogram ending more than one epoch (30 s) before the signals end is
       an error (shorter than the signals); one ending within one epoch is padded with one unscored
       epoch. The signal is never truncated to fit a hypnogram.

    Parameters
    ----------
    hypnogram : Hypnogram
        Stages with ``epoch_s`` 30 s, as :func:`read_hypnogram` gives.
    recording : Recording
        The PSG; its epochs are ``recording.n_epochs(hypnogram.epoch_s)`` (a final partial epoch
        of signal is not scored).

    Returns
    -------
    Hypnogram
        ``recording.n_epochs()`` stages, ``start`` set to the PSG start, lights and events shifted to
        seconds from the PSG start; label set and source unchanged.

    Raises
    ------
    HypnogramError
        Naming the hypnogram file, for an offset that is not a whole number of epochs, scored epochs
        before or after the signals, or a hypnogram shorter than the signals.
    """
    path = hypnogram.source
    epoch = hypnogram.epoch_s
    n_rec = recording.n_epochs(epoch)
    offset_s = 0.0
    if hypnogram.start is not None and recording.start is not None:
        offset_s = (
            hypnogram.start.replace(tzinfo=None) - recording.start.replace(tzinfo=None)
        ).total_seconds()
    shift = whole_epochs(offset_s, epoch)
    if shift is None:
        raise HypnogramError(
            f"hypnogram starts {offset_s:g} s after the PSG {recording.path.name} "
            f"({hypnogram.start} vs {recording.start}), not a whole number of {epoch:g}-s epochs",
            path,
        )
    stages = hypnogram.stages
    scored = stages != UNSCORED
    # Hypnogram epoch i covers PSG epoch i + shift.
    before = scored[: max(0, -shift)]
    if before.any():
        raise HypnogramError(
            f"hypnogram starts {-offset_s:g} s before the PSG {recording.path.name} and has "
            f"{int(before.sum())} scored epochs before the signals start",
            path,
        )
    after = scored[max(0, n_rec - shift) :]
    if after.any():
        end = n_rec * epoch  # seconds from the PSG start
        clock = f" ({recording.start + dt.timedelta(seconds=end):%H:%M:%S})" if recording.start else ""
        raise HypnogramError(
            f"hypnogram is longer than the signals: {int(after.sum())} scored epochs after the end at "
            f"{end:g} s{clock} of {recording.path.name} (its last whole {epoch:g}-s epoch)",
            path,
        )
    end_s = (shift + len(stages)) * epoch
    if recording.duration_s - end_s > epoch + GRID_TOLERANCE_S:
        raise HypnogramError(
            f"hypnogram is shorter than the signals: it ends {end_s:g} s after the PSG start, "
            f"the signals of {recording.path.name} last {recording.duration_s:g} s "
            f"({n_rec - (shift + len(stages))} epochs unscored); the signal is not truncated to fit",
            path,
        )
    out = np.full(n_rec, UNSCORED, dtype=np.int8)
    src_first = max(0, -shift)
    dst_first = max(0, shift)
    n = min(len(stages) - src_first, n_rec - dst_first)
    if n > 0:
        out[dst_first : dst_first + n] = stages[src_first : src_first + n]

    def _move(t: float | None) -> float | None:
        return None if t is None else t + shift * epoch

    return Hypnogram(
        stages=out,
        label_set=hypnogram.label_set,
        epoch_s=epoch,
        start=recording.start,
        lights_off_s=_move(hypnogram.lights_off_s),
        lights_on_s=_move(hypnogram.lights_on_s),
        source=hypnogram.source,
        events=[(t + shift * epoch, text) for t, text in hypnogram.events],
    )
