"""What a model was trained on: provenance, the training nights' profile, and the out-of-distribution flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from somna.data.profile import night_profile, out_of_distribution, training_profile
from somna.provenance import cohort_source, describe, synthetic_caveat


def _night(rng: np.random.Generator, eog_slow: float = 0.0, n: int = 120) -> dict[str, np.ndarray]:
    t = np.arange(3000) / 100.0
    eog = rng.standard_normal((n, 1, 3000)) + eog_slow * np.sin(2 * np.pi * 1.0 * t)
    return {
        "eeg": rng.standard_normal((n, 2, 3000)).astype(np.float32),
        "eog": eog.astype(np.float32),
        "emg": rng.standard_normal((n, 1, 30)).astype(np.float32),
    }


def test_a_night_unlike_the_training_nights_is_flagged_with_the_reason() -> None:
    rng = np.random.default_rng(0)
    profile = training_profile([night_profile(_night(rng)) for _ in range(6)], confidences=[0.8, 0.85, 0.9])
    assert profile["n_nights"] == 6 and profile["confidence"] == pytest.approx({"mean": 0.85, "min": 0.8})
    assert {"EEG 2 12-16 Hz power", "EOG 1 0.5-2 Hz power", "EMG 1 tone"} <= set(profile["features"])
    alike = night_profile(_night(rng))
    assert out_of_distribution(profile, alike, confidence=0.82) == []
    unlike = night_profile(_night(rng, eog_slow=5.0))
    reasons = out_of_distribution(profile, unlike, confidence=0.5)
    assert reasons[0].startswith("EOG 1 0.5-2 Hz power far above the training nights' (z = +")
    assert "much less sure of this night than of any validation night (mean confidence 0.50" in reasons[-1]
    assert out_of_distribution(None, unlike, 0.1) == []


def test_cohort_source_tells_synthetic_from_recorded(tmp_path: Path) -> None:
    synth, real = tmp_path / "synth", tmp_path / "real"
    synth.mkdir()
    real.mkdir()
    (synth / "synthetic.json").write_text(json.dumps({"generator_version": "2.0.0", "variation": "broad"}))
    source = cohort_source([synth / "a.edf", synth / "b.edf"])
    assert source == {
        "kind": "synthetic",
        "generator": "somna.synth",
        "generator_version": "2.0.0",
        "variation": "broad",
    }
    assert "synthetic nights only (somna.synth 2.0.0, broad variation)" in synthetic_caveat(source)
    assert (
        cohort_source([real / "a.edf"])["kind"] == "recordings"
        and synthetic_caveat({"kind": "recordings"}) is None
    )
    assert cohort_source([synth / "a.edf", real / "b.edf"])["kind"] == "mixed"
    assert describe(None) == "unknown data"


@pytest.mark.slow
def test_a_trained_model_knows_its_data_and_says_so_in_every_output(
    tiny_trained_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from somna.cli import main
    from somna.inference import load_stager

    run, psg, _ = tiny_trained_run
    state = torch.load(next(run.glob("fold_*/best.pt")), weights_only=True)
    assert state["trained_on"]["kind"] == "synthetic" and state["profile"]["n_nights"] >= 1
    for backend in ("torch", "onnx"):
        stager = load_stager(run, backend)
        assert stager.info["trained_on"]["kind"] == "synthetic" and stager.info["profile"]["features"]
    hypnogram = load_stager(run).predict(psg)
    assert (
        isinstance(hypnogram.info["out_of_distribution"], list)
        and 0.2 < hypnogram.info["mean_confidence"] <= 1
    )
    thin = {**stager.info["profile"], "n_nights": 2}  # too few training nights to judge the features by
    assert out_of_distribution(thin, {name: 99.0 for name in thin["features"]}, confidence=None) == []
    assert main(["score", str(psg), "--model", str(run), "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "WARNING: This model was trained on synthetic nights only" in out
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["trained_on"]["kind"] == "synthetic" and "out_of_distribution" in metrics
    report = (tmp_path / "s" / "report.html").read_text()
    assert "trained on synthetic nights only" in report
