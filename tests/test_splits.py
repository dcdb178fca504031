"""Subject-wise splits: k-fold and hold-out assignment, and the recording-level leakage guard."""

from __future__ import annotations

from collections import Counter

import pytest

from somna.data.splits import Fold, check_no_leakage, holdout_split, subject_folds
from somna.errors import LeakageError, SomnaError

SUBJECTS = [f"SC{i:02d}" for i in range(11)]


def _assert_partition(fold: Fold, subjects: list[str]) -> None:
    train, val, test = set(fold.train), set(fold.validation), set(fold.test)
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(subjects)
    for part in (fold.train, fold.validation, fold.test):
        assert list(part) == sorted(part)


@pytest.mark.parametrize(("n_folds", "fraction"), [(2, 0.1), (5, 0.15), (11, 0.3)])
def test_subject_folds_test_each_subject_once(n_folds: int, fraction: float) -> None:
    folds = subject_folds(SUBJECTS + SUBJECTS[:3], n_folds, fraction, seed=1)  # duplicates ignored
    assert [f.index for f in folds] == list(range(n_folds))
    tested = Counter(s for f in folds for s in f.test)
    assert tested == Counter(SUBJECTS)
    for fold in folds:
        _assert_partition(fold, SUBJECTS)
        assert set(fold.validation) <= set(SUBJECTS) - set(fold.test)
        assert len(fold.validation) == max(1, round(fraction * (len(SUBJECTS) - len(fold.test))))
    sizes = sorted(len(f.test) for f in folds)
    assert sizes[-1] - sizes[0] <= 1


def test_subject_folds_seeded() -> None:
    assert subject_folds(SUBJECTS, 4, 0.2, seed=3) == subject_folds(list(reversed(SUBJECTS)), 4, 0.2, seed=3)
    tests = {seed: [f.test for f in subject_folds(SUBJECTS, 4, 0.2, seed=seed)] for seed in range(3)}
    assert tests[0] != tests[1] and tests[1] != tests[2] and tests[0] != tests[2]


@pytest.mark.parametrize("n_folds", [1, 12])
def test_subject_folds_refuse_impossible_fold_counts(n_folds: int) -> None:
    with pytest.raises(ValueError, match="n_folds"):
        subject_folds(SUBJECTS, n_folds)


def test_holdout_split() -> None:
    fold = holdout_split(SUBJECTS, test_fraction=0.2, validation_fraction=0.25, seed=5)
    _assert_partition(fold, SUBJECTS)
    assert len(fold.test) == 2 and len(fold.validation) == 2
    assert holdout_split(SUBJECTS, 0.2, 0.25, seed=5) == fold
    assert holdout_split(SUBJECTS, 0.2, 0.25, seed=6) != fold
    small = holdout_split(SUBJECTS[:3], test_fraction=0.9, validation_fraction=0.2)  # test clamped to 1
    assert (len(small.train), len(small.validation), len(small.test)) == (1, 1, 1)
    with pytest.raises(ValueError, match="at least 3"):
        holdout_split(SUBJECTS[:2])


SUBJECT_OF = {
    "SC4001E0": "SC00",
    "SC4002E0": "SC00",
    "SC4011E0": "SC01",
    "SC4012E0": "SC01",
    "SC4021E0": "SC02",
}


def test_check_no_leakage_accepts_disjoint_subjects() -> None:
    check_no_leakage(
        {"train": ["SC4001E0", "SC4002E0"], "validation": ["SC4011E0"], "test": ["SC4021E0"]}, SUBJECT_OF
    )


def test_check_no_leakage_names_the_leaked_subject_and_splits() -> None:
    # one night of SC01 in training, the other in test: a subject-level leak though no record repeats
    splits = {"train": ["SC4001E0", "SC4011E0"], "validation": ["SC4002E0"], "test": ["SC4012E0", "SC4021E0"]}
    with pytest.raises(LeakageError) as info:
        check_no_leakage(splits, SUBJECT_OF)
    message = str(info.value)
    assert "SC01 in test and train" in message
    assert "SC00 in train and validation" in message
    assert "SC02" not in message
    assert isinstance(info.value, SomnaError)


def test_check_no_leakage_refuses_unknown_recordings() -> None:
    with pytest.raises(LeakageError, match="SC4099E0"):
        check_no_leakage({"train": ["SC4001E0"], "test": ["SC4099E0"]}, SUBJECT_OF)
