"""Checkpoints: written atomically, loaded with ``weights_only=True``, refused with a clear error when wrong.

A checkpoint carries everything needed to use the model on new data: the weights, the model config,
the label set, the modalities, the preprocessing parameters, the training config and the package
versions it was made with; a resumable checkpoint also holds optimiser, scheduler and RNG state.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from somna import __version__
from somna.config import ModelConfig
from somna.errors import CheckpointError, SomnaError
from somna.models.network import StagingNetwork
from somna.models.run_folder import run_checkpoints
from somna.stages import LabelSet, get_label_set
from somna.storage import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "check_finite",
    "load_checkpoint",
    "load_run",
    "model_from_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "somna-checkpoint-2"
_REQUIRED = ("format", "model_state", "model_config", "label_set", "modalities", "preprocess", "versions")


def _versions() -> dict[str, str]:
    return {
        "somna": __version__,
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
    }


def save_checkpoint(
    path: str | Path, model: StagingNetwork, label_set: LabelSet, preprocess: dict[str, Any], **extra: Any
) -> Path:
    """Write a checkpoint atomically (temporary file, fsync, rename).

    Parameters
    ----------
    path : str | Path
        Target ``.pt`` file.
    model : StagingNetwork
        The model; its config is stored beside the weights.
    label_set : LabelSet
        Stages the model outputs, in output order.
    preprocess : dict
        Preprocessing parameters of the data it was trained on (``asdict(PreprocessConfig)``).
    **extra
        More entries (training config, history, optimiser and RNG state for resuming, metrics). Only
        tensors, numbers, strings, lists, tuples and dicts: anything else could not be loaded with
        ``weights_only=True``.

    Returns
    -------
    Path
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_state": model.state_dict(),
        "model_config": model.config.to_dict(),
        "label_set": label_set.name,
        "modalities": list(model.config.modalities),
        "preprocess": preprocess,
        "versions": _versions(),
        **extra,
    }
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def _reason(err: Exception) -> str:
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:  # torch leads with advice to load unsafely; the cause follows this marker
        cause = next((line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()), "")
        return f"{cause.split('. Please use')[0]} (not loadable with weights_only=True)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its format.

    Raises
    ------
    CheckpointError
        If the file is missing, not a torch checkpoint (truncated, corrupt, another format), holds
        objects that are not plain data, or lacks somna's entries.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"not a readable somna checkpoint: {_reason(err)}", path) from None
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    if found != CHECKPOINT_FORMAT:
        if str(found).startswith("somna-checkpoint-"):
            raise CheckpointError(
                f"written by another version of somna (format {found!r}; this version reads "
                f"{CHECKPOINT_FORMAT!r}): train the model again with this version",
                path,
            )
        raise CheckpointError(
            f"not a somna checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})", path
        )
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint lacks {missing}", path)
    return state


def model_from_checkpoint(path: str | Path) -> tuple[StagingNetwork, dict[str, Any]]:
    """Rebuild the model of a checkpoint in eval mode; returns it and the checkpoint dict.

    Raises
    ------
    CheckpointError
        If the checkpoint is unreadable or its weights do not fit its own model config.
    """
    state = load_checkpoint(path)
    try:
        model = StagingNetwork(ModelConfig.from_dict(state["model_config"]))
        model.load_state_dict(state["model_state"])
        get_label_set(state["label_set"])
    except (SomnaError, TypeError, ValueError, RuntimeError, KeyError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"checkpoint does not match its model config: {first_line}", path) from None
    model.eval()
    return model, state


def check_finite(network: StagingNetwork, where: str | Path) -> None:
    """Refuse a network with NaN or infinite weights (a corrupted file would stage every epoch alike).

    Raises
    ------
    CheckpointError
        Naming the first such weight.
    """
    for name, tensor in network.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"weight {name!r} holds NaN or infinite values: the file is corrupt", where)


def _agreeing(states: list[dict[str, Any]], key: str, where: Path) -> Any:
    if len({json.dumps(s.get(key), sort_keys=True) for s in states}) > 1:
        raise CheckpointError(f"the checkpoints disagree on their {key}", where)
    return states[0].get(key)


def load_run(
    path: str | Path,
) -> tuple[list[dict[str, StagingNetwork]], list[dict[str, Path]], dict[str, Any]]:
    """Every trained network of a run folder, a fold folder or a checkpoint file.

    Returns
    -------
    networks : list of dict of str to StagingNetwork
        Per fold, role → network (eval mode, weights checked finite).
    checkpoints : list of dict of str to Path
        The file of each network.
    info : dict
        ``task``, ``modalities``, ``preprocess``, ``channels`` (``None`` when not stored) and, when
        stored, ``trained_on`` (:mod:`somna.provenance`) and ``profile`` (:mod:`somna.data.profile`, the
        first fold's): what a stager needs besides the networks.

    Raises
    ------
    CheckpointError
        If nothing loadable is there, a file is corrupt, or the checkpoints disagree on modalities,
        preprocessing or channels.
    """
    path = Path(path)
    checkpoints, task = run_checkpoints(path)
    networks, states = [], []
    for member in checkpoints:
        loaded = {}
        for role, file in member.items():
            network, state = model_from_checkpoint(file)
            check_finite(network, file)
            loaded[role] = network
            states.append(state)
        networks.append(loaded)
    info = {
        "task": task or states[0]["label_set"],
        "modalities": _agreeing(states, "modalities", path),
        "preprocess": _agreeing(states, "preprocess", path),
        "channels": _agreeing(states, "channels", path),
    }
    for key in ("trained_on", "profile"):
        if key in states[0]:
            info[key] = states[0][key]
    return networks, checkpoints, info
