"""`somna score` / `somna metrics`: a trained stager scores an EDF and writes every output."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from somna.cli import main
from somna.errors import ChannelError, CheckpointError, HypnogramError, SignalQualityError
from somna.evaluation.agreement import epoch_agreement
from somna.hypnogram import Hypnogram
from somna.inference import load_stager
from somna.inference.scoring import score_psg, write_scored_night
from somna.io import read_hypnogram
from somna.io.channels import channel_spec
from somna.io.edf_write import EdfChannel, write_hypnogram_edf, write_psg_edf
from somna.stages import AASM, NREM_REM, RK, THREE_CLASS, TWO_CLASS, merge_hierarchical


@pytest.fixture(scope="module")
def trained(tiny_trained_run: tuple[Path, Path, Path]) -> tuple[Path, Path, Path]:
    return tiny_trained_run


@pytest.mark.slow
def test_score_writes_every_output_and_the_edf_hypnogram_reads_back(trained, tmp_path: Path) -> None:
    run, psg, _ = trained
    stager = load_stager(run)
    scored = score_psg(psg, stager)
    paths = write_scored_night(scored, tmp_path / "out")
    assert set(paths) == {"hypnogram_csv", "hypnogram_edf", "probabilities", "metrics", "report"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    n = len(scored.hypnogram)
    proba = scored.hypnogram.proba
    assert proba is not None and proba.shape == (n, AASM.n_classes)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)
    back = read_hypnogram(paths["hypnogram_edf"])
    assert back.label_set is AASM and np.array_equal(back.stages, scored.hypnogram.stages)
    rows = list(csv.DictReader(paths["hypnogram_csv"].open()))
    assert len(rows) == n and [r["stage"] for r in rows[:3]] == [AASM.label(int(s)) for s in back.stages[:3]]
    assert rows[0]["clock_time"] and rows[0]["date"] and 0 < float(rows[0]["confidence"]) <= 1
    probabilities = list(csv.DictReader(paths["probabilities"].open()))
    assert len(probabilities) == n and float(probabilities[1]["onset_s"]) == 30.0
    assert sum(float(probabilities[0][f"p_{s}"]) for s in AASM.labels) == pytest.approx(1.0, abs=1e-3)
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["n_epochs"] == n and metrics["metrics"]
    assert metrics["backend"] == stager.backend and metrics["model"] == str(run)
    html = paths["report"].read_text()
    assert html.count("data:image/png;base64,") >= 3 and "http://" not in html.replace("http://www.w3", "")


@pytest.mark.slow
def test_score_with_a_reference_reports_agreement_computed_on_the_same_epochs(
    trained, tmp_path: Path
) -> None:
    run, psg, hypnogram = trained
    scored = score_psg(psg, load_stager(run), reference=hypnogram)
    reference = scored.reference
    assert reference is not None and len(reference) == len(scored.hypnogram)
    expected = epoch_agreement(reference.stages, scored.hypnogram.stages, AASM)
    assert scored.agreement["accuracy"] == pytest.approx(expected["accuracy"])
    assert scored.reference_metrics is not None
    paths = write_scored_night(scored, tmp_path / "out")
    assert "agreement" in json.loads(paths["metrics"].read_text())


@pytest.mark.slow
def test_score_command_line(trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, psg, hypnogram = trained
    code = main(
        ["score", str(psg), "--model", str(run), "--hypnogram", str(hypnogram), "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0 and "agreement with" in out and (tmp_path / "report.html").is_file()


@pytest.mark.slow
def test_score_errors_are_clear(trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, psg, _ = trained
    stager = load_stager(run)
    with pytest.raises(ChannelError, match=r"C4-M1.*EEG Fpz-Cz"):
        score_psg(psg, stager, channel_spec(eeg="C4-M1,O2-M1"))
    with pytest.raises(ChannelError, match="reads 2 EEG channel"):
        score_psg(psg, stager, channel_spec(eeg="EEG Fpz-Cz"))
    with pytest.raises(ChannelError, match="reads 2 EEG channel"):
        stager.predict(psg, eeg="EEG Fpz-Cz")
    other = tmp_path / "SC4991EC-Hypnogram.edf"
    write_hypnogram_edf(other, Hypnogram(np.zeros(20, dtype=np.int8), RK), datetime(1989, 4, 24, 16, 0))
    with pytest.raises(HypnogramError):
        score_psg(psg, stager, reference=other)
    assert main(["score", str(psg), "--model", str(tmp_path / "nothing")]) == 2
    assert "nothing: no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["score", str(psg), "--model", str(tmp_path / "empty")]) == 2
    assert "no trained model here" in capsys.readouterr().err
    with pytest.raises(CheckpointError):
        load_stager(tmp_path)


def test_too_short_recording_is_a_clear_error(tmp_path: Path) -> None:
    from somna.models import ModelConfig, StagingNetwork

    rng = np.random.default_rng(0)
    start = datetime(2000, 1, 1, 23, 0)
    chans = [EdfChannel(n, rng.standard_normal(20 * 100) * 20, 100.0) for n in ("EEG Fpz-Cz", "EEG Pz-Oz")]
    chans += [EdfChannel("EOG horizontal", rng.standard_normal(20 * 100) * 20, 100.0)]
    chans += [EdfChannel("EMG submental", np.abs(rng.standard_normal(20)) + 1, 1.0, physical_range=(0, 100))]
    write_psg_edf(tmp_path / "short-PSG.edf", chans, start, data_record_s=10.0)
    from somna.config import PreprocessConfig
    from somna.inference import Stager
    from somna.models.torch_model import TorchStageModel

    model = TorchStageModel(StagingNetwork(ModelConfig(seq_len=8, embed_dim=16, cnn_width=8)))
    stager = Stager([{"model": model}], "aasm", ("eeg", "eog", "emg"), PreprocessConfig())
    with pytest.raises(SignalQualityError, match="shorter than one 30-s epoch"):
        score_psg(tmp_path / "short-PSG.edf", stager)


def test_merge_hierarchical_follows_the_cascade() -> None:
    sleep = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.45, 0.55]])
    rem = np.array([[0.1, 0.9], [0.3, 0.7], [0.8, 0.2], [0.5, 0.5]])
    probs, stages = merge_hierarchical(sleep, rem)
    assert [THREE_CLASS.label(int(s)) for s in stages] == ["W", "REM", "NREM", "REM"]
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert probs[1, THREE_CLASS.code("REM")] == pytest.approx(0.8 * 0.7)
    assert TWO_CLASS.code("Sleep") == 1 and NREM_REM.code("REM") == 1


def test_metrics_command_prints_the_metrics_of_a_real_hypnogram(shared_data: Path, capsys) -> None:
    assert main(["metrics", str(shared_data / "hmc" / "SN001_sleepscoring.edf")]) == 0
    out = capsys.readouterr().out
    assert "TST" in out or "tst" in out.lower()
    assert main(["metrics", str(shared_data / "hmc" / "SN001_sleepscoring.edf"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
