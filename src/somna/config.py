"""Configuration: typed dataclasses, loaded from TOML files.

Two kinds of file, both checked strictly (an unknown table or key is an error naming the file and the
key):

* a **cohort** file: ``[channels]`` (modality → list of alias lists) and ``[preprocess]``
  (:class:`PreprocessConfig`) — how recordings are read and turned into model input;
* an **experiment** file: ``[data]``, ``[model]``, ``[training]``, ``[cv]`` and ``name`` — a whole
  experiment, which reruns to the same numbers with the same seed and data.

The configs somna ships (``sleep-edf``, ``demo``, ``sleep-edf-20``, ``sleep-edf-78``) are package data;
every ``--config`` option takes either a file path or one of these names (:func:`config_path`).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from somna.errors import SomnaError
from somna.io.channels import MODALITIES, ChannelSpec, copy_spec

__all__ = [
    "CVConfig",
    "CohortConfig",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "PreprocessConfig",
    "TrainConfig",
    "config_path",
    "load_cohort_config",
    "load_experiment",
    "packaged_configs",
]


def _check_choice(value: Any, allowed: tuple[Any, ...], what: str) -> None:
    if value not in allowed:
        raise SomnaError(f"{what} must be one of {list(allowed)}, not {value!r}")


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw PSG becomes model input.

    Parameters
    ----------
    sfreq : float
        Rate of EEG and EOG after resampling, Hz.
    eeg_band, eog_band : tuple of float
        Band-pass edges in Hz (MNE's zero-phase FIR design, applied after resampling); the upper edge is
        lowered to 45 % of the input rate for slow recordings (a 50 Hz file keeps up to 22.5 Hz).
    emg_sfreq : float
        Rate of the EMG envelope, Hz (Sleep-EDF SC stores a 1 Hz envelope; raw EMG is turned into a
        1 Hz RMS envelope so SC and ST look alike).
    emg_highpass : float
        High-pass edge applied to raw EMG before the RMS envelope, Hz.
    clip : float
        Normalised signals are clipped to ± this many robust standard deviations (artefacts); see
        :mod:`somna.preprocess.normalise` for the running normalisation.
    trim_wake_min : float | None
        Minutes of wake kept before the first and after the last sleep epoch when a cohort is
        prepared; ``None`` (``-1`` in TOML) keeps the whole recording.
    epoch_s : float
        Scoring epoch length, s.
    """

    sfreq: float = 100.0
    eeg_band: tuple[float, float] = (0.3, 35.0)
    eog_band: tuple[float, float] = (0.3, 35.0)
    emg_sfreq: float = 1.0
    emg_highpass: float = 10.0
    clip: float = 20.0
    trim_wake_min: float | None = 30.0
    epoch_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("sfreq", "emg_sfreq", "emg_highpass", "clip", "epoch_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise SomnaError(f"preprocess {name} must be a positive number, not {value!r}")
        for name in ("eeg_band", "eog_band"):
            band = getattr(self, name)
            ok = len(band) == 2 and all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in band)
            if not ok or not 0 < band[0] < band[1]:
                raise SomnaError(
                    f"preprocess {name} must be [low, high] Hz with 0 < low < high, not {band!r}"
                )

    @property
    def samples_per_epoch(self) -> int:
        """Samples of one EEG/EOG epoch after resampling."""
        return round(self.sfreq * self.epoch_s)

    @property
    def emg_samples_per_epoch(self) -> int:
        """Samples of one EMG-envelope epoch."""
        return round(self.emg_sfreq * self.epoch_s)


