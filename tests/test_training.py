"""Training on a small synthetic cohort: leakage guard, determinism, checkpoints, resume, learning, runs.

One cohort (4 subjects × 2 nights of 1.5 h) is built per module; one reference model is trained once and
shared by the determinism, resume, checkpoint and learning tests. Models are tiny (embed 16, seq_len 8).
"""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict
from dataclasses import asdict, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from somna.config import CVConfig, DataConfig, ExperimentConfig, TrainConfig
from somna.data.cohort import Cohort
from somna.data.sequences import NightArrays, load_night
from somna.data.splits import Fold, holdout_split
from somna.errors import CheckpointError, LeakageError, SomnaError
from somna.models import ModelConfig, StagingNetwork
from somna.models.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from somna.models.predict import predict_night as _predict_night
from somna.models.torch_model import TorchStageModel
from somna.stages import AASM, UNSCORED
from somna.training import trainer
from somna.training.experiment import evaluate_run, run_experiment
from somna.training.trainer import TrainResult, records_of, train_model

MODEL = {"embed_dim": 16, "cnn_width": 8, "seq_len": 8}
TRAIN = TrainConfig(max_epochs=8, patience=10, batch_size=8, chunk_len=32, lr=3e-3, seed=0, threads=1)
CV = CVConfig(test_fraction=0.25, validation_fraction=0.34, seed=0)


@pytest.fixture(scope="module")
def cohort(small_cohort: Cohort) -> Cohort:
    return small_cohort


@pytest.fixture(scope="module")
def fold(cohort: Cohort) -> Fold:
    fold = holdout_split(cohort.subjects, CV.test_fraction, CV.validation_fraction, CV.seed)
    assert (len(fold.train), len(fold.validation), len(fold.test)) == (2, 1, 1)
    return fold


@pytest.fixture(scope="module")
def model_config() -> ModelConfig:
    experiment = ExperimentConfig(model=ModelConfig(**MODEL))
    return experiment.model_config({"eeg": 2, "eog": 1, "emg": 1}, 3000, 30, AASM.n_classes)


def _train(cohort: Cohort, fold: Fold, config: ModelConfig, run_dir: Path, train: TrainConfig = TRAIN):
    return train_model(cohort, fold, config, train, AASM, run_dir, progress=False)


@pytest.fixture(scope="module")
def reference(
    cohort: Cohort, fold: Fold, model_config: ModelConfig, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, Path]:
    """The reference run: TRAIN's passes straight through, in its own folder."""
    run_dir = tmp_path_factory.mktemp("reference")
    return _train(cohort, fold, model_config, run_dir), run_dir


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"


def predict_night(model: StagingNetwork, night: NightArrays) -> np.ndarray:
    return _predict_night(TorchStageModel(model), night.signals)


# --- leakage guard ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_model_refuses_a_leaky_fold_before_reading_data(
    cohort: Cohort, model_config: ModelConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subjects = cohort.subjects
    leaky = Fold(
        0, train=(subjects[0], subjects[1]), validation=(subjects[2],), test=(subjects[1], subjects[3])
    )

    def must_not_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("training data was read before the leakage check")

    monkeypatch.setattr(trainer, "load_night", must_not_read)
    with pytest.raises(LeakageError) as info:
        _train(cohort, leaky, model_config, tmp_path / "run")
    assert f"{subjects[1]} in test and train" in str(info.value)
    assert subjects[0] not in str(info.value)
    assert not list((tmp_path / "run").glob("*.pt"))
    assert not (tmp_path / "run" / "history.json").exists()


