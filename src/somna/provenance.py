"""What a model was trained on, and the caveat every output of a synthetic-trained model carries.

A prepared cohort records its source in its manifest (``source``): the synthetic generator and its
version when its EDF files came from ``somna synth`` (which leaves ``synthetic.json`` beside them), else
the recordings' folder. Training copies it into every checkpoint (``trained_on``), exports carry it,
and staged hypnograms name it in their ``info``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["SYNTHETIC", "cohort_source", "describe", "synthetic_caveat"]

SYNTHETIC = "synthetic"
"""``kind`` of a source made by ``somna synth``."""


def cohort_source(psgs: Iterable[str | Path]) -> dict[str, Any]:
    """Where a cohort's recordings come from.

    Returns
    -------
    dict
        ``{"kind": "synthetic", "generator": ..., "generator_version": ..., "variation": ...}`` when every
        recording lies beside a ``synthetic.json``; ``{"kind": "mixed", ...}`` when only some do;
        ``{"kind": "recordings", "folders": [...]}`` otherwise.
    """
    folders = sorted({str(Path(p).resolve().parent) for p in psgs})
    meta = {}
    for folder in folders:
        try:
            meta[folder] = json.loads((Path(folder) / "synthetic.json").read_text())
        except (OSError, ValueError):
            continue
    if not meta:
        return {"kind": "recordings", "folders": folders}
    versions = sorted({str(m.get("generator_version")) for m in meta.values()})
    variations = sorted({str(m.get("variation", "textbook")) for m in meta.values()})
    source = {
        "kind": SYNTHETIC if len(meta) == len(folders) else "mixed",
        "generator": "somna.synth",
        "generator_version": ", ".join(versions),
        "variation": ", ".join(variations),
    }
    if len(meta) < len(folders):
        source["recording_folders"] = [f for f in folders if f not in meta]
    return source


def describe(trained_on: Mapping[str, Any] | None) -> str:
    """The training data in words (``"synthetic nights (somna.synth 2.0.0, broad)"``)."""
    if not trained_on:
        return "unknown data"
    kind = trained_on.get("kind")
    if kind == SYNTHETIC:
        return (
            f"synthetic nights only ({trained_on.get('generator')} {trained_on.get('generator_version')}, "
            f"{trained_on.get('variation')} variation)"
        )
    if kind == "mixed":
        version = f"{trained_on.get('generator')} {trained_on.get('generator_version')}"
        return f"recordings and synthetic nights ({version})"
    return f"recordings in {', '.join(trained_on.get('folders', [])) or 'unknown folders'}"


def synthetic_caveat(trained_on: Mapping[str, Any] | None) -> str | None:
    """The warning every output of a model trained only on synthetic nights carries, else ``None``."""
    if not trained_on or trained_on.get("kind") != SYNTHETIC:
        return None
    return (
        f"This model was trained on {describe(trained_on)}: it has not been validated on real recordings, "
        "and its stages of a real night must not be relied on."
    )