@dataclass(frozen=True)
class CohortConfig:
    """Which channels a cohort is read from, and how it is preprocessed.

    ``channel_choice`` says which of a slot's names a night is read from when its file has several:
    ``"first"`` (the first the file has, in the listed order) or ``"random"`` (one of those the file
    has, drawn per night from its record name: reproducible), which trains a model on every
    derivation a slot lists, e.g. any single EEG derivation (the packaged ``synthetic-one-eeg``).
    """

    channels: ChannelSpec = field(default_factory=copy_spec)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    channel_choice: str = "first"

    def __post_init__(self) -> None:
        _check_choice(self.channel_choice, ("first", "random"), "channel_choice")

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (manifests and checkpoints store it)."""
        return asdict(self)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the staging network (:class:`somna.models.StagingNetwork`).

    In an experiment file the ``[model]`` table sets the architecture (``seq_len`` … ``dropout``); the
    shapes (``modalities`` … ``n_classes``) always come from the data.

    Parameters
    ----------
    modalities : tuple of str
        Any of ``("eeg",)``, ``("eeg", "eog")``, ``("eeg", "eog", "emg")``.
    n_chans : tuple of (str, int)
        Channels per modality, as ``(("eeg", 2), ("eog", 1), ("emg", 1))``.
    n_times : int
        Samples of a 100 Hz epoch; ``emg_n_times`` of an EMG-envelope epoch.
    n_classes : int
        Output stages (5 for AASM, 6 for R&K, 3, or 2).
    seq_len : int
        Epochs each prediction sees (``SEQ_LEN``): the target epoch and the ``seq_len - 1`` before it.
        The TCN's receptive field plus the attention span minus one equals ``seq_len``.
    embed_dim : int
        Embedding size through TCN and attention.
    cnn_width : int
        Filters of the CNN's first block (twice as many after). 16 is the default; on the synthetic
        demo cohort widths 8, 16 and 32 score alike, so compare widths on real recordings. For 6-class
        R&K staging 32 separates S3 from S4 better.
    cnn_stride : int
        Stride of the CNN's first convolution (0.25-s kernel), its max pooling making up the rest of
        a 0.2-s step.
    tcn_kernel : int
        TCN kernel size; its dilations are 1, 2, 4, ... as long as the receptive field fits ``seq_len``.
    n_heads : int
        Attention heads.
    dropout : float
        Dropout throughout.
    """

    modalities: tuple[str, ...] = ("eeg", "eog", "emg")
    n_chans: tuple[tuple[str, int], ...] = (("eeg", 2), ("eog", 1), ("emg", 1))
    n_times: int = 3000
    emg_n_times: int = 30
    n_classes: int = 5
    seq_len: int = 20
    embed_dim: int = 64
    cnn_width: int = 16
    cnn_stride: int = 10
    tcn_kernel: int = 3
    n_heads: int = 4
    dropout: float = 0.1

    SHAPE_FIELDS = ("modalities", "n_chans", "n_times", "emg_n_times", "n_classes")

    def __post_init__(self) -> None:
        if self.seq_len < self.tcn_kernel:
            raise SomnaError(f"seq_len ({self.seq_len}) must be at least tcn_kernel ({self.tcn_kernel})")
        if "eeg" not in self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise SomnaError(f"model modalities must include 'eeg' and come from {MODALITIES}")

    @property
    def tcn_dilations(self) -> tuple[int, ...]:
        """Dilations 1, 2, 4, … while the receptive field stays at most half of ``seq_len``."""
        dilations: list[int] = []
        d = 1
        while 1 + (self.tcn_kernel - 1) * (sum(dilations) + d) <= max(
            self.seq_len // 2, 1 + (self.tcn_kernel - 1)
        ):
            dilations.append(d)
            d *= 2
        return tuple(dilations) or (1,)

    @property
    def attention_span(self) -> int:
        """Positions the attention sees: ``seq_len`` minus the TCN's receptive field, plus one."""
        return self.seq_len - (1 + (self.tcn_kernel - 1) * sum(self.tcn_dilations)) + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """The config :meth:`to_dict` wrote (lists back to tuples).

        Raises
        ------
        SomnaError
            For a key that is not a setting.
        """
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise SomnaError(f"unknown model setting(s) {unknown}")
        data = dict(data)
        if "modalities" in data:
            data["modalities"] = tuple(data["modalities"])
        if "n_chans" in data:
            data["n_chans"] = tuple((str(m), int(n)) for m, n in data["n_chans"])
        return cls(**data)


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
        Cohort config (file or packaged name) used for that preparation (default: ``sleep-edf``).
    label_set : str
        ``"aasm"`` (5-class), ``"rk"`` (6-class), ``"3class"``, ``"2class"`` or ``"hierarchical"``.
    modalities : tuple of str
        ``("eeg",)``, ``("eeg", "eog")`` or ``("eeg", "eog", "emg")``.
    """

    cache: str = "runs/demo/cache"
    edf_folder: str | None = None
    cohort_config: str | None = None
    label_set: str = "aasm"
    modalities: tuple[str, ...] = ("eeg", "eog", "emg")

    def __post_init__(self) -> None:
        _check_choice(self.label_set, ("aasm", "rk", "3class", "2class", "hierarchical"), "data label_set")
        if "eeg" not in self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise SomnaError(f"data modalities must include 'eeg' and come from {MODALITIES}")


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
    augment : bool
        Augment the training signals: channel gain, EOG polarity, time shift, noise, slow drift,
        artefact bursts and flat stretches (:mod:`somna.training.augment`).
    modality_dropout : float
        Share of training chunks in which the EOG, or the EMG, is replaced by zeros (one EEG channel at
        half that share), so that the fused model keeps staging from the modalities that remain. Off
        by default: with augmentation on, 0.2 made the fused model worse on every shifted cohort of
        ``benchmarks/domain_shift.py`` but flat-lead and montage, in two training seeds (see the
        ablation there); flat EEG/EOG epochs reach the model as zeros either way.
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
    augment: bool = True
    modality_dropout: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.modality_dropout < 1.0:
            raise SomnaError(f"training modality_dropout must be in [0, 1), not {self.modality_dropout!r}")
        _check_choice(self.class_weights, ("none", "balanced", "sqrt"), "training class_weights")
        _check_choice(self.device, ("auto", "cpu", "cuda"), "training device")
        for name in ("max_epochs", "batch_size", "chunk_len", "threads"):
            if getattr(self, name) < 1:
                raise SomnaError(f"training {name} must be at least 1, not {getattr(self, name)!r}")


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
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    name: str = "experiment"

    def model_config(
        self, n_chans: dict[str, int], n_times: int, emg_n_times: int, n_classes: int
    ) -> ModelConfig:
        """The ``[model]`` architecture with the shapes of this data."""
        return replace(
            self.model,
            modalities=self.data.modalities,
            n_chans=tuple((m, n_chans[m]) for m in self.data.modalities),
            n_times=n_times,
            emg_n_times=emg_n_times,
            n_classes=n_classes,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (run folders and checkpoints store it); the model's data shapes left out."""
        out = asdict(self)
        for key in ModelConfig.SHAPE_FIELDS:
            out["model"].pop(key)
        return out


