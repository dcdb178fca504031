"""Subject-wise splits: folds of subjects, validation subjects drawn from training subjects, a leakage guard.

Both nights of a subject always land in the same split because splitting is done on subject ids, never
on nights or epochs; :func:`check_no_leakage` verifies it at the level of recordings before any training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold

from somna.errors import LeakageError

__all__ = ["Fold", "check_no_leakage", "holdout_split", "subject_folds"]


@dataclass(frozen=True)
class Fold:
    """Subjects of one fold's training, validation and test sets."""

    index: int
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "index": self.index,
            "train": list(self.train),
            "validation": list(self.validation),
            "test": list(self.test),
        }


def _split_validation(
    train: list[str], fraction: float, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    n_val = max(1, round(fraction * len(train)))
    if n_val >= len(train):
        raise ValueError(f"{len(train)} training subject(s) cannot spare {n_val} for validation")
    order = rng.permutation(len(train))
    val = sorted(train[i] for i in order[:n_val])
    return sorted(set(train) - set(val)), val


def subject_folds(
    subjects: Sequence[str], n_folds: int, validation_fraction: float = 0.1, seed: int = 0
) -> list[Fold]:
    """K-fold cross-validation over subjects, each fold's validation subjects drawn from its training ones.

    Parameters
    ----------
    subjects : sequence of str
        Subject ids (duplicates are ignored).
    n_folds : int
        Number of folds; each subject is tested exactly once. ``n_folds == len(subjects)`` is
        leave-one-subject-out (Sleep-EDF-20's 20-fold protocol).
    validation_fraction : float
        Fraction of each fold's training subjects held out for choosing the checkpoint (at least one).
    seed : int
        Shuffles subjects before folding and picks validation subjects: same seed, same folds.

    Returns
    -------
    list of Fold
    """
    unique = sorted(set(subjects))
    if not 2 <= n_folds <= len(unique):
        raise ValueError(
            f"n_folds must be between 2 and the number of subjects ({len(unique)}), got {n_folds}"
        )
    rng = np.random.default_rng(seed)
    folds = []
    splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for index, (train_idx, test_idx) in enumerate(splitter.split(unique)):
        train, val = _split_validation([unique[i] for i in train_idx], validation_fraction, rng)
        folds.append(Fold(index, tuple(train), tuple(val), tuple(sorted(unique[i] for i in test_idx))))
    return folds


def holdout_split(
    subjects: Sequence[str], test_fraction: float = 0.2, validation_fraction: float = 0.2, seed: int = 0
) -> Fold:
    """One subject-wise train / validation / test split (at least one subject in each).

    Parameters
    ----------
    subjects : sequence of str
        Subject ids.
    test_fraction : float
        Fraction of subjects tested.
    validation_fraction : float
        Fraction of the remaining subjects used for validation.
    seed : int
        Same seed, same split.
    """
    unique = sorted(set(subjects))
    if len(unique) < 3:
        raise ValueError(f"a train/validation/test split needs at least 3 subjects, got {len(unique)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    n_test = min(max(1, round(test_fraction * len(unique))), len(unique) - 2)
    test = sorted(unique[i] for i in order[:n_test])
    train, val = _split_validation([unique[i] for i in order[n_test:]], validation_fraction, rng)
    return Fold(0, tuple(train), tuple(val), tuple(test))


def check_no_leakage(split_records: Mapping[str, Sequence[str]], subject_of: Mapping[str, str]) -> None:
    """Fail if any subject has recordings in more than one split.

    Parameters
    ----------
    split_records : mapping of str to sequence of str
        Recording ids per split name (``{"train": [...], "validation": [...], "test": [...]}``).
    subject_of : mapping of str to str
        Subject id of every recording.

    Raises
    ------
    LeakageError
        Naming each leaked subject and the splits it appears in.
    """
    seen: dict[str, set[str]] = {}
    for split, records in split_records.items():
        for record in records:
            if record not in subject_of:
                raise LeakageError(f"recording {record!r} in the {split} split has no known subject")
            seen.setdefault(subject_of[record], set()).add(split)
    leaked = {s: sorted(splits) for s, splits in seen.items() if len(splits) > 1}
    if leaked:
        listing = ", ".join(f"{s} in {' and '.join(sp)}" for s, sp in sorted(leaked.items()))
        raise LeakageError(f"subject leakage between splits: {listing}")
