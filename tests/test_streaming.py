"""Live staging: the stream equals offline scoring whatever the chunking, rate and backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from somna.config import PreprocessConfig
from somna.inference import Stager
from somna.inference.streaming import replay_psg
from somna.io import read_psg
from somna.io.recording import Recording
from somna.models import ModelConfig, StagingNetwork
from somna.models.torch_model import TorchStageModel
from somna.stages import AASM, HIERARCHICAL
from somna.synth import write_synthetic_cohort

N_EPOCHS = 40  # 20 min: enough for seq_len 8 and quick chunk-size sweeps
TOL = 1e-4


def _chunks(recording: Recording, sizes_s: list[float]):
    """Yield per-modality chunks cut at the same instants, cycling through chunk lengths in seconds."""
    t, k = 0.0, 0
    duration = recording.duration_s
    while t < duration:
        t_next = t + sizes_s[k % len(sizes_s)]
        yield {
            m: x[:, round(t * recording.sfreq[m]) : round(t_next * recording.sfreq[m])]
            for m, x in recording.signals.items()
        }
        t, k = t_next, k + 1


def _stream(stager: Stager, recording: Recording, sizes_s: list[float]) -> np.ndarray:
    session = stager.stream(recording.sfreq)
    results = [r for chunk in _chunks(recording, sizes_s) for r in session.push(chunk)]
    results += session.finish()
    assert [r.index for r in results] == list(range(len(results)))
    return np.stack([r.probs for r in results])


def _offline(stager: Stager, recording: Recording) -> np.ndarray:
    hypnogram = stager.predict(recording)
    assert hypnogram.proba is not None
    return hypnogram.proba


def _model(seed: int, n_classes: int = 5) -> TorchStageModel:
    torch.manual_seed(seed)
    config = ModelConfig(n_classes=n_classes, seq_len=8, embed_dim=16, cnn_width=8)
    return TorchStageModel(StagingNetwork(config).for_inference())


def _stager(task: str = "aasm") -> Stager:
    if task == HIERARCHICAL:
        members = [{"stage1": _model(1, 2), "stage2": _model(2, 2)}]
    else:
        members = [{"model": _model(0)}]
    return Stager(members, task, ("eeg", "eog", "emg"), PreprocessConfig())


def _resampled(recording: Recording, sfreq: float) -> Recording:
    """The recording's 100 Hz signals (EMG included, raw) brought to ``sfreq`` as test input."""
    signals = {m: resample_poly(x, int(sfreq), 100, axis=-1) for m, x in recording.signals.items()}
    return Recording(
        recording.path, signals, dict.fromkeys(signals, sfreq), recording.channel_names, recording.start
    )


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Single-epoch forward passes are fastest on one thread (and the CI cores are shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    write_synthetic_cohort(
        root / "st",
        n_subjects=1,
        nights=1,
        hours=1.5,
        layout="st",
        progress=False,
        seed=4,
        variation="textbook",
    )
    write_synthetic_cohort(
        root / "sc",
        n_subjects=1,
        nights=1,
        hours=1.5,
        layout="sc",
        progress=False,
        seed=4,
        variation="textbook",
    )
    return root


@pytest.fixture(scope="module")
def recording(synth_dir: Path) -> Recording:
    """20 min of a synthetic ST night (EEG, EOG and raw EMG at 100 Hz)."""
    rec = read_psg(next((synth_dir / "st").glob("*-PSG.edf")))
    n = N_EPOCHS * 3000
    rec.signals = {m: x[:, :n] for m, x in rec.signals.items()}
    return rec


@pytest.mark.parametrize("sizes_s", [[7 / 100], [12.34, 17.3], [30.0]], ids=["7-samples", "odd", "epochs"])
def test_stream_equals_offline_whatever_the_chunking(recording: Recording, sizes_s: list[float]) -> None:
    stager = _stager()
    offline = _offline(stager, recording)
    streamed = _stream(stager, recording, sizes_s)
    assert streamed.shape == offline.shape == (N_EPOCHS, 5)
    assert np.abs(streamed - offline).max() < TOL
    assert np.abs(streamed[:7] - offline[:7]).max() < TOL  # the padded-context epochs included


def test_an_epoch_waits_only_for_the_band_pass_look_ahead(recording: Recording) -> None:
    session = _stager().stream(recording.sfreq)
    first = {m: x[:, : round(30 * recording.sfreq[m])] for m, x in recording.signals.items()}
    assert session.push(first) == []  # the EEG band-pass needs 5.5 s after the epoch
    look_ahead = {
        m: x[:, round(30 * recording.sfreq[m]) : round(35.5 * recording.sfreq[m])]
        for m, x in recording.signals.items()
    }
    staged = session.push(look_ahead)
    assert [r.index for r in staged] == [0]


def test_hierarchical_stager_streams_like_offline(recording: Recording) -> None:
    stager = _stager(HIERARCHICAL)
    offline = _offline(stager, recording)
    streamed = _stream(stager, recording, [30.0])
    assert np.abs(streamed - offline).max() < TOL
    labels = stager.predict(recording).labels
    assert set(labels) <= {"W", "NREM", "REM"}


@pytest.mark.parametrize("sfreq", [200.0, 256.0])
def test_stream_equals_offline_at_other_rates(recording: Recording, sfreq: float) -> None:
    fast = _resampled(recording, sfreq)
    stager = _stager()
    offline = _offline(stager, fast)
    streamed = _stream(stager, fast, [1234 / sfreq, 17.3])
    assert np.abs(streamed - offline).max() < TOL


def test_cnn_runs_once_per_new_epoch(recording: Recording) -> None:
    stager = _stager()
    network = stager.members[0]["model"].network
    batch_sizes: list[int] = []
    hook = network.cnn.register_forward_hook(lambda _m, inputs, _o: batch_sizes.append(inputs[0].shape[0]))
    try:
        session = stager.stream(recording.sfreq)
        assert batch_sizes == []  # nothing is encoded before the first epoch arrives
        for chunk in _chunks(recording, [1.0]):
            session.push(chunk)
        session.finish()
    finally:
        hook.remove()
    assert session.n_epochs == N_EPOCHS
    assert batch_sizes == [1] * N_EPOCHS


def test_replay_of_an_edf_ends_cleanly_and_matches_offline(synth_dir: Path) -> None:
    psg = next((synth_dir / "sc").glob("*-PSG.edf"))  # SC: 1 Hz EMG envelope
    stager = _stager()
    results = list(replay_psg(psg, stager, chunk_s=7.0))
    recording = read_psg(psg, modalities=stager.modalities)
    assert [r.index for r in results] == list(range(recording.n_epochs()))
    offline = _offline(stager, recording)
    assert np.abs(np.stack([r.probs for r in results]) - offline).max() < TOL
    assert all(r.latency_s >= 0 and r.stage == int(np.argmax(r.probs)) for r in results)


def test_a_day_long_recording_is_staged_from_where_the_night_begins(tmp_path: Path) -> None:
    """Offline, a recording longer than 14 h restarts its stream where the night most likely begins, so
    its night is staged as the night alone would be: the hours of daytime wake before it change nothing."""
    psg = write_synthetic_cohort(
        tmp_path, n_subjects=1, nights=1, seed=9, progress=False, variation="textbook"
    )[0]
    stager = _stager()
    recording = read_psg(psg)
    whole = stager.predict(recording)
    first, _ = whole.info["night_window_epochs"]
    assert first > 0 and whole.duration_s > 20 * 3600
    n = 12 * 120  # the 12 h from there: one stream, as a recording started at bedtime
    night = Recording(
        **{
            **recording.__dict__,
            "signals": {
                m: x[:, round(first * 30 * recording.sfreq[m]) :][:, : round(n * 30 * recording.sfreq[m])]
                for m, x in recording.signals.items()
            },
        }
    )
    alone = stager.predict(night)
    assert alone.info["night_window_epochs"][0] == 0
    context = stager.seq_len  # the first epochs of `alone` have a padded context instead of the evening's
    diff = np.abs(alone.proba[context:] - whole.proba[first + context : first + n])
    assert diff.max() < TOL


def test_cropping_a_day_long_recording_to_20h_08h_changes_under_one_percent_of_epochs(tmp_path: Path) -> None:
    """The night of a 22-h recording cropped to 20:00-08:00 is staged as it was in the whole recording:
    both restart their stream 30 min before the night most likely begins, so the evening's hours of wake
    before it set the scale of neither."""
    psg = write_synthetic_cohort(
        tmp_path, n_subjects=1, nights=1, seed=9, progress=False, variation="textbook"
    )[0]
    stager = _stager()
    recording = read_psg(psg)
    whole = stager.predict(recording)
    evening = recording.start.replace(hour=20, minute=0, second=0)
    first = round((evening - recording.start).total_seconds() / 30)
    n = 12 * 120
    crop = Recording(
        **{
            **recording.__dict__,
            "start": evening,
            "signals": {
                m: x[:, round(first * 30 * recording.sfreq[m]) :][:, : round(n * 30 * recording.sfreq[m])]
                for m, x in recording.signals.items()
            },
        }
    )
    cropped = stager.predict(crop)
    night = [e - first for e in whole.info["night_window_epochs"]]
    assert 0 < night[0] and abs(cropped.info["night_window_epochs"][0] - night[0]) <= 2
    assert np.mean(cropped.stages != whole.stages[first : first + n]) <= 0.01


def test_stream_command_prints_every_epoch_and_writes_csv(
    synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from somna.cli import main
    from somna.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    network = StagingNetwork(ModelConfig(seq_len=8, embed_dim=16, cnn_width=8))
    checkpoint = save_checkpoint(tmp_path / "best.pt", network, AASM, vars(PreprocessConfig()), channels=None)
    psg = next((synth_dir / "sc").glob("*-PSG.edf"))
    n_epochs = read_psg(psg).n_epochs()
    assert (
        main(
            [
                "stream",
                str(psg),
                "--model",
                str(checkpoint),
                "--chunk-s",
                "7",
                "--out",
                str(tmp_path / "h.csv"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"{n_epochs} epochs written to" in out and f"{n_epochs} epochs; computing time per epoch" in out
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert (
        lines[0] == "epoch,end_s,stage,p_W,p_N1,p_N2,p_N3,p_REM,signal_problem" and len(lines) == n_epochs + 1
    )
    # the same stream through the ONNX export of that checkpoint: same stages, same probabilities
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "onnx")]) == 0
    out = capsys.readouterr().out
    assert f"stream with: somna stream PSG.edf --model {tmp_path / 'onnx'} --backend onnx" in out
    stream = ["stream", str(psg), "--model", str(tmp_path / "onnx"), "--chunk-s", "7"]
    assert main([*stream, "--out", str(tmp_path / "onnx.csv")]) == 0
    onnx_lines = (tmp_path / "onnx.csv").read_text().splitlines()
    assert onnx_lines[0] == lines[0] and len(onnx_lines) == len(lines)
    table = np.array([[float(v) for v in row.split(",")[3:-1]] for row in lines[1:]])
    onnx_table = np.array([[float(v) for v in row.split(",")[3:-1]] for row in onnx_lines[1:]])
    assert np.abs(onnx_table - table).max() <= 2e-4  # the CSV rounds to 4 decimals
    # --out naming a folder is refused before the stream starts (the results would be lost after it)
    assert main(["stream", str(psg), "--model", str(checkpoint), "--out", str(tmp_path)]) == 2
    assert "--out takes a CSV file name" in capsys.readouterr().err