# --- TOML files ---------------------------------------------------------------------------------------

_PACKAGED = "somna.configs"


def packaged_configs() -> list[str]:
    """Names of the configs shipped with somna (``--config NAME`` finds them)."""
    return sorted(p.name[:-5] for p in resources.files(_PACKAGED).iterdir() if p.name.endswith(".toml"))


def config_path(name_or_path: str | Path) -> Path:
    """The file a ``--config`` value names: an existing path, else a packaged config by name.

    Raises
    ------
    SomnaError
        If it is neither, listing the packaged names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".toml") else path.name
    if path.parent == Path(".") and stem in packaged_configs():
        return Path(str(resources.files(_PACKAGED) / f"{stem}.toml"))
    raise SomnaError(f"config file not found (packaged configs: {', '.join(packaged_configs())})", path)


def _read_toml(path: Path, tables: set[str]) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise SomnaError(f"cannot read the config: {err.strerror or err}", path) from None
    except tomllib.TOMLDecodeError as err:
        raise SomnaError(f"not valid TOML: {err}", path) from None
    unknown = sorted(set(data) - tables)
    if unknown:
        raise SomnaError(f"unknown table(s) or key(s) {unknown}; known: {sorted(tables)}", path)
    return data


def _section(cls: type, values: Any, where: str, path: Path, exclude: tuple[str, ...] = ()) -> Any:
    """A config dataclass from one TOML table; unknown keys and bad values name the file and table."""
    if not isinstance(values, dict):
        raise SomnaError(f"[{where}] must be a table", path)
    known = {f.name for f in fields(cls)} - set(exclude)
    unknown = sorted(set(values) - known)
    if unknown:
        raise SomnaError(f"unknown key(s) {unknown} in [{where}]; known: {sorted(known)}", path)
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except SomnaError as err:
        raise SomnaError(f"[{where}] {err.problem}", path) from None
    except (TypeError, ValueError) as err:
        raise SomnaError(f"[{where}] {err}", path) from None


def _channels(values: Any, path: Path) -> ChannelSpec:
    if not isinstance(values, dict):
        raise SomnaError("[channels] must be a table", path)
    unknown = sorted(set(values) - set(MODALITIES))
    if unknown:
        raise SomnaError(f"unknown modality {unknown} in [channels]; known: {list(MODALITIES)}", path)
    spec: ChannelSpec = {}
    for modality, channels in values.items():
        ok = isinstance(channels, list) and all(
            isinstance(c, list) and c and all(isinstance(n, str) for n in c) for c in channels
        )
        if not ok or not channels:
            raise SomnaError(
                f'[channels] {modality} must be a list of alias lists, e.g. [["EEG Fpz-Cz", "Fpz-Cz"]]',
                path,
            )
        spec[modality] = [list(c) for c in channels]
    return {m: spec[m] for m in MODALITIES if m in spec}


def load_cohort_config(name_or_path: str | Path | None = None) -> CohortConfig:
    """Read a cohort config: ``[channels]`` and ``[preprocess]``.

    Parameters
    ----------
    name_or_path : str | Path | None
        A TOML file or a packaged config name (:func:`config_path`); ``None`` gives the defaults
        (Sleep-EDF channels, :class:`PreprocessConfig`). Without ``[channels]`` the Sleep-EDF channels
        are read; ``trim_wake_min = -1`` keeps whole recordings (TOML has no null).

    Returns
    -------
    CohortConfig

    Raises
    ------
    SomnaError
        If the file is missing, not TOML, or has an unknown table, key or value.
    """
    if name_or_path is None:
        return CohortConfig()
    path = config_path(name_or_path)
    data = _read_toml(path, {"channels", "preprocess", "channel_choice"})
    pre = dict(data.get("preprocess", {}))
    if isinstance(pre.get("trim_wake_min"), (int, float)) and pre["trim_wake_min"] < 0:
        pre["trim_wake_min"] = None
    channels = _channels(data["channels"], path) if "channels" in data else copy_spec()
    choice = data.get("channel_choice", "first")
    if choice not in ("first", "random"):
        raise SomnaError(f"channel_choice must be 'first' or 'random', not {choice!r}", path)
    return CohortConfig(
        channels=channels,
        preprocess=_section(PreprocessConfig, pre, "preprocess", path),
        channel_choice=choice,
    )


def load_experiment(name_or_path: str | Path) -> ExperimentConfig:
    """Read an experiment config: ``[data]``, ``[model]``, ``[training]``, ``[cv]`` and ``name``.

    Raises
    ------
    SomnaError
        If the file is missing, not TOML, or has an unknown table, key or value (naming the file and the
        key); ``[model]`` cannot set the data's shapes (``modalities``, ``n_chans``, ...).
    """
    path = config_path(name_or_path)
    raw = _read_toml(path, {"data", "model", "training", "cv", "name"})
    return ExperimentConfig(
        data=_section(DataConfig, raw.get("data", {}), "data", path),
        model=_section(ModelConfig, raw.get("model", {}), "model", path, exclude=ModelConfig.SHAPE_FIELDS),
        training=_section(TrainConfig, raw.get("training", {}), "training", path),
        cv=_section(CVConfig, raw.get("cv", {}), "cv", path),
        name=str(raw.get("name", path.stem)),
    )
