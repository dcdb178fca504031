"""Streaming: stateful preprocessing is chunk-invariant, and live staging equals offline scoring."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from somna.config import CohortConfig, PreprocessConfig, config_to_dict, load_config
from somna.data.cohort import prepare_cohort
from somna.data.sequences import NightArrays
from somna.errors import SomnaError
from somna.hypnogram import Hypnogram
from somna.io import read_psg
from somna.io.recording import Recording
from somna.models import ModelConfig, SequenceStager
from somna.preprocess import preprocess_night
from somna.preprocess.online import (
    ModalityStream,
    OnlinePreprocessor,
    RunningRobustScaler,
    StatefulResampler,
    StatefulSOS,
    butter_bandpass,
)
from somna.stages import AASM, UNSCORED
from somna.staging import HIERARCHICAL, SleepStager
from somna.streaming import StreamingStager, score_stream
from somna.synth import write_synthetic_cohort
from somna.training.config import load_experiment

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STREAM_CONFIG = PreprocessConfig(filter="causal", normalise="running", trim_wake_min=None)
N_EPOCHS = 40  # 20 min: enough for seq_len 8 and quick chunk-size sweeps
TOL = 1e-5


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


def _stream(stager: SleepStager, recording: Recording, sizes_s: list[float]) -> np.ndarray:
    streamer = StreamingStager(stager, recording.sfreq)
    results = [r for chunk in _chunks(recording, sizes_s) for r in streamer.push(chunk)]
    assert [r.index for r in results] == list(range(len(results)))
    return np.stack([r.probs for r in results])


def _offline(stager: SleepStager, recording: Recording) -> np.ndarray:
    n = recording.n_epochs()
    unscored = Hypnogram(np.full(n, UNSCORED, dtype=np.int8), AASM)
    night = preprocess_night(recording, unscored, STREAM_CONFIG, stager.modalities)
    probs, _ = stager.predict(NightArrays(night.record, night.subject_id, night.signals, night.stages))
    return probs


def _model(seed: int, n_classes: int = 5, emg_chans: int = 1) -> SequenceStager:
    torch.manual_seed(seed)
    config = ModelConfig(
        n_chans=(("eeg", 2), ("eog", 1), ("emg", emg_chans)),
        n_classes=n_classes,
        seq_len=8,
        embed_dim=16,
        cnn_width=8,
    )
    return SequenceStager(config).eval()


def _stager(task: str = "aasm") -> SleepStager:
    pre = asdict(STREAM_CONFIG)
    if task == HIERARCHICAL:
        members = [{"stage1": _model(1, 2), "stage2": _model(2, 2)}]
    else:
        members = [{"model": _model(0)}]
    return SleepStager(members, task, ("eeg", "eog", "emg"), pre)


def _resampled(recording: Recording, sfreq: float) -> Recording:
    """The recording's 100 Hz signals (EMG included, raw) brought to ``sfreq`` as test input."""
    up, down = int(sfreq), 100
    signals = {m: resample_poly(x, up, down, axis=-1) for m, x in recording.signals.items()}
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
        root / "st", n_subjects=1, nights=1, hours=1.5, layout="st", progress=False, seed=4
    )
    write_synthetic_cohort(
        root / "sc", n_subjects=1, nights=1, hours=1.5, layout="sc", progress=False, seed=4
    )
    return root


@pytest.fixture(scope="module")
def recording(synth_dir: Path) -> Recording:
    """20 min of a synthetic ST night (EEG, EOG and raw EMG at 100 Hz)."""
    rec = read_psg(next((synth_dir / "st").glob("*-PSG.edf")))
    n = N_EPOCHS * 3000
    rec.signals = {m: x[:, :n] for m, x in rec.signals.items()}
    return rec


# --- stateful building blocks ---------------------------------------------------------------------


@pytest.mark.parametrize("sfreq", [50.0, 128.0, 200.0, 250.0, 256.0, 500.0])
def test_resampler_chunked_equals_one_shot(sfreq: float) -> None:
    x = np.random.default_rng(0).standard_normal((2, int(40 * sfreq))) * 30 + 7
    whole = StatefulResampler(sfreq, 100.0, 2).push(x)
    assert whole.shape == (2, 4000)
    resampler, parts, i = StatefulResampler(sfreq, 100.0, 2), [], 0
    for k in range(10**6):
        n = (7, 1234, 1, 0, 333)[k % 5]
        parts.append(resampler.push(x[:, i : i + n]))
        i += n
        if i >= x.shape[1]:
            break
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=0, atol=1e-10)


