"""Faults and misuse around scoring (issue 16): each test is one row of the issue's table.

Rows: concurrent writers of one output folder; signals to a parallel batch (SIGKILL, SIGTERM, SIGINT);
an output folder holding another night's results; caches that must notice change; exceptions in one
night of a batch; non-finite checkpoints; disk full and other argument and file errors; stream's chunk
size, Ctrl-C and broken pipe; signal quality and recording length; unsafe file names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from somna_process import group_alive, somna_env, start_somna

import somna
from somna.cli import main
from somna.errors import CheckpointError, SomnaError
from somna.inference.batch import night_folder, score_to_folder
from somna.io import read_psg
from somna.io.edf_write import EdfChannel, write_psg_edf
from somna.storage import folder_lock, sha256_file

pytestmark = pytest.mark.slow

TIMEOUT_S = 240


def _wait_for(ready, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no {what} after {TIMEOUT_S} s")
        time.sleep(0.01)


def _copy_night(src_psg: Path, dest: Path, change=None, annotations=(), minutes: float | None = None) -> Path:
    """Rewrite a PSG (optionally changed: ``change(label, data, sfreq) -> data``, or cut to ``minutes``)."""
    rec = read_psg(src_psg)
    channels = []
    for modality, data in rec.signals.items():
        fs = rec.sfreq[modality]
        for name, x in zip(rec.channel_names[modality], data, strict=True):
            x = np.asarray(x, dtype=np.float64)
            if minutes is not None:
                x = x[: int(minutes * 60 * fs)]
            if change is not None:
                x = change(name, x.copy(), fs)
            channels.append(EdfChannel(name, x, fs, physical_range=(-500.0, 500.0)))
    return write_psg_edf(dest, channels, rec.start, annotations=annotations)


def _scored_psgs(run: Path) -> list[Path]:
    return sorted((run.parent / "edf").glob("*-PSG.edf"))


def _consistent(folder: Path) -> dict:
    """The folder's metrics.json, after checking that every output it lists is the file it wrote."""
    summary = json.loads((folder / "metrics.json").read_text())
    for name, digest in summary["outputs"].items():
        assert sha256_file(folder / name) == digest, f"{folder / name} is not the file metrics.json lists"
    return summary


# --- row 1: two writers of one output folder ---------------------------------------------------------


def test_two_score_runs_with_one_out_never_mix_their_results(tiny_trained_run, tmp_path: Path) -> None:
    run = tiny_trained_run[0]
    a, b = _scored_psgs(run)[:2]
    for pair in range(3):
        out = tmp_path / f"out{pair}"
        procs = [
            start_somna(
                ["score", str(p), "--model", str(run), "--out", str(out), "--no-report"], log, tmp_path
            )
            for p, log in ((a, tmp_path / f"a{pair}.log"), (b, tmp_path / f"b{pair}.log"))
        ]
        codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
        logs = [(tmp_path / f"{n}{pair}.log").read_text() for n in "ab"]
        assert 0 in codes, logs
        for code, text in zip(codes, logs, strict=True):
            assert "Traceback" not in text, text
            if code != 0:
                assert code == 2 and (
                    "is being written by process" in text
                    or "already holds the results of another recording" in text
                ), text
        summary = _consistent(out)
        winner = a if codes[0] == 0 else b
        assert summary["made_from"]["psg"]["sha256"] == sha256_file(winner) or codes == [0, 0]
        assert list(out.glob(".*.tmp")) == []


def test_a_locked_folder_is_refused_with_the_writer_named(tiny_trained_run, tmp_path: Path) -> None:
    run, psg, _ = tiny_trained_run
    stager = somna.load_stager(run)
    with (
        folder_lock(tmp_path / "night"),
        pytest.raises(SomnaError, match=f"being written by process {os.getpid()}"),
    ):
        score_to_folder(psg, stager, tmp_path / "night", report=False)


# --- row 3: a folder holding another night's or another model's results --------------------------------


