"""Plain-text hypnograms: one stage per line (YASA and most scripts), and the DREAMS databases' 5-s codes.

**One stage per line**, no header, as ``numpy.savetxt`` of YASA's ``Hypnogram.as_int()`` or a list of
its stage names writes it: names (``W``/``WAKE``, ``N1`` … ``N3``, ``R``/``REM``, R&K ``S1`` … ``S4``,
and YASA's ``ART`` (artefact), ``UNS`` (unscored), ``ND``) or integers (YASA's and somna's AASM codes
``0`` W … ``4`` REM, ``-1`` artefact and ``-2`` unscored, both unscored here). Lines starting with ``#``
and blank lines are skipped.

**DREAMS** (Université de Mons, TCTS lab: the DREAMS Subjects, Patients, Spindles … databases): a first
line naming the file (``[HypnogramR&K]``, ``[HypnogramAASM]`` in the Subjects and Patients databases,
``[hypnogram]`` in the Spindles database), then one integer per 5-s window. The R&K code table is the
one the Spindles database's format description gives: ``5`` wake, ``4`` REM, ``3`` S1, ``2`` S2,
``1`` S3, ``0`` S4, ``-1`` movement, ``-2`` or ``-3`` unknown. AASM files use ``5`` W, ``4`` REM, ``3``
N1, ``2`` N2, ``1`` N3; their ``0`` and negative codes are read as unscored, as skjerns' sleep-utils
reads them (no public description of the AASM files' table was found).
"""

from __future__ import annotations

import re
from pathlib import Path

from somna.errors import HypnogramError
from somna.hypnogram import EPOCH_SECONDS, Hypnogram
from somna.io.formats._common import (
    check_length,
    decode_text,
    read_bytes,
    stage_codes,
    whole_epochs,
    windows_to_epochs,
)
from somna.stages import AASM, UNSCORED, LabelSet, parse_stage, stage_codes_from_strings

__all__ = ["DREAMS_CODES", "is_dreams_header", "is_stage_line", "read_dreams_hypnogram", "read_stage_lines"]

_INT = re.compile(r"^-?\d{1,15}$")
_YASA_UNSCORED = {"art", "uns", "nd"}  # yasa.hypno_str_to_int: artefact -1, unscored / not determined -2
_YASA_UNSCORED_CODE = -2
_DREAMS_HEADER = re.compile(r"^\[\s*hypnogram\s*(r&k|rk|aasm)?\s*\]$", re.IGNORECASE)
DREAMS_CODES: dict[str, dict[int, str | None]] = {
    "rk": {5: "W", 4: "REM", 3: "1", 2: "2", 1: "3", 0: "4", -1: None, -2: None, -3: None},
    "aasm": {5: "W", 4: "REM", 3: "1", 2: "2", 1: "3", 0: None, -1: None, -2: None, -3: None},
}
"""DREAMS codes to neutral stage names (``None``: movement, unknown), per vocabulary."""


def _lines(path: Path) -> list[tuple[int, str]]:
    text = decode_text(read_bytes(path), path)
    lines = [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.startswith("#")
    ]
    if not lines:
        raise HypnogramError("is empty: no stage rows", path)
    return lines


def read_stage_lines(path: str | Path, int_codes: LabelSet = AASM) -> Hypnogram:
    """Read a text file with one stage per line and no header.

    Parameters
    ----------
    path : str | Path
        The file, whatever its name (UTF-8 or UTF-16).
    int_codes : LabelSet
        Label set of integer codes (default AASM, YASA's: ``0`` W … ``4`` REM); ``-1`` and ``-2`` are
        unscored in any.

    Returns
    -------
    Hypnogram
        One epoch per line: ``int_codes`` for a file of integers; for names, R&K when R&K names appear
        (``S1`` … ``S4``, ``1`` … ``4``), else AASM. No start.

    Raises
    ------
    HypnogramError
        For an unknown stage (naming it and its line), integers outside the label set, names and
        integers mixed, R&K and AASM names mixed, or more than 14 days of epochs.
    """
    path = Path(path)
    lines = _lines(path)
    check_length(len(lines), path)
    if all(_INT.match(cell) for _, cell in lines):
        codes = []
        for n, cell in lines:
            value = int(cell)
            if value == _YASA_UNSCORED_CODE:
                value = UNSCORED
            elif value != UNSCORED and not 0 <= value < int_codes.n_classes:
                hint = " (a DREAMS 5-s hypnogram? it needs its [Hypnogram…] first line)" if value == 5 else ""
                raise HypnogramError(
                    f"unknown sleep stage {value!r} in row {n}: {int_codes.name} codes are -1, -2 (unscored) "
                    f"and 0..{int_codes.n_classes - 1}{hint}",
                    path,
                )
            codes.append(value)
        return Hypnogram(stages=codes, label_set=int_codes, source=path)
    names = []
    for n, cell in lines:
        if cell.lower() in _YASA_UNSCORED:
            names.append("?")
            continue
        try:
            parse_stage(cell)
        except ValueError:
            raise HypnogramError(f"unknown sleep stage {cell[:60]!r} in row {n}", path) from None
        names.append(cell)
    try:
        label_set, codes = stage_codes_from_strings(names)
    except ValueError as err:
        raise HypnogramError(str(err), path) from None
    return Hypnogram(stages=codes, label_set=label_set, source=path)