def test_a_non_finite_loss_stops_training_before_the_weights_are_touched(
    cohort: Cohort, fold: Fold, model_config: ModelConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from somna.models import StagingNetwork

    forward = StagingNetwork.forward
    nan_logits = lambda self, signals: forward(self, signals) * float("nan")  # noqa: E731
    monkeypatch.setattr(StagingNetwork, "forward", nan_logits)
    with pytest.raises(SomnaError, match=r"training diverged: the loss of a batch of pass 1 is nan"):
        _train(cohort, fold, model_config, tmp_path / "run", replace(TRAIN, max_epochs=1))
    assert not list((tmp_path / "run").glob("*.pt"))


def test_training_device_is_checked_before_any_pass(
    cohort: Cohort, fold: Fold, model_config: ModelConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    single = trainer.distributed.context()
    assert trainer.training_device("cpu", single) == torch.device("cpu")
    with pytest.raises(SomnaError, match=r"must be one of \['auto', 'cpu', 'cuda'\], not 'gpu'"):
        _train(cohort, fold, model_config, tmp_path / "bad", replace(TRAIN, device="gpu", max_epochs=1))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert trainer.training_device("auto", single) == torch.device("cpu")
    with pytest.raises(SomnaError, match=r"'cuda' was asked for, but torch sees no GPU"):
        _train(cohort, fold, model_config, tmp_path / "cuda", replace(TRAIN, device="cuda", max_epochs=1))
    assert not list(tmp_path.rglob("*.pt"))


# --- determinism, checkpoints, resume -----------------------------------------------------------------


@pytest.mark.slow
def test_training_is_deterministic(
    cohort: Cohort, fold: Fold, model_config: ModelConfig, reference: tuple[TrainResult, Path], tmp_path: Path
) -> None:
    result, ref_dir = reference
    assert [h["pass"] for h in result.history] == list(range(1, TRAIN.max_epochs + 1))
    again = _train(cohort, fold, model_config, tmp_path / "again")
    _assert_same_weights(_weights(ref_dir / "last.pt"), _weights(tmp_path / "again" / "last.pt"))
    _assert_same_weights(_weights(ref_dir / "best.pt"), _weights(tmp_path / "again" / "best.pt"))
    assert [h["loss"] for h in again.history] == [h["loss"] for h in result.history]
    assert again.best_pass == result.best_pass and again.best_validation == result.best_validation
    # the seed matters: another seed gives other weights
    _train(cohort, fold, model_config, tmp_path / "seed1", replace(TRAIN, seed=1, max_epochs=1))
    seed1 = _weights(tmp_path / "seed1" / "last.pt")
    first = _train(cohort, fold, model_config, tmp_path / "seed0", replace(TRAIN, max_epochs=1))
    assert first.best_pass == 1
    seed0 = _weights(tmp_path / "seed0" / "last.pt")
    assert not all(torch.equal(seed0[k], seed1[k]) for k in seed0)


@pytest.mark.slow
def test_resume_after_interruption_matches_an_uninterrupted_run(
    cohort: Cohort,
    fold: Fold,
    model_config: ModelConfig,
    reference: tuple[TrainResult, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, ref_dir = reference
    run_dir = tmp_path / "interrupted"
    real_scores = trainer.validation_scores
    calls = []

    def killed_in_pass_3(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if Ctrl-C hit after pass 3's training, before its checkpoint
        return real_scores(*args, **kwargs)

    monkeypatch.setattr(trainer, "validation_scores", killed_in_pass_3)
    with pytest.raises(KeyboardInterrupt):
        _train(cohort, fold, model_config, run_dir)
    monkeypatch.setattr(trainer, "validation_scores", real_scores)
    state = load_checkpoint(run_dir / "last.pt")
    assert state["next_pass"] == 2 and len(state["history"]) == 2
    assert not (run_dir / "history.json").exists()

    # the same config refuses to resume with another training config
    with pytest.raises(CheckpointError, match="different config"):
        _train(cohort, fold, model_config, run_dir, replace(TRAIN, lr=1e-3))

    resumed = _train(cohort, fold, model_config, run_dir)
    assert [h["pass"] for h in resumed.history] == list(range(1, TRAIN.max_epochs + 1))
    assert [h["val_accuracy"] for h in resumed.history] == [h["val_accuracy"] for h in result.history]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in result.history]
    _assert_same_weights(_weights(ref_dir / "last.pt"), _weights(run_dir / "last.pt"))
    _assert_same_weights(_weights(ref_dir / "best.pt"), _weights(run_dir / "best.pt"))
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["pass"] for h in history] == list(range(1, TRAIN.max_epochs + 1))


@pytest.mark.slow
def test_checkpoint_contents_and_round_trip(
    cohort: Cohort, fold: Fold, model_config: ModelConfig, reference: tuple[TrainResult, Path]
) -> None:
    result, ref_dir = reference
    state = torch.load(ref_dir / "best.pt", map_location="cpu", weights_only=True)
    assert state["format"] == CHECKPOINT_FORMAT
    assert state["label_set"] == "aasm"
    assert state["modalities"] == ["eeg", "eog", "emg"]
    assert state["preprocess"] == cohort.manifest["config"]["preprocess"]
    assert {"somna", "torch", "numpy", "python"} <= set(state["versions"])
    assert state["versions"]["torch"] == str(torch.__version__)
    assert state["train_config"] == asdict(TRAIN)
    assert state["fold"] == fold.to_dict()
    assert state["model_config"]["seq_len"] == 8 and state["best_pass"] == result.best_pass
    last = torch.load(ref_dir / "last.pt", map_location="cpu", weights_only=True)
    assert {"optimizer_state", "scheduler_state", "torch_rng", "history", "next_pass"} <= set(last)

    model, loaded = model_from_checkpoint(ref_dir / "best.pt")
    assert not model.training and model.config == model_config and loaded["best_pass"] == result.best_pass
    by_hand = StagingNetwork(model_config)
    by_hand.load_state_dict(state["model_state"])
    night = load_night(cohort, records_of(cohort, fold.test)[0], AASM, model_config.modalities)
    np.testing.assert_array_equal(predict_night(model, night), predict_night(by_hand, night))


def test_save_and_load_give_identical_predictions(tmp_path: Path) -> None:
    config = ModelConfig(modalities=("eeg", "eog"), n_chans=(("eeg", 2), ("eog", 1)), n_classes=3, **MODEL)
    torch.manual_seed(4)
    model = StagingNetwork(config)
    model.train()
    with torch.no_grad():  # move BatchNorm statistics away from their initial values
        model({"eeg": torch.randn(2, 9, 2, 3000) * 3 + 1, "eog": torch.randn(2, 9, 1, 3000)})
    path = save_checkpoint(tmp_path / "m.pt", model, AASM, {"sfreq": 100.0}, note="x")
    restored, state = model_from_checkpoint(path)
    assert state["note"] == "x" and state["modalities"] == ["eeg", "eog"]
    rng = np.random.default_rng(0)
    signals = {m: rng.standard_normal((30, c, 3000)).astype(np.float32) for m, c in config.n_chans}
    night = NightArrays("R", "S", signals, np.zeros(30, dtype=np.int64))
    np.testing.assert_array_equal(predict_night(model, night), predict_night(restored, night))


# --- corrupt checkpoints ------------------------------------------------------------------------------


class Opaque:
    """An arbitrary object, pickled as a checkpoint."""

    def __init__(self) -> None:
        self.value = 3


def _write_case(case: str, path: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    good = save_checkpoint(tmp_path / "good.pt", StagingNetwork(ModelConfig(**MODEL)), AASM, {"sfreq": 100.0})
    raw = good.read_bytes()
    if case == "truncated_half":
        path.write_bytes(raw[: len(raw) // 2])
    elif case == "truncated_head":
        path.write_bytes(raw[:200])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "random_zip_magic":
        path.write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(2000))
    elif case == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(2000))
    elif case == "text_file":
        path.write_text("epoch,stage\n0,W\n1,N1\n")
    elif case == "plain_tensor":
        torch.save(torch.zeros(3, 4), path)
    elif case == "state_dict_only":
        torch.save(OrderedDict(w=torch.zeros(2)), path)
    elif case == "other_format":
        torch.save({"format": "somna-checkpoint-0", "model_state": {}}, path)
    elif case == "somna_format_lacking_keys":
        torch.save({"format": CHECKPOINT_FORMAT, "model_state": {}}, path)
    elif case == "torch_save_of_object":
        torch.save({"format": CHECKPOINT_FORMAT, "x": Fraction(1, 3)}, path)
    elif case == "pickle_of_object":
        path.write_bytes(pickle.dumps(Opaque()))
    elif case == "weights_not_matching_config":
        state = torch.load(good, weights_only=True)
        state["model_config"]["embed_dim"] = 32
        torch.save(state, path)
    else:  # pragma: no cover
        raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "truncated_half",
        "truncated_head",
        "empty",
        "random_zip_magic",
        "random_bytes",
        "text_file",
        "plain_tensor",
        "state_dict_only",
        "other_format",
        "somna_format_lacking_keys",
        "torch_save_of_object",
        pytest.param(
            "pickle_of_object",
            marks=[pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")],
        ),
        "weights_not_matching_config",
    ],
)
def test_corrupt_checkpoint_gives_a_clear_checkpoint_error(case: str, tmp_path: Path) -> None:
    path = tmp_path / f"{case}.pt"
    _write_case(case, path, tmp_path)
    try:
        model_from_checkpoint(path)
    except CheckpointError as err:
        message = str(err)
        assert message.startswith(f"{path}: "), message
        assert "checkpoint" in err.problem
        assert "\n" not in message, message
        assert "file an issue" not in message and "weights_only` set to `False`" not in message, message
        # no chained torch/pickle traceback behind it
        assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    else:
        pytest.fail(f"{case}: no CheckpointError")


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


# --- learning -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_model_learns_above_the_majority_rate_on_held_out_subjects(
    cohort: Cohort, fold: Fold, reference: tuple[TrainResult, Path]
) -> None:
    result, ref_dir = reference
    model, _ = model_from_checkpoint(ref_dir / "best.pt")
    nights = [load_night(cohort, r, AASM, model.config.modalities) for r in records_of(cohort, fold.test)]
    assert {n.subject_id for n in nights} == set(fold.test)
    labels = np.concatenate([n.labels for n in nights])
    preds = np.concatenate([predict_night(model, n).argmax(1) for n in nights])
    scored = labels != UNSCORED
    accuracy = float(np.mean(preds[scored] == labels[scored]))
    majority = float(np.bincount(labels[scored]).max() / scored.sum())
    chance = 1.0 / AASM.n_classes
    assert accuracy > max(majority + 0.05, chance), f"accuracy {accuracy:.3f}, majority rate {majority:.3f}"
    print(f"held-out accuracy {accuracy:.3f}, majority rate {majority:.3f}")
    assert len(np.unique(preds)) >= 2  # not the constant majority predictor
    assert result.history[-1]["loss"] < result.history[0]["loss"]


# --- experiments --------------------------------------------------------------------------------------


EXPERIMENT_NAME = "tiny"


def _experiment(cohort: Cohort) -> ExperimentConfig:
    return ExperimentConfig(
        data=DataConfig(cache=str(cohort.root)),
        model=ModelConfig(**MODEL),
        training=replace(TRAIN, max_epochs=2),
        cv=CV,
        name=EXPERIMENT_NAME,
    )


@pytest.fixture(scope="module")
def holdout_run(cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("holdout") / "run"
    return run_dir, run_experiment(_experiment(cohort), run_dir, mode="holdout", progress=False)


@pytest.mark.slow
def test_holdout_run_writes_predictions_and_report(holdout_run: tuple[Path, dict]) -> None:
    run_dir, pooled = holdout_run
    for name in ("experiment.json", "evaluation.json", "evaluation.md", "confusion_matrix.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fold_dir = run_dir / "fold_00"
    for name in ("best.pt", "last.pt", "history.json", "predictions.npz", "train_summary.json"):
        assert (fold_dir / name).is_file(), name
    assert [p.name for p in run_dir.glob("fold_*")] == ["fold_00"]
    report = json.loads((run_dir / "evaluation.json").read_text())
    assert report["pooled"]["accuracy"] == pytest.approx(pooled["accuracy"])
    payload = json.loads((run_dir / "experiment.json").read_text())
    assert payload["mode"] == "holdout" and len(payload["folds"]) == 1
    with np.load(fold_dir / "predictions.npz") as data:
        assert set(data["subject"].tolist()) == set(payload["folds"][0]["test"])
        assert pooled["n_epochs"] == int(np.sum(data["y_true"] != UNSCORED))
        accuracy = float(np.mean(data["probs"].argmax(1) == data["y_true"]))
    assert pooled["accuracy"] == pytest.approx(accuracy)
    assert EXPERIMENT_NAME in (run_dir / "evaluation.md").read_text()
    # evaluate_run alone reproduces the numbers from the stored predictions
    assert evaluate_run(run_dir, progress=False)["accuracy"] == pooled["accuracy"]


@pytest.mark.slow
def test_holdout_rerun_skips_finished_folds(
    cohort: Cohort, holdout_run: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, pooled = holdout_run
    fold_dir = run_dir / "fold_00"
    mtimes = {p.name: p.stat().st_mtime_ns for p in fold_dir.iterdir()}

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr("somna.training.experiment.train_model", no_training)
    again = run_experiment(_experiment(cohort), run_dir, mode="holdout", progress=False)
    assert again["accuracy"] == pooled["accuracy"]
    assert {p.name: p.stat().st_mtime_ns for p in fold_dir.iterdir()} == mtimes


@pytest.mark.slow
def test_run_folder_refuses_another_experiment(cohort: Cohort, holdout_run: tuple[Path, dict]) -> None:
    run_dir, _ = holdout_run
    before = (run_dir / "experiment.json").read_text()
    other = replace(_experiment(cohort), training=replace(TRAIN, max_epochs=3))
    with pytest.raises(SomnaError, match="different config"):
        run_experiment(other, run_dir, mode="holdout", progress=False)
    assert (run_dir / "experiment.json").read_text() == before


def test_evaluate_run_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(SomnaError, match="not a run folder") as info:
        evaluate_run(tmp_path, progress=False)
    assert info.value.path == tmp_path


def test_evaluate_run_refuses_a_run_without_predictions(tmp_path: Path) -> None:
    payload = {
        "experiment": ExperimentConfig().to_dict(),
        "mode": "cv",
        "cohort": "x",
        "records": [],
        "folds": [Fold(0, ("a",), ("b",), ("c",)).to_dict()],
    }
    (tmp_path / "experiment.json").write_text(json.dumps(payload))
    with pytest.raises(SomnaError, match="no test predictions"):
        evaluate_run(tmp_path, progress=False)
