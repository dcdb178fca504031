"""Preprocessing: resampling, band-pass, EMG envelope, normalisation and the whole night."""

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
from somna.preprocess import bandpass_resample, emg_envelope, preprocess_night, resample, robust_scale
from somna.preprocess.normalise import STATS_SAMPLES, quartiles, robust_scale_epochs
from somna.preprocess.signals import fir_bandpass
from somna.stages import AASM, RK, UNSCORED


@pytest.mark.parametrize("sfreq", [50.0, 100.0, 128.0, 200.0, 256.0, 512.0])
def test_resample_gives_100hz_length_and_keeps_a_10hz_rhythm(sfreq: float) -> None:
    t = np.arange(int(60 * sfreq)) / sfreq
    x = 30.0 * np.sin(2 * np.pi * 10.0 * t)[None, :]
    y = bandpass_resample(x, sfreq, (0.3, 35.0), 100.0)
    assert y.shape == (1, 6000)
    f, p = welch(y[0, 500:-500], fs=100.0, nperseg=1000)
    assert abs(f[np.argmax(p)] - 10.0) < 0.2
    # amplitude preserved in the pass band (within 5 %)
    assert np.std(y[0, 500:-500]) == pytest.approx(30.0 / np.sqrt(2), rel=0.05)


def test_bandpass_removes_line_noise_and_drift() -> None:
    sfreq = 256.0
    t = np.arange(int(120 * sfreq)) / sfreq
    alpha = 20.0 * np.sin(2 * np.pi * 10 * t)
    noisy = alpha + 50.0 * np.sin(2 * np.pi * 50 * t) + 200.0 * np.sin(2 * np.pi * 0.02 * t)
    y = bandpass_resample(noisy[None, :], sfreq, (0.3, 35.0), 100.0)[0, 1000:-1000]
    ref = resample(alpha[None, :], sfreq, 100.0)[0, 1000:-1000]
    assert np.sqrt(np.mean((y - ref) ** 2)) < 2.0


def test_emg_envelope_of_raw_emg_is_its_rms_per_second() -> None:
    rng = np.random.default_rng(0)
    sfreq = 200.0
    amplitude = np.repeat([5.0, 40.0, 5.0], 20 * int(sfreq))  # tone up for 20 s in the middle
    raw = rng.standard_normal(amplitude.size) * amplitude
    env = emg_envelope(raw[None, :], sfreq, 1.0, highpass=10.0)[0]
    assert env.shape == (60,)
    assert np.median(env[22:38]) > 5 * np.median(env[:18])
    # high-pass at 10 Hz keeps ~ (1 - 20/200) of white-noise power within 10..90 Hz
    assert np.median(env[22:38]) == pytest.approx(40.0 * np.sqrt(0.8), rel=0.15)


def test_emg_envelope_at_1hz_passes_through() -> None:
    env = np.abs(np.random.default_rng(1).standard_normal((1, 120))) + 1
    assert np.array_equal(emg_envelope(env, 1.0, 1.0, highpass=10.0), env)


def test_robust_scale_centres_scales_and_clips() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 100_000)) * np.array([[5.0], [50.0]]) + 7
    x[0, :10] = 1e6  # artefact
    y, _, scale = robust_scale(x, clip=20)
    assert np.allclose(np.median(y, axis=1), 0, atol=0.02)
    assert np.allclose(np.std(y[:, 100:], axis=1), 1, atol=0.05)
    assert y.max() == 20
    assert scale[1] == pytest.approx(50, rel=0.05)


@pytest.mark.parametrize(
    ("n_times", "sfreq", "band"),
    [
        (960 * 3000, 100.0, (0.3, 35.0)),
        (700, 100.0, (0.3, 35.0)),
        (256 * 600, 256.0, (0.3, 35.0)),
        (200 * 120, 200.0, (10.0, 90.0)),
        (512 * 300, 512.0, (0.3, 35.0)),  # a 5,633-tap filter: larger overlap-add blocks
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


def test_robust_scale_of_a_long_recording_matches_exact_quantiles() -> None:
    rng = np.random.default_rng(4)
    n = 4 * STATS_SAMPLES + 123
    x = rng.standard_normal((2, n)) * np.array([[8.0], [40.0]]) + np.array([[3.0], [-5.0]])
    _, median, scale = robust_scale(x)
    q25, q50, q75 = np.percentile(x, [25, 50, 75], axis=1)
    assert np.allclose(median, q50, atol=0.01 * (q75 - q25))
    assert np.allclose(scale, (q75 - q25) / 1.349, rtol=0.01)
    again = robust_scale(x)
    assert np.array_equal(again[1], median) and np.array_equal(again[2], scale)


def test_robust_scale_sampling_does_not_alias_a_rhythm() -> None:
    # A tone whose period divides the sampling step would look flat on an evenly spaced grid.
    n = 6 * STATS_SAMPLES
    x = np.sin(2 * np.pi * np.arange(n) / 6)[None, :]
    _, _, scale = robust_scale(x)
    assert scale[0] == pytest.approx((np.percentile(x, 75) - np.percentile(x, 25)) / 1.349, rel=0.01)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 10, 17, 101, 1000, 12_345])
