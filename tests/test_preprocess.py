"""Preprocessing: resampling, band-pass, EMG envelope, running normalisation and the whole night."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import welch

from somna.config import PreprocessConfig
from somna.errors import SignalQualityError
from somna.hypnogram import Hypnogram
from somna.io.recording import Recording
from somna.preprocess import ModalityStream, preprocess_night
from somna.preprocess.filters import (
    LinearPhaseFilter,
    StatefulResampler,
    convolve_valid,
    fir_bandpass,
    firwin_bandpass,
)
from somna.preprocess.normalise import RunningRobustScaler, epoch_quartiles
from somna.stages import AASM, RK, UNSCORED


def _to_100hz(x: np.ndarray, sfreq: float) -> np.ndarray:
    resampled = StatefulResampler(sfreq, 100.0, x.shape[0]).push(x)
    return fir_bandpass(resampled, 100.0, 0.3, min(35.0, 0.45 * sfreq))


@pytest.mark.parametrize("sfreq", [50.0, 100.0, 128.0, 200.0, 256.0, 512.0])
def test_resample_and_bandpass_give_100hz_and_keep_a_10hz_rhythm(sfreq: float) -> None:
    t = np.arange(int(60 * sfreq)) / sfreq
    x = 30.0 * np.sin(2 * np.pi * 10.0 * t)[None, :]
    y = _to_100hz(x, sfreq)
    assert y.shape == (1, 6000)
    f, p = welch(y[0, 500:-500], fs=100.0, nperseg=1000)
    assert abs(f[np.argmax(p)] - 10.0) < 0.2
    assert np.std(y[0, 500:-500]) == pytest.approx(30.0 / np.sqrt(2), rel=0.05)  # pass band kept


def test_bandpass_removes_line_noise_and_drift() -> None:
    sfreq = 256.0
    t = np.arange(int(120 * sfreq)) / sfreq
    alpha = 20.0 * np.sin(2 * np.pi * 10 * t)
    noisy = alpha + 50.0 * np.sin(2 * np.pi * 50 * t) + 200.0 * np.sin(2 * np.pi * 0.02 * t)
    y = _to_100hz(noisy[None, :], sfreq)[0, 1000:-1000]
    ref = StatefulResampler(sfreq, 100.0, 1).push(alpha[None, :])[0, 1000:-1000]
    assert np.sqrt(np.mean((y - ref) ** 2)) < 2.0


@pytest.mark.parametrize(
    ("sfreq", "band"),
    [(100.0, (0.3, 35.0)), (256.0, (0.3, 35.0)), (200.0, (10.0, 90.0)), (512.0, (0.3, 35.0)),
     (50.0, (0.3, 22.5)), (1000.0, (10.0, 100.0)), (128.0, (0.5, 40.0))],
)  # fmt: skip
def test_firwin_bandpass_is_mnes_design(sfreq: float, band: tuple[float, float]) -> None:
    import mne

    expected = mne.filter.create_filter(None, sfreq, *band, verbose="error")
    taps = firwin_bandpass(sfreq, *band)
    assert taps.shape == expected.shape
    assert np.abs(taps - expected).max() < 1e-12


def test_kaiser_resampler_design_is_scipys_firwin() -> None:
    from scipy.signal import firwin

    for up, down in [(25, 64), (1, 2), (25, 32), (2, 1)]:
        resampler = StatefulResampler(100.0 * down / up, 100.0, 1)
        n = 2 * 10 * max(up, down) + 1
        expected = firwin(n, 0.9 / max(up, down), window=("kaiser", 5.0)) * up
        taps = np.zeros(resampler.n_taps * up)
        taps[: expected.size] = expected
        assert np.allclose(resampler.branches[:, ::-1].T.ravel()[: expected.size], expected, atol=1e-15)


@pytest.mark.parametrize(
    ("n_times", "sfreq", "band"),
    [
        (960 * 3000, 100.0, (0.3, 35.0)),
        (700, 100.0, (0.3, 35.0)),
        (256 * 600, 256.0, (0.3, 35.0)),
        (200 * 120, 200.0, (10.0, 90.0)),
        (512 * 300, 512.0, (0.3, 35.0)),  # a 5,633-tap filter: larger overlap-save blocks
    ],
)
def test_fir_bandpass_equals_mne_filter_data(n_times: int, sfreq: float, band: tuple[float, float]) -> None:
    import mne

    rng = np.random.default_rng(3)
    x = np.cumsum(rng.standard_normal((2, n_times)), axis=1) * 0.2 + rng.standard_normal((2, n_times)) * 25
    expected = mne.filter.filter_data(x.copy(), sfreq, *band, verbose="error", pad="reflect_limited")
    y = fir_bandpass(x, sfreq, *band)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - expected).max() < 2e-6 * np.abs(x).max()


@pytest.mark.parametrize("n_out", [5, 5000, 40_000])  # direct convolution, then overlap-save FFTs
def test_convolve_valid_equals_numpy(n_out: int) -> None:
    rng = np.random.default_rng(n_out)
    taps = firwin_bandpass(100.0, 0.3, 35.0)
    x = rng.standard_normal((2, n_out + taps.size - 1)).astype(np.float32)
    expected = np.stack([np.convolve(row.astype(np.float64), taps, mode="valid") for row in x])
    assert np.abs(convolve_valid(x, taps) - expected).max() < 1e-4


@pytest.mark.parametrize("chunk", [1, 37, 100, 3000, 100_000])
def test_linear_phase_filter_in_chunks_equals_the_whole_signal(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    x = (rng.standard_normal((2, 20_000)) * 30).astype(np.float32)
    whole = fir_bandpass(x, 100.0, 0.3, 35.0)
    stream = LinearPhaseFilter(firwin_bandpass(100.0, 0.3, 35.0), 2)
    parts = [stream.push(x[:, i : i + chunk]) for i in range(0, x.shape[1], chunk)]
    ready = sum(p.shape[1] for p in parts)
    assert ready == x.shape[1] - stream.delay  # the look-ahead: half the filter
    out = np.concatenate([*parts, stream.flush()], axis=1)
    assert out.shape == x.shape
    assert np.abs(out - whole).max() < 1e-4 * np.abs(x).max()


def test_resampler_in_chunks_equals_the_whole_signal() -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 256 * 60))
    whole = StatefulResampler(256.0, 100.0, 1).push(x)
    stream = StatefulResampler(256.0, 100.0, 1)
    parts = np.concatenate([stream.push(x[:, i : i + 333]) for i in range(0, x.shape[1], 333)], axis=1)
    assert np.allclose(parts, whole, atol=1e-10)


def test_emg_stream_of_raw_emg_is_its_log_rms_per_second() -> None:
    rng = np.random.default_rng(0)
    sfreq = 200.0
    amplitude = np.repeat([5.0, 40.0, 5.0], 30 * int(sfreq))  # tone up for the middle epoch
    raw = rng.standard_normal(amplitude.size) * amplitude
    stream = ModalityStream("emg", sfreq, 1, PreprocessConfig())
    envelope = stream._after_filters(raw[None, :], whole=True)[0]  # log µV, before normalisation
    assert envelope.shape == (90,)
    # high-pass at 10 Hz keeps ~ (1 - 20/200) of white-noise power within 10..90 Hz
    assert np.exp(np.median(envelope[32:58])) == pytest.approx(40.0 * np.sqrt(0.8), rel=0.15)
    assert np.median(envelope[32:58]) - np.median(envelope[:28]) == pytest.approx(np.log(8.0), abs=0.2)


def test_emg_envelope_at_1hz_is_its_log() -> None:
    env = np.abs(np.random.default_rng(1).standard_normal((1, 120))) + 1
    stream = ModalityStream("emg", 1.0, 1, PreprocessConfig())
    assert np.allclose(stream._after_filters(env, whole=True), np.log(env + 1e-3), atol=1e-6)


def test_running_scaler_uses_the_epochs_so_far_and_ignores_a_short_flat_stretch() -> None:
    rng = np.random.default_rng(2)
    epochs = (rng.standard_normal((1, 40, 3000)) * 50 + 7).astype(np.float32)
    epochs[0, 10:15] = 7.0  # a loose lead for 5 of 40 epochs
    epochs[0, 20, :10] = 1e6  # an artefact
    whole = RunningRobustScaler(1, clip=20).scale(epochs)
    assert whole.shape == (40, 1, 3000)
    median, iqr = epoch_quartiles(epochs)
    for k in (0, 9, 25, 39):  # epoch k: the median of the epoch medians and IQRs of epochs 0 … k
        centre, spread = np.median(median[0, : k + 1]), np.median(iqr[0, : k + 1]) / 1.349
        assert np.allclose(whole[k, 0], np.clip((epochs[0, k] - centre) / spread, -20, 20), atol=1e-4)
    assert np.std(whole[30:, 0]) == pytest.approx(1.0, rel=0.1)  # the flat stretch did not shrink the scale
    assert whole.max() == 20.0
    pieces = RunningRobustScaler(1, clip=20)
    chunked = np.concatenate([pieces.scale(epochs[:, i : i + 7]) for i in range(0, 40, 7)])
    assert np.array_equal(chunked, whole)


def test_flat_epochs_come_out_as_zeros_and_stay_out_of_the_statistics() -> None:
    rng = np.random.default_rng(3)
    epochs = (rng.standard_normal((2, 30, 3000)) * 40 + 3).astype(np.float32)
    epochs[0, 0] = 5.0  # the stream starts on a loose lead
    epochs[0, 8:20] = -4.0  # and it comes loose again for 12 epochs
    epochs[1, 12] *= 0.01  # a quiet epoch, 1 % of the usual spread: no signal either
    masked = RunningRobustScaler(2, mask_flat=True).scale(epochs)
    flat = [0, *range(8, 20)]
    assert not masked[flat, 0].any() and not masked[12, 1].any()
    signal = [k for k in range(30) if k not in flat]
    median, iqr = epoch_quartiles(epochs[:1, signal])
    k = signal.index(25)  # epoch 25 is scaled by the epochs with a signal before it, the flat ones left out
    centre, spread = np.median(median[0, : k + 1]), np.median(iqr[0, : k + 1]) / 1.349
    assert np.allclose(masked[25, 0], np.clip((epochs[0, 25] - centre) / spread, -20, 20), atol=1e-4)
    plain = RunningRobustScaler(2).scale(epochs)  # channel 1 is the same up to its quiet epoch
    assert np.array_equal(plain[:12, 1], masked[:12, 1]) and not np.array_equal(plain[13:, 1], masked[13:, 1])
    pieces = RunningRobustScaler(2, mask_flat=True)
    chunked = np.concatenate([pieces.scale(epochs[:, i : i + 4]) for i in range(0, 30, 4)])
    assert np.array_equal(chunked, masked)


def test_a_loose_eeg_lead_reaches_the_model_as_zeros_but_a_quiet_emg_does_not() -> None:
    rng = np.random.default_rng(4)
    eeg = rng.standard_normal((1, 100 * 30 * 10)) * 30
    eeg[0, 100 * 30 * 4 : 100 * 30 * 7] = 12.0
    out = ModalityStream("eeg", 100.0, 1, PreprocessConfig()).run(eeg)
    assert not out[5].any() and out[1].any() and out[8].any()
    envelope = np.exp(rng.standard_normal((1, 300)))
    envelope[0, 120:210] = 0.02  # atonia on a 1 Hz envelope: low, but a signal
    assert ModalityStream("emg", 1.0, 1, PreprocessConfig()).run(envelope)[5].any()


@pytest.mark.parametrize(
    ("modality", "sfreq"), [("eeg", 256.0), ("eeg", 100.0), ("emg", 200.0), ("emg", 1.0)]
)
def test_modality_stream_in_chunks_equals_one_run(modality: str, sfreq: float) -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, int(sfreq * 30 * 12))) * 20 + (5 if sfreq < 10 else 0)
    x = np.abs(x) if sfreq < 10 else x
    whole = ModalityStream(modality, sfreq, 1, PreprocessConfig()).run(x)
    stream = ModalityStream(modality, sfreq, 1, PreprocessConfig())
    step = max(1, int(sfreq * 1.7))
    parts = [stream.push(x[:, i : i + step]) for i in range(0, x.shape[1], step)]
    chunked = np.concatenate([*parts, stream.flush()])
    assert whole.shape == chunked.shape == (12, 1, round(30 * (1.0 if modality == "emg" else 100.0)))
    assert np.abs(chunked - whole).max() < 1e-3


def _recording(n_epochs: int, emg_sfreq: float, rng: np.random.Generator) -> Recording:
    n100 = n_epochs * 3000
    n_emg = int(n_epochs * 30 * emg_sfreq)
    return Recording(
        path=Path("SC4001E0-PSG.edf"),
        signals={
            "eeg": rng.standard_normal((2, n100)) * 20,
            "eog": rng.standard_normal((1, n100)) * 30,
            "emg": np.abs(rng.standard_normal((1, n_emg))) * 10 + 1,
        },
        sfreq={"eeg": 100.0, "eog": 100.0, "emg": emg_sfreq},
        channel_names={
            "eeg": ["EEG Fpz-Cz", "EEG Pz-Oz"],
            "eog": ["EOG horizontal"],
            "emg": ["EMG submental"],
        },
        start=datetime(1989, 4, 24, 16, 13),
        subject="SC00",
        night=1,
        study="SC",
    )


@pytest.mark.parametrize("emg_sfreq", [1.0, 100.0])
def test_preprocess_night_trims_wake_and_epochs_every_modality(emg_sfreq: float) -> None:
    rng = np.random.default_rng(3)
    w, s2, s4, rem = (RK.code(s) for s in ("W", "S2", "S4", "REM"))
    stages = np.r_[[w] * 100, [s2] * 20, [s4] * 10, [rem] * 10, [w] * 80, [UNSCORED] * 5]
    rec = _recording(stages.size, emg_sfreq, rng)
    night = preprocess_night(rec, Hypnogram(stages, RK), PreprocessConfig(trim_wake_min=30.0))
    # 60 epochs (30 min) of wake kept on each side of the 40 sleep epochs
    assert night.first_epoch == 40
    assert night.n_epochs == 60 + 40 + 60
    assert night.signals["eeg"].shape == (160, 2, 3000)
    assert night.signals["eog"].shape == (160, 1, 3000)
    assert night.signals["emg"].shape == (160, 1, 30)
    assert night.signals["eeg"].dtype == np.float32
    assert np.all(night.stages[:60] == AASM.code("W")) and np.all(night.stages[-60:] == AASM.code("W"))
    assert np.sum(night.stages == AASM.code("N3")) == 10
    assert np.sum(night.rk_stages == RK.code("S4")) == 10
    assert night.subject_id == "SC00"


def test_preprocess_night_restarts_the_stream_where_asked() -> None:
    rng = np.random.default_rng(6)
    stages = np.r_[[0] * 30, [2] * 10, [0] * 30]
    rec = _recording(stages.size, 1.0, rng)
    rec.signals["eeg"][:, : 20 * 3000] *= 10  # loud first 20 epochs
    config = PreprocessConfig(trim_wake_min=None)
    one = preprocess_night(rec, Hypnogram(stages, AASM), config)
    two = preprocess_night(rec, Hypnogram(stages, AASM), config, stream_starts=(20,))
    # the same stream up to the restart, but for the band-pass's end padding in the last epoch before it
    assert np.allclose(one.signals["eeg"][:19], two.signals["eeg"][:19], atol=1e-4)
    # after the restart the loud start no longer sets the scale (without it, until the quiet epochs
    # outnumber the loud ones)
    assert np.std(two.signals["eeg"][20:30]) > 5 * np.std(one.signals["eeg"][20:30])
    assert np.std(two.signals["eeg"][20:30]) == pytest.approx(1.0, rel=0.2)
    alone = Recording(
        **{**rec.__dict__, "signals": {m: x[:, x.shape[1] * 20 // 70 :] for m, x in rec.signals.items()}}
    )
    tail = preprocess_night(alone, Hypnogram(stages[20:], AASM), config)
    assert np.allclose(tail.signals["eeg"], two.signals["eeg"][20:], atol=1e-4)


def test_preprocess_night_keeps_whole_recording_without_trimming() -> None:
    rng = np.random.default_rng(4)
    stages = np.r_[[0] * 30, [2] * 10, [0] * 30]
    night = preprocess_night(
        _recording(stages.size, 1.0, rng), Hypnogram(stages, AASM), PreprocessConfig(trim_wake_min=None)
    )
    assert night.n_epochs == 70 and night.first_epoch == 0
    assert np.all(night.rk_stages == UNSCORED)


def test_preprocess_night_rejects_nan_and_flat_signals() -> None:
    rng = np.random.default_rng(5)
    stages = np.r_[[0] * 10, [2] * 10]
    rec = _recording(stages.size, 1.0, rng)
    rec.signals["eeg"][1, 100:200] = np.nan
    with pytest.raises(SignalQualityError, match=r"SC4001E0-PSG\.edf"):
        preprocess_night(rec, Hypnogram(stages, AASM))
    rec = _recording(stages.size, 1.0, rng)
    rec.signals["eog"][:] = 3.0
    with pytest.raises(SignalQualityError, match=r"SC4001E0-PSG\.edf"):
        preprocess_night(rec, Hypnogram(stages, AASM))


def test_likely_sleep_window_finds_the_night_in_a_day_long_recording(tmp_path: Path) -> None:
    from somna.hypnogram import sleep_period_bounds
    from somna.io import align_hypnogram, read_hypnogram, read_psg
    from somna.preprocess.sleep_window import likely_sleep_window
    from somna.synth import write_synthetic_cohort

    psg, hyp = write_synthetic_cohort(
        tmp_path, n_subjects=1, seed=21, nights=1, progress=False, variation="textbook"
    )[:2]
    recording = read_psg(psg)
    assert recording.duration_s > 20 * 3600  # a Sleep-EDF SC-like day-long recording
    true_first, true_stop = sleep_period_bounds(align_hypnogram(read_hypnogram(hyp), recording), 30.0)
    first, stop = likely_sleep_window(recording)
    overlap = min(stop, true_stop) - max(first, true_first)
    assert overlap > 0.8 * (true_stop - true_first)
    assert (stop - first) < 1.3 * (true_stop - true_first)

    def piece(first_epoch: int, hours: float) -> Recording:
        signals = {
            m: x[:, round(first_epoch * 30 * recording.sfreq[m]) :][
                :, : round(hours * 3600 * recording.sfreq[m])
            ]
            for m, x in recording.signals.items()
        }
        return Recording(**{**recording.__dict__, "signals": signals})

    onset = true_first + 60  # the bounds hold 30 min of wake before sleep onset
    assert abs(first + 60 - onset) <= 10  # the onset found within 5 min
    bedtime = piece(onset - 40, 9.0)  # started 20 min before sleep onset: one stream from its start
    assert likely_sleep_window(bedtime)[0] == 0
    evening = piece(onset - 360, 12.0)  # 3 h of evening wake before sleep onset: the same start
    assert likely_sleep_window(evening)[0] == first - (onset - 360)
    short = piece(0, 2.5)  # under 3 h: taken whole
    assert likely_sleep_window(short) == (0, short.n_epochs())
