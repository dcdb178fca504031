"""Batch scoring: `somna score` over files, folders and patterns; skip/force; one bad night; bad outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import somna.inference.batch
from somna.cli import main
from somna.errors import SomnaError
from somna.inference import load_stager
from somna.inference.batch import SCORED, SKIPPED, expand_psgs, night_is_scored, pair_hypnograms, score_many
from somna.inference.scoring import score_psg, write_scored_night

OUTPUTS = ("hypnogram.csv", "hypnogram.edf", "probabilities.csv", "report.html", "metrics.json")
FOLDER = (*OUTPUTS, ".somna.lock")  # what a night's folder holds: the outputs and the writers' lock


@pytest.fixture()
def nights(tiny_trained_run: tuple[Path, Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """(run folder, a folder with 3 synthetic PSGs, their hypnograms and a non-EDF file)."""
    run = tiny_trained_run[0]
    edf = tmp_path / "edf"
    edf.mkdir()
    for psg in sorted((run.parent / "edf").glob("*-PSG.edf"))[:3]:
        shutil.copy(psg, edf / psg.name)
    for hyp in sorted((run.parent / "edf").glob("*-Hypnogram.edf"))[:3]:
        shutil.copy(hyp, edf / hyp.name)
    (edf / "notes.txt").write_text("not a recording")
    return run, edf


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def test_folders_patterns_and_files_expand_to_psgs_once(tmp_path: Path) -> None:
    for name in ("SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf", "b.EDF", "SN001_sleepscoring.edf", "x.txt"):
        (tmp_path / name).write_bytes(b"0")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "SC4011E0-PSG.edf").write_bytes(b"0")
    folder = expand_psgs([tmp_path])
    assert [p.name for p in folder] == ["SC4001E0-PSG.edf", "b.EDF"]
    pattern = expand_psgs([f"{tmp_path}/**/*-PSG.edf", tmp_path / "SC4001E0-PSG.edf", tmp_path])
    assert [p.name for p in pattern] == ["SC4001E0-PSG.edf", "SC4011E0-PSG.edf", "b.EDF"]
    with pytest.raises(SomnaError, match=r"missing\.edf: no such file.*nothing/\*\.edf: no PSG"):
        expand_psgs([tmp_path / "missing.edf", f"{tmp_path}/nothing/*.edf"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SomnaError, match=r"no PSG \.edf/\.bdf file in this folder"):
        expand_psgs([tmp_path / "empty"])


def test_complete_nights_are_skipped_and_half_written_ones_redone(nights, tmp_path: Path) -> None:
    run, edf = nights
    psgs = expand_psgs([edf])
    out = tmp_path / "scores"
    status = score_many(psgs, run, out, workers=1, progress=False)
    assert status == dict.fromkeys(psgs, SCORED)
    folders = [out / p.name.split(".")[0] for p in psgs]
    assert all(sorted(f.name for f in d.iterdir()) == sorted(FOLDER) for d in folders)
    before = {d: _snapshot(d) for d in folders}

    # A night whose write was interrupted: no metrics.json, a stale temporary file, a garbage csv.
    (folders[1] / "metrics.json").unlink()
    (folders[1] / "hypnogram.csv").write_text("garbage")
    (folders[1] / ".report.html.abc123.tmp").write_text("half")
    assert not night_is_scored(folders[1])
    status = score_many(psgs, run, out, workers=1, progress=False)
    assert status == {psgs[0]: SKIPPED, psgs[1]: SCORED, psgs[2]: SKIPPED}
    assert _snapshot(folders[0]) == before[folders[0]] and _snapshot(folders[2]) == before[folders[2]]
    assert sorted(f.name for f in folders[1].iterdir()) == sorted(FOLDER)
    assert (folders[1] / "hypnogram.csv").read_text() == before[folders[1]]["hypnogram.csv"][1].decode()

    status = score_many(psgs, run, out, workers=1, force=True, progress=False)
    assert set(status.values()) == {SCORED}
    assert all(
        _snapshot(d)["metrics.json"][0] > before[d]["metrics.json"][0] for d in (folders[0], folders[2])
    )


def test_metrics_json_is_written_last_and_an_old_one_is_dropped_first(
    nights, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, edf = nights
    scored = score_psg(next(edf.glob("*-PSG.edf")), load_stager(run))
    out = tmp_path / "night"
    write_scored_night(scored, out)
    assert night_is_scored(out)

    def broken_report(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("somna.report.night.write_night_report", broken_report)
    with pytest.raises(OSError, match="disk full"):
        write_scored_night(scored, out)
    assert not (out / "metrics.json").exists() and not night_is_scored(out)


def test_one_bad_file_fails_alone_with_exit_status_2(nights, tmp_path: Path, capsys) -> None:
    run, edf = nights
    good = sorted(edf.glob("*-PSG.edf"))
    bad = edf / "SC4091E0-PSG.edf"
    bad.write_bytes(good[0].read_bytes()[:50_000])  # truncated EDF
    out = tmp_path / "scores"
    code = main(["score", str(edf), "--model", str(run), "--out", str(out), "--workers", "2"])
    captured = capsys.readouterr()
    assert code == 2
    assert "failed: " in captured.err and "SC4091E0-PSG.edf" in captured.err and "truncated" in captured.err
    assert "4 night(s): 3 scored, 0 skipped (already scored), 1 failed" in captured.out
    assert "1 of 4 night(s) failed" in captured.err
    assert all(night_is_scored(out / p.name.split(".")[0]) for p in good)
    assert not night_is_scored(out / "SC4091E0-PSG")

    code = main(["score", f"{edf}/*-PSG.edf", "--model", str(run), "--out", str(out), "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 2 and "0 scored, 3 skipped (already scored), 1 failed" in captured.out


def test_unusable_output_is_an_error_before_any_work(
    nights, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, edf = nights

    def no_scoring(*args: object, **kwargs: object) -> None:
        raise AssertionError("scoring started")

    monkeypatch.setattr(somna.inference.batch, "score_psg", no_scoring)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for out in (a_file, a_file / "sub"):
        assert main(["score", str(edf), "--model", str(run), "--out", str(out), "--workers", "1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"somna: error: {out}: ") and err.count("\n") == 1
        assert "is a file, not an output folder" in err or "Not a directory" in err
    psg = next(edf.glob("*-PSG.edf"))
    assert main(["score", str(psg), "--model", str(run), "--out", str(a_file)]) == 2
    assert "is a file, not an output folder" in capsys.readouterr().err
    out = tmp_path / "scores"
    out.mkdir()
    (out / psg.name.split(".")[0]).write_text("")  # a night's folder that is a file
    assert main(["score", str(edf), "--model", str(run), "--out", str(out), "--workers", "1"]) == 2
    assert "is a file, not a night's output folder" in capsys.readouterr().err


def test_hypnogram_needs_one_psg_and_hypnogram_dir_pairs_sleep_edf_nights(
    nights, tmp_path: Path, capsys
) -> None:
    run, edf = nights
    assert main(["score", str(edf), "--model", str(run), "--hypnogram", str(edf / "x.edf")]) == 2
    assert "--hypnogram needs a single PSG file" in capsys.readouterr().err
    psgs = expand_psgs([edf])
    pairs = pair_hypnograms(psgs, edf)
    assert len(pairs) == 3
    assert all(p.name[:6] == h.name[:6] and h.name.endswith("-Hypnogram.edf") for p, h in pairs.items())
    out = tmp_path / "scores"
    args = ["score", str(edf), "--model", str(run), "--out", str(out), "--hypnogram-dir", str(edf)]
    assert main([*args, "--workers", "1"]) == 0
    assert "3 of 3 night(s) have a reference hypnogram" in capsys.readouterr().out
    metrics = json.loads((out / psgs[0].name.split(".")[0] / "metrics.json").read_text())
    assert "accuracy" in metrics["agreement"]


def test_single_psg_writes_into_out_and_is_skipped_when_rerun(nights, tmp_path: Path, capsys) -> None:
    run, edf = nights
    psg = next(edf.glob("*-PSG.edf"))
    out = tmp_path / "one"
    assert main(["score", str(psg), "--model", str(run), "--out", str(out)]) == 0
    assert "epochs staged" in capsys.readouterr().out and night_is_scored(out)
    assert main(["score", str(psg), "--model", str(run), "--out", str(out)]) == 0
    assert "already scored" in capsys.readouterr().out
    assert main(["score", str(psg), "--model", str(run), "--out", str(out), "--force"]) == 0
    assert "epochs staged" in capsys.readouterr().out
