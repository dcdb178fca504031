"""The Python front door: ``import somna``, a stager on EDF files, MNE Raws and numpy arrays, the
Hypnogram's outputs, the docstring examples and the README's example."""

from __future__ import annotations

import doctest
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import somna
from somna.errors import SomnaError
from somna.hypnogram import Hypnogram
from somna.stages import AASM, RK, UNSCORED

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stager_and_night(tiny_trained_run):
    run, psg, hypnogram = tiny_trained_run
    return somna.load_stager(run), psg, hypnogram


def test_import_somna_is_light_and_exports_the_front_door() -> None:
    code = (
        "import sys, somna\n"
        "names = ['read_psg', 'read_hypnogram', 'load_stager', 'Hypnogram', 'sleep_metrics', 'Stager']\n"
        "assert all(callable(getattr(somna, n)) for n in names)\n"
        "print([m for m in ('torch', 'sklearn', 'matplotlib', 'mne', 'onnxruntime') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert set(somna.__all__) >= {"read_psg", "read_hypnogram", "load_stager", "Hypnogram", "sleep_metrics"}
    with pytest.raises(AttributeError):
        somna.no_such_name  # noqa: B018


def test_no_import_cycles_between_the_pipeline_rooms() -> None:
    """Training and inference share models/ and stages, never each other; nothing imports the CLI."""
    rules = {
        "training": ("somna.inference", "somna.cli", "somna.demo"),
        "inference": ("somna.training", "somna.cli", "somna.demo"),
        "models": ("somna.training", "somna.inference", "somna.cli", "somna.report"),
        "evaluation": ("somna.training", "somna.inference", "somna.cli", "somna.report"),
        "preprocess": (
            "somna.training",
            "somna.inference",
            "somna.models",
            "somna.evaluation",
            "somna.report",
        ),
        "io": ("somna.training", "somna.inference", "somna.models", "somna.preprocess", "somna.data"),
        "data": ("somna.training", "somna.inference", "somna.models", "somna.report"),
    }
    imports = re.compile(r"^\s*(?:from|import)\s+(somna(?:\.\w+)*)", re.MULTILINE)
    broken = []
    for room, forbidden in rules.items():
        for path in sorted((REPO / "src" / "somna" / room).rglob("*.py")):
            for target in imports.findall(path.read_text()):
                if target.startswith(forbidden):
                    broken.append(f"{path.relative_to(REPO)} imports {target}")
    assert broken == []


def test_predict_an_edf_file(stager_and_night) -> None:
    stager, psg, _ = stager_and_night
    hypnogram = stager.predict(psg)
    assert isinstance(hypnogram, Hypnogram) and hypnogram.label_set is AASM
    assert hypnogram.proba.shape == (len(hypnogram), 5)
    assert np.allclose(hypnogram.proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(hypnogram.stages, hypnogram.proba.argmax(axis=1))
    assert hypnogram.start is not None and hypnogram.source == psg
    assert hypnogram.info["backend"] == stager.backend and hypnogram.info["channels"]["eeg"] == [
        "EEG Fpz-Cz",
        "EEG Pz-Oz",
    ]
    assert set(hypnogram.labels) <= set(AASM.labels)


def test_an_mne_raw_with_an_upsampled_emg_envelope_stages_like_the_edf(stager_and_night) -> None:
    import mne

    stager, psg, _ = stager_and_night
    raw = mne.io.read_raw_edf(psg, preload=True, verbose="error")
    assert raw.info["sfreq"] == 100.0  # MNE upsampled the 1 Hz EMG envelope to 100 Hz
    from_raw = stager.predict(raw)
    from_edf = stager.predict(psg)
    assert from_raw.info["channels"] == from_edf.info["channels"]
    assert np.abs(from_raw.proba - from_edf.proba).max() < 1e-4
    assert from_raw.start == from_edf.start


def test_numpy_arrays_with_their_rates_stage_like_the_edf(stager_and_night) -> None:
    stager, psg, _ = stager_and_night
    recording = somna.read_psg(psg)
    arrays = stager.predict(
        eeg=recording.signals["eeg"],
        eog=recording.signals["eog"][0],
        emg=recording.signals["emg"],
        sfreq=recording.sfreq,
    )
    assert np.abs(arrays.proba - stager.predict(psg).proba).max() < 1e-5
    assert arrays.start is None
    with pytest.raises(SomnaError, match="sampling rate"):
        stager.predict(
            eeg=recording.signals["eeg"], eog=recording.signals["eog"], emg=recording.signals["emg"]
        )
    with pytest.raises(SomnaError, match=r"no \['emg'\] signals"):
        stager.predict(eeg=recording.signals["eeg"], eog=recording.signals["eog"], sfreq=100.0)
    with pytest.raises(SomnaError, match="cannot stage a int"):
        stager.predict(3)


def test_upsampled_envelope_rate_tells_an_envelope_from_raw_emg() -> None:
    from scipy.signal import resample

    from somna.io.raw import upsampled_envelope_rate

    rng = np.random.default_rng(0)
    envelope = np.abs(rng.standard_normal(600)) + 5  # 10 min of a 1 Hz envelope
    upsampled = resample(envelope, 600 * 100)  # MNE's band-limited resampling to 100 Hz
    assert upsampled_envelope_rate(upsampled, 100.0) == 1.0
    assert np.allclose(upsampled[::100], envelope, atol=1e-9)
    assert upsampled_envelope_rate(rng.standard_normal(60_000) * 20, 100.0) is None  # raw EMG


def test_hypnogram_outputs_round_trip(stager_and_night, tmp_path: Path) -> None:
    import mne
    from matplotlib.figure import Figure

    stager, psg, scored_file = stager_and_night
    hypnogram = stager.predict(psg)
    scored = somna.read_hypnogram(scored_file)
    agreement = hypnogram.evaluate(scored)
    assert 0 <= agreement["accuracy"] <= 1 and np.shape(agreement["confusion"]) == (5, 5)
    assert agreement["n_epochs"] == min(len(hypnogram), len(scored)) - np.sum(
        scored.stages[: len(hypnogram)] == -1
    )
    metrics = hypnogram.sleep_metrics()
    assert metrics["tst_min"] == somna.sleep_metrics(hypnogram)["tst_min"]
    assert isinstance(hypnogram.plot(), Figure)
    back = somna.read_hypnogram(hypnogram.to_edf(tmp_path / "h.edf"))
    assert np.array_equal(back.stages, hypnogram.stages) and back.start == hypnogram.start
    rows = hypnogram.to_csv(tmp_path / "h.csv").read_text().splitlines()
    assert rows[0] == "epoch,onset_s,date,clock_time,stage,confidence,signal_problem"
    assert len(rows) == len(hypnogram) + 1
    annotations = hypnogram.to_mne_annotations()
    assert isinstance(annotations, mne.Annotations) and len(annotations) == len(hypnogram)
    assert annotations.description[0].startswith("Sleep stage ") and annotations.onset[1] == 30.0
    yasa_hypnogram = hypnogram.to_yasa()
    assert list(yasa_hypnogram.as_int().to_numpy()) == [int(s) for s in hypnogram.stages]
    assert np.allclose(yasa_hypnogram.proba.to_numpy().sum(axis=1), 1.0)


def test_evaluate_lines_up_by_start_time_and_converts_finer_stages() -> None:
    from datetime import datetime, timedelta

    start = datetime(2024, 1, 1, 23, 0)
    predicted = Hypnogram([0, 1, 2, 2, 3, 4, 0], AASM, start=start)
    later = Hypnogram(
        [RK.code(s) for s in ("S2", "S2", "S3", "S4", "REM", "W", "W")],
        RK,
        start=start + timedelta(seconds=60),
    )
    result = predicted.evaluate(later)
    assert result["n_epochs"] == 5 and result["accuracy"] == pytest.approx(0.6)  # epochs 2-6 vs 0-4
    with pytest.raises(ValueError, match="share no epoch"):
        predicted.evaluate(Hypnogram([0, 0], AASM, start=start + timedelta(hours=5)))
    with pytest.raises(ValueError, match="cannot be lined up"):
        Hypnogram([0, 1], AASM).evaluate(Hypnogram([0, 1, 2], AASM))
    with pytest.raises(ValueError, match="stage code 7"):
        Hypnogram([0, 7], AASM)
    assert Hypnogram([0, UNSCORED], AASM).labels == ["W", "?"]


DOCTESTED = (
    "somna.hypnogram",
    "somna.io.channels",
    "somna.io.recording",
    "somna.stages",
    "somna.preprocess.filters",
    "somna.inference.stager",
    "somna.inference.backends",
    "somna.inference.streaming",
)


@pytest.mark.parametrize("module_name", DOCTESTED)
def test_docstring_examples_run(module_name: str, stager_and_night) -> None:
    stager, psg, _ = stager_and_night
    module = importlib.import_module(module_name)
    recording = somna.read_psg(psg)
    thirty_seconds = {m: x[:, : round(30 * recording.sfreq[m])] for m, x in recording.signals.items()}
    extra = {
        "model_folder": Path(stager.name),
        "psg_file": psg,
        "thirty_seconds": thirty_seconds,
        "load_stager": somna.load_stager,
        "np": np,
    }
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(module, globs={**vars(module), **extra}) if t.examples]
    assert tests, f"{module_name} has no examples"
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_readme_python_example_runs_as_written(tiny_trained_run, tmp_path: Path) -> None:
    """The README's Python example, run in a folder laid out as `make demo` leaves it."""
    run, psg, _ = tiny_trained_run
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    assert blocks, "the README has no Python example"
    demo = tmp_path / "runs" / "demo"
    demo.mkdir(parents=True)
    os.symlink(run, demo / "model")
    os.symlink(psg.parent, demo / "edf")
    assert (demo / "edf" / "SC4001E0-PSG.edf").is_file()
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
