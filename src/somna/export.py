"""Edge deployment: export trained stagers to ONNX (fp32, and int8 by dynamic quantisation) and run them.

``somna export RUN --onnx [--int8]`` writes two ONNX graphs per model of the stager (``model.encoder.onnx``
and ``model.sequence.onnx``; ``stage1.*``/``stage2.*`` for hierarchical staging; ``fold_XX_*`` for a
cross-validation ensemble) plus ``somna-onnx.json`` (label set, modalities, preprocessing, model configs),
which is all ``somna score --backend onnx`` and ``somna stream --backend onnx`` need: no torch checkpoint.
The encoder graph maps any number of epochs to their embeddings (the per-epoch CNN and EMG encoder), the
sequence graph maps any number of consecutive embeddings to per-epoch logits (TCN, attention,
classifier), exactly as :meth:`~somna.models.SequenceStager.embed_epochs` and
:meth:`~somna.models.SequenceStager.sequence_logits` do: offline scoring encodes each epoch once, and a
stream encodes each new epoch once into its ring buffer.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from somna.errors import CheckpointError, SomnaError
from somna.models import ModelConfig, SequenceStager
from somna.staging import SleepStager
from somna.storage import atomic_write, write_json_atomic

__all__ = ["GRAPHS", "ONNX_MANIFEST", "OnnxSequenceModel", "export_onnx", "load_onnx_stager"]

ONNX_MANIFEST = "somna-onnx.json"
_FORMAT = "somna-onnx-2"  # 1: one graph per model (signals -> logits); 2: encoder + sequence graphs
GRAPHS = ("encoder", "sequence")
"""The two graphs of each exported model."""


class _Encoder(torch.nn.Module):
    """``embed_epochs`` with one positional input per modality (ONNX graphs take named tensors, not dicts)."""

    def __init__(self, model: SequenceStager):
        super().__init__()
        self.model = model
        self.modalities = list(model.config.modalities)

    def forward(self, *signals: torch.Tensor) -> torch.Tensor:
        return self.model.embed_epochs(dict(zip(self.modalities, signals, strict=True)))


class _Sequence(torch.nn.Module):
    """``sequence_logits`` as a module of its own."""

    def __init__(self, model: SequenceStager):
        super().__init__()
        self.model = model

    def forward(self, *embeddings: torch.Tensor) -> torch.Tensor:  # positional, as _Encoder's inputs
        return self.model.sequence_logits(embeddings[0])


def _export_graph(
    module: torch.nn.Module, example: tuple[torch.Tensor, ...], names: list[str], output: str, path: Path
) -> None:
    n_epochs = torch.export.Dim("n_epochs", min=2, max=1_000_000)  # 1 would be specialised away; 1 runs
    # The exporter prints its progress and warns about its own internals (e.g. "torchvision is not
    # installed" on stderr through its logger); keep the command's output clean.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                example,
                input_names=names,
                output_names=[output],
                dynamic_shapes=(tuple({1: n_epochs} for _ in names),),  # one entry: the positional *inputs
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    atomic_write(path, lambda tmp: program.save(str(tmp), external_data=False))


def _export_one(model: SequenceStager, stem: Path) -> dict[str, str]:
    """Write ``<stem>.encoder.onnx`` and ``<stem>.sequence.onnx``; their file names by graph."""
    config = model.config
    chans = dict(config.n_chans)
    n_example = max(2 * model.seq_len, 32)
    signals = tuple(
        torch.zeros(1, n_example, chans[m], config.emg_n_times if m == "emg" else config.n_times)
        for m in config.modalities
    )
    model = model.eval()
    with torch.no_grad():
        embeddings = model.embed_epochs(dict(zip(config.modalities, signals, strict=True)))
    files = {graph: f"{stem.name}.{graph}.onnx" for graph in GRAPHS}
    _export_graph(
        _Encoder(model), signals, list(config.modalities), "embeddings", stem.parent / files["encoder"]
    )
    _export_graph(_Sequence(model), (embeddings,), ["embeddings"], "logits", stem.parent / files["sequence"])
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


def export_onnx(run: str | Path, out_dir: str | Path, int8: bool = False) -> dict[str, Any]:
    """Export the model(s) of a run folder or checkpoint to ONNX.

    Parameters
    ----------
    run : str | Path
        Anything :meth:`SleepStager.from_run` loads.
    out_dir : str | Path
        Output folder.
    int8 : bool
        Also write int8 graphs (``*.int8.onnx``) by onnxruntime's dynamic quantisation.

    Returns
    -------
    dict
        The manifest written to ``out_dir/somna-onnx.json`` (files and their sizes in bytes included).
    """
    stager = SleepStager.from_run(run)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    members, written = [], []  # written: this export's files (not older ones in the folder)
    for i, member in enumerate(stager.members):
        files = {}
        for role, model in member.items():
            stem = role if len(stager.members) == 1 else f"fold_{i:02d}_{role}"
            fp32 = _export_one(model, out / stem)
            files[role] = {"fp32": fp32, "model_config": model.config.to_dict()}
            written += fp32.values()
            if int8:
                files[role]["int8"] = {g: name.replace(".onnx", ".int8.onnx") for g, name in fp32.items()}
                for graph in GRAPHS:
                    _quantise(out / fp32[graph], out / files[role]["int8"][graph])
                written += files[role]["int8"].values()
        members.append(files)
    sizes = {name: (out / name).stat().st_size for name in sorted(written)}
    manifest = {
        "format": _FORMAT,
        "task": stager.task,
        "modalities": list(stager.modalities),
        "preprocess": stager.preprocess,
        "members": members,
        "file_bytes": sizes,
        "source": str(Path(run).resolve()),
    }
    write_json_atomic(out / ONNX_MANIFEST, manifest)
    return manifest


class OnnxSequenceModel:
    """An exported sequence model run by onnxruntime, usable wherever a :class:`SequenceStager` is scored
    or streamed (``embed_epochs``, ``sequence_logits``, and both through ``__call__``).

    Parameters
    ----------
    paths : dict of str to Path
        The ``"encoder"`` and ``"sequence"`` graphs.
    config : ModelConfig
        The config it was exported from (sizes, modalities, ``seq_len``).
    threads : int
        onnxruntime intra-op threads.
    """

    def __init__(self, paths: dict[str, Path], config: ModelConfig, threads: int = 2):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        # no busy-waiting between runs: scoring does its own work between graph calls on the same cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {}
        for graph in GRAPHS:
            try:
                self.sessions[graph] = onnxruntime.InferenceSession(
                    str(paths[graph]), options, providers=["CPUExecutionProvider"]
                )
            except Exception as err:  # onnxruntime raises its own untyped errors on bad files
                raise CheckpointError(
                    f"not a loadable ONNX model: {str(err).splitlines()[0]}", paths[graph]
                ) from None
        expected = {"encoder": list(config.modalities), "sequence": ["embeddings"]}
        for graph, session in self.sessions.items():
            names = [i.name for i in session.get_inputs()]
            if names != expected[graph]:
                raise CheckpointError(
                    f"ONNX {graph} inputs {names} do not match the manifest's {expected[graph]}", paths[graph]
                )
        self.config = config
        self.seq_len = config.seq_len

    def eval(self) -> OnnxSequenceModel:
        """No-op (an ONNX graph is always in inference mode); here so scoring code can treat models alike."""
        return self

    def embed_epochs(self, signals: dict[str, torch.Tensor]) -> torch.Tensor:
        """(1, n_epochs, chans, times) per modality → (1, n_epochs, embed)."""
        feeds = {
            m: np.ascontiguousarray(signals[m].numpy(), dtype=np.float32) for m in self.config.modalities
        }
        return torch.from_numpy(self.sessions["encoder"].run(None, feeds)[0])

    def sequence_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(1, n_epochs, embed) → (1, n_epochs, n_classes)."""
        feeds = {"embeddings": np.ascontiguousarray(embeddings.numpy(), dtype=np.float32)}
        return torch.from_numpy(self.sessions["sequence"].run(None, feeds)[0])

    def __call__(self, signals: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.sequence_logits(self.embed_epochs(signals))


def load_onnx_stager(folder: str | Path, precision: str = "fp32", threads: int = 2) -> SleepStager:
    """Load an exported stager for scoring with onnxruntime.

    Raises
    ------
    CheckpointError
        If the folder has no readable manifest, lacks the requested precision, or a graph is unloadable.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / ONNX_MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"no {ONNX_MANIFEST}: not an ONNX export (run `somna export --onnx`)", folder
        ) from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{ONNX_MANIFEST} is corrupt: {err}", folder) from None
    if manifest.get("format") == "somna-onnx-1":
        raise CheckpointError(
            "exported by an older somna (one graph per model); export the run again", folder
        )
    if manifest.get("format") != _FORMAT:
        raise CheckpointError(f"unknown ONNX export format {manifest.get('format')!r}", folder)
    members = []
    for files in manifest["members"]:
        member = {}
        for role, entry in files.items():
            if precision not in entry:
                raise SomnaError(f"this export has no {precision} model; export again with --int8", folder)
            paths = {graph: folder / entry[precision][graph] for graph in GRAPHS}
            member[role] = OnnxSequenceModel(paths, ModelConfig.from_dict(entry["model_config"]), threads)
        members.append(member)
    return SleepStager(members, manifest["task"], tuple(manifest["modalities"]), manifest["preprocess"])  # type: ignore[arg-type]