def test_quartiles_equal_numpy_percentile(n: int) -> None:
    rng = np.random.default_rng(n)
    for values in (rng.standard_normal(n).astype(np.float32), np.round(rng.standard_normal(n) * 2)):  # ties
        before = values.copy()
        expected = np.percentile(values.astype(np.float64), [25, 50, 75])
        assert np.allclose(quartiles(values), expected, rtol=1e-6, atol=1e-6)
        assert np.array_equal(values, before)  # the input is left as it was (it partitions a copy)


@pytest.mark.parametrize("threads", [1, 2])
def test_robust_scale_epochs_equals_robust_scale_in_epochs(threads: int) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 40 * 300)) * np.array([[5.0], [50.0], [1.0]])).astype(np.float32)
    x[1, 7] = 1e4  # clipped
    span = slice(300, 30 * 300)
    scaled, _, _ = robust_scale(x, clip=20, reference=span, max_samples=4096)
    expected = scaled.reshape(3, 40, 300).transpose(1, 0, 2)
    copy = robust_scale_epochs(x, 300, clip=20, reference=span, threads=threads, max_samples=4096)
    assert copy.shape == (40, 3, 300) and copy.flags.c_contiguous
    assert np.array_equal(copy, expected)
    in_place = robust_scale_epochs(
        x, 300, clip=20, reference=span, threads=threads, overwrite=True, max_samples=4096
    )
    assert np.shares_memory(in_place, x) and np.array_equal(in_place, expected)
    with pytest.raises(ValueError, match="whole epochs"):
        robust_scale_epochs(x[:, :1000], 300)
    with pytest.raises(ValueError, match="float32"):
        robust_scale_epochs(x.astype(np.float64), 300, overwrite=True)


def test_stats_samples_is_part_of_the_preprocessing_and_old_models_keep_2_19() -> None:
    from somna.config import PreprocessConfig
    from somna.errors import SomnaError
    from somna.staging import LEGACY_STATS_SAMPLES, SleepStager

    assert PreprocessConfig().stats_samples == STATS_SAMPLES == 2**17
    with pytest.raises(SomnaError, match="stats_samples"):
        PreprocessConfig(stats_samples=10)
    old = {k: v for k, v in vars(PreprocessConfig()).items() if k != "stats_samples"}
    assert SleepStager([], "aasm", ("eeg",), old).preprocess["stats_samples"] == LEGACY_STATS_SAMPLES == 2**19
    assert SleepStager([], "aasm", ("eeg",), vars(PreprocessConfig())).preprocess["stats_samples"] == 2**17
    # fewer samples, a different (but equally good) estimate of the same quantiles
    x = np.random.default_rng(6).standard_normal((1, 3_000_000)) * 10
    _, m17, s17 = robust_scale(x, max_samples=2**17)
    _, m19, s19 = robust_scale(x, max_samples=2**19)
    assert not np.array_equal(s17, s19)
    assert abs(m17[0] - m19[0]) < 0.01 * s19[0] and s17[0] == pytest.approx(s19[0], rel=0.01)


def test_robust_scale_rejects_flat_channel() -> None:
    x = np.zeros((1, 1000))
    x[0, :5] = 1
    with pytest.raises(ValueError, match="flat"):
        robust_scale(x)


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

    psg, hyp = write_synthetic_cohort(tmp_path, n_subjects=1, seed=21, nights=1, progress=False)[:2]
    recording = read_psg(psg)
    assert recording.duration_s > 20 * 3600  # a Sleep-EDF SC-like day-long recording
    true_first, true_stop = sleep_period_bounds(align_hypnogram(read_hypnogram(hyp), recording), 30.0)
    first, stop = likely_sleep_window(recording)
    overlap = min(stop, true_stop) - max(first, true_first)
    assert overlap > 0.8 * (true_stop - true_first)
    assert (stop - first) < 1.3 * (true_stop - true_first)
    # a night-length recording is taken whole
    short = Recording(
        **{
            **recording.__dict__,
            "signals": {m: x[:, : x.shape[1] // 3] for m, x in recording.signals.items()},
        }
    )
    assert likely_sleep_window(short) == (0, short.n_epochs())