@pytest.mark.parametrize("sfreq", [128.0, 200.0, 256.0])
def test_resampler_keeps_a_10hz_rhythm_and_its_timing(sfreq: float) -> None:
    t = np.arange(int(60 * sfreq)) / sfreq
    y = StatefulResampler(sfreq, 100.0, 1).push(np.sin(2 * np.pi * 10 * t)[None])[0]
    ref = np.sin(2 * np.pi * 10 * (np.arange(6000) / 100.0 - 0.1))  # group delay 0.1 s
    assert np.max(np.abs(y[200:] - ref[200:])) < 0.01


def test_sos_chunked_equals_one_shot() -> None:
    x = np.random.default_rng(1).standard_normal((3, 20000)) * 50 + 100
    sos = butter_bandpass(100.0, 0.3, 35.0)
    whole = StatefulSOS(sos, 3).push(x)
    f, parts = StatefulSOS(sos, 3), []
    for i in range(0, x.shape[1], 777):
        parts.append(f.push(x[:, i : i + 777]))
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=0, atol=1e-10)
    # steady-state start: a DC offset gives no start-up transient
    assert np.abs(StatefulSOS(sos, 1).push(np.full((1, 500), 100.0))).max() < 1e-9


def test_running_scaler_tracks_median_and_iqr() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal((2, 3000)) * 25 + 3, rng.standard_normal((2, 3000)) * 60], axis=1)
    scaler = RunningRobustScaler(2, clip=None)
    scaler.update(x[:, :3000])
    scaler.update(x[:, 3000:])
    q25, q50, q75 = np.percentile(x, [25, 50, 75], axis=1)
    np.testing.assert_allclose(scaler.median, q50, atol=0.05)
    np.testing.assert_allclose(scaler.scale, (q75 - q25) / 1.349, rtol=2e-3)


def test_modality_streams_are_chunk_invariant_for_raw_and_envelope_emg() -> None:
    rng = np.random.default_rng(3)
    for sfreq in (1.0, 200.0):
        x = np.abs(rng.standard_normal((1, int(120 * sfreq)))) * 20 + 1
        whole = ModalityStream("emg", sfreq, 1, STREAM_CONFIG).push(x)
        stream, parts = ModalityStream("emg", sfreq, 1, STREAM_CONFIG), []
        for i in range(0, x.shape[1], 13):
            parts += stream.push(x[:, i : i + 13])
        assert len(whole) == len(parts) == 4
        np.testing.assert_allclose(np.stack(parts), np.stack(whole), rtol=0, atol=1e-6)


def test_online_preprocessor_refuses_offline_configs() -> None:
    with pytest.raises(SomnaError, match="causal"):
        OnlinePreprocessor({"eeg": 100.0}, {"eeg": 2}, PreprocessConfig())
    with pytest.raises(SomnaError, match="filter"):
        PreprocessConfig(filter="acausal")


def test_default_config_dict_is_unchanged() -> None:
    """Cohort caches and checkpoints made before the streaming options keep their config keys."""
    assert "filter" not in config_to_dict(CohortConfig())["preprocess"]
    streaming = load_config(CONFIGS / "streaming-cohort.toml")
    assert config_to_dict(streaming)["preprocess"]["normalise"] == "running"
    experiment = load_experiment(CONFIGS / "streaming.toml")
    assert experiment.data.cohort_config == "configs/streaming-cohort.toml"


# --- streaming equals offline -----------------------------------------------------------------------


@pytest.mark.parametrize("sizes_s", [[7 / 100], [12.34, 17.3], [30.0]], ids=["7-samples", "odd", "epochs"])
def test_stream_equals_offline_whatever_the_chunking(recording: Recording, sizes_s: list[float]) -> None:
    stager = _stager()
    offline = _offline(stager, recording)
    streamed = _stream(stager, recording, sizes_s)
    assert streamed.shape == offline.shape == (N_EPOCHS, 5)
    assert np.abs(streamed - offline).max() < TOL
    # the first seq_len - 1 epochs (padded context) included
    assert np.abs(streamed[:7] - offline[:7]).max() < TOL


def test_push_epoch_and_hierarchical_stager(recording: Recording) -> None:
    stager = _stager(HIERARCHICAL)
    offline = _offline(stager, recording)
    streamer = StreamingStager(stager, recording.sfreq)
    results = []
    for k in range(N_EPOCHS):
        epoch = {m: x[:, k * 3000 : (k + 1) * 3000] for m, x in recording.signals.items()}
        got = streamer.push_epoch(epoch)
        assert len(got) == 1
        results += got
    assert np.abs(np.stack([r.probs for r in results]) - offline).max() < TOL
    assert {r.label for r in results} <= {"W", "NREM", "REM"}