def test_out_holding_another_nights_results_is_refused_and_force_replaces_every_output(
    tiny_trained_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tiny_trained_run[0]
    a, b = _scored_psgs(run)[:2]
    out = tmp_path / "night"
    assert main(["score", str(a), "--model", str(run), "--out", str(out)]) == 0
    assert (out / "report.html").is_file()
    assert main(["score", str(a), "--model", str(run), "--out", str(out)]) == 0
    assert "already scored" in capsys.readouterr().out  # same inputs: skipped
    assert main(["score", str(b), "--model", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"already holds the results of another recording ({a.name})" in err
    assert json.loads((out / "metrics.json").read_text())["made_from"]["psg"]["name"] == a.name
    # Other options are another result too; --force replaces it and removes what the new run does not write.
    assert main(["score", str(a), "--model", str(run), "--out", str(out), "--rem-min-epochs", "1"]) == 2
    assert "other options" in capsys.readouterr().err
    assert main(["score", str(b), "--model", str(run), "--out", str(out), "--force", "--no-report"]) == 0
    assert not (out / "report.html").exists()
    summary = _consistent(out)
    assert summary["made_from"]["psg"]["name"] == b.name and summary["psg"].endswith(b.name)


def test_force_with_a_three_class_result_removes_the_old_edf(tiny_trained_run, tmp_path: Path) -> None:
    from dataclasses import replace

    from somna.inference.scoring import score_psg, write_scored_night
    from somna.stages import THREE_CLASS

    run, psg, _ = tiny_trained_run
    scored = score_psg(psg, somna.load_stager(run))
    out = tmp_path / "night"
    write_scored_night(scored, out, report=False)
    assert (out / "hypnogram.edf").is_file()
    three = replace(scored, hypnogram=replace(scored.hypnogram.to(THREE_CLASS), proba=None))
    write_scored_night(three, out, report=False)
    assert not (out / "hypnogram.edf").exists()
    assert set(_consistent(out)["outputs"]) == {"hypnogram.csv", "probabilities.csv"}


def test_another_model_is_another_result(tiny_trained_run, tmp_path: Path, capsys) -> None:
    run, psg, _ = tiny_trained_run
    other = tmp_path / "other-model"
    shutil.copytree(run, other)
    state = torch.load(other / "fold_00" / "best.pt", weights_only=True)
    key = next(k for k, v in state["model_state"].items() if v.is_floating_point())
    state["model_state"][key] = state["model_state"][key] + 0.01
    torch.save(state, other / "fold_00" / "best.pt")
    out = tmp_path / "night"
    assert main(["score", str(psg), "--model", str(run), "--out", str(out), "--no-report"]) == 0
    assert main(["score", str(psg), "--model", str(other), "--out", str(out), "--no-report"]) == 2
    assert "another model" in capsys.readouterr().err


# --- row 2: signals to a parallel batch -------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT", "Ctrl-C"])
def test_batch_workers_die_with_their_parent(tiny_trained_run, tmp_path: Path, how: str) -> None:
    run = tiny_trained_run[0]
    edf = run.parent / "edf"
    out = tmp_path / "scores"
    log = tmp_path / "batch.log"
    proc = start_somna(
        ["score", f"{edf}/*-PSG.edf", "--model", str(run), "--out", str(out), "--workers", "2"], log, tmp_path
    )
    folders = [night_folder(out, p) for p in _scored_psgs(run)]
    _wait_for(lambda: any((f / "metrics.json").is_file() for f in folders), proc, log, "a scored night")
    if how == "Ctrl-C":  # a terminal's Ctrl-C: SIGINT to the whole process group, workers included
        os.killpg(proc.pid, signal.SIGINT)
    else:  # the parent only: its workers must follow by themselves
        os.kill(proc.pid, getattr(signal, how))
    proc.wait(timeout=60)
    deadline = time.monotonic() + 15
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(proc.pid), f"workers outlived their parent ({how})"
    done = {f for f in folders if (f / "metrics.json").is_file()}
    time.sleep(2)
    assert {f for f in folders if (f / "metrics.json").is_file()} == done, (
        "nights appeared after the parent died"
    )
    text = log.read_text()
    if how != "SIGKILL":
        assert proc.returncode == 130, text
        assert "Traceback" not in text, text
        assert "interrupted:" in text and "had finished" in text, text
    rerun = subprocess.run(
        [sys.executable, "-m", "somna", "score", f"{edf}/*-PSG.edf", "--model", str(run), "--out", str(out)],
        capture_output=True,
        text=True,
        env=somna_env(),
        timeout=TIMEOUT_S,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(folders) - len(done)} scored, {len(done)} skipped" in rerun.stdout


def test_prepare_workers_die_with_their_parent(tiny_trained_run, tmp_path: Path) -> None:
    edf = tiny_trained_run[0].parent / "edf"
    cache = tmp_path / "cache"
    log = tmp_path / "prepare.log"
    proc = start_somna(["prepare", str(edf), str(cache), "--workers", "2"], log, tmp_path)
    _wait_for(lambda: any((cache / "recordings").glob("*.json")), proc, log, "a prepared night")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 15
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(proc.pid), "prepare workers outlived their parent"


# --- row 4: caches that notice change ---------------------------------------------------------------


def test_prepare_redoes_nights_whose_hypnogram_changed_or_whose_cache_is_damaged(tmp_path: Path) -> None:
    from somna.data.cohort import Cohort, prepare_cohort
    from somna.io.hypnogram_files import read_hypnogram
    from somna.synth import write_synthetic_cohort

    edf = tmp_path / "edf"
    write_synthetic_cohort(edf, n_subjects=1, seed=2, hours=1.0, progress=False, variation="textbook")
    cache = tmp_path / "cache"
    cohort = prepare_cohort(edf, cache, workers=1, progress=False)
    first, second = cohort.entries
    # Edit the first night's hypnogram: every N2 becomes N3 (written with the same layout).
    hyp_path = Path(first.hypnogram)
    hyp = read_hypnogram(hyp_path)
    n2 = hyp.stages == 2
    edited = hyp.__class__(np.where(n2, 3, hyp.stages), hyp.label_set, hyp.epoch_s, start=hyp.start)
    edited.to_edf(hyp_path, "sleep-edf")
    # Damage the second night's cached epochs.
    npy = cache / "recordings" / f"{second.record}.npy"
    raw = bytearray(npy.read_bytes())
    raw[-10] ^= 0xFF
    npy.write_bytes(bytes(raw))
    with pytest.raises(SomnaError, match="checksum"):
        Cohort.open(cache).night(second.record)
    again = prepare_cohort(edf, cache, workers=1, progress=False)
    redone = {e.record: e for e in again.entries}
    assert redone[first.record].stage_counts["N2"] == 0 < redone[first.record].stage_counts["N3"]
    Cohort.open(cache).night(second.record)  # passes its checksum again
    assert main(["info", str(cache), "--verify"]) == 0


def test_a_manifest_missing_a_key_is_a_clean_error(small_cohort, tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(small_cohort.root, cache)
    manifest = json.loads((cache / "manifest.json").read_text())
    del manifest["recordings"][0]["subject_id"]
    (cache / "manifest.json").write_text(json.dumps(manifest))
    assert main(["info", str(cache)]) == 2
    assert "recording 0 lacks subject_id" in capsys.readouterr().err


# --- row 5: one night's exception in a batch ---------------------------------------------------------


def test_batch_goes_on_past_a_non_utf8_name_and_a_bad_hypnogram(tiny_trained_run, tmp_path: Path) -> None:
    run, psg, _ = tiny_trained_run
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(psg, os.fsdecode(bytes(batch) + b"/caf\xe9-night.edf"))
    _copy_night(
        psg, batch / "lights-reversed.edf", annotations=[(3600.0, "Lights off"), (600.0, "Lights on")]
    )
    shutil.copy(psg, batch / "good.edf")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "somna",
            "score",
            str(batch),
            "--model",
            str(run),
            "--out",
            str(tmp_path / "o"),
            "--workers",
            "1",
            "--no-report",
        ],
        capture_output=True,
        env=somna_env(),
        timeout=TIMEOUT_S,
    )
    out, err = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    assert result.returncode == 2 and "Traceback" not in out + err, out + err
    assert "2 scored" in out and "1 failed" in out, out
    assert "lights-reversed.edf" in err and "lights" in err.lower(), err
    assert not (tmp_path / "o" / "lights-reversed").exists()  # no half-written folder
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == ["caf_-night", "good"]


# --- row 6: checkpoints -------------------------------------------------------------------------------


def test_checkpoint_with_nan_weights_or_tampered_metadata_is_refused(
    tiny_trained_run, tmp_path: Path, capsys
) -> None:
    run, psg, _ = tiny_trained_run
    source = torch.load(run / "fold_00" / "best.pt", weights_only=True)
    nan = {**source, "model_state": dict(source["model_state"])}
    key = next(k for k, v in nan["model_state"].items() if v.is_floating_point())
    nan["model_state"][key] = torch.full_like(nan["model_state"][key], float("nan"))
    torch.save(nan, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN"):
        somna.load_stager(tmp_path / "nan.pt")
    assert main(["score", str(psg), "--model", str(tmp_path / "nan.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "nan.pt" in capsys.readouterr().err and not (tmp_path / "o" / "metrics.json").exists()
    for field, value in (
        ("label_set", "no-such-stages"),
        ("model_config", {"embed_dim": "x"}),
        ("preprocess", None),
    ):
        tampered = {**source, field: value}
        torch.save(tampered, tmp_path / f"{field}.pt")
        with pytest.raises(CheckpointError):
            somna.load_stager(tmp_path / f"{field}.pt")


# --- row 7: disk full, unwritable outputs, arguments out of range -------------------------------------


def test_disk_full_and_unwritable_report_end_in_one_line(
    tiny_trained_run, tmp_path: Path, capsys, monkeypatch
) -> None:
    import errno

    run, psg, _ = tiny_trained_run
    out = tmp_path / "night"
    (out / "report.html").mkdir(parents=True)  # a folder where the report goes
    assert main(["score", str(psg), "--model", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "report.html" in err and "Traceback" not in err, err
    shutil.rmtree(out)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert main(["score", str(psg), "--model", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and err.count("\n") == 1, err
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--lights-off", "500", "--lights-on", "100"], "is not after lights off"),
        (["--lights-off", "nan"], "is not a time"),
        (["--lights-on", "inf"], "is not a time"),
    ],
)
def test_metrics_lights_out_of_range_are_clean_errors(tiny_trained_run, capsys, args, words) -> None:
    hypnogram = tiny_trained_run[2]
    assert main(["metrics", str(hypnogram), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "args",
    [["--chunk-s", "0"], ["--chunk-s", "-1"], ["--chunk-s", "nan"], ["--threads", "0"]],
)
def test_stream_arguments_are_checked_at_parse_time(tiny_trained_run, capsys, args) -> None:
    run, psg, _ = tiny_trained_run
    with pytest.raises(SystemExit) as exit_:
        main(["stream", str(psg), "--model", str(run), *args])
    assert exit_.value.code == 2 and "error: argument" in capsys.readouterr().err


def test_stream_refuses_a_folder_and_chunks_below_one_sample(
    tiny_trained_run, tmp_path: Path, capsys
) -> None:
    run, psg, _ = tiny_trained_run
    assert main(["stream", str(psg), "--model", str(run), "--out", str(tmp_path)]) == 2
    assert "--out takes a CSV file name" in capsys.readouterr().err
    assert main(["stream", str(psg), "--model", str(run), "--chunk-s", "1e-300"]) == 2
    assert "less than one sample" in capsys.readouterr().err


def test_stream_disk_full_ends_in_one_line(tiny_trained_run, tmp_path: Path, capsys, monkeypatch) -> None:
    import errno
    import io

    import somna.cli.stream

    class FullDisk(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "live.csv"))

    def open_on_full_disk(path, mode="r", **kwargs):
        return io.TextIOWrapper(io.BufferedWriter(FullDisk()), line_buffering=True)

    monkeypatch.setattr(somna.cli.stream, "open", open_on_full_disk, raising=False)
    run, psg, _ = tiny_trained_run
    assert main(["stream", str(psg), "--model", str(run), "--out", str(tmp_path / "live.csv")]) == 2
    err = capsys.readouterr().err
    assert "live.csv: the disk is full" in err and err.count("\n") == 1, err


# --- rows 8 and 9: stream's broken pipe and Ctrl-C ----------------------------------------------------


def test_stream_into_head_keeps_every_staged_epoch_and_prints_no_traceback(
    tiny_trained_run, tmp_path: Path
) -> None:
    run, psg, _ = tiny_trained_run
    csv = tmp_path / "live.csv"
    cmd = f"{sys.executable} -m somna stream '{psg}' --model '{run}' --out '{csv}' | head -3"
    result = subprocess.run(
        ["bash", "-c", cmd], capture_output=True, text=True, env=somna_env(), timeout=TIMEOUT_S
    )
    assert "Traceback" not in result.stderr and "Error" not in result.stderr, result.stderr
    rows = csv.read_text().splitlines()
    assert len(rows) - 1 == read_psg(psg).n_epochs(30.0), "the CSV lost epochs when the reader went away"


def test_stream_ctrl_c_writes_every_staged_epoch_and_promises_no_resume(
    tiny_trained_run, tmp_path: Path
) -> None:
    run, psg, _ = tiny_trained_run
    csv = tmp_path / "live.csv"
    log = tmp_path / "stream.log"
    proc = start_somna(
        ["stream", str(psg), "--model", str(run), "--out", str(csv), "--speed", "300"], log, tmp_path
    )
    _wait_for(lambda: csv.is_file() and len(csv.read_text().splitlines()) > 5, proc, log, "staged epochs")
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    text = log.read_text()
    assert "Traceback" not in text and "resume" not in text.replace("cannot be resumed", ""), text
    staged = [line for line in text.splitlines() if re.match(r"\s*\d+\s+\d+:\d\d:\d\d\s", line)]
    rows = csv.read_text().splitlines()[1:]
    assert len(rows) >= len(staged) > 0 and f"stopped by Ctrl-C after {len(rows)} staged epochs" in text


# --- row 10: signal quality and length ---------------------------------------------------------------


def _flat_eeg(name, x, fs):
    if name == "EEG Pz-Oz":
        x[: int(0.75 * x.size)] = 0.0  # off for most of the night
    return x


def _zeros_but_one(name, x, fs):
    if name == "EOG horizontal":
        x[:] = 0.0
        x[x.size // 2] = 50.0
    return x


def _clipped(name, x, fs):
    if name == "EEG Fpz-Cz":
        x = np.clip(x * 20, -450, 450)
    return x


@pytest.mark.parametrize(
    "change, words",
    [
        (_flat_eeg, "EEG Pz-Oz (EEG): disconnected"),
        (_zeros_but_one, "EOG horizontal (EOG): disconnected"),
        (_clipped, "EEG Fpz-Cz (EEG): clipped in"),
    ],
)
def test_bad_channels_are_warned_counted_and_marked(
    tiny_trained_run, tmp_path: Path, capsys, change, words
) -> None:
    run, psg, _ = tiny_trained_run
    bad = _copy_night(psg, tmp_path / "bad.edf", change=change)
    out = tmp_path / "night"
    assert main(["score", str(bad), "--model", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"WARNING: {words}" in printed, printed
    summary = json.loads((out / "metrics.json").read_text())
    assert any(w.startswith(words) for w in summary["warnings"])
    assert summary["signal_quality"]["affected_epochs"] > 0
    rows = (out / "hypnogram.csv").read_text().splitlines()
    assert rows[0].endswith(",signal_problem") and sum(1 for r in rows[1:] if not r.endswith(",")) > 0
    assert words.split(" (")[0] in (out / "report.html").read_text()


def test_a_clean_night_has_no_warning(tiny_trained_run, tmp_path: Path) -> None:
    run, psg, _ = tiny_trained_run
    hypnogram = somna.load_stager(run).predict(psg)
    assert hypnogram.info["warnings"] == []


def test_short_and_multi_day_recordings_are_said_so(tiny_trained_run, tmp_path: Path, capsys) -> None:
    run, psg, _ = tiny_trained_run
    short = _copy_night(psg, tmp_path / "short.edf", minutes=1.5)
    assert main(["score", str(short), "--model", str(run), "--out", str(tmp_path / "s"), "--no-report"]) == 0
    assert "fewer than the 8 epochs of context" in capsys.readouterr().out
    rec = read_psg(psg)
    reps = int(np.ceil(40 * 3600 / rec.duration_s))
    long = [
        EdfChannel(
            name,
            np.tile(np.asarray(x, dtype=np.float64), reps)[: int(40 * 3600 * rec.sfreq[m])],
            rec.sfreq[m],
        )
        for m, data in rec.signals.items()
        for name, x in zip(rec.channel_names[m], data, strict=True)
    ]
    days = write_psg_edf(tmp_path / "days.edf", long, datetime(2024, 1, 1, 21, 0))
    assert main(["score", str(days), "--model", str(run), "--out", str(tmp_path / "d"), "--no-report"]) == 0
    assert "more than one night" in capsys.readouterr().out
    nights = json.loads((tmp_path / "d" / "metrics.json").read_text())["metrics"]["nights"]
    assert [n["start"][:16] for n in nights] == ["2024-01-01T21:00", "2024-01-02T12:00"]


# --- row 11: unsafe names ----------------------------------------------------------------------------


def test_dot_names_in_a_batch_get_their_own_folders(tiny_trained_run, tmp_path: Path) -> None:
    run, psg, _ = tiny_trained_run
    batch = tmp_path / "batch"
    batch.mkdir()
    for name in ("..edf", ".x.edf"):
        shutil.copy(psg, batch / name)
    out = tmp_path / "o"
    args = ["score", str(batch / "..edf"), str(batch / ".x.edf"), "--model", str(run), "--out", str(out)]
    assert main([*args, "--workers", "1", "--no-report"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["_..edf", "_.x.edf"]
    assert not (out / "metrics.json").exists()


def test_stream_warns_about_bad_channels_and_marks_their_epochs(
    tiny_trained_run, tmp_path: Path, capsys
) -> None:
    run, psg, _ = tiny_trained_run
    bad = _copy_night(psg, tmp_path / "bad.edf", change=_flat_eeg)
    csv = tmp_path / "live.csv"
    assert main(["stream", str(bad), "--model", str(run), "--out", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert "WARNING: EEG Pz-Oz (EEG): disconnected" in printed and "(flat EEG Pz-Oz)" in printed
    rows = csv.read_text().splitlines()
    assert rows[0].endswith(",signal_problem") and rows[1].endswith(",flat EEG Pz-Oz")
