"""Where a run keeps its trained models (no torch needed to find them).

A run folder of ``somna train``/``cv`` holds ``experiment.json`` and one ``fold_XX/`` per fold; a fold
holds ``best.pt`` (one model), or ``stage1/best.pt`` and ``stage2/best.pt`` (hierarchical staging); a
run's ONNX export lives in ``onnx/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from somna.errors import CheckpointError
from somna.stages import HIERARCHICAL

__all__ = ["ONNX_FOLDER", "run_checkpoints"]

ONNX_FOLDER = "onnx"
"""Where a run keeps its ONNX export."""


def run_checkpoints(path: str | Path) -> tuple[list[dict[str, Path]], str | None]:
    """The checkpoints of a run folder, a fold folder or a checkpoint file, and the run's task if known.

    Returns
    -------
    checkpoints : list of dict of str to Path
        Per fold, role (``"model"``, ``"stage1"``, ``"stage2"``) → ``best.pt``.
    task : str | None
        ``"hierarchical"`` for stage pairs, the run's label set from ``experiment.json``, else None.

    Raises
    ------
    CheckpointError
        If nothing loadable is there.
    """
    path = Path(path)
    if path.is_file():
        return [{"model": path}], None
    experiment = path / "experiment.json"
    task = None
    if experiment.is_file():
        try:
            task = json.loads(experiment.read_text())["experiment"]["data"]["label_set"]
        except (OSError, ValueError, KeyError, TypeError):
            raise CheckpointError("experiment.json is unreadable or incomplete", path) from None
    folders = sorted(path.glob("fold_*")) if experiment.is_file() else [path]
    found = []
    for folder in folders:
        if (folder / "best.pt").is_file():
            found.append({"model": folder / "best.pt"})
        elif all((folder / role / "best.pt").is_file() for role in ("stage1", "stage2")):
            found.append({role: folder / role / "best.pt" for role in ("stage1", "stage2")})
            task = HIERARCHICAL
    if not found:
        raise CheckpointError("no trained model here (expected best.pt, or fold_XX/ folders of a run)", path)
    return found, task
