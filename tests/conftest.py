"""Shared fixtures: where the real data lies, and temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real expert-scored material in ``../shared/data``; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it lies beside the checkout in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory):  # -> somna.data.Cohort
    """4 synthetic subjects × 2 nights of 1.5 h, prepared (read-only for the tests that share it)."""
    from somna.data.cohort import prepare_cohort
    from somna.synth import write_synthetic_cohort

    root = tmp_path_factory.mktemp("small-cohort")
    write_synthetic_cohort(
        root / "edf", n_subjects=4, seed=3, hours=1.5, progress=False, variation="textbook"
    )
    return prepare_cohort(root / "edf", root / "cache", workers=1, progress=False)


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny 5-class model trained for 2 passes on 3 synthetic subjects (1.5-h nights), holdout split.

    Returns the run folder, a held-out test night's PSG and its hypnogram.
    """
    import json

    from somna.config import CVConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig
    from somna.data.cohort import prepare_cohort
    from somna.synth import write_synthetic_cohort
    from somna.training.experiment import run_experiment

    root = tmp_path_factory.mktemp("tiny-run")
    write_synthetic_cohort(
        root / "edf", n_subjects=3, seed=5, hours=1.5, progress=False, variation="textbook"
    )
    cohort = prepare_cohort(root / "edf", root / "cache", workers=1, progress=False)
    experiment = ExperimentConfig(
        name="tiny",
        data=DataConfig(cache=str(root / "cache")),
        model=ModelConfig(embed_dim=16, cnn_width=8, seq_len=8),
        training=TrainConfig(max_epochs=2, patience=5, batch_size=8, chunk_len=32, lr=3e-3, threads=1),
        cv=CVConfig(test_fraction=0.34, validation_fraction=0.5, seed=0),
    )
    run_experiment(experiment, root / "run", mode="holdout", progress=False)
    test_subject = json.loads((root / "run" / "experiment.json").read_text())["folds"][0]["test"][0]
    entry = next(e for e in cohort.entries if e.subject_id == test_subject)
    return root / "run", Path(entry.psg), Path(entry.hypnogram)
