"""Loading a :class:`~somna.inference.stager.Stager`: one registry of backends that run trained models.

* ``torch``: the checkpoints of a run folder (every fold: an ensemble), of one fold, or one ``.pt`` file;
* ``onnx`` / ``onnx-int8``: an export folder (``somna export``; every training run writes one to
  ``RUN/onnx/``), run by onnxruntime — torch is not even imported;
* ``auto`` (the default): ``onnx`` when the folder is an export, or a run whose ``onnx/`` export holds
  exactly its current checkpoints (checked by SHA-256) and onnxruntime is installed; else ``torch``.

Both run the same networks; their probabilities agree within 1e-4 (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from somna.config import ModelConfig, PreprocessConfig
from somna.errors import CheckpointError, SomnaError
from somna.inference.stager import Stager
from somna.io.channels import MODALITIES, copy_spec
from somna.models.run_folder import ONNX_FOLDER, run_checkpoints

__all__ = ["BACKENDS", "load_stager"]


def _preprocess(values: Any, where: Path) -> PreprocessConfig:
    try:
        known = {f.name for f in fields(PreprocessConfig)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(values).items()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SomnaError(f"unknown preprocessing setting(s) {unknown}")
        return PreprocessConfig(**values)
    except (SomnaError, TypeError, ValueError) as err:
        raise CheckpointError(f"its preprocessing settings are unusable: {err}", where) from None


def _channels(values: Any, modalities: tuple[str, ...], where: Path) -> dict[str, list[list[str]]]:
    if values is None:
        return copy_spec()
    ok = isinstance(values, dict) and all(
        m in MODALITIES and isinstance(v, list) and all(isinstance(c, list) for c in v)
        for m, v in values.items()
    )
    if not ok or any(m not in values for m in modalities):
        raise CheckpointError("its channel list is unusable", where)
    return copy_spec(values)


def _stager(members: list[dict[str, Any]], info: dict[str, Any], where: Path, backend: str) -> Stager:
    """A Stager from its models and the ``info`` their checkpoints or manifest store, checked."""
    try:
        modalities = tuple(info["modalities"])
        task = str(info["task"])
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"its stored settings are incomplete: {err}", where) from None
    return Stager(
        members,
        task,
        modalities,
        _preprocess(info["preprocess"], where),
        _channels(info.get("channels"), modalities, where),
        name=str(where),
        backend=backend,
        info={k: info[k] for k in ("trained_on", "profile") if k in info},
    )


def _load_torch(path: Path, threads: int) -> Stager:
    from somna.models.checkpoint import load_run
    from somna.models.torch_model import TorchStageModel

    del threads  # torch's own setting applies
    networks, _, info = load_run(path)
    members = [{role: TorchStageModel(net.for_inference()) for role, net in m.items()} for m in networks]
    return _stager(members, info, path, "torch")


def _load_onnx(path: Path, threads: int, precision: str) -> Stager:
    from somna.models.onnx import GRAPHS, OnnxStageModel, read_onnx_manifest

    manifest = read_onnx_manifest(path)
    members = []
    try:
        for files in manifest["members"]:
            member = {}
            for role, entry in files.items():
                if precision not in entry:
                    raise CheckpointError(
                        f"this export has no {precision} graphs; export again with --int8", path
                    )
                paths = {graph: path / entry[precision][graph] for graph in GRAPHS}
                config = ModelConfig.from_dict(entry["model_config"])
                member[role] = OnnxStageModel(paths, config, threads)
            members.append(member)
    except CheckpointError:
        raise
    except (SomnaError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"the export's manifest is inconsistent: {err}", path) from None
    backend = "onnx" if precision == "fp32" else "onnx-int8"
    return _stager(members, manifest, path, backend)


_LOADERS: dict[str, Callable[[Path, int], Stager]] = {
    "torch": _load_torch,
    "onnx": lambda path, threads: _load_onnx(path, threads, "fp32"),
    "onnx-int8": lambda path, threads: _load_onnx(path, threads, "int8"),
}

BACKENDS: tuple[str, ...] = ("auto", *_LOADERS)
"""Backends :func:`load_stager` takes."""


def _onnxruntime_available() -> bool:
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


def _auto(path: Path) -> tuple[str, Path]:
    from somna.models.onnx import ONNX_MANIFEST, export_is_current

    if (path / ONNX_MANIFEST).is_file():
        return "onnx", path
    if path.is_dir() and (path / ONNX_FOLDER / ONNX_MANIFEST).is_file() and _onnxruntime_available():
        checkpoints, _ = run_checkpoints(path)
        if export_is_current(path / ONNX_FOLDER, checkpoints):
            return "onnx", path / ONNX_FOLDER
    return "torch", path


def load_stager(path: str | Path, backend: str = "auto", threads: int = 2) -> Stager:
    """Load trained model(s) for staging.

    Parameters
    ----------
    path : str | Path
        A run folder of ``somna train``/``cv`` (every fold's model: an ensemble), one fold's folder, a
        ``.pt`` checkpoint, or an ONNX export folder (``somna export``).
    backend : {"auto", "torch", "onnx", "onnx-int8"}
        What runs the models (see the module docstring); ``auto`` picks ONNX where a current export
        exists, since it starts several times faster than torch.
    threads : int
        onnxruntime threads (the torch backend uses torch's setting).

    Returns
    -------
    Stager

    Raises
    ------
    CheckpointError
        If nothing loadable is there, a file is corrupt (NaN weights included), or the checkpoints
        disagree on their modalities or preprocessing.

    Examples
    --------
    >>> stager = load_stager(model_folder)
    >>> stager.modalities
    ('eeg', 'eog', 'emg')
    """
    path = given = Path(path)
    if not path.exists():
        raise CheckpointError("no such file or folder", path)
    if backend not in BACKENDS:
        raise SomnaError(f"unknown backend {backend!r}; choose from {list(BACKENDS)}")
    if backend == "auto":
        backend, path = _auto(path)
    elif (
        backend.startswith("onnx")
        and not (path / "somna-onnx.json").is_file()
        and (path / ONNX_FOLDER).is_dir()
    ):
        path = path / ONNX_FOLDER  # a run folder: its own export
    stager = _LOADERS[backend](path, threads)
    stager.name = str(given)  # outputs name the model as the user did, whichever backend runs it
    stager.info["loaded_from"] = str(path)
    return stager
