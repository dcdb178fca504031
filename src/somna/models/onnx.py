"""ONNX exports of trained networks: write them (torch) and run them (onnxruntime, no torch).

An export folder holds two graphs per model, ``<stem>.encoder.onnx`` (the per-epoch CNN and EMG
encoder: any number of epochs → embeddings) and ``<stem>.sequence.onnx`` (TCN, attention, classifier:
consecutive embeddings → logits), optionally their int8 versions (``*.int8.onnx``, onnxruntime's dynamic
quantisation), and ``somna-onnx.json``: task, modalities, preprocessing, channels, model configs and the
SHA-256 of every checkpoint exported, so that a run's export can be checked against its checkpoints
(:func:`export_is_current`). The stems are ``model`` (``stage1``/``stage2`` for hierarchical staging),
prefixed ``fold_XX_`` for a cross-validation ensemble.

The split mirrors :class:`~somna.models.predict.StageModel`: offline scoring encodes every epoch once,
and a live stream encodes each new epoch once into its ring buffer.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from somna.config import ModelConfig
from somna.errors import CheckpointError
from somna.models.run_folder import ONNX_FOLDER
from somna.storage import atomic_write, sha256_file, write_json_atomic

__all__ = [
    "GRAPHS",
    "ONNX_MANIFEST",
    "OnnxStageModel",
    "export_is_current",
    "export_onnx",
    "export_run",
    "read_onnx_manifest",
]

ONNX_MANIFEST = "somna-onnx.json"
ONNX_FORMAT = "somna-onnx-2"
GRAPHS = ("encoder", "sequence")
"""The two graphs of each exported model."""


def _export_graph(module: Any, example: tuple[Any, ...], names: list[str], output: str, path: Path) -> None:
    import torch

    axes = {name: {1: "n_epochs"} for name in names} | {output: {1: "n_epochs"}}
    # The TorchScript exporter: a fraction of a second per graph (the dynamo exporter takes seconds),
    # which lets every training run export its models. Its warnings concern its own internals.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")

        def write(tmp: Path) -> None:
            torch.onnx.export(
                module,
                example,
                str(tmp),
                input_names=names,
                output_names=[output],
                dynamic_axes=axes,
                dynamo=False,
                opset_version=17,
            )

        atomic_write(path, write)


def _export_one(network: Any, stem: Path) -> dict[str, str]:
    """Write ``<stem>.encoder.onnx`` and ``<stem>.sequence.onnx``; their file names by graph."""
    import torch

    class Encoder(torch.nn.Module):  # one positional input per modality: graphs take no dicts
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, *signals: torch.Tensor) -> torch.Tensor:
            return self.network.embed_epochs(dict(zip(config.modalities, signals, strict=True)))

    class Sequence(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
            return self.network.sequence_logits(embeddings)

    config = network.config
    chans = dict(config.n_chans)
    n_example = max(2 * network.seq_len, 32)
    signals = tuple(
        torch.zeros(1, n_example, chans[m], config.emg_n_times if m == "emg" else config.n_times)
        for m in config.modalities
    )
    network.eval()
    with torch.no_grad():
        embeddings = network.embed_epochs(dict(zip(config.modalities, signals, strict=True)))
    files = {graph: f"{stem.name}.{graph}.onnx" for graph in GRAPHS}
    _export_graph(Encoder(), signals, list(config.modalities), "embeddings", stem.parent / files["encoder"])
    _export_graph(Sequence(), (embeddings,), ["embeddings"], "logits", stem.parent / files["sequence"])
    return files


def _quantise(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its pre-processing hint
    # Dynamic quantisation: int8 weights of matrix products and convolutions, activations on the fly.
    atomic_write(
        target,
        lambda tmp: quantize_dynamic(
            str(source),
            str(tmp),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm", "Conv"],
        ),
    )


def export_onnx(
    members: list[Mapping[str, Any]],
    checkpoints: list[Mapping[str, Path]],
    info: Mapping[str, Any],
    out_dir: str | Path,
    int8: bool = False,
) -> dict[str, Any]:
    """Export trained networks to ONNX.

    Parameters
    ----------
    members : list of mapping of str to StagingNetwork
        One entry per fold; each maps a role (``"model"``, ``"stage1"``, ``"stage2"``) to its network
        (batch norms may be folded: the graphs are traced in eval mode).
    checkpoints : list of mapping of str to Path
        The checkpoint each network came from, same structure (their SHA-256 go into the manifest).
    info : mapping
        ``task``, ``modalities``, ``preprocess``, ``channels`` and ``trained_on`` of the stager, copied
        into the manifest.
    out_dir : str | Path
        Output folder (created).
    int8 : bool
        Also write int8 graphs (``*.int8.onnx``).

    Returns
    -------
    dict
        The manifest written to ``out_dir/somna-onnx.json`` (file sizes in bytes included).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries, written = [], []  # written: this export's files (not older ones in the folder)
    for i, (member, sources) in enumerate(zip(members, checkpoints, strict=True)):
        files = {}
        for role, network in member.items():
            stem = role if len(members) == 1 else f"fold_{i:02d}_{role}"
            fp32 = _export_one(network, out / stem)
            files[role] = {
                "fp32": fp32,
                "model_config": network.config.to_dict(),
                "checkpoint_sha256": sha256_file(sources[role]),
            }
            written += fp32.values()
            if int8:
                files[role]["int8"] = {g: name.replace(".onnx", ".int8.onnx") for g, name in fp32.items()}
                for graph in GRAPHS:
                    _quantise(out / fp32[graph], out / files[role]["int8"][graph])
                written += files[role]["int8"].values()
        entries.append(files)
    manifest = {
        "format": ONNX_FORMAT,
        **dict(info),
        "members": entries,
        "file_bytes": {name: (out / name).stat().st_size for name in sorted(written)},
    }
    write_json_atomic(out / ONNX_MANIFEST, manifest)
    return manifest


