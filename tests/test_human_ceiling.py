"""Tests of somna.evaluation.human_ceiling: consensus rules, and the DOD-O human ceiling on real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from somna.evaluation.human_ceiling import (
    _crop_to_scored,
    _load_nights,
    consensus_hypnogram,
    default_dreem_folder,
    dreem_inter_scorer_agreement,
    format_human_ceiling,
    soft_agreement,
)
from somna.stages import AASM, UNSCORED


def _codes(*names: str) -> np.ndarray:
    return np.array([UNSCORED if n == "?" else AASM.code(n) for n in names], dtype=np.int8)


def test_majority_vote_and_tie_break() -> None:
    a = _codes("W", "N2", "N2", "N1", "?", "?")
    b = _codes("W", "N2", "N3", "N2", "?", "N2")
    c = _codes("N1", "N3", "N3", "N3", "?", "N2")
    d = _codes("W", "N3", "N2", "REM", "N2", "N2")
    # Epoch 1: N2-N2-N3-N3 tie; epoch 3: four different stages; the first in the ranking decides.
    assert (
        consensus_hypnogram([a, b, c, d], ranking=[2, 0, 1, 3]).tolist()
        == _codes("W", "N3", "N3", "N3", "?", "N2").tolist()
    )
    assert (
        consensus_hypnogram([a, b, c, d], ranking=[0, 1, 2, 3]).tolist()
        == _codes("W", "N2", "N2", "N1", "?", "N2").tolist()
    )


def test_soft_agreement_and_default_ranking() -> None:
    ref = _codes("W", "N2", "N2", "REM")
    others = [ref, ref, _codes("W", "N2", "N3", "REM")]
    assert soft_agreement(ref, others) == 1.0
    assert soft_agreement(_codes("N1", "N2", "N2", "REM"), others) == pytest.approx(0.75)
    # Default ranking: the outlier never breaks ties.
    outlier = _codes("N1", "N1", "N1", "N1")
    x = _codes("W", "N2", "N3", "REM")
    y = _codes("W", "N3", "N2", "REM")
    votes = [outlier, x, y, x.copy()]
    assert consensus_hypnogram(votes).tolist() == x.tolist()


def test_crop_to_scored() -> None:
    stack = np.stack([_codes("?", "W", "N2", "N2", "?"), _codes("W", "W", "N2", "?", "?")])
    # Latest first scored epoch (1) to the earliest last scored one (2).
    assert _crop_to_scored(stack).tolist() == [_codes("W", "N2").tolist(), _codes("W", "N2").tolist()]


def test_default_folder_uses_shared_data_dir() -> None:
    from somna.synth.hypnograms import SHARED_DATA_DIR

    assert default_dreem_folder() == SHARED_DATA_DIR / "dreem-dod-o"


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        dreem_inter_scorer_agreement(tmp_path / "absent")


@pytest.fixture(scope="module")
def ceiling(shared_data: Path) -> dict:
    return dreem_inter_scorer_agreement(shared_data / "dreem-dod-o")


@pytest.mark.realdata
def test_human_ceiling_on_dod_o(ceiling: dict) -> None:
    assert ceiling["n_nights"] == 55 and ceiling["n_scorers"] == 5
    assert sorted(ceiling["scorers"]) == [f"scorer_{i}" for i in range(1, 6)]
    json.dumps(ceiling)
    for name, r in ceiling["scorers"].items():
        assert 0.6 < r["accuracy"] < 0.95, name
        assert 0.5 < r["cohen_kappa"] < r["accuracy"], name  # κ corrects accuracy for chance
        assert 0.5 < r["macro_f1"] < 0.95, name
        assert r["per_class_f1"]["N1"] < r["per_class_f1"]["N2"], name  # N1 is the hardest stage
        assert r["n_epochs"] > 50_000
    acc = {k: v["accuracy"] for k, v in ceiling["scorers"].items()}
    kappa = {k: v["cohen_kappa"] for k, v in ceiling["scorers"].items()}
    assert max(kappa, key=kappa.get) == max(acc, key=acc.get)
    assert min(kappa, key=kappa.get) == min(acc, key=acc.get)
    for metric in ("accuracy", "macro_f1", "cohen_kappa"):
        s = ceiling["summary"][metric]
        assert s["min"] <= s["mean"] <= s["max"]
    text = format_human_ceiling(ceiling)
    assert "Human ceiling" in text and "scorer_5" in text and "κ" in text


@pytest.mark.realdata
def test_consensus_excludes_the_scored_expert(shared_data: Path) -> None:
    """The consensus against which an expert is scored does not change when that expert's scoring does."""
    _, _, stacks = _load_nights(shared_data / "dreem-dod-o")
    rng = np.random.default_rng(0)
    for stack in stacks[:5]:
        night = _crop_to_scored(stack)
        for s in range(night.shape[0]):
            others = [night[j] for j in range(night.shape[0]) if j != s]
            before = consensus_hypnogram(others)
            garbage = night.copy()
            garbage[s] = rng.integers(0, AASM.n_classes, size=night.shape[1])
            after = consensus_hypnogram([garbage[j] for j in range(night.shape[0]) if j != s])
            np.testing.assert_array_equal(before, after)
            scored = (before != UNSCORED) & (night[s] != UNSCORED)
            assert 0.4 < np.mean(before[scored] == night[s][scored]) < 1.0
