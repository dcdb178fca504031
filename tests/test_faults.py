"""Kill tests: `somna prepare`, `train` and batch `score` killed with SIGKILL mid-work, then rerun.

Each command runs as a real subprocess (``python -m somna``) in its own session; once the first finished
artefact appears on disk the whole process group (workers included) gets SIGKILL, as a crash, the OOM
killer or a lost machine would. The rerun must finish the job, keep what was finished, and trust nothing
half-written.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from somna_process import group_alive, start_somna

from somna.data.cohort import Cohort
from somna.inference.batch import night_is_scored
from somna.storage import sha256_file
from somna.synth import write_synthetic_cohort

pytestmark = pytest.mark.slow

TIMEOUT_S = 240
"""Upper bound for one command (generous: the machine may be shared)."""


def _run(args: list[str], log: Path, cwd: Path) -> str:
    """Run ``python -m somna ARGS`` to the end; its output (the test fails on a non-zero exit)."""
    proc = start_somna(args, log, cwd)
    try:
        code = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        pytest.fail(f"`somna {' '.join(args)}` ran over {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
    out = log.read_text()
    assert code == 0, f"`somna {' '.join(args)}` exited {code}:\n{out[-3000:]}"
    return out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command and every worker it started, and wait until none of them runs."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(proc.pid), "a worker survived SIGKILL of its process group"


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, log: Path) -> None:
    """Poll the file system until ``ready()``, then SIGKILL the process group at once."""
    deadline = time.monotonic() + TIMEOUT_S
    while not ready():
        if proc.poll() is not None:
            pytest.fail(
                f"the command ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            _kill_group(proc)
            pytest.fail(f"no {what} after {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.005)
    _kill_group(proc)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, _digest(path)


def test_prepare_killed_mid_cohort_resumes_and_every_cached_night_verifies(tmp_path: Path) -> None:
    edf = tmp_path / "edf"
    write_synthetic_cohort(edf, n_subjects=5, seed=11, hours=1.5, progress=False, variation="textbook")
    n_nights = len(list(edf.glob("*-PSG.edf")))
    cache = tmp_path / "cache"
    recordings = cache / "recordings"
    args = ["prepare", str(edf), str(cache), "--workers", "2"]

    proc = start_somna(args, tmp_path / "prepare-killed.log", tmp_path)
    _kill_when(
        proc,
        lambda: len(list(recordings.glob("*.json"))) >= 3,
        "3 cached nights",
        tmp_path / "prepare-killed.log",
    )
    cached = {meta.stem for meta in recordings.glob("*.json")}
    assert 3 <= len(cached) < n_nights, f"the kill landed after every night was cached ({len(cached)})"
    assert not (cache / "manifest.json").exists()
    leftovers = sorted(p.name for p in recordings.iterdir() if p.stem not in cached)
    print(f"killed with {len(cached)}/{n_nights} nights cached; also on disk: {leftovers}")
    before = {
        p.name: p.stat().st_mtime_ns
        for r in cached
        for p in (recordings / f"{r}.npy", recordings / f"{r}.json")
    }
    (recordings / ".SC4999E0.npy.planted.tmp").write_bytes(b"half a night")  # as a kill mid-write leaves

    out = _run(args, tmp_path / "prepare-rerun.log", tmp_path)
    assert f"{n_nights} nights" in out
    cohort = Cohort.open(cache, verify=True)
    assert len(cohort) == n_nights
    for entry in cohort.entries:  # checksum verified on first access; then every byte read
        night = cohort.night(entry.record)
        assert len(night) == entry.n_epochs and np.isfinite(night["eeg"]).all()
        assert sha256_file(recordings / f"{entry.record}.npy") == entry.sha256
    after = {name: (recordings / name).stat().st_mtime_ns for name in before}
    assert after == before, "nights cached before the kill were prepared again"
    assert list(cache.rglob("*.tmp")) == []
    assert {p.stem for p in recordings.glob("*.npy")} == set(cohort.records)


TRAIN_TOML = """\
name = "kill-test"

[data]
cache = "{cache}"

[model]
embed_dim = 16
cnn_width = 8
seq_len = 8

[training]
max_epochs = 5
patience = 100
batch_size = 8
chunk_len = 32
lr = 3e-3
threads = 1