def export_run(run: str | Path, out_dir: str | Path | None = None, int8: bool = False) -> dict[str, Any]:
    """Export every trained network of a run folder, fold folder or checkpoint to ONNX.

    Parameters
    ----------
    run : str | Path
        Anything :func:`somna.load_stager` loads with the torch backend.
    out_dir : str | Path | None
        Output folder; default ``RUN/onnx`` (:data:`~somna.models.run_folder.ONNX_FOLDER`), where
        :func:`somna.load_stager` looks for a run's export.
    int8 : bool
        Also write int8 graphs.

    Returns
    -------
    dict
        The manifest (see :func:`export_onnx`).
    """
    from somna.models.checkpoint import load_run

    run = Path(run)
    networks, checkpoints, info = load_run(run)
    members = [{role: net.for_inference() for role, net in member.items()} for member in networks]
    if out_dir is None:
        out_dir = (run if run.is_dir() else run.parent) / ONNX_FOLDER
    return export_onnx(members, checkpoints, {**info, "name": run.name}, out_dir, int8=int8)


def read_onnx_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an export folder.

    Raises
    ------
    CheckpointError
        If there is none, it is corrupt, or it is of another format.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / ONNX_MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"no {ONNX_MANIFEST}: not an ONNX export (run `somna export`)", folder
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{ONNX_MANIFEST} is unreadable: {err}", folder) from None
    if not isinstance(manifest, dict) or manifest.get("format") != ONNX_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise CheckpointError(
            f"ONNX export of format {found!r}; this version reads {ONNX_FORMAT!r}: export again", folder
        )
    missing = [k for k in ("task", "modalities", "preprocess", "members") if k not in manifest]
    if missing:
        raise CheckpointError(f"{ONNX_MANIFEST} lacks {missing}", folder)
    return manifest


def export_is_current(folder: str | Path, checkpoints: list[Mapping[str, Path]]) -> bool:
    """Whether an export folder holds exactly these checkpoints' networks (by SHA-256)."""
    try:
        manifest = read_onnx_manifest(folder)
        exported = [{role: e["checkpoint_sha256"] for role, e in m.items()} for m in manifest["members"]]
    except (CheckpointError, KeyError, TypeError, AttributeError):
        return False
    current = [{role: sha256_file(p) for role, p in member.items()} for member in checkpoints]
    return exported == current


class OnnxStageModel:
    """An exported network run by onnxruntime: a :class:`~somna.models.predict.StageModel`.

    Parameters
    ----------
    paths : dict of str to Path
        The ``"encoder"`` and ``"sequence"`` graphs.
    config : ModelConfig
        The config it was exported from (sizes, modalities, ``seq_len``).
    threads : int
        onnxruntime intra-op threads.
    """

    def __init__(self, paths: Mapping[str, Path], config: ModelConfig, threads: int = 2):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(int(threads), 1)
        # no busy-waiting between runs: scoring does its own work between graph calls on the same cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {}
        for graph in GRAPHS:
            try:
                self.sessions[graph] = onnxruntime.InferenceSession(
                    str(paths[graph]), options, providers=["CPUExecutionProvider"]
                )
            except Exception as err:  # onnxruntime raises its own untyped errors on bad files
                reason = (str(err).splitlines() or [type(err).__name__])[0]
                raise CheckpointError(f"not a loadable ONNX model: {reason}", paths[graph]) from None
        expected = {"encoder": list(config.modalities), "sequence": ["embeddings"]}
        for graph, session in self.sessions.items():
            names = [i.name for i in session.get_inputs()]
            if names != expected[graph]:
                raise CheckpointError(
                    f"ONNX {graph} inputs {names} do not match the manifest's {expected[graph]}", paths[graph]
                )
        self.config = config

    @property
    def seq_len(self) -> int:
        """Epochs each prediction depends on."""
        return self.config.seq_len

    def embed_epochs(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per modality (n_epochs, n_chans, n_times) → (n_epochs, embed_dim)."""
        feeds = {m: np.ascontiguousarray(signals[m], dtype=np.float32)[None] for m in self.config.modalities}
        return self.sessions["encoder"].run(None, feeds)[0][0]

    def sequence_logits(self, embeddings: np.ndarray) -> np.ndarray:
        """(n_epochs, embed_dim) → (n_epochs, n_classes)."""
        feeds = {"embeddings": np.ascontiguousarray(embeddings, dtype=np.float32)[None]}
        return self.sessions["sequence"].run(None, feeds)[0][0]