def is_stage_line(line: str) -> bool:
    """Whether a line holds one stage as :func:`read_stage_lines` reads it (a name or an integer)."""
    cell = line.strip()
    if _INT.match(cell) or cell.lower() in _YASA_UNSCORED:
        return True
    try:
        parse_stage(cell)
    except ValueError:
        return False
    return True


def is_dreams_header(line: str) -> bool:
    """Whether a line opens a DREAMS hypnogram: ``[HypnogramR&K]``, ``[HypnogramAASM]``, ``[hypnogram]``."""
    return bool(_DREAMS_HEADER.match(line.strip()))


def read_dreams_hypnogram(
    path: str | Path, window_s: float = 5.0, vocabulary: str | None = None
) -> Hypnogram:
    """Read a DREAMS hypnogram: one code per scoring window, grouped into 30-s epochs.

    Parameters
    ----------
    path : str | Path
        The file, with or without its ``[Hypnogram…]`` first line.
    window_s : float
        Length of one line's window, in seconds (DREAMS: 5); it must divide 30 s.
    vocabulary : {"rk", "aasm"} | None
        The code table (see the module docstring). ``None``: the first line's (``[HypnogramAASM]`` is
        AASM, ``[HypnogramR&K]`` and ``[hypnogram]`` R&K), R&K without one.

    Returns
    -------
    Hypnogram
        30-s epochs from the first window. An epoch takes its windows' stage when they all agree; when
        they do not, it is unscored (never a majority's guess); a final incomplete epoch is dropped.
        ``info`` holds ``scored_window_s``, ``mixed_epochs`` (epochs made unscored so) and
        ``dropped_windows``. R&K or AASM as the file's vocabulary.

    Raises
    ------
    ValueError
        For a ``window_s`` that does not divide 30 s, or an unknown ``vocabulary``.
    HypnogramError
        For a code outside the table (naming its line), a vocabulary that contradicts the first line,
        or fewer windows than one epoch.
    """
    per_epoch = whole_epochs(EPOCH_SECONDS, window_s) if 0 < window_s <= EPOCH_SECONDS else None
    if not per_epoch:
        raise ValueError(f"window_s must divide 30 s (5, 10, 15, 30 …), got {window_s!r}")
    if vocabulary not in (None, *DREAMS_CODES):
        raise ValueError(f"unknown DREAMS vocabulary {vocabulary!r}; use one of {sorted(DREAMS_CODES)}")
    path = Path(path)
    lines = _lines(path)
    header = _DREAMS_HEADER.match(lines[0][1])
    if header:
        declared = "aasm" if (header[1] or "").lower() == "aasm" else "rk"
        if vocabulary is not None and vocabulary != declared:
            raise HypnogramError(f"declares {lines[0][1]!r}, not the {vocabulary} codes asked for", path)
        vocabulary = declared
        lines = lines[1:]
    table = DREAMS_CODES[vocabulary or "rk"]
    check_length(len(lines) // per_epoch, path)
    names = []
    for n, cell in lines:
        value = int(cell) if _INT.match(cell) else None
        if value not in table:
            known = ", ".join(f"{code} {name or '?'}" for code, name in table.items())
            raise HypnogramError(
                f"unknown DREAMS stage code {cell[:40]!r} in row {n} ({vocabulary or 'rk'} codes: {known})",
                path,
            )
        names.append(table[value])
    epochs, mixed, dropped = windows_to_epochs(names, per_epoch)
    if not epochs:
        raise HypnogramError(f"has {len(names)} windows of {window_s:g} s, less than one 30-s epoch", path)
    label_set, codes = stage_codes(epochs, rk=(vocabulary or "rk") == "rk")
    info = {"scored_window_s": float(window_s), "mixed_epochs": mixed, "dropped_windows": dropped}
    return Hypnogram(stages=codes, label_set=label_set, source=path, info=info)