@pytest.mark.parametrize("sfreq", [200.0, 256.0])
def test_stream_equals_offline_at_other_rates(recording: Recording, sfreq: float) -> None:
    fast = _resampled(recording, sfreq)
    stager = _stager()
    offline = _offline(stager, fast)
    streamed = _stream(stager, fast, [1234 / sfreq, 17.3])
    assert np.abs(streamed - offline).max() < TOL


def test_cnn_runs_once_per_new_epoch(recording: Recording) -> None:
    stager = _stager()
    model = stager.members[0]["model"]
    batch_sizes: list[int] = []
    hook = model.cnn.register_forward_hook(lambda _m, inputs, _o: batch_sizes.append(inputs[0].shape[0]))
    try:
        streamer = StreamingStager(stager, recording.sfreq)
        assert batch_sizes == []  # nothing is encoded before the first epoch arrives
        for chunk in _chunks(recording, [1.0]):
            streamer.push(chunk)
    finally:
        hook.remove()
    assert streamer.n_epochs == N_EPOCHS
    assert batch_sizes == [1] * N_EPOCHS


def test_score_stream_of_an_edf_ends_cleanly_and_matches_offline(synth_dir: Path) -> None:
    psg = next((synth_dir / "sc").glob("*-PSG.edf"))  # SC: 1 Hz EMG envelope
    stager = _stager()
    results = list(score_stream(psg, stager, chunk_s=7.0))
    recording = read_psg(psg, modalities=stager.modalities)
    assert [r.index for r in results] == list(range(recording.n_epochs()))
    offline = _offline(stager, recording)
    assert np.abs(np.stack([r.probs for r in results]) - offline).max() < TOL
    assert all(r.latency_s >= 0 and r.stage == int(np.argmax(r.probs)) for r in results)


def test_prepare_cohort_with_streaming_preprocessing(synth_dir: Path, tmp_path: Path) -> None:
    config = load_config(CONFIGS / "streaming-cohort.toml")
    cohort = prepare_cohort(synth_dir / "sc", tmp_path / "cache", config=config, workers=1, progress=False)
    rows = cohort.night(cohort.entries[0].record)
    assert np.isfinite(rows["eeg"]).all() and np.abs(rows["eeg"]).max() <= config.preprocess.clip
    assert cohort.manifest["config"]["preprocess"]["filter"] == "causal"


def test_stream_command_prints_every_epoch_and_writes_csv(
    synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from somna.cli import main
    from somna.stages import AASM
    from somna.training.checkpoint import save_checkpoint

    stager = _stager()
    checkpoint = save_checkpoint(tmp_path / "best.pt", stager.members[0]["model"], AASM, stager.preprocess)
    psg = next((synth_dir / "sc").glob("*-PSG.edf"))
    n_epochs = read_psg(psg, modalities=stager.modalities).n_epochs()
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
    assert f"{n_epochs} epochs; latency per epoch: median" in out
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0] == "epoch,end_s,stage,p_W,p_N1,p_N2,p_N3,p_REM" and len(lines) == n_epochs + 1
    # the same stream through the ONNX export of that checkpoint: same stages, same probabilities
    pytest.importorskip("onnxruntime")
    assert main(["export", str(checkpoint), "--onnx", "--out", str(tmp_path / "onnx")]) == 0
    stream = ["stream", str(psg), "--model", str(tmp_path / "onnx"), "--backend", "onnx", "--chunk-s", "7"]
    assert main([*stream, "--out", str(tmp_path / "onnx.csv")]) == 0
    out = capsys.readouterr().out
    assert f"stream with: somna stream PSG.edf --model {tmp_path / 'onnx'} --backend onnx" in out
    assert f"{n_epochs} epochs; latency per epoch: median" in out
    onnx_lines = (tmp_path / "onnx.csv").read_text().splitlines()
    assert onnx_lines[0] == lines[0] and len(onnx_lines) == len(lines)
    table = np.array([[float(v) for v in row.split(",")[3:]] for row in lines[1:]])
    onnx_table = np.array([[float(v) for v in row.split(",")[3:]] for row in onnx_lines[1:]])
    assert np.abs(onnx_table - table).max() <= 2e-4  # the CSV rounds to 4 decimals
    assert [r.split(",")[2] for r in onnx_lines[1:]] == [r.split(",")[2] for r in lines[1:]]
    # a model trained on offline-only preprocessing is refused with a pointer to the streaming config
    offline = save_checkpoint(
        tmp_path / "offline.pt", stager.members[0]["model"], AASM, {"trim_wake_min": 30.0}
    )
    assert main(["stream", str(psg), "--model", str(offline)]) == 2
    assert "streaming" in capsys.readouterr().err