[cv]
test_fraction = 0.34
validation_fraction = 0.5
seed = 0
"""


def test_train_killed_after_a_pass_resumes_to_the_same_weights(
    tiny_trained_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cache = tiny_trained_run[0].parent / "cache"
    config = tmp_path / "tiny.toml"
    config.write_text(TRAIN_TOML.format(cache=cache))
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    fold = "fold_00"

    # The uninterrupted run goes alongside (one thread each).
    ref_proc = start_somna(
        ["train", "--config", str(config), "--out", str(reference)], tmp_path / "ref.log", tmp_path
    )
    try:
        args = ["train", "--config", str(config), "--out", str(killed)]
        proc = start_somna(args, tmp_path / "train-killed.log", tmp_path)
        _kill_when(proc, (killed / fold / "last.pt").is_file, "last.pt", tmp_path / "train-killed.log")
        assert not (killed / fold / "predictions.npz").exists(), "the kill landed after training finished"
        next_pass = torch.load(killed / fold / "last.pt", weights_only=True)["next_pass"]
        assert 0 < next_pass < 5
        print(f"killed after pass {next_pass} of 5")

        out = _run(args, tmp_path / "train-rerun.log", tmp_path)
        assert "resuming" in out, out[-3000:]
        assert (killed / fold / "predictions.npz").is_file() and (killed / "evaluation.json").is_file()
        assert ref_proc.wait(timeout=TIMEOUT_S) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    finally:
        if ref_proc.poll() is None:
            _kill_group(ref_proc)

    for name in ("best.pt", "last.pt"):
        resumed = torch.load(killed / fold / name, weights_only=True)
        straight = torch.load(reference / fold / name, weights_only=True)
        assert resumed["best_pass"] == straight["best_pass"]
        assert resumed["model_state"].keys() == straight["model_state"].keys()
        for key, tensor in straight["model_state"].items():
            assert torch.equal(resumed["model_state"][key], tensor), f"{name}: {key} differs after resume"
    with np.load(killed / fold / "predictions.npz") as a, np.load(reference / fold / "predictions.npz") as b:
        assert np.array_equal(a["y_pred"], b["y_pred"]) and np.array_equal(a["probs"], b["probs"])


def test_batch_score_killed_mid_batch_skips_finished_nights_and_redoes_the_rest(
    tiny_trained_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    run = tiny_trained_run[0]
    edf = run.parent / "edf"
    psgs = sorted(edf.glob("*-PSG.edf"))
    out = tmp_path / "scores"
    folders = [out / p.name.split(".")[0] for p in psgs]
    args = ["score", f"{edf}/*-PSG.edf", "--model", str(run), "--out", str(out), "--workers", "2"]

    proc = start_somna(args, tmp_path / "score-killed.log", tmp_path)
    _kill_when(
        proc, lambda: any(map(night_is_scored, folders)), "a scored night", tmp_path / "score-killed.log"
    )
    done = [f for f in folders if night_is_scored(f)]
    assert 0 < len(done) < len(folders), f"the kill landed after every night was scored ({len(done)})"
    before = {f: {p.name: _state(p) for p in f.iterdir()} for f in done}
    partial = {f.name: sorted(p.name for p in f.iterdir()) for f in folders if f.is_dir() and f not in done}
    print(f"killed with {len(done)}/{len(folders)} nights scored; unfinished folders: {partial}")
    # A night cut off mid-write: some outputs, a stale temporary file, no metrics.json.
    half = next(f for f in folders if f not in done)
    half.mkdir(exist_ok=True)
    (half / "hypnogram.csv").write_text("half-written")
    (half / ".probabilities.csv.planted.tmp").write_text("half-written")

    out_text = _run(args, tmp_path / "score-rerun.log", tmp_path)
    assert f"{len(folders) - len(done)} scored, {len(done)} skipped" in out_text, out_text[-3000:]
    for folder in done:
        assert {p.name: _state(p) for p in folder.iterdir()} == before[folder], f"{folder.name} was rewritten"
    for folder in folders:
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(
            [
                ".somna.lock",
                "hypnogram.csv",
                "hypnogram.edf",
                "metrics.json",
                "probabilities.csv",
                "report.html",
            ]
        )
    assert (
        (half / "hypnogram.csv")
        .read_text()
        .startswith("epoch,onset_s,date,clock_time,stage,confidence,signal_problem\n")
    )
    assert list(out.rglob("*.tmp")) == []
