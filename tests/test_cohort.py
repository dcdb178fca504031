"""The prepared cohort cache: contents, resume, checksums, failures."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from somna.config import CohortConfig, PreprocessConfig
from somna.data import Cohort, prepare_cohort
from somna.errors import CacheError, SomnaError
from somna.hypnogram import Hypnogram
from somna.io.edf_write import EdfChannel, write_hypnogram_edf, write_psg_edf
from somna.stages import AASM, RK

START = datetime(1989, 4, 24, 22, 0)


def _stages(rng: np.random.Generator) -> np.ndarray:
    w, s1, s2, s3, s4, rem = (RK.code(s) for s in RK.labels)
    sleep = rng.choice([s1, s2, s2, s3, s4, rem], size=40)
    return np.r_[[w] * 90, sleep, [w] * 70].astype(np.int8)


def _write_night(folder: Path, subject: int, night: int, letter: str, rng: np.random.Generator) -> np.ndarray:
    stages = _stages(rng)
    n = stages.size
    record = f"SC4{subject:02d}{night}"
    channels = [
        EdfChannel("EEG Fpz-Cz", rng.standard_normal(n * 3000) * 30, 100.0),
        EdfChannel("EEG Pz-Oz", rng.standard_normal(n * 3000) * 20, 100.0),
        EdfChannel("EOG horizontal", rng.standard_normal(n * 3000) * 40, 100.0),
        EdfChannel(
            "Resp oro-nasal", rng.standard_normal(n * 30) * 100, 1.0, unit="", physical_range=(-2048, 2047)
        ),
        EdfChannel(
            "EMG submental", np.abs(rng.standard_normal(n * 30)) * 5 + 2, 1.0, physical_range=(-5, 200)
        ),
        EdfChannel(
            "Temp rectal", 37 + rng.standard_normal(n * 30) * 0.01, 1.0, unit="DegC", physical_range=(34, 40)
        ),
        EdfChannel("Event marker", np.zeros(n * 30) + 1000, 1.0, unit="", physical_range=(-2048, 2047)),
    ]
    write_psg_edf(folder / f"{record}E0-PSG.edf", channels, START)
    write_hypnogram_edf(folder / f"{record}E{letter}-Hypnogram.edf", Hypnogram(stages, RK), START)
    return stages


@pytest.fixture(scope="module")
def edf_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("edf")
    rng = np.random.default_rng(7)
    stages = {}
    for subject, night, letter in [(0, 1, "C"), (0, 2, "C"), (1, 1, "H"), (1, 2, "J")]:
        stages[f"SC4{subject:02d}{night}"] = _write_night(folder, subject, night, letter, rng)
    return folder, stages


def test_prepare_caches_every_night_with_trimmed_stages(edf_folder, tmp_path: Path) -> None:
    folder, stages = edf_folder
    cohort = prepare_cohort(folder, tmp_path / "cache", workers=1, progress=False)
    assert len(cohort) == 4
    assert len(cohort.subjects) == 2  # both nights of a subject share one subject id
    for entry in cohort.entries:
        night = cohort.night(entry.record)
        assert isinstance(night, np.memmap)
        assert night["eeg"].shape == (entry.n_epochs, 2, 3000)
        assert night["eog"].shape == (entry.n_epochs, 1, 3000)
        assert night["emg"].shape == (entry.n_epochs, 1, 30)
        source = stages[next(k for k in stages if entry.record.startswith(k))]
        # 30 min = 60 epochs of wake kept before the 40 sleep epochs (90 recorded) and after (70 recorded)
        assert entry.first_epoch == 30
        assert entry.n_epochs == 60 + 40 + 60
        assert np.array_equal(night["rk_stage"], source[30:190])
        assert np.array_equal(night["epoch_index"], np.arange(30, 190))
        assert entry.stage_counts["W"] == 120
        assert sum(entry.stage_counts[s] for s in AASM.labels) == 160
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["failures"] == {}
    assert {r["study"] for r in manifest["recordings"]} == {"SC"}


def test_prepare_in_parallel_gives_the_same_cache(edf_folder, tmp_path: Path) -> None:
    folder, _ = edf_folder
    serial = prepare_cohort(folder, tmp_path / "a", workers=1, progress=False)
    parallel = prepare_cohort(folder, tmp_path / "b", workers=2, progress=False)
    assert [e.sha256 for e in serial.entries] == [e.sha256 for e in parallel.entries]


def test_prepare_resumes_and_redoes_only_unfinished_nights(edf_folder, tmp_path: Path) -> None:
    folder, _ = edf_folder
    cache = tmp_path / "cache"
    cohort = prepare_cohort(folder, cache, workers=1, progress=False)
    recs = cache / "recordings"
    first, second = cohort.records[0], cohort.records[1]
    mtime_kept = (recs / f"{second}.npy").stat().st_mtime_ns
    # a killed run: the .npy of one night was written but its .json (the completion mark) was not
    (recs / f"{first}.json").unlink()
    (recs / f".{first}.npy.abc.tmp").write_bytes(b"half")
    resumed = prepare_cohort(folder, cache, workers=1, progress=False)
    assert resumed.records == cohort.records
    assert (recs / f"{first}.json").is_file()
    assert (recs / f"{second}.npy").stat().st_mtime_ns == mtime_kept
    assert not list(recs.glob(".*.tmp"))


def test_changed_preprocessing_invalidates_the_cache(edf_folder, tmp_path: Path) -> None:
    folder, _ = edf_folder
    cache = tmp_path / "cache"
    prepare_cohort(folder, cache, workers=1, progress=False)
    config = CohortConfig(preprocess=PreprocessConfig(trim_wake_min=10.0))
    cohort = prepare_cohort(folder, cache, config=config, workers=1, progress=False)
    assert all(e.n_epochs == 20 + 40 + 20 for e in cohort.entries)


def test_a_night_cached_by_an_older_format_is_prepared_again(edf_folder, tmp_path: Path) -> None:
    folder, _ = edf_folder
    cache = tmp_path / "cache"
    cohort = prepare_cohort(folder, cache, workers=1, progress=False)
    meta = cache / "recordings" / f"{cohort.records[0]}.json"
    old = json.loads(meta.read_text())
    meta.write_text(json.dumps({**old, "format": old["format"] - 1}))
    prepare_cohort(folder, cache, workers=1, progress=False)
    assert json.loads(meta.read_text())["format"] == old["format"]


def test_corrupt_cached_night_fails_its_checksum(edf_folder, tmp_path: Path) -> None:
    folder, _ = edf_folder
    cohort = prepare_cohort(folder, tmp_path / "cache", workers=1, progress=False)
    path = tmp_path / "cache" / "recordings" / f"{cohort.records[0]}.npy"
    with open(path, "r+b") as fh:
        fh.seek(os.path.getsize(path) // 2)
        fh.write(b"\x13\x37")
    with pytest.raises(CacheError, match="checksum"):
        Cohort.open(tmp_path / "cache").night(cohort.records[0])


def test_a_bad_night_is_reported_and_the_others_are_cached(edf_folder, tmp_path: Path) -> None:
    folder, _ = edf_folder
    bad = tmp_path / "edf"
    bad.mkdir()
    for f in folder.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    broken = bad / "SC4011E0-PSG.edf"
    broken.write_bytes(broken.read_bytes()[:5000])  # truncated
    with pytest.raises(SomnaError, match=r"1 night\(s\) failed.*SC4011E0-PSG\.edf"):
        prepare_cohort(bad, tmp_path / "cache", workers=1, progress=False)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert len(manifest["recordings"]) == 3
    assert list(manifest["failures"]) == [str(broken)]


def test_unwritable_cache_is_an_error_before_any_work(edf_folder, tmp_path: Path) -> None:
    folder, _ = edf_folder
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(SomnaError, match="cannot write the cohort cache"):
        prepare_cohort(folder, blocker, workers=1, progress=False)


def test_opening_a_folder_that_is_not_a_cache_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="not a prepared cohort"):
        Cohort.open(tmp_path)
