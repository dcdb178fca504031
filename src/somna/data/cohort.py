"""The prepared cohort cache: one memory-mappable file per recording plus a manifest.

Layout of a cache folder::

    manifest.json            cohort summary: config, per-recording entries, failures
    recordings/<record>.npy  structured array, one row per 30-s epoch (see ``epoch_dtype``)
    recordings/<record>.json the entry of that recording, written last: its presence marks the .npy
                             complete; it carries the .npy's SHA-256, verified on load

Each epoch row holds every modality's samples and the stages, so a batch of consecutive epochs is one
contiguous read from the memory map.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from somna import __version__
from somna.config import CohortConfig
from somna.data.sources import NightSource, cohort_nights
from somna.errors import CacheError, SomnaError
from somna.io import align_hypnogram, read_hypnogram, read_psg
from somna.io.channels import draw_channels, override_channels
from somna.preprocess import EpochedNight, preprocess_night
from somna.preprocess.filters import set_filter_threads
from somna.provenance import cohort_source
from somna.runner import Failure, run_nights
from somna.stages import AASM, RK, stage_counts
from somna.storage import atomic_write, sha256_file, write_json_atomic

__all__ = ["Cohort", "CohortEntry", "epoch_dtype", "prepare_cohort"]

_FORMAT_VERSION = 4
"""Bumped whenever cached epochs would differ for the same config. 2: float32 FIR filtering and
quantiles from a sample of each channel; 3: one streaming path with running normalisation; 4: flat
EEG/EOG epochs come out as zeros (:mod:`somna.preprocess.normalise`)."""


def epoch_dtype(config: CohortConfig) -> np.dtype:
    """Structured dtype of one cached epoch: a float32 field per modality plus stage fields."""
    pre = config.preprocess
    spe = {"eeg": pre.samples_per_epoch, "eog": pre.samples_per_epoch, "emg": pre.emg_samples_per_epoch}
    fields: list[tuple[str, Any, tuple[int, ...]] | tuple[str, Any]] = [
        (m, np.float32, (len(config.channels[m]), spe[m]))
        for m in ("eeg", "eog", "emg")
        if m in config.channels
    ]
    fields += [("stage", np.int8), ("rk_stage", np.int8), ("epoch_index", np.int32)]
    return np.dtype(fields)


def _config_key(config: CohortConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class CohortEntry:
    """Manifest entry of one cached recording.

    ``start`` is the recording's start (ISO); ``lights_off_s``/``lights_on_s`` its lights off and on in
    seconds from that start (``None`` when unknown) and ``lights_source`` where they came from: a lights
    table given to :func:`prepare_cohort`, else the PSG's or the hypnogram's annotations. The cached
    epochs begin at ``first_epoch`` of the recording; ``channels`` names the channels they were read
    from, per modality (``C4-M1`` for a re-referenced ``C4:M1``).
    """

    record: str
    subject_id: str
    night: int | None
    study: str | None
    n_epochs: int
    first_epoch: int
    stage_counts: dict[str, int]
    rk_stage_counts: dict[str, int]
    sha256: str
    psg: str
    hypnogram: str
    start: str | None = None
    lights_off_s: float | None = None
    lights_on_s: float | None = None
    lights_source: str | None = None
    channels: dict[str, list[str]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def _night_to_array(night: EpochedNight, dtype: np.dtype) -> np.ndarray:
    rows = np.zeros(night.n_epochs, dtype=dtype)
    for modality, epochs in night.signals.items():
        rows[modality] = epochs
    rows["stage"] = night.stages
    rows["rk_stage"] = night.rk_stages
    rows["epoch_index"] = night.first_epoch + np.arange(night.n_epochs)
    return rows


def _init_worker() -> None:
    """A prepare worker: one thread for the filters (the workers share the cores)."""
    set_filter_threads(1)


def _night_channels(config: CohortConfig, source: NightSource) -> dict[str, list[list[str]]]:
    """The config's channels with this night's own names where its source gives them."""
    return override_channels(config.channels, **source.channels) if source.channels else config.channels


def _prepare_one(job: tuple[NightSource, CohortConfig, str]) -> dict[str, Any]:
    """Worker: read, preprocess and cache one night; returns its manifest entry. Memory: one night."""
    source, config, out_dir = job
    psg, hypnogram = str(source.psg), str(source.hypnogram)
    channels = _night_channels(config, source)
    if config.channel_choice == "random":
        from somna.io.edf import psg_channel_labels

        channels = draw_channels(channels, psg_channel_labels(psg), source.name)
    recording = read_psg(psg, channels=channels, modalities=tuple(config.channels))
    if source.subject is not None or recording.subject is None:
        recording.subject = source.subject or source.name
        recording.night = source.night
        recording.extra["record"] = source.name
    elif source.record:
        recording.extra["record"] = source.record
    hyp = align_hypnogram(read_hypnogram(hypnogram), recording)
    night = preprocess_night(recording, hyp, config.preprocess, modalities=tuple(config.channels))
    night_start = recording.start
    recording_channels = recording.channel_names
    night_lights = [
        ((recording.lights_off_s, recording.lights_on_s), "the PSG's annotations"),
        ((hyp.lights_off_s, hyp.lights_on_s), "the hypnogram's annotations"),
    ]
    del recording
    rows = _night_to_array(night, epoch_dtype(config))
    npy = Path(out_dir) / f"{night.record}.npy"
    atomic_write(npy, lambda tmp: _save_npy(tmp, rows))
    entry = CohortEntry(
        record=night.record,
        subject_id=night.subject_id,
        night=night.night,
        study=night.study,
        n_epochs=night.n_epochs,
        first_epoch=night.first_epoch,
        stage_counts=stage_counts(night.stages, AASM),
        rk_stage_counts=stage_counts(night.rk_stages, RK),
        sha256=sha256_file(npy),
        psg=str(Path(psg).resolve()),
        hypnogram=str(Path(hypnogram).resolve()),
        start=night_start.isoformat(),
        channels={m: list(recording_channels[m]) for m in recording_channels},
        **_annotated_lights(night_lights),
    )
    data = {
        **entry.to_dict(),
        "config_key": _config_key(config),
        "format": _FORMAT_VERSION,
        "sources": _source_state(psg, hypnogram),
    }
    write_json_atomic(npy.with_suffix(".json"), data)
    return data


def _source_state(psg: str | Path, hypnogram: str | Path) -> dict[str, list[Any]]:
    """Path, size and modification time of a night's two input files: what a resume compares."""
    state = {}
    for role, path in (("psg", psg), ("hypnogram", hypnogram)):
        stat = Path(path).stat()
        state[role] = [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]
    return state


