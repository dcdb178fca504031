"""Sleep-stage vocabularies: every label set somna knows, and every mapping between them.

This module is the only place that knows stage integers. Codes follow the field:
AASM ``W=0, N1=1, N2=2, N3=3, REM=4``; R&K ``W=0, S1=1, S2=2, S3=3, S4=4, REM=5``;
3-class ``W=0, NREM=1, REM=2``; 2-class ``W=0, Sleep=1``; REM-vs-NREM ``NREM=0, REM=1``.
Epochs that were not scored (``Sleep stage ?``, ``Movement time``, artefacts) carry
:data:`UNSCORED` in every label set; they are excluded from training and from metrics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AASM",
    "HIERARCHICAL",
    "LABEL_SETS",
    "NREM_REM",
    "RK",
    "THREE_CLASS",
    "TWO_CLASS",
    "UNSCORED",
    "LabelSet",
    "convert",
    "get_label_set",
    "is_stage_annotation",
    "merge_hierarchical",
    "parse_stage",
    "stage_codes_from_strings",
    "stage_counts",
    "task_label_sets",
]

UNSCORED: int = -1
"""Code of an epoch without a usable stage (``?``, movement time, artefact), in every label set."""


@dataclass(frozen=True)
class LabelSet:
    """A named, ordered set of sleep stages; a stage's code is its index in ``labels``.

    Parameters
    ----------
    name : str
        Identifier used in configs and checkpoints (``"aasm"``, ``"rk"``, ``"3class"``, ...).
    labels : tuple of str
        Short stage names in code order.
    """

    name: str
    labels: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        """Number of stages (``UNSCORED`` not counted)."""
        return len(self.labels)

    def code(self, label: str) -> int:
        """Return the integer code of a short stage name of this set."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise ValueError(f"{label!r} is not a stage of the {self.name} label set {self.labels}") from None

    def label(self, code: int) -> str:
        """Return the short name of a code (``"?"`` for :data:`UNSCORED`)."""
        return "?" if code == UNSCORED else self.labels[code]


RK = LabelSet("rk", ("W", "S1", "S2", "S3", "S4", "REM"))
"""Rechtschaffen & Kales, as Sleep-EDF is scored (S3 and S4 apart)."""
AASM = LabelSet("aasm", ("W", "N1", "N2", "N3", "REM"))
"""AASM 5-class staging; R&K S3 and S4 merge into N3."""
THREE_CLASS = LabelSet("3class", ("W", "NREM", "REM"))
"""Wake / NREM / REM."""
TWO_CLASS = LabelSet("2class", ("W", "Sleep"))
"""Wake / Sleep (stage 1 of hierarchical staging)."""
NREM_REM = LabelSet("nrem_rem", ("NREM", "REM"))
"""NREM / REM on sleep epochs only (stage 2 of hierarchical staging); wake maps to UNSCORED."""

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (RK, AASM, THREE_CLASS, TWO_CLASS, NREM_REM)}

# Each entry maps the codes of one set onto the next coarser one; convert() chains them.
_COARSER: dict[str, tuple[LabelSet, tuple[int, ...]]] = {
    "rk": (AASM, (0, 1, 2, 3, 3, 4)),
    "aasm": (THREE_CLASS, (0, 1, 1, 1, 2)),
    "3class": (TWO_CLASS, (0, 1, 1)),
}
_FROM_THREE_TO_NREM_REM = (UNSCORED, 0, 1)


