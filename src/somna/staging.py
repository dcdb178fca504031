"""Trained stagers: one model, a hierarchical pair (Wake/Sleep then NREM/REM), or an ensemble of folds.

:class:`SleepStager` is what scoring uses: load it from a run folder or a checkpoint, then ask it for
stage probabilities and stages of a night.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from somna.data.sequences import NightArrays
from somna.errors import CheckpointError
from somna.inference import predict_night
from somna.models import SequenceStager
from somna.stages import NREM_REM, THREE_CLASS, TWO_CLASS, LabelSet, get_label_set
from somna.training.checkpoint import model_from_checkpoint

__all__ = ["BACKENDS", "HIERARCHICAL", "SleepStager", "load_stager", "merge_hierarchical", "task_label_sets"]

HIERARCHICAL = "hierarchical"
"""Label-set name of hierarchical 3-class staging: stage 1 Wake vs Sleep, stage 2 REM vs NREM on sleep."""


def _inference_model(path: Path) -> tuple[SequenceStager, dict[str, Any]]:
    """A checkpoint's model, ready for inference (:meth:`SequenceStager.for_inference`), and its state."""
    model, state = model_from_checkpoint(path)
    return model.for_inference(), state


def task_label_sets(name: str) -> tuple[LabelSet, list[tuple[str | None, LabelSet]]]:
    """Output label set of a task and the (sub-folder, label set) of each model it trains.

    ``"hierarchical"`` gives 3-class output from two models, ``stage1`` (W / Sleep) and ``stage2``
    (NREM / REM, trained on sleep epochs only: wake epochs stay in the sequence as context but are not
    targets); any other name is one model with that label set, in the fold folder itself.
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


@dataclass
class SleepStager:
    """Trained model(s) that stage nights.

    Parameters
    ----------
    members : list of dict of str to SequenceStager
        One entry per trained fold; each maps a role (``"model"``, or ``"stage1"`` and ``"stage2"``
        for hierarchical staging) to its model. Probabilities are averaged over members.
    task : str
        Label-set name of the output (``"aasm"``, ``"rk"``, ``"3class"``, ``"2class"``, ``"hierarchical"``).
    modalities : tuple of str
        Modalities the models read.
    preprocess : dict
        Preprocessing parameters the models were trained with (apply the same to new recordings).
    channels : dict | None
        Channel aliases of the training cohort, when known.
    """

    members: list[dict[str, SequenceStager]]
    task: str
    modalities: tuple[str, ...]
    preprocess: dict[str, Any]
    channels: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # Models saved before `stats_samples` existed were trained with 2^19 samples per channel.
        self.preprocess = {"stats_samples": LEGACY_STATS_SAMPLES, **self.preprocess}

    @property
    def label_set(self) -> LabelSet:
        """Stages the stager outputs."""
        return task_label_sets(self.task)[0]

    @property
    def seq_len(self) -> int:
        """Epochs each prediction depends on (the longest of the members)."""
        return max(m.seq_len for member in self.members for m in member.values())

    @classmethod
    def from_run(cls, path: str | Path) -> SleepStager:
        """Load from a checkpoint file, a fold folder or a run folder (all folds become an ensemble).

        Raises
        ------
        CheckpointError
            If nothing loadable is there, or the checkpoints disagree on modalities or preprocessing.
        """
        path = Path(path)
        if path.is_file():
            model, state = _inference_model(path)
            return cls(
                [{"model": model}], state["label_set"], tuple(state["modalities"]), state["preprocess"]
            )
        experiment_file = path / "experiment.json"
        fold_dirs = sorted(path.glob("fold_*")) if experiment_file.is_file() else [path]
        task = None
        if experiment_file.is_file():
            task = json.loads(experiment_file.read_text())["experiment"]["data"]["label_set"]
        members, states = [], []
        for fold_dir in fold_dirs:
            if (fold_dir / "best.pt").is_file():
                model, state = _inference_model(fold_dir / "best.pt")
                members.append({"model": model})
                states.append(state)
            elif (fold_dir / "stage1" / "best.pt").is_file() and (fold_dir / "stage2" / "best.pt").is_file():
                pair = {}
                for role in ("stage1", "stage2"):
                    pair[role], state = _inference_model(fold_dir / role / "best.pt")
                    states.append(state)
                members.append(pair)
                task = HIERARCHICAL
        if not members:
            raise CheckpointError(
                "no trained model here (expected best.pt, or fold_XX/ folders of a run)", path
            )
        if len({json.dumps(s["preprocess"], sort_keys=True) for s in states}) > 1:
            raise CheckpointError("the checkpoints were trained with different preprocessing", path)
        if len({tuple(s["modalities"]) for s in states}) > 1:
            raise CheckpointError("the checkpoints read different modalities", path)
        task = task or states[0]["label_set"]
        return cls(members, task, tuple(states[0]["modalities"]), states[0]["preprocess"])

    def predict(self, night: NightArrays) -> tuple[np.ndarray, np.ndarray]:
        """Stage probabilities and stages of every epoch of a night.

        Returns
        -------
        probs : np.ndarray of float32, shape (n_epochs, n_classes)
            Averaged over members, in :attr:`label_set` order.
        stages : np.ndarray of int64, shape (n_epochs,)
            Codes of :attr:`label_set` (argmax, or the cascade for hierarchical staging).
        """
        if self.task == HIERARCHICAL:
            sleep = np.mean([predict_night(m["stage1"], night) for m in self.members], axis=0)
            rem = np.mean([predict_night(m["stage2"], night) for m in self.members], axis=0)
            return merge_hierarchical(sleep, rem)
        probs = np.mean([predict_night(m["model"], night) for m in self.members], axis=0).astype(np.float32)
        return probs, probs.argmax(axis=1).astype(np.int64)


LEGACY_STATS_SAMPLES = 2**19
"""``stats_samples`` of models whose saved preprocessing does not name it."""

BACKENDS = ("torch", "onnx", "onnx-int8")
"""How a stager runs: torch checkpoints, or an ONNX export (fp32 or int8) run by onnxruntime."""


def load_stager(path: str | Path, backend: str = "torch", threads: int = 2) -> SleepStager:
    """Load a stager for scoring or streaming.

    Parameters
    ----------
    path : str | Path
        ``torch``: a run folder, fold folder or checkpoint (:meth:`SleepStager.from_run`); ``onnx`` /
        ``onnx-int8``: a folder written by ``somna export --onnx`` (:func:`somna.export.load_onnx_stager`).
    backend : {"torch", "onnx", "onnx-int8"}
    threads : int
        onnxruntime intra-op threads (the torch backend uses torch's setting).

    Raises
    ------
    CheckpointError
        If nothing loadable is there.
    """
    if backend == "torch":
        return SleepStager.from_run(path)
    if backend in ("onnx", "onnx-int8"):
        from somna.export import load_onnx_stager  # onnxruntime is only needed for this backend

        return load_onnx_stager(path, "int8" if backend == "onnx-int8" else "fp32", threads)
    raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
