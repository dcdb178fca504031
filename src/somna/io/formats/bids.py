"""BIDS ``events.tsv``: one row per event, with the stages among them, and its writer.

The layout (BIDS specification, "Task events"; as ``mne-bids`` writes it and the BIDS releases of
Sleep-EDF hold it): tab-separated, a header row, ``onset`` and ``duration`` (seconds from the
recording's first sample) first, then optional columns such as ``trial_type`` (the event's name),
``value`` and ``sample``; a missing value is ``n/a``. Stages are named as in EDF+ files:
``Sleep stage W``, ``Sleep stage 1`` … ``4``, ``Sleep stage R``, ``Sleep stage ?``, ``Movement time``
(R&K, Sleep-EDF) or ``Sleep stage N1`` … ``N3`` (AASM), or by short names (``W``, ``N2``, ``REM``).
"""

from __future__ import annotations

import re
from pathlib import Path

from somna.errors import HypnogramError
from somna.hypnogram import Hypnogram
from somna.io.formats._common import (
    TimedStage,
    decode_text,
    parse_number,
    parse_optional_number,
    read_bytes,
    seconds_text,
    stage_runs,
    table_rows,
    timed_hypnogram,
)
from somna.stages import AASM, RK, UNSCORED, is_stage_annotation, parse_stage

__all__ = ["read_bids_events", "write_bids_events"]

LABEL_COLUMNS = ("trial_type", "description", "value")
"""Columns that may name the events, first found first."""
_NUMBER = re.compile(r"^[-+]?\d+(\.\d*)?$")


def read_bids_events(path: str | Path) -> Hypnogram:
    """Read a BIDS ``events.tsv`` file with sleep stages among its events.

    Parameters
    ----------
    path : str | Path
        The file, whatever its name (tab-separated; a comma-separated one is read too).

    Returns
    -------
    Hypnogram
        R&K for Sleep-EDF's ``Sleep stage 1`` … ``4``, AASM for ``N1`` … ``N3`` (and for files with only
        W, REM and unscored). Epoch 0 is the recording's first sample when the stages lie on its 30-s
        grid (epochs before the first stage are unscored), else the first stage; no ``start`` (BIDS keeps
        the clock time in ``scans.tsv``). Rows whose name is not a stage become ``events``, lights
        events ``lights_off_s``/``lights_on_s``; rows named ``n/a`` are skipped. A stage with duration
        ``n/a`` marks one epoch.

    Raises
    ------
    HypnogramError
        For a file without ``onset`` and ``duration`` columns or a column naming the events, a row of
        another width than the header, an onset or duration that is not a number (naming the row), an
        unknown ``Sleep stage …``, R&K and AASM stages mixed, stages off the 30-s grid, or overlapping.
    """
    path = Path(path)
    rows = table_rows(decode_text(read_bytes(path), path), path, "\t,")
    header = [c.lower() for c in rows[0][1]]
    if "onset" not in header or "duration" not in header:
        raise HypnogramError(
            f"has no 'onset' and 'duration' columns (its header: {', '.join(rows[0][1])[:120]}); "
            "a BIDS events.tsv begins with them",
            path,
        )
    onset_col, duration_col = header.index("onset"), header.index("duration")
    label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
    if label_col is None:
        raise HypnogramError(f"has none of the columns {', '.join(LABEL_COLUMNS)} naming its events", path)
    stages: list[TimedStage] = []
    others: list[tuple[float, str]] = []
    vocabularies: set[str] = set()
    for n, cells in rows[1:]:
        if len(cells) != len(header):
            raise HypnogramError(f"row {n} has {len(cells)} cells, the header {len(header)}", path)
        label = cells[label_col]
        if label.lower() in ("", "n/a"):
            continue
        onset = parse_number(cells[onset_col], f"row {n}: onset", path)
        stage = _stage(label, n, path)
        if stage is False:
            others.append((onset, label))
            continue
        duration = parse_optional_number(cells[duration_col], f"row {n}: duration", path)
        if duration is not None and duration < 0:
            raise HypnogramError(f"row {n}: duration {duration:g} s is negative", path)
        vocabulary, name = stage
        if vocabulary:
            vocabularies.add(vocabulary)
        stages.append(TimedStage(onset, duration, name, f"row {n} ({label[:40]!r})"))
    if len(vocabularies) > 1:
        raise HypnogramError("mixes R&K stages (Sleep stage 1 … 4) with AASM stages (N1 … N3)", path)
    if not stages:
        raise HypnogramError("has no sleep-stage rows (Sleep stage W, Sleep stage N1 …)", path)
    return timed_hypnogram(stages, others, path, rk=vocabularies == {"rk"})


def _stage(label: str, n: int, path: Path) -> tuple[str | None, str | None] | bool:
    """(vocabulary, neutral stage name) of a stage row's label, ``False`` for another event."""
    if _NUMBER.match(label):
        return False  # event codes (BIDS ``value``), not stage names
    try:
        vocabulary, code = parse_stage(label)
    except ValueError:
        if is_stage_annotation(label):
            raise HypnogramError(f"unknown sleep stage {label[:60]!r} in row {n}", path) from None
        return False
    if code == UNSCORED:
        return None, None
    if vocabulary is None:
        return None, "W" if code == 0 else "REM"
    return vocabulary, str(code)


def write_bids_events(hypnogram: Hypnogram, path: str | Path) -> Path:
    """Write a hypnogram as a BIDS ``events.tsv`` file, atomically.

    Columns ``onset``, ``duration`` (s from epoch 0) and ``trial_type``: one row per run of a stage,
    named as in EDF+ files (AASM ``Sleep stage W``, ``Sleep stage N1`` … ``Sleep stage R``; R&K as
    Sleep-EDF, ``Sleep stage 1`` … ``4``; unscored epochs ``Sleep stage ?``), ``Lights off`` and
    ``Lights on`` with duration 0, and the other events with duration ``n/a``; rows in onset order.
    :func:`read_bids_events` reads it back (an R&K hypnogram without S1–S4 epochs comes back as AASM).

    Parameters
    ----------
    hypnogram : Hypnogram
        AASM or R&K stages.
    path : str | Path
        The file to write (``*_events.tsv``).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        For a hypnogram of another label set (3-class, 2-class).
    """
    from somna.io.edf_write import hypnogram_annotation_text
    from somna.storage import atomic_write

    if hypnogram.label_set not in (AASM, RK):
        raise ValueError(
            f"BIDS sleep-stage names exist for AASM and R&K stages, not {hypnogram.label_set.name}"
        )
    epoch = hypnogram.epoch_s
    rows = [
        (first * epoch, seconds_text(n * epoch), hypnogram_annotation_text(code, hypnogram.label_set.name))
        for first, n, code in stage_runs(hypnogram.stages)
    ]
    for onset, text in ((hypnogram.lights_off_s, "Lights off"), (hypnogram.lights_on_s, "Lights on")):
        if onset is not None:
            rows.append((onset, "0.0", text))
    rows += [(onset, "n/a", " ".join(text.split()) or "n/a") for onset, text in hypnogram.events]
    rows.sort(key=lambda row: row[0])
    lines = ["onset\tduration\ttrial_type"] + [f"{seconds_text(o)}\t{d}\t{t}" for o, d, t in rows]

    def write(tmp: Path) -> None:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")

    return atomic_write(path, write)
