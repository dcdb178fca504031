"""Tests of the synthetic Sleep-EDF cohort generator (somna.synth)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import edfio
import mne
import numpy as np
import pytest
from scipy.signal import welch

from somna.errors import SomnaError
from somna.io.recording import Recording
from somna.stages import AASM, RK, UNSCORED, convert, stage_codes_from_strings
from somna.synth import (
    GENERATOR_VERSION,
    MARKOV_TRANSITIONS,
    fit_stage_transitions,
    load_reference_hypnograms,
    night_file_names,
    physiology,
    sample_night_stages,
    sample_subject_profile,
    synthesize_psg,
    write_synthetic_cohort,
)
from somna.synth import hypnograms as synth_hypnograms

SC_RATES = {
    "EEG Fpz-Cz": 100.0,
    "EEG Pz-Oz": 100.0,
    "EOG horizontal": 100.0,
    "Resp oro-nasal": 1.0,
    "EMG submental": 1.0,
    "Temp rectal": 1.0,
    "Event marker": 1.0,
}
FS = 100


@pytest.fixture(scope="module")
def sc_cohort(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("sc")
    return write_synthetic_cohort(
        out, n_subjects=3, layout="sc", seed=7, nights=2, hours=1.0, progress=False, variation="textbook"
    )


@pytest.fixture(scope="module")
def stage_night() -> tuple[np.ndarray, object]:
    """Ten minutes of every R&K stage, one subject: enough for band-power comparisons."""
    stages = np.repeat(np.arange(RK.n_classes, dtype=np.int8), 20)
    rng = np.random.default_rng(11)
    signals = synthesize_psg(stages, sample_subject_profile(rng), rng, raw_emg=True)
    return stages, signals


def _band_power(x: np.ndarray, stages: np.ndarray, stage: int, lo: float, hi: float) -> float:
    epochs = x[: stages.size * 30 * FS].reshape(stages.size, 30 * FS)[stages == stage]
    # Skip the cross-faded edges of each stage block.
    f, p = welch(epochs[2:-2], fs=FS, nperseg=4 * FS)
    return float(p[:, (f >= lo) & (f < hi)].mean())


def _read_hypnogram_stages(path: Path) -> np.ndarray:
    ann = mne.read_annotations(path)
    out = []
    for duration, text in zip(ann.duration, ann.description, strict=True):
        label_set, codes = stage_codes_from_strings([text])
        assert label_set is RK or codes[0] in (UNSCORED, AASM.code("W"), AASM.code("REM"))
        code = RK.code("REM") if (label_set is AASM and codes[0] == AASM.code("REM")) else int(codes[0])
        out.extend([code] * round(duration / 30.0))
    return np.array(out, dtype=np.int8)


# -- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_identical_edf_bytes(sc_cohort: list[Path], tmp_path: Path) -> None:
    again = write_synthetic_cohort(
        tmp_path, n_subjects=1, layout="sc", seed=7, nights=2, hours=1.0, progress=False, variation="textbook"
    )
    for new in again:
        assert new.read_bytes() == (sc_cohort[0].parent / new.name).read_bytes()


def test_different_seed_differs() -> None:
    a = synthesize_psg(
        np.zeros(4, np.int8), sample_subject_profile(np.random.default_rng(1)), np.random.default_rng(1)
    )
    b = synthesize_psg(
        np.zeros(4, np.int8), sample_subject_profile(np.random.default_rng(1)), np.random.default_rng(1)
    )
    c = synthesize_psg(
        np.zeros(4, np.int8), sample_subject_profile(np.random.default_rng(2)), np.random.default_rng(2)
    )
    np.testing.assert_array_equal(a.eeg_fpz_cz, b.eeg_fpz_cz)
    assert not np.array_equal(a.eeg_fpz_cz, c.eeg_fpz_cz)
    s1 = sample_night_stages(np.random.default_rng(5))
    assert np.array_equal(s1, sample_night_stages(np.random.default_rng(5)))
    assert not np.array_equal(s1, sample_night_stages(np.random.default_rng(6)))


# -- layout ---------------------------------------------------------------------------------------


def test_sc_file_naming_with_varying_scorer_letters(sc_cohort: list[Path]) -> None:
    names = [p.name for p in sc_cohort]
    psgs, hyps = names[0::2], names[1::2]
    assert psgs == [f"SC4{s:02d}{n}E0-PSG.edf" for s in range(3) for n in (1, 2)]
    for psg, hyp in zip(psgs, hyps, strict=True):
        assert re.fullmatch(psg[:7] + r"[A-Z]-Hypnogram\.edf", hyp)
    assert len({h[7] for h in hyps}) > 1, "hypnogram scorer letters should vary between nights"
    meta = json.loads((sc_cohort[0].parent / "synthetic.json").read_text())
    assert meta["seed"] == 7 and meta["layout"] == "sc" and meta["generator_version"] == GENERATOR_VERSION
    assert night_file_names("st", 3, 2, "P") == ("ST7032J0-PSG.edf", "ST7032JP-Hypnogram.edf")


def test_sc_channels_rates_and_records(sc_cohort: list[Path]) -> None:
    edf = edfio.read_edf(sc_cohort[0])
    assert {s.label: s.sampling_frequency for s in edf.signals} == SC_RATES
    assert list(SC_RATES) == [s.label for s in edf.signals]
    assert edf.data_record_duration == 30
    emg = next(s for s in edf.signals if s.label == "EMG submental")
    assert emg.physical_dimension == "uV" and emg.data.min() >= 0.0
    temp = next(s for s in edf.signals if s.label == "Temp rectal")
    assert temp.physical_dimension == "DegC" and 35.5 < temp.data.mean() < 38.5


def test_st_layout_has_raw_emg_at_100_hz(tmp_path: Path) -> None:
    paths = write_synthetic_cohort(
        tmp_path, n_subjects=1, layout="st", seed=3, nights=1, hours=0.5, progress=False, variation="textbook"
    )
    assert paths[0].name == "ST7001J0-PSG.edf" and re.fullmatch(r"ST7001J[A-Z]-Hypnogram\.edf", paths[1].name)
    rates = {s.label: s.sampling_frequency for s in edf_signals(paths[0])}
    assert rates == {**SC_RATES, "EMG submental": 100.0}


def edf_signals(path: Path) -> list[edfio.EdfSignal]:
    return list(edfio.read_edf(path).signals)


def test_hypnogram_edf_has_rk_strings_matching_stages(sc_cohort: list[Path]) -> None:
    psg, hyp = sc_cohort[0], sc_cohort[1]
    texts = set(mne.read_annotations(hyp).description)
    assert texts <= {"Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage 4",
                     "Sleep stage R", "Sleep stage ?"}  # fmt: skip
    assert "Sleep stage 2" in texts
    stages = _read_hypnogram_stages(hyp)
    rng = np.random.default_rng([7, 0, 1])  # the cohort's seed for subject 0, night 1
    np.testing.assert_array_equal(stages, sample_night_stages(rng, layout="sc", hours=1.0))
    assert stages.size * 30 == edfio.read_edf(psg).duration


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(SomnaError):
        write_synthetic_cohort(tmp_path, n_subjects=1, layout="xx", progress=False)
    with pytest.raises(SomnaError):
        write_synthetic_cohort(tmp_path, n_subjects=0, progress=False)
    with pytest.raises(ValueError):
        synthesize_psg(
            np.array([7]), sample_subject_profile(np.random.default_rng(0)), np.random.default_rng(0)
        )


# -- stage sequences ------------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_hypnogram_nights_have_long_wake_at_both_ends(shared_data: Path) -> None:
    assert len(load_reference_hypnograms(shared_data / "sleep-edf-hypnograms")) >= 10
    for seed in range(5):
        stages = sample_night_stages(
            np.random.default_rng(seed), hypnogram_dir=shared_data / "sleep-edf-hypnograms"
        )
        sleep = np.flatnonzero((stages != RK.code("W")) & (stages != UNSCORED))
        assert stages.size > 20 * 120  # a 20+ h Sleep Cassette recording
        assert sleep[0] > 3 * 120 and stages.size - sleep[-1] > 3 * 120  # hours of wake at both ends
        counts = np.bincount(stages[stages != UNSCORED], minlength=RK.n_classes)
        assert all(counts[RK.code(s)] > 0 for s in ("S1", "S2", "S3", "REM"))


@pytest.mark.realdata
def test_shipped_markov_matrix_matches_a_refit(shared_data: Path) -> None:
    transitions, _ = fit_stage_transitions(load_reference_hypnograms(shared_data / "sleep-edf-hypnograms"))
    for name, matrix in MARKOV_TRANSITIONS.items():
        np.testing.assert_allclose(transitions[name], matrix, atol=2e-3)


def test_markov_fallback_when_folder_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth_hypnograms, "HYPNOGRAM_DIR", tmp_path / "absent")
    assert load_reference_hypnograms() == []
    stages = sample_night_stages(np.random.default_rng(0))
    aasm = convert(stages, RK, AASM)
    sleep = np.flatnonzero((aasm != AASM.code("W")) & (aasm != UNSCORED))
    assert sleep[0] > 3 * 120 and aasm.size - sleep[-1] > 3 * 120
    assert set(np.unique(aasm[sleep[0] : sleep[-1]])) == set(range(AASM.n_classes))
    paths = write_synthetic_cohort(
        tmp_path / "out", 1, seed=1, nights=1, hours=0.5, progress=False, variation="textbook"
    )
    assert json.loads((paths[0].parent / "synthetic.json").read_text())["stage_source"] == "markov"


def test_hours_cap_keeps_sleep_onset() -> None:
    stages = sample_night_stages(np.random.default_rng(4), hours=2.0)
    assert stages.size == 240
    assert stages[0] == RK.code("W") and (stages[stages != UNSCORED] != RK.code("W")).mean() > 0.5


# -- physiology -----------------------------------------------------------------------------------


def test_alpha_on_pz_oz_higher_in_wake_than_n3(stage_night: tuple) -> None:
    stages, s = stage_night
    assert _band_power(s.eeg_pz_oz, stages, RK.code("W"), 8, 12) > 3 * _band_power(
        s.eeg_pz_oz, stages, RK.code("S4"), 8, 12
    )


def test_delta_on_fpz_cz_orders_s4_s3_n2(stage_night: tuple) -> None:
    stages, s = stage_night
    delta = {st: _band_power(s.eeg_fpz_cz, stages, RK.code(st), 0.5, 2.0) for st in ("S2", "S3", "S4")}
    assert delta["S4"] > delta["S3"] > delta["S2"]


def test_spindle_band_higher_in_n2_than_n1(stage_night: tuple) -> None:
    stages, s = stage_night
    assert _band_power(s.eeg_fpz_cz, stages, RK.code("S2"), 12, 15) > _band_power(
        s.eeg_fpz_cz, stages, RK.code("S1"), 12, 15
    )


def test_emg_atonia_in_rem_and_rapid_eye_movements(stage_night: tuple) -> None:
    stages, s = stage_night
    env = s.emg_envelope.reshape(stages.size, 30).mean(axis=1)
    assert env[stages == RK.code("W")].mean() > 2 * env[stages == RK.code("REM")].mean()
    raw = s.emg_submental.reshape(stages.size, -1).std(axis=1)
    assert raw[stages == RK.code("W")].mean() > 2 * raw[stages == RK.code("REM")].mean()
    eog = s.eog_horizontal.reshape(stages.size, -1)
    assert (
        np.ptp(eog[stages == RK.code("REM")], axis=1).mean()
        > np.ptp(eog[stages == RK.code("S2")], axis=1).mean()
    )


# -- epoch-to-epoch variability -------------------------------------------------------------------


def test_blend_weights_are_convex_and_n1_is_the_most_mixed() -> None:
    stages = np.repeat(np.arange(RK.n_classes), 200)
    weights = physiology._blend_weights(np.random.default_rng(0), stages)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert weights.min() >= 0.0
    own = weights[np.arange(stages.size), stages]
    mean_own = {RK.labels[s]: own[stages == s].mean() for s in range(RK.n_classes)}
    assert min(mean_own, key=mean_own.get) == "S1"
    assert 0.3 < mean_own["S1"] < 0.6 and mean_own["S2"] > 0.7
    # Mixing is stronger at run borders than inside runs.
    inside = np.ones(stages.size, bool)
    inside[::200] = inside[199::200] = False
    assert own[~inside].mean() < own[inside].mean()


def test_run_context_finds_borders_and_neighbour_stages() -> None:
    from_start, to_end, previous, following = physiology._run_context(np.array([0, 0, 1, 2, 2, 2]))
    np.testing.assert_array_equal(from_start, [0, 1, 0, 0, 1, 2])
    np.testing.assert_array_equal(to_end, [1, 0, 0, 2, 1, 0])
    np.testing.assert_array_equal(previous, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(following, [1, 1, 2, 2, 2, 2])


def test_epoch_parameters_vary_within_a_stage_but_keep_stage_order() -> None:
    stages = np.repeat(np.arange(RK.n_classes), 300)
    par = physiology._epoch_parameters(np.random.default_rng(1), stages)
    s1 = stages == RK.code("S1")
    # N1 is no longer one point in parameter space ...
    assert np.std(np.log(par["sem_uv"][s1])) > 0.3
    assert np.std(par["alpha_fraction"][s1]) > 0.05
    # ... but stage means still order as a scorer expects.
    mean = {name: [v[stages == s].mean() for s in range(RK.n_classes)] for name, v in par.items()}
    w, n1, n2, s3, s4, rem = range(RK.n_classes)
    assert mean["alpha_fraction"][w] > mean["alpha_fraction"][n1] > mean["alpha_fraction"][n2]
    assert (
        mean["slow_wave_fraction"][s4] > mean["slow_wave_fraction"][s3] > 0.2 > mean["slow_wave_fraction"][n2]
    )
    assert mean["spindles_per_min_scale"][n2] > mean["spindles_per_min_scale"][n1]
    assert mean["emg_tone"][w] > mean["emg_tone"][n2] > mean["emg_tone"][rem]
    assert mean["sem_uv"][n1] == max(mean["sem_uv"])
    assert mean["rem_bursts_per_min"][rem] == max(mean["rem_bursts_per_min"])


# --- how nights vary ------------------------------------------------------------------------------


def _night(tmp_path: Path, variation: str, hours: float = 2.0) -> Recording:
    from somna.config import load_cohort_config
    from somna.io import read_psg

    out = tmp_path / variation
    psg = write_synthetic_cohort(out, 1, seed=4, nights=1, hours=hours, variation=variation, progress=False)[
        0
    ]
    return read_psg(psg, load_cohort_config("synthetic").channels)


AASM_NAMES = {"eeg": ["F4-M1", "O2-M1"], "eog": ["E1-M2"], "emg": ["Chin1-Chin2"]}


def _p99(recording: Recording) -> float:
    return float(np.percentile(np.abs(recording.signals["eeg"]), 99))


def _jitter(recording: Recording) -> float:
    return float(np.std(np.diff(recording.signals["eeg"][0])))


def test_broad_variation_draws_montage_rate_and_artefacts_per_night_and_records_them(tmp_path: Path) -> None:
    import json

    from somna.synth.variation import sample_variation

    draws = [sample_variation(np.random.default_rng(i)) for i in range(300)]
    assert {d.montage for d in draws} == {"sleep-edf", "aasm"}
    assert {d.sfreq for d in draws} == {100, 128, 200, 256}
    assert 0.25 < np.mean([d.ecg_uv > 0 for d in draws]) < 0.55
    assert min(d.eog_eeg_leak for d in draws) < 0.25 and max(d.eog_eeg_leak for d in draws) > 0.8
    paths = write_synthetic_cohort(tmp_path, n_subjects=3, seed=2, nights=1, hours=0.5, progress=False)
    meta = json.loads((tmp_path / "synthetic.json").read_text())
    assert meta["variation"] == "broad" and set(meta["night_variation"]) == {p.name for p in paths[::2]}
    again = write_synthetic_cohort(
        tmp_path / "again", n_subjects=3, seed=2, nights=1, hours=0.5, progress=False
    )
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(paths, again, strict=True))


def test_every_shift_lies_at_the_far_end_of_the_broad_range() -> None:
    """A shifted cohort tests a factor's extreme, not a value the broad cohort never draws (512 Hz aside:
    too slow to synthesise for every broad night)."""
    from dataclasses import asdict

    from somna.synth.variation import SHIFTS, Variation, sample_variation

    draws = [asdict(sample_variation(np.random.default_rng(i))) for i in range(3000)]
    textbook = asdict(Variation())
    for name, shift in SHIFTS.items():
        changed = {k: v for k, v in asdict(shift(Variation())).items() if v != textbook[k]}
        for factor, value in changed.items():
            if factor == "sfreq" and name == "rate":
                continue
            drawn = [d[factor] for d in draws if d[factor] is not None]
            if isinstance(value, str):
                assert value in drawn, (name, factor)
                continue
            lo, hi = min(drawn), max(drawn)
            assert (
                lo <= value <= hi or np.isclose(value, lo, rtol=0.05) or np.isclose(value, hi, rtol=0.05)
            ), (
                name,
                factor,
                value,
                lo,
                hi,
            )
            share = np.mean([abs(v - value) <= 0.15 * (hi - lo) for v in drawn])
            assert share > 0.005, (name, factor)  # the broad cohort holds nights near it


def test_textbook_nights_keep_sleep_edf_montage_and_rate(tmp_path: Path) -> None:
    recording = _night(tmp_path, "textbook")
    assert recording.sfreq == {"eeg": 100.0, "eog": 100.0, "emg": 1.0}
    assert recording.channel_names["eeg"] == ["EEG Fpz-Cz", "EEG Pz-Oz"]


@pytest.mark.parametrize(
    ("shift", "check"),
    [
        ("montage", lambda r, t: r.channel_names == AASM_NAMES),
        ("rate", lambda r, t: r.sfreq["eeg"] == 512.0 and r.sfreq["eog"] == 512.0),
        ("clipping", lambda r, t: np.abs(r.signals["eeg"]).max() <= 60.5 < np.abs(t.signals["eeg"]).max()),
        ("emg-low", lambda r, t: np.median(r.signals["emg"]) < 0.3 * np.median(t.signals["emg"])),
        ("old-age", lambda r, t: _p99(r) < 0.5 * _p99(t)),
        ("noise", lambda r, t: _jitter(r) > 3 * _jitter(t)),
    ],
)  # fmt: skip
def test_each_shift_pushes_its_factor(tmp_path: Path, shift: str, check) -> None:
    textbook = _night(tmp_path, "textbook")
    assert check(_night(tmp_path, shift), textbook)


def test_eog_frontal_shift_puts_the_slow_waves_in_the_eog(tmp_path: Path) -> None:
    def slow_correlation(recording: Recording) -> float:
        from somna.preprocess import fir_bandpass

        eeg = fir_bandpass(recording.signals["eeg"][0], 100.0, 0.5, 2.0)
        eog = fir_bandpass(recording.signals["eog"][0], 100.0, 0.5, 2.0)
        return float(np.corrcoef(eeg, eog)[0, 1])

    assert (
        slow_correlation(_night(tmp_path, "eog-frontal"))
        > 0.8
        > slow_correlation(_night(tmp_path, "textbook"))
    )


def test_flat_lead_mains_and_ecg_shifts(tmp_path: Path) -> None:
    flat = _night(tmp_path, "flat-lead", hours=6.0)
    runs = [np.max(np.diff(np.flatnonzero(np.diff(ch) != 0))) for ch in flat.signals["eeg"]]
    assert abs(max(runs) - 4 * 3600 * 100) < 100  # one EEG channel flat for 4 h
    mains = _night(tmp_path, "mains")
    spectrum = np.abs(np.fft.rfft(mains.signals["eeg"][0][: 256 * 600]))
    freqs = np.fft.rfftfreq(256 * 600, 1 / 256)
    assert abs(freqs[np.argmax(spectrum * (freqs > 20))] - 50.0) < 0.1
    with pytest.raises(SomnaError, match="unknown shift 'bogus'"):
        write_synthetic_cohort(tmp_path / "x", n_subjects=1, variation="bogus", progress=False)