def _annotated_lights(sources: list[tuple[tuple[float | None, float | None], str]]) -> dict[str, Any]:
    """Entry fields of the first source that has lights off or on."""
    for (off, on), name in sources:
        if off is not None or on is not None:
            return {"lights_off_s": off, "lights_on_s": on, "lights_source": name}
    return {}


def _apply_lights_table(
    entry: dict[str, Any], table: dict[str, tuple[str | None, str | None]], name: str
) -> None:
    """Lights off/on of a night from a lights table, where the table has it (it wins over annotations)."""
    from datetime import datetime

    from somna.io.lights import parse_lights_time, table_lights

    row = table_lights(table, entry["psg"])
    if row is None or entry.get("start") is None:
        return
    start = datetime.fromisoformat(entry["start"])
    for value, key in zip(row, ("lights_off_s", "lights_on_s"), strict=True):
        if value is not None:
            entry[key] = parse_lights_time(value, start, f"{key[:-2]} of {entry['record']} in {name}")
            entry["lights_source"] = name


def _save_npy(tmp: Path, rows: np.ndarray) -> None:
    with open(tmp, "wb") as fh:  # np.save on a path would append ".npy" to the temporary name
        np.save(fh, rows, allow_pickle=False)


def _completed_entry(rec_dir: Path, psg: str, hypnogram: str, config: CohortConfig) -> dict[str, Any] | None:
    """Entry of a night already cached from the same, unchanged files with the same config, whose cached
    epochs still pass their checksum; else None (the night is prepared again)."""
    for meta in rec_dir.glob("*.json"):
        try:
            data = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if data.get("psg") != str(Path(psg).resolve()):
            continue
        npy = meta.with_suffix(".npy")
        try:
            unchanged = data.get("sources") == _source_state(psg, hypnogram)
        except OSError:
            return None  # a missing input is the worker's to report
        same = data.get("config_key") == _config_key(config) and data.get("format") == _FORMAT_VERSION
        if same and unchanged and npy.is_file() and sha256_file(npy) == data.get("sha256"):
            return data
        return None
    return None


