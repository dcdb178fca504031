"""Experiment configuration: data, model, training and cross-validation, from one TOML file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from somna.config import build_section, read_toml
from somna.errors import SomnaError
from somna.models import ModelConfig

__all__ = ["CVConfig", "DataConfig", "ExperimentConfig", "TrainConfig", "load_experiment"]


@dataclass(frozen=True)
class DataConfig:
    """Where the cohort is and what the model sees.

    Parameters
    ----------
    cache : str
        Prepared cohort folder (``somna prepare``); relative paths are taken from the working directory.
    edf_folder : str | None
        Folder of Sleep-EDF files, prepared into ``cache`` first when the cache does not exist yet.
    cohort_config : str | None
        TOML with [channels]/[preprocess] used for that preparation (default: Sleep-EDF defaults).
    label_set : str
        ``"aasm"`` (5-class), ``"rk"`` (6-class), ``"3class"`` or ``"2class"``.
    modalities : tuple of str
        ``("eeg",)``, ``("eeg", "eog")`` or ``("eeg", "eog", "emg")``.
    """

    cache: str = "runs/demo/cache"
    edf_folder: str | None = None
    cohort_config: str | None = None
    label_set: str = "aasm"
    modalities: tuple[str, ...] = ("eeg", "eog", "emg")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation.

    Parameters
    ----------
    max_epochs : int
        Passes over the training nights.
    patience : int
        Stop after this many passes without a better validation accuracy (macro-F1 breaks ties).
    batch_size, chunk_len : int
        Chunks per batch and epochs per chunk.
    lr, weight_decay : float
        AdamW peak learning rate (one-cycle schedule: warm-up then cosine decay) and weight decay.
    class_weights : str
        ``"none"``, ``"balanced"`` (inverse class frequency) or ``"sqrt"`` (its square root) for the
        cross-entropy.
    seed : int
        Seeds weights, dropout and chunk order: same seed and data, same weights.
    threads : int
        Torch CPU threads.
    device : str
        Where a single-process run trains: ``"cpu"``, ``"cuda"`` (the current GPU; an error where none
        is visible) or ``"auto"`` (the GPU when torch sees one, else the CPU). Under ``torchrun`` each
        process takes ``cuda:LOCAL_RANK`` with NCCL, else the CPU. The same seed and data give the same
        weights on the same kind of device; CPU and GPU runs differ by float rounding.
    """

    max_epochs: int = 30
    patience: int = 8
    batch_size: int = 8
    chunk_len: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-2
    class_weights: str = "sqrt"
    seed: int = 0
    threads: int = 2
    device: str = "auto"


@dataclass(frozen=True)
class CVConfig:
    """Subject-wise evaluation protocol.

    Parameters
    ----------
    n_folds : int
        Folds of ``somna cv`` (subjects tested once each).
    validation_fraction : float
        Share of each fold's training subjects used to choose the checkpoint.
    test_fraction : float
        Share of subjects tested by ``somna train`` (one hold-out split).
    seed : int
        Seed of the subject assignment.
    """

    n_folds: int = 5
    validation_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment; with its seed it reruns to the same numbers."""

    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)
    training: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    name: str = "experiment"

    def model_config(
        self, n_chans: dict[str, int], n_times: int, emg_n_times: int, n_classes: int
    ) -> ModelConfig:
        """The model config for data with these shapes (TOML [model] keys override the defaults)."""
        return ModelConfig(
            modalities=self.data.modalities,
            n_chans=tuple((m, n_chans[m]) for m in self.data.modalities),
            n_times=n_times,
            emg_n_times=emg_n_times,
            n_classes=n_classes,
            **self.model,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (run folders and checkpoints store it)."""
        return asdict(self)


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read an experiment config (tables ``[data]``, ``[model]``, ``[training]``, ``[cv]``).

    Raises
    ------
    SomnaError
        If the file is missing, not TOML, or has unknown keys (naming the file and the key).
    """
    raw = read_toml(path)
    model = dict(raw.get("model", {}))
    model_keys = {f.name for f in fields(ModelConfig)} - {
        "modalities",
        "n_chans",
        "n_times",
        "emg_n_times",
        "n_classes",
    }
    unknown = sorted(set(model) - model_keys)
    if unknown:
        raise SomnaError(f"unknown key(s) {unknown} in [model]; known: {sorted(model_keys)}", path)
    unknown_tables = sorted(set(raw) - {"data", "model", "training", "cv", "name"})
    if unknown_tables:
        raise SomnaError(f"unknown table(s) {unknown_tables}", path)
    return ExperimentConfig(
        data=build_section(DataConfig, dict(raw.get("data", {})), "data", path),
        model=model,
        training=build_section(TrainConfig, dict(raw.get("training", {})), "training", path),
        cv=build_section(CVConfig, dict(raw.get("cv", {})), "cv", path),
        name=str(raw.get("name", Path(path).stem)),
    )
