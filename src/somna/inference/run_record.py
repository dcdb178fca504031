"""What made a night's outputs: the PSG, the reference, the model and the options, by content.

``somna score`` records this in ``metrics.json`` (``"made_from"``) together with a checksum of every
file it wrote (``"outputs"``). A folder counts as "already scored" only when its record equals the new
request's; a folder holding another night's, another model's or other options' results is refused
(``--force`` replaces it), and the checksums show whether a folder's files belong together.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from somna.errors import SomnaError
from somna.storage import sha256_file

if TYPE_CHECKING:
    from somna.inference.scoring import ScoreOptions
    from somna.inference.stager import Stager
    from somna.io.channels import ChannelSpec

__all__ = [
    "OUTPUT_NAMES",
    "folder_record",
    "model_fingerprint",
    "night_record",
    "record_differences",
]

OUTPUT_NAMES = (
    "hypnogram.csv",
    "probabilities.csv",
    "hypnogram.edf",
    "hypnogram_events.tsv",
    "hypnogram_nsrr.xml",
    "report.html",
    "metrics.json",
)
"""Every file ``somna score`` may write into a night's folder; a new run removes those it does not write."""

_MODEL_SUFFIXES = (".pt", ".onnx")


def model_fingerprint(stager: Stager) -> str:
    """SHA-256 over the model files a stager was loaded from (cached in ``stager.info``); a stager
    built in memory, with no files, gets an identity of its own that matches no earlier result.

    The files are the checkpoints of a run or fold folder (``best.pt``), a checkpoint file, or an ONNX
    export's graphs and manifest; files that training or evaluation rewrite without changing the model
    (``last.pt``, ``evaluation.json``) are left out.
    """
    cached = stager.info.get("fingerprint")
    if isinstance(cached, str):
        return cached
    loaded_from = stager.info.get("loaded_from")
    if not loaded_from or not Path(loaded_from).exists():
        # A stager built in memory has no files to check: it matches no earlier result.
        stager.info["fingerprint"] = f"in-memory model {uuid.uuid4().hex}"
        return stager.info["fingerprint"]
    source = Path(loaded_from)
    if source.is_file():
        files = [source]
    elif any(source.glob("*.onnx")):
        files = sorted(p for p in source.iterdir() if p.suffix == ".onnx" or p.suffix == ".json")
    else:
        files = sorted(p for p in source.rglob("best.pt"))
    digest = hashlib.sha256()
    for path in files:
        name = path.name if path == source else str(path.relative_to(source))
        digest.update(f"{name}:{sha256_file(path)}\n".encode())
    fingerprint = digest.hexdigest()
    stager.info["fingerprint"] = fingerprint
    return fingerprint


def _file_entry(path: str | Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    path = Path(path)
    try:
        return {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    except OSError as err:
        raise SomnaError(f"cannot be read: {err.strerror or err}", path) from None


def _options_entry(options: ScoreOptions, psg: Path, report: bool) -> dict[str, Any]:
    from somna.io.lights import table_lights

    entry = {k: v for k, v in asdict(options).items() if k not in ("table", "table_name")}
    if options.table is not None:
        entry["lights_table_row"] = table_lights(options.table, psg)
    entry["report"] = report
    return json.loads(json.dumps(entry, default=str))  # as it reads back from metrics.json


def night_record(
    psg: str | Path,
    stager: Stager,
    channels: ChannelSpec | None,
    reference: str | Path | None,
    options: ScoreOptions,
    report: bool,
) -> dict[str, Any]:
    """What a night's outputs are made from, by content (checksums), as stored in ``metrics.json``.

    Parameters
    ----------
    psg, reference : str | Path
        The recording and its scored hypnogram (``None`` without one): name, size and SHA-256.
    stager : Stager
        The model: its name, backend and :func:`model_fingerprint`.
    channels : ChannelSpec | None
        The channel mapping (``None``: the model's training channels).
    options : ScoreOptions
        Lights (a table contributes only this PSG's row), REM latency rule, EDF+ stage strings.
    report : bool
        Whether ``report.html`` is written.

    Returns
    -------
    dict
        JSON-ready: ``psg``, ``reference``, ``model``, ``channels``, ``options``.
    """
    return {
        "psg": _file_entry(psg),
        "reference": _file_entry(reference),
        "model": {"name": stager.name, "backend": stager.backend, "fingerprint": model_fingerprint(stager)},
        "channels": json.loads(json.dumps(channels)) if channels is not None else None,
        "options": _options_entry(options, Path(psg), report),
    }


def folder_record(folder: str | Path) -> dict[str, Any] | None:
    """The record of the complete result in a night's folder: ``None`` when it holds none (no readable
    ``metrics.json``), ``{}`` for a result written without one (by an older somna)."""
    try:
        summary = json.loads((Path(folder) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict):
        return None
    record = summary.get("made_from")
    return record if isinstance(record, dict) else {}


_PARTS = {
    "psg": "another recording",
    "reference": "another reference hypnogram",
    "model": "another model",
    "channels": "other channels",
    "options": "other options",
}


def _identity(key: str, entry: Any) -> Any:
    """What must match: files by content (a renamed copy is the same file), the model by its files and
    backend, the rest as is."""
    if not isinstance(entry, dict):
        return entry
    if key in ("psg", "reference"):
        return entry.get("sha256")
    if key == "model":
        return entry.get("fingerprint"), entry.get("backend")
    return entry


def record_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """How an earlier result's record differs from a new request's, in words (empty: the same).

    Examples
    --------
    >>> record_differences(
    ...     {"psg": {"name": "a.edf", "sha256": "1"}}, {"psg": {"name": "b.edf", "sha256": "2"}}
    ... )
    ['another recording (a.edf)']
    """
    if not old:
        return ["a result without a record of what made it (written by an earlier somna)"]
    changes = []
    for key, words in _PARTS.items():
        before, after = old.get(key), new.get(key)
        if _identity(key, before) == _identity(key, after):
            continue
        if key in ("psg", "reference", "model") and isinstance(before, dict):
            words += f" ({before.get('name', '?')})"
        changes.append(words)
    return changes