def prepare_cohort(
    source: str | Path | Sequence[tuple[str | Path, str | Path]],
    cache_dir: str | Path,
    config: CohortConfig | None = None,
    workers: int = 2,
    progress: bool = True,
    lights: str | Path | None = None,
    pair: str | None = None,
) -> Cohort:
    """Turn PSG/hypnogram pairs into a cached cohort; resumable, one night in memory per worker.

    Parameters
    ----------
    source : path or sequence
        A folder of Sleep-EDF files (paired by :func:`somna.io.find_sleep_edf_pairs`), a folder of
        other files (paired by ``pair``, else by file name), a cohort manifest (CSV), or explicit
        nights (:class:`~somna.data.sources.NightSource`, or (psg, hypnogram) pairs): see
        :mod:`somna.data.sources`. Subjects come from the manifest, the pattern or Sleep-EDF's names.
    cache_dir : str | Path
        Output folder. Nights already cached from the same files (path, size and modification time of
        the PSG and the hypnogram) with the same config, whose cached epochs pass their SHA-256, are
        skipped, so an interrupted run resumes; any other night (its write interrupted, a file edited or
        replaced, a cached file damaged) is prepared again.
    config : CohortConfig | None
        Channels and preprocessing; defaults to Sleep-EDF channels and :class:`PreprocessConfig`.
    workers : int
        Parallel processes (1 runs in this process).
    progress : bool
        Show a progress bar.
    lights : str | Path | None
        A lights table (:func:`somna.io.lights.read_lights_table`) whose lights off/on the manifest
        records for each night it names; without one, a folder's own ``lights.csv`` (what ``somna
        download`` and ``somna synth`` write) is used. Nights it does not name keep the lights of their
        annotations, if any. A manifest's own lights_off/lights_on columns come first.
    pair : str | None
        ``--pair``: a pattern with named groups ``subject`` (and ``night``) that pairs a folder's files
        (:func:`somna.data.sources.pair_by_pattern`).

    Returns
    -------
    Cohort
        The opened cache.

    Raises
    ------
    SomnaError
        If the output folder cannot be written, or (after all other nights are done) if any night
        failed; the manifest then lists each failure with its reason.
    """
    config = config or CohortConfig()
    cache_dir = Path(cache_dir)
    nights, _ = cohort_nights(source, pair)
    if not nights:
        raise SomnaError("no PSG/hypnogram pairs found", source if isinstance(source, (str, Path)) else None)
    pairs = [(str(n.psg), str(n.hypnogram)) for n in nights]
    by_psg = {str(n.psg): n for n in nights}
    rec_dir = cache_dir / "recordings"
    try:
        rec_dir.mkdir(parents=True, exist_ok=True)
        probe = rec_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise SomnaError(f"cannot write the cohort cache: {err.strerror}", cache_dir) from None
    for stale in rec_dir.glob(".*.tmp"):  # left by a killed run
        stale.unlink(missing_ok=True)

    entries: dict[str, dict[str, Any]] = {}
    todo = []
    for psg, hyp in pairs:
        done = _completed_entry(rec_dir, psg, hyp, config)
        if done is not None:
            entries[done["record"]] = done
        else:
            todo.append((psg, hyp))
    failures: dict[str, str] = {}
    results = run_nights(
        [(by_psg[psg], config, str(rec_dir)) for psg, _ in todo],
        _prepare_one,
        workers=workers,
        initializer=_init_worker,
        desc="prepare",
        progress=progress,
        already_done=len(pairs) - len(todo),
    )
    for (psg, _), result in zip(todo, results, strict=True):
        if isinstance(result, Failure):
            failures[psg] = result.reason
        else:
            entries[result["record"]] = result
    given = {n.psg.name: (n.lights_off, n.lights_on) for n in nights if n.lights_off or n.lights_on}
    if given:
        for entry in entries.values():
            _apply_lights_table(entry, given, "the cohort manifest")
    if lights is None and isinstance(source, (str, Path)) and (Path(source) / "lights.csv").is_file():
        lights = Path(source) / "lights.csv"
    if lights is not None:
        from somna.io.lights import read_lights_table

        table = read_lights_table(lights)
        for entry in entries.values():
            _apply_lights_table(entry, table, Path(lights).name)
    manifest = {
        "format": _FORMAT_VERSION,
        "somna_version": __version__,
        "config": config.to_dict(),
        "source": cohort_source(psg for psg, _ in pairs),
        "recordings": [entries[k] for k in sorted(entries)],
        "failures": failures,
    }
    write_json_atomic(cache_dir / "manifest.json", manifest)
    if failures:
        listing = "; ".join(f"{Path(k).name}: {v}" for k, v in sorted(failures.items()))
        raise SomnaError(f"{len(failures)} night(s) failed (the others are cached): {listing}", cache_dir)
    return Cohort.open(cache_dir, verify=False)


def _is_required(spec: Any) -> bool:
    return spec.default is MISSING and spec.default_factory is MISSING


