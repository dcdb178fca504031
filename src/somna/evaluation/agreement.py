"""Epoch-by-epoch agreement between a reference hypnogram and a prediction.

Every metric comes from scikit-learn; this module only chooses which epochs and which classes enter
them, and turns the results into plain, JSON-ready Python values.

Conventions, the same in every function here:

* Epochs whose **reference** is :data:`~somna.stages.UNSCORED` are dropped before anything is
  computed and counted as ``n_unscored``.
* ``per_class`` and both confusion matrices cover **every** class of the label set, in code order, so
  a stage missing from a night still has its row (support 0, precision/recall/F1 reported as 0).
* ``macro_f1`` and the ``report`` text average over the classes that occur in the reference **or** the
  prediction (scikit-learn's default). A class absent from both has no defined F1 and is left out
  rather than counted as 0; a class predicted but never in the reference counts, with F1 0.
* Cohen's κ is ``None`` where it is undefined (reference and prediction are one and the same
  single class, so chance agreement is 1).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    cohen_kappa_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from somna.stages import UNSCORED, LabelSet

__all__ = ["epoch_agreement", "mean_sd", "per_subject_agreement"]

_SUMMARY_METRICS = ("accuracy", "cohen_kappa", "macro_f1")


def _as_codes(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D int64 array, refusing non-integral or non-finite entries."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one code per epoch), got shape {arr.shape}")
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer stage codes; found non-integral or non-finite values")
        return arr.astype(np.int64)
    raise ValueError(f"{name} must hold integer stage codes, got dtype {arr.dtype}")


def _describe_bad(codes: np.ndarray) -> str:
    bad = np.unique(codes)
    shown = ", ".join(str(int(c)) for c in bad[:10])
    return shown + (", ..." if bad.size > 10 else "")


def _validate(y_true: Any, y_pred: Any, label_set: LabelSet) -> tuple[np.ndarray, np.ndarray]:
    """Check lengths and codes; return the (reference, prediction) pair of int64 arrays."""
    ref = _as_codes(y_true, "y_true")
    pred = _as_codes(y_pred, "y_pred")
    if ref.shape != pred.shape:
        raise ValueError(f"y_true has {ref.size} epochs but y_pred has {pred.size}")
    n = label_set.n_classes
    bad_ref = (ref != UNSCORED) & ((ref < 0) | (ref >= n))
    if bad_ref.any():
        raise ValueError(
            f"y_true holds codes outside the {label_set.name} label set (0..{n - 1} or {UNSCORED}): "
            f"{_describe_bad(ref[bad_ref])}"
        )
    scored = ref != UNSCORED
    bad_pred = scored & ((pred < 0) | (pred >= n))
    bad_pred |= ~scored & (pred != UNSCORED) & ((pred < 0) | (pred >= n))
    if bad_pred.any():
        raise ValueError(
            f"y_pred holds codes outside the {label_set.name} label set (0..{n - 1}) at "
            f"{int(bad_pred.sum())} epoch(s): {_describe_bad(pred[bad_pred])}"
        )
    return ref, pred


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _kappa(ref: np.ndarray, pred: np.ndarray, labels: list[int]) -> float | None:
    """Cohen's κ, or ``None`` when chance agreement is 1 and κ is undefined."""
    with warnings.catch_warnings():
        # scikit-learn warns (and returns NaN) when κ is undefined; we report None instead.
        warnings.simplefilter("ignore")
        return _finite_or_none(cohen_kappa_score(ref, pred, labels=labels))


def epoch_agreement(y_true: Any, y_pred: Any, label_set: LabelSet) -> dict[str, Any]:
    """Epoch-by-epoch agreement of a predicted hypnogram with a reference one.

    Parameters
    ----------
    y_true : array-like of int, shape (n_epochs,)
        Reference stage codes of ``label_set``; :data:`~somna.stages.UNSCORED` epochs are excluded.
        Several nights may be concatenated.
    y_pred : array-like of int, shape (n_epochs,)
        Predicted codes, aligned with ``y_true``. Every prediction at a scored epoch must be a code
        of ``label_set``; at unscored epochs (which are dropped) :data:`~somna.stages.UNSCORED` is
        accepted too.
    label_set : LabelSet
        The stage vocabulary of both arrays.

    Returns
    -------
    dict
        JSON-ready (plain ``int``/``float``/``str``/``list``/``dict``, κ possibly ``None``):

        ``n_epochs`` (scored epochs compared), ``n_unscored`` (excluded), ``accuracy``,
        ``cohen_kappa``, ``macro_f1``, ``weighted_f1``, ``per_class``
        (``{label: {"precision", "recall", "f1", "support"}}`` for every class of the set),
        ``confusion`` (counts, rows = reference, columns = predicted), ``confusion_normalised``
        (each row divided by its support; rows without support are zeros), ``labels``,
        ``label_set`` (its name) and ``report`` (scikit-learn's ``classification_report`` text).
        See the module docstring for which classes enter ``macro_f1`` and ``report``.

    Raises
    ------
    ValueError
        If the lengths differ, an array is not 1-D or not integral, a code lies outside the label
        set, or no epoch of the reference is scored.
    """
    ref_all, pred_all = _validate(y_true, y_pred, label_set)
    scored = ref_all != UNSCORED
    ref, pred = ref_all[scored], pred_all[scored]
    if ref.size == 0:
        raise ValueError("no scored epoch in the reference: agreement is undefined")

    all_labels = list(range(label_set.n_classes))
    present = sorted(set(np.unique(ref).tolist()) | set(np.unique(pred).tolist()))

    precision, recall, f1, support = precision_recall_fscore_support(
        ref, pred, labels=all_labels, zero_division=0
    )
    _, _, macro_f1, _ = precision_recall_fscore_support(
        ref, pred, labels=present, average="macro", zero_division=0
    )
    _, _, weighted_f1, _ = precision_recall_fscore_support(
        ref, pred, labels=all_labels, average="weighted", zero_division=0
    )
    counts = confusion_matrix(ref, pred, labels=all_labels)
    normalised = confusion_matrix(ref, pred, labels=all_labels, normalize="true")
    normalised = np.nan_to_num(normalised, nan=0.0)  # older scikit-learn leaves NaN in empty rows
    report = classification_report(
        ref,
        pred,
        labels=present,
        target_names=[label_set.labels[c] for c in present],
        zero_division=0,
        digits=3,
    )
    return {
        "label_set": label_set.name,
        "labels": list(label_set.labels),
        "n_epochs": int(ref.size),
        "n_unscored": int((~scored).sum()),
        "accuracy": float(accuracy_score(ref, pred)),
        "cohen_kappa": _kappa(ref, pred, all_labels),
        "macro_f1": float(macro_f1),
        "weighted_f1": float(weighted_f1),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(label_set.labels)
        },
        "confusion": [[int(v) for v in row] for row in counts],
        "confusion_normalised": [[float(v) for v in row] for row in normalised],
        "report": str(report),
    }


