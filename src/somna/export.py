"""Edge deployment: export trained stagers to ONNX (fp32, and int8 by dynamic quantisation) and run them.

``somna export RUN --onnx [--int8]`` writes one ONNX graph per model of the stager (``model.onnx``, or
``stage1.onnx`` and ``stage2.onnx`` for hierarchical staging; ``fold_XX_*.onnx`` for a cross-validation
ensemble) plus ``somna-onnx.json`` (label set, modalities, preprocessing, model configs), which is all
``somna score --backend onnx`` needs: no torch checkpoint. Each graph maps a chunk of consecutive epochs
(any length) to per-epoch logits, exactly as :class:`~somna.models.SequenceStager` does.
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

__all__ = ["ONNX_MANIFEST", "OnnxSequenceModel", "export_onnx", "load_onnx_stager"]

ONNX_MANIFEST = "somna-onnx.json"
_FORMAT = "somna-onnx-1"


class _Positional(torch.nn.Module):
    """The stager with one positional input per modality (ONNX graphs take named tensors, not dicts)."""

    def __init__(self, model: SequenceStager):
        super().__init__()
        self.model = model
        self.modalities = list(model.config.modalities)

    def forward(self, *signals: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.modalities, signals, strict=True)))


def _export_one(model: SequenceStager, path: Path) -> None:
    config = model.config
    chans = dict(config.n_chans)
    n_example = max(2 * model.seq_len, 32)
    example = tuple(
        torch.zeros(1, n_example, chans[m], config.emg_n_times if m == "emg" else config.n_times)
        for m in config.modalities
    )
    n_epochs = torch.export.Dim("n_epochs", min=2, max=1_000_000)
    # The exporter prints its progress and warns about its own internals; keep the command's output clean.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _Positional(model.eval()),
            example,
            input_names=list(config.modalities),
            output_names=["logits"],
            dynamic_shapes=(tuple({1: n_epochs} for _ in config.modalities),),  # one entry: the *signals
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    atomic_write(path, lambda tmp: program.save(str(tmp), external_data=False))


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
    members = []
    for i, member in enumerate(stager.members):
        files = {}
        for role, model in member.items():
            stem = role if len(stager.members) == 1 else f"fold_{i:02d}_{role}"
            _export_one(model, out / f"{stem}.onnx")
            files[role] = {"fp32": f"{stem}.onnx", "model_config": model.config.to_dict()}
            if int8:
                _quantise(out / f"{stem}.onnx", out / f"{stem}.int8.onnx")
                files[role]["int8"] = f"{stem}.int8.onnx"
        members.append(files)
    sizes = {p.name: p.stat().st_size for p in sorted(out.glob("*.onnx"))}
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
    """An exported sequence model run by onnxruntime, usable wherever a :class:`SequenceStager` is scored.

    Parameters
    ----------
    path : Path
        The ``.onnx`` file.
    config : ModelConfig
        The config it was exported from (sizes, modalities, ``seq_len``).
    threads : int
        onnxruntime intra-op threads.
    """

    def __init__(self, path: Path, config: ModelConfig, threads: int = 2):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own untyped errors on bad files
            raise CheckpointError(f"not a loadable ONNX model: {str(err).splitlines()[0]}", path) from None
        names = [i.name for i in self.session.get_inputs()]
        if names != list(config.modalities):
            raise CheckpointError(
                f"ONNX inputs {names} do not match the manifest's {list(config.modalities)}", path
            )
        self.config = config
        self.seq_len = config.seq_len

    def eval(self) -> OnnxSequenceModel:
        """No-op (an ONNX graph is always in inference mode); here so scoring code can treat models alike."""
        return self

    def __call__(self, signals: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {
            m: np.ascontiguousarray(signals[m].numpy(), dtype=np.float32) for m in self.config.modalities
        }
        return torch.from_numpy(self.session.run(None, feeds)[0])


def _model_config(data: dict[str, Any]) -> ModelConfig:
    data = dict(data)
    data["modalities"] = tuple(data["modalities"])
    data["n_chans"] = tuple(tuple(x) for x in data["n_chans"])
    return ModelConfig(**data)


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
    if manifest.get("format") != _FORMAT:
        raise CheckpointError(f"unknown ONNX export format {manifest.get('format')!r}", folder)
    members = []
    for files in manifest["members"]:
        member = {}
        for role, entry in files.items():
            if precision not in entry:
                raise SomnaError(f"this export has no {precision} model; export again with --int8", folder)
            member[role] = OnnxSequenceModel(
                folder / entry[precision], _model_config(entry["model_config"]), threads
            )
        members.append(member)
    return SleepStager(members, manifest["task"], tuple(manifest["modalities"]), manifest["preprocess"])  # type: ignore[arg-type]