class Cohort:
    """A prepared cohort cache opened for reading; each night is a read-only memory map.

    Use :meth:`open`. ``cohort.nights[record]`` is the structured epoch array of a night
    (fields per modality, ``stage`` in AASM codes, ``rk_stage``, ``epoch_index``).
    """

    def __init__(self, root: Path, manifest: dict[str, Any], verify: bool) -> None:
        self.root = root
        self.manifest = manifest
        self.entries = [
            CohortEntry(**{k: e[k] for k in CohortEntry.__dataclass_fields__ if k in e})
            for e in manifest["recordings"]
        ]
        self._verify = verify
        self._maps: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, root: str | Path, verify: bool = True) -> Cohort:
        """Open a cache folder written by :func:`prepare_cohort`.

        Parameters
        ----------
        root : str | Path
            The cache folder.
        verify : bool
            Check each night's SHA-256 against its manifest entry when it is first loaded.

        Raises
        ------
        CacheError
            If the folder has no readable manifest.
        """
        root = Path(root)
        try:
            manifest = json.loads((root / "manifest.json").read_text())
        except FileNotFoundError:
            raise CacheError("no manifest.json: not a prepared cohort (run `somna prepare`)", root) from None
        except json.JSONDecodeError as err:
            raise CacheError(f"manifest.json is corrupt: {err}", root) from None
        except OSError as err:
            raise CacheError(f"manifest.json is unreadable: {err.strerror or err}", root) from None
        required = tuple(f for f, spec in CohortEntry.__dataclass_fields__.items() if _is_required(spec))
        recordings = manifest.get("recordings") if isinstance(manifest, dict) else None
        config = manifest.get("config") if isinstance(manifest, dict) else None
        if not isinstance(recordings, list) or not isinstance(config, dict):
            raise CacheError("manifest.json lacks its recordings or config: rerun `somna prepare`", root)
        if not all(isinstance(config.get(key), dict) for key in ("channels", "preprocess")):
            raise CacheError(
                "manifest.json: its config lacks channels or preprocess; rerun `somna prepare`", root
            )
        for i, entry in enumerate(recordings):
            missing = [f for f in required if not isinstance(entry, dict) or f not in entry]
            if missing:
                raise CacheError(
                    f"manifest.json: recording {i} lacks {', '.join(missing)}; rerun `somna prepare`", root
                )
        return cls(root, manifest, verify)

    @property
    def records(self) -> list[str]:
        """Recording ids, sorted."""
        return [e.record for e in self.entries]

    @property
    def subjects(self) -> list[str]:
        """Subject ids, sorted, each once."""
        return sorted({e.subject_id for e in self.entries})

    def night(self, record: str) -> np.ndarray:
        """The memory-mapped epochs of one night (checksum verified on first access if ``verify``)."""
        if record not in self._maps:
            entry = next((e for e in self.entries if e.record == record), None)
            if entry is None:
                raise CacheError(f"recording {record!r} is not in this cohort", self.root)
            path = self.root / "recordings" / f"{record}.npy"
            if not path.is_file():
                raise CacheError(f"cached recording {path.name} is missing", self.root)
            if self._verify and sha256_file(path) != entry.sha256:
                raise CacheError(
                    f"cached recording {path.name} fails its checksum; rerun `somna prepare`", path
                )
            try:
                self._maps[record] = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as err:
                raise CacheError(f"cached recording is unreadable: {err}", path) from None
        return self._maps[record]

    def stage_table(self) -> list[dict[str, Any]]:
        """Per-subject AASM stage counts (both nights summed), for reports."""
        table: dict[str, dict[str, Any]] = {}
        for e in self.entries:
            row = table.setdefault(
                e.subject_id, {"subject": e.subject_id, "nights": 0, **dict.fromkeys(AASM.labels, 0)}
            )
            row["nights"] += 1
            for label in AASM.labels:
                row[label] += e.stage_counts.get(label, 0)
        return [table[k] for k in sorted(table)]

    def format_stage_table(self) -> str:
        """Per-subject epochs per AASM stage as a plain-text table (what ``somna prepare`` prints)."""
        header = f"{'subject':<10}{'nights':>7}" + "".join(f"{s:>8}" for s in AASM.labels) + f"{'total':>9}"
        lines = [header, "-" * len(header)]
        for row in self.stage_table():
            stages = "".join(f"{row[s]:>8}" for s in AASM.labels)
            lines.append(
                f"{row['subject']:<10}{row['nights']:>7}{stages}{sum(row[s] for s in AASM.labels):>9}"
            )
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Cohort({os.fspath(self.root)!r}, {len(self)} nights, {len(self.subjects)} subjects)"