def mean_sd(values: Iterable[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation of values, ignoring ``None`` and NaN.

    Parameters
    ----------
    values : iterable of float or None
        For example one metric per subject.

    Returns
    -------
    mean : float
    sd : float
        Standard deviation with ``ddof=1`` when at least two values remain, else 0.0.

    Raises
    ------
    ValueError
        If no finite value remains.
    """
    kept = np.array([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    if kept.size == 0:
        raise ValueError("mean_sd needs at least one finite value")
    sd = float(np.std(kept, ddof=1)) if kept.size >= 2 else 0.0
    return float(np.mean(kept)), sd


def _summary_entry(values: Sequence[float | None]) -> dict[str, Any]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "sd": None, "n": 0}
    mean, sd = mean_sd(finite)
    return {"mean": mean, "sd": sd, "n": len(finite)}


def _ordered_unique(ids: np.ndarray) -> list[Any]:
    """Unique subject ids, sorted when they are mutually comparable, else in order of appearance."""
    first = list(dict.fromkeys(ids.tolist()))
    try:
        return sorted(first)
    except TypeError:
        return first


def per_subject_agreement(y_true: Any, y_pred: Any, subject_ids: Any, label_set: LabelSet) -> dict[str, Any]:
    """Agreement computed separately for each subject, with mean ± sd over subjects.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n_epochs,)
        As for :func:`epoch_agreement`.
    subject_ids : array-like, shape (n_epochs,)
        The subject of each epoch; all nights of a subject are pooled into one agreement.
    label_set : LabelSet
        The stage vocabulary.

    Returns
    -------
    dict
        JSON-ready:

        ``label_set`` (name), ``labels``, ``subjects`` (``{str(subject_id): epoch_agreement(...)}``),
        ``excluded_subjects`` (ids whose reference has no scored epoch; they enter no statistic) and
        ``summary``: ``n_subjects`` (subjects summarised), ``accuracy``, ``cohen_kappa``,
        ``macro_f1`` — each ``{"mean", "sd", "n"}`` — and ``per_class_f1``
        (``{label: {"mean", "sd", "n"}}``). ``sd`` uses ``ddof=1`` with two or more subjects and is
        0 with one. A class absent from a subject's reference (support 0) is skipped for that
        subject in its class mean, not counted as an F1 of 0, so ``n`` may differ between classes;
        a class no subject has gets ``mean`` and ``sd`` ``None``. Subjects whose κ is undefined are
        likewise left out of the κ mean.

    Raises
    ------
    ValueError
        If the three arrays differ in length or a code is invalid (see :func:`epoch_agreement`),
        or no subject has a scored epoch.
    """
    ref, pred = _validate(y_true, y_pred, label_set)
    ids = np.asarray(subject_ids)
    if ids.ndim != 1 or ids.shape[0] != ref.shape[0]:
        raise ValueError(f"subject_ids has shape {ids.shape} but there are {ref.size} epochs")

    subjects: dict[str, dict[str, Any]] = {}
    excluded: list[str] = []
    for subject in _ordered_unique(ids):
        mask = ids == subject
        key = str(subject)
        if key in subjects or key in excluded:
            raise ValueError(f"subject ids {subject!r} collide once written as text")
        if np.all(ref[mask] == UNSCORED):
            excluded.append(key)
            continue
        subjects[key] = epoch_agreement(ref[mask], pred[mask], label_set)
    if not subjects:
        raise ValueError("no subject has a scored epoch in the reference")

    results = list(subjects.values())
    summary: dict[str, Any] = {"n_subjects": len(results)}
    for metric in _SUMMARY_METRICS:
        summary[metric] = _summary_entry([r[metric] for r in results])
    summary["per_class_f1"] = {
        label: _summary_entry(
            [r["per_class"][label]["f1"] for r in results if r["per_class"][label]["support"] > 0]
        )
        for label in label_set.labels
    }
    return {
        "label_set": label_set.name,
        "labels": list(label_set.labels),
        "subjects": subjects,
        "excluded_subjects": excluded,
        "summary": summary,
    }