def get_label_set(name: str) -> LabelSet:
    """Return a label set by name (``"rk"``, ``"aasm"``, ``"3class"``, ``"2class"``, ``"nrem_rem"``)."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(f"unknown label set {name!r}; known: {sorted(LABEL_SETS)}") from None


def _lookup(codes: np.ndarray, table: tuple[int, ...]) -> np.ndarray:
    lut = np.asarray(table, dtype=np.int8)
    out = np.full(codes.shape, UNSCORED, dtype=np.int8)
    scored = codes != UNSCORED
    out[scored] = lut[codes[scored]]
    return out


def convert(codes: np.ndarray, source: LabelSet, target: LabelSet) -> np.ndarray:
    """Map stage codes from one label set to a coarser one.

    Parameters
    ----------
    codes : array of int
        Stage codes of ``source``; :data:`UNSCORED` stays unscored.
    source, target : LabelSet
        The label sets. ``target`` must be ``source`` or coarser (R&K → AASM → 3-class → 2-class;
        3-class or finer → NREM/REM, where wake becomes unscored).

    Returns
    -------
    np.ndarray of int8
        Codes of ``target``.

    Raises
    ------
    ValueError
        If the mapping would need information the source does not have (AASM → R&K, say) or a code
        is out of range.
    """
    codes = np.asarray(codes)
    scored = codes[codes != UNSCORED]
    if scored.size and (scored.min() < 0 or scored.max() >= source.n_classes):
        raise ValueError(f"stage codes outside the {source.name} label set (0..{source.n_classes - 1})")
    out = codes.astype(np.int8, copy=True)
    current = source
    to_nrem_rem = target is NREM_REM
    goal = THREE_CLASS if to_nrem_rem else target
    while current is not goal:
        if current.name not in _COARSER:
            raise ValueError(f"cannot map {source.name} stages to {target.name}: the source is coarser")
        current, table = _COARSER[current.name]
        out = _lookup(out, table)
    return _lookup(out, _FROM_THREE_TO_NREM_REM) if to_nrem_rem else out


# Annotation and table vocabularies. Keys are normalised: lower case, single spaces.
_RK_STRINGS = {
    "sleep stage 1": 1, "sleep stage 2": 2, "sleep stage 3": 3, "sleep stage 4": 4,
    "1": 1, "2": 2, "3": 3, "4": 4, "s1": 1, "s2": 2, "s3": 3, "s4": 4,
}  # fmt: skip
_AASM_STRINGS = {
    "sleep stage n1": 1, "sleep stage n2": 2, "sleep stage n3": 3, "n1": 1, "n2": 2, "n3": 3,
}  # fmt: skip
_SHARED_STRINGS = {
    "sleep stage w": 0, "w": 0, "wake": 0, "0": 0,
    "sleep stage r": "REM", "r": "REM", "rem": "REM", "sleep stage rem": "REM", "5": "REM",
}  # fmt: skip
_UNSCORED_STRINGS = {
    "sleep stage ?", "?", "movement time", "sleep stage mt", "mt", "m", "movement", "artefact",
    "artifact", "unscored", "unknown", "-1", "sleep stage unknown",
}  # fmt: skip


def parse_stage(text: str) -> tuple[str | None, int]:
    """Parse one stage string from Sleep-EDF (R&K), HMC (AASM) or a stage table.

    Parameters
    ----------
    text : str
        For example ``"Sleep stage 3"`` (R&K), ``"Sleep stage N3"`` (AASM), ``"Sleep stage W"``
        (either), ``"Movement time"`` or ``"N2"``.

    Returns
    -------
    vocabulary : {"rk", "aasm", None}
        Which label set the string belongs to; ``None`` for strings valid in both (W, REM) and for
        unscored epochs.
    code : int
        The stage code: R&K codes for ``"rk"``, AASM codes otherwise, :data:`UNSCORED` for
        ``?``/movement/artefact. For ``None`` the code of W is 0 in both sets and REM is returned
        as ``AASM`` REM (4); :func:`stage_codes_from_strings` resolves it.

    Raises
    ------
    ValueError
        If the string is not a known stage.
    """
    key = re.sub(r"\s+", " ", str(text).strip().lower())
    if key in _UNSCORED_STRINGS:
        return None, UNSCORED
    if key in _RK_STRINGS:
        return "rk", _RK_STRINGS[key]
    if key in _AASM_STRINGS:
        return "aasm", _AASM_STRINGS[key]
    if key in _SHARED_STRINGS:
        value = _SHARED_STRINGS[key]
        return None, AASM.code("REM") if value == "REM" else int(value)
    raise ValueError(f"unknown sleep stage {text!r}")


def is_stage_annotation(text: str) -> bool:
    """Return True if an EDF+ annotation text describes a stage (rather than an event such as lights off)."""
    key = re.sub(r"\s+", " ", str(text).strip().lower())
    return key.startswith("sleep stage") or key in {"movement time"}


def stage_codes_from_strings(texts: list[str]) -> tuple[LabelSet, np.ndarray]:
    """Parse a sequence of stage strings into codes of one label set.

    R&K strings (``Sleep stage 1`` … ``4``) give :data:`RK`; AASM strings (``N1`` … ``N3``) give
    :data:`AASM`; strings valid in both (only W, REM and unscored) give :data:`AASM`.

    Raises
    ------
    ValueError
        If a string is unknown (the message names it and its position) or R&K and AASM strings are
        mixed.
    """
    vocabularies = set()
    parsed: list[tuple[str | None, int]] = []
    for i, text in enumerate(texts):
        try:
            parsed.append(parse_stage(text))
        except ValueError as err:
            raise ValueError(f"{err} (entry {i})") from None
        if parsed[-1][0] is not None:
            vocabularies.add(parsed[-1][0])
    if len(vocabularies) > 1:
        raise ValueError("mixes R&K stages (1, 2, 3, 4) with AASM stages (N1, N2, N3)")
    label_set = RK if vocabularies == {"rk"} else AASM
    rem = label_set.code("REM")
    codes = np.array(
        [rem if (vocab is None and code == AASM.code("REM")) else code for vocab, code in parsed],
        dtype=np.int8,
    )
    return label_set, codes


def stage_counts(codes: np.ndarray, label_set: LabelSet) -> dict[str, int]:
    """Count epochs per stage, by short name; unscored epochs are counted under ``"?"``."""
    codes = np.asarray(codes)
    counts = {label: int(np.sum(codes == i)) for i, label in enumerate(label_set.labels)}
    counts["?"] = int(np.sum(codes == UNSCORED))
    return counts


HIERARCHICAL = "hierarchical"
"""Task name of hierarchical 3-class staging: stage 1 Wake vs Sleep, stage 2 REM vs NREM on sleep."""


def task_label_sets(name: str) -> tuple[LabelSet, list[tuple[str | None, LabelSet]]]:
    """Output label set of a task and the (role, label set) of each model it trains.

    ``"hierarchical"`` gives 3-class output from two models, ``stage1`` (W / Sleep) and ``stage2``
    (NREM / REM, trained on sleep epochs only: wake epochs stay in the sequence as context but are not
    targets); any other name is one model with that label set (role ``None``).
    """
    if name == HIERARCHICAL:
        return THREE_CLASS, [("stage1", TWO_CLASS), ("stage2", NREM_REM)]
    label_set = get_label_set(name)
    return label_set, [(None, label_set)]


def merge_hierarchical(sleep_probs: np.ndarray, rem_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge stage 1 (W / Sleep) and stage 2 (NREM / REM) outputs into Wake / NREM / REM.

    Stages follow the cascade: an epoch is W when stage 1 gives P(sleep) < 0.5; otherwise stage 2
    decides NREM or REM. Probabilities are ``P(W) = 1 - P(sleep)``, ``P(NREM) = P(sleep) P(NREM | sleep)``
    and ``P(REM) = P(sleep) P(REM | sleep)`` (a hypnodensity; its argmax can differ from the cascade
    only where P(sleep) is close to 0.5).

    Parameters
    ----------
    sleep_probs : np.ndarray, shape (n_epochs, 2)
        Stage-1 probabilities in :data:`TWO_CLASS` order (W, Sleep).
    rem_probs : np.ndarray, shape (n_epochs, 2)
        Stage-2 probabilities in :data:`NREM_REM` order (NREM, REM).

    Returns
    -------
    probs : np.ndarray of float32, shape (n_epochs, 3)
        In :data:`THREE_CLASS` order.
    stages : np.ndarray of int64, shape (n_epochs,)
        :data:`THREE_CLASS` codes from the cascade.

    Examples
    --------
    >>> probs, stages = merge_hierarchical(np.array([[0.2, 0.8]]), np.array([[0.25, 0.75]]))
    >>> [round(float(p), 2) for p in probs[0]], THREE_CLASS.label(int(stages[0]))
    ([0.2, 0.2, 0.6], 'REM')
    """
    p_sleep = sleep_probs[:, TWO_CLASS.code("Sleep")]
    p_rem = rem_probs[:, NREM_REM.code("REM")]
    probs = np.empty((p_sleep.size, THREE_CLASS.n_classes), dtype=np.float32)
    probs[:, THREE_CLASS.code("W")] = 1.0 - p_sleep
    probs[:, THREE_CLASS.code("NREM")] = p_sleep * (1.0 - p_rem)
    probs[:, THREE_CLASS.code("REM")] = p_sleep * p_rem
    stages = np.where(
        p_sleep < 0.5,
        THREE_CLASS.code("W"),
        np.where(p_rem >= 0.5, THREE_CLASS.code("REM"), THREE_CLASS.code("NREM")),
    ).astype(np.int64)
    return probs, stages
