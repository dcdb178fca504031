"""Synthetic polysomnography signals for a sequence of R&K stages, as an AASM scorer sees them.

The EEG is a sum of band-limited noise sources (slow waves/delta, theta, alpha, beta and a 1/f
background), each scaled by a per-stage amplitude envelope, plus transient events (sleep spindles,
K-complexes, vertex sharp waves, sawtooth waves) and artefacts (movement, electrode pops). The EOG
carries blinks, saccades, slow rolling and rapid eye movements plus frontal EEG leakage; the chin EMG
follows the stage's muscle tone with REM atonia and twitches.

Scoring is ambiguous on real data (two scorers agree on ~83 % of epochs, mostly disagreeing on N1/N2
and N2/N3), so the physiology of each epoch is a blend of its own stage's prototype and a neighbouring
stage's (W↔N1↔N2↔S3↔S4, N1↔REM, REM↔W arousals), with an own-stage weight drawn per epoch (low for the
transitional N1, lower at the first and last epochs of a run), multiplicative log-normal jitter of
every rate and amplitude, and a few epochs whose physiology is a neighbour's outright.

Everything is vectorised: each noise source is one inverse FFT of a shaped complex spectrum over the
whole night; envelopes are built per second, cross-faded across epoch borders and linearly
upsampled; events are added as windows of precomputed waveforms. A 22-h night at 100 Hz takes a few
seconds on one core and is identical for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.fft
from scipy.special import ndtri

from somna.stages import RK, UNSCORED
from somna.synth.variation import Variation

__all__ = ["PsgSignals", "SubjectProfile", "sample_subject_profile", "synthesize_psg"]

# Per-stage parameters in R&K order (W, S1, S2, S3, S4, REM). Amplitudes are RMS in µV on Fpz-Cz before
# the subject's gains, chosen so that Sleep-EDF-like Fpz-Cz/Pz-Oz amplitudes result. N1 (S1) sits
# between wake and REM/N2 on purpose: less alpha than relaxed wake, theta and slow eye movements like
# drowsy wake, a background like REM; only the EMG and eye movements tell REM apart.
_STAGE_ORDER = RK.labels
_STAGE_TABLE: dict[str, tuple[float, ...]] = {
    # 1/f background: the largest share of the EEG's power in every stage, as in real EEG, so that the
    # rhythm bands sit on a smooth slope instead of standing out as boxes.
    "background_uv": (12.0, 13.0, 15.0, 15.5, 15.5, 12.5),
    # 0.5-3 Hz activity always present
    "delta_uv": (3.0, 6.0, 13.0, 17.0, 17.0, 5.5),
    # Fraction of time in high-amplitude slow waves (> 75 µV peak-to-peak): R&K S3 20-50 %, S4 > 50 %
    "slow_wave_fraction": (0.0, 0.02, 0.1, 0.4, 0.75, 0.01),
    "theta_uv": (2.5, 7.5, 5.0, 5.0, 4.0, 6.0),
    # Fraction of time with eyes-closed alpha (relaxed wake > 50 %, alpha drops out in N1)
    "alpha_fraction": (0.55, 0.15, 0.04, 0.02, 0.02, 0.08),
    "beta_uv": (4.0, 2.5, 2.0, 1.6, 1.5, 2.8),
    "spindles_per_min_scale": (0.0, 0.1, 1.0, 0.6, 0.35, 0.0),
    "k_complexes_per_min": (0.0, 0.05, 1.8, 0.6, 0.3, 0.0),
    # N1's prototype is a little more marked than the N1 an AASM scorer sees on average, because N1
    # epochs are blended with their neighbours much more than other stages' (see _OWN_WEIGHT).
    "vertex_waves_per_min": (0.0, 2.0, 0.3, 0.0, 0.0, 0.0),
    "sawtooth_per_min": (0.0, 0.0, 0.0, 0.0, 0.0, 1.5),
    # Eye movements: blinks and saccades need open eyes (wake), slow rolling movements mark drowsiness
    # and N1, rapid eye movement bursts mark (phasic) REM.
    "blinks_per_min": (14.0, 1.0, 0.0, 0.0, 0.0, 0.0),
    "saccades_per_min": (18.0, 1.5, 0.0, 0.0, 0.0, 0.0),
    "sem_uv": (8.0, 34.0, 5.0, 2.0, 2.0, 4.0),
    "rem_bursts_per_min": (0.0, 0.0, 0.0, 0.0, 0.0, 2.2),
    # Chin EMG tone relative to the subject's wake tone; REM atonia
    "emg_tone": (1.0, 0.55, 0.42, 0.38, 0.36, 0.12),
    "emg_twitches_per_min": (0.0, 0.0, 0.0, 0.0, 0.0, 4.0),
    "movement_artefact_scale": (3.0, 1.5, 0.4, 0.2, 0.2, 0.5),
    # Breathing: rate (per min) and irregularity (wake and REM breathe irregularly)
    "resp_rate_per_min": (16.0, 15.0, 14.0, 13.5, 13.5, 16.5),
    "resp_irregularity": (0.25, 0.15, 0.06, 0.03, 0.03, 0.25),
}
# Per-epoch log-normal jitter (σ of the log) of each parameter: event rates vary most from epoch to
# epoch, amplitudes less, breathing rate little. Fractions are clipped to [0, 0.95] after jitter.
_JITTER_SIGMA: dict[str, float] = {
    "background_uv": 0.12,
    "delta_uv": 0.25,
    "slow_wave_fraction": 0.35,
    "theta_uv": 0.25,
    "alpha_fraction": 0.4,
    "beta_uv": 0.2,
    "spindles_per_min_scale": 0.4,
    "k_complexes_per_min": 0.45,
    "vertex_waves_per_min": 0.45,
    "sawtooth_per_min": 0.45,
    "blinks_per_min": 0.4,
    "saccades_per_min": 0.4,
    "sem_uv": 0.4,
    "rem_bursts_per_min": 0.45,
    "emg_tone": 0.25,
    "emg_twitches_per_min": 0.4,
    "movement_artefact_scale": 0.3,
    "resp_rate_per_min": 0.05,
    "resp_irregularity": 0.3,
}
_FRACTIONS = ("slow_wave_fraction", "alpha_fraction")
# Which stages each stage's physiology blends toward (rows and columns W, S1, S2, S3, S4, REM; rows sum
# to 1): drowsy wake and REM-like wake, N1 toward wake, N2 or REM, N2 toward N1 or slow-wave sleep
# (the 20 % slow-wave border), S3 toward S2 or S4, REM toward N1 or brief arousals.
_NEIGHBOUR_P = np.array(
    [[0.0, 0.85, 0.0, 0.0, 0.0, 0.15],
     [0.4, 0.0, 0.4, 0.0, 0.0, 0.2],
     [0.0, 0.35, 0.0, 0.65, 0.0, 0.0],
     [0.0, 0.0, 0.4, 0.0, 0.6, 0.0],
     [0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
     [0.4, 0.6, 0.0, 0.0, 0.0, 0.0]]
)  # fmt: skip
# Own-stage weight of an epoch's blend, uniform in (low, high) per stage. N1 is a transitional stage
# that scorers agree on least, so its epochs carry much of their neighbours' physiology.
_OWN_WEIGHT = ((0.6, 1.0), (0.35, 0.7), (0.7, 1.0), (0.6, 1.0), (0.6, 1.0), (0.7, 1.0))
# Share of epochs whose physiology is a neighbour's outright (where scorers would disagree), doubled at
# the first and last epoch of a run; S3↔S4 swaps stay within AASM N3.
_SWAP_P = (0.02, 0.08, 0.02, 0.12, 0.05, 0.02)
# Factor on the neighbour share for the first/last, second/second-last ... epoch of a stage run:
# physiology changes gradually across a transition rather than at the scored border.
_EDGE_MIX_GAIN = (1.6, 1.3)
_MAX_NEIGHBOUR_SHARE = 0.65
_CROSSFADE_S = 6  # stage parameters ramp over this many seconds around epoch borders
_EEG_PZ_GAIN = {"background": 0.85, "delta": 0.45, "theta": 0.75, "beta": 0.7}
_FPZ_ALPHA_GAIN = 0.3  # alpha is occipital; Fpz-Cz sees a fraction of it


@dataclass(frozen=True)
class SubjectProfile:
    """Physiology of one synthetic subject, shared by all of its nights.

    Parameters
    ----------
    eeg_gain : float
        Overall EEG amplitude factor (skull thickness, electrode distance).
    slow_wave_gain : float
        Extra factor on slow-wave amplitude (age).
    slow_wave_uv : float
        RMS of high-amplitude slow-wave activity on Fpz-Cz, µV.
    alpha_peak_hz : float
        Posterior dominant rhythm frequency, Hz (8.5-11.5).
    alpha_uv : float
        Eyes-closed alpha RMS on Pz-Oz, µV.
    theta_peak_hz : float
        Centre of the theta band, Hz.
    spindle_freq_hz : float
        Mean sleep-spindle frequency, Hz (11-16).
    spindle_density_per_min : float
        Spindles per minute of N2.
    spindle_amplitude_uv : float
        Peak spindle amplitude on Fpz-Cz, µV.
    k_complex_amplitude_uv : float
        Peak-to-peak K-complex amplitude on Fpz-Cz, µV.
    rem_density : float
        Factor on rapid-eye-movement burst rate.
    eye_movement_uv : float
        Typical saccade / rapid eye movement amplitude on the horizontal EOG, µV.
    emg_tone_uv : float
        Wake chin EMG RMS, µV.
    noise_uv : float
        Amplifier and electrode noise RMS, µV.
    artefacts_per_h : float
        Movement artefacts per hour of wake-like activity.
    eog_eeg_leak : float
        Fraction of the frontal EEG picked up by the EOG electrodes.
    resp_rate_scale : float
        Factor on breathing rate.
    """

    eeg_gain: float
    slow_wave_gain: float
    slow_wave_uv: float
    alpha_peak_hz: float
    alpha_uv: float
    theta_peak_hz: float
    spindle_freq_hz: float
    spindle_density_per_min: float
    spindle_amplitude_uv: float
    k_complex_amplitude_uv: float
    rem_density: float
    eye_movement_uv: float
    emg_tone_uv: float
    noise_uv: float
    artefacts_per_h: float
    eog_eeg_leak: float
    resp_rate_scale: float

    def to_dict(self) -> dict[str, float]:
        """Return the profile as a plain dict (for JSON)."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


def sample_subject_profile(rng: np.random.Generator) -> SubjectProfile:
    """Draw one subject's physiology.

    Parameters
    ----------
    rng : np.random.Generator
        Source of randomness.

    Returns
    -------
    SubjectProfile
        Parameters spread like healthy adults' (Sleep-EDF SC is 25-101 years old).
    """
    return SubjectProfile(
        eeg_gain=float(rng.lognormal(0.0, 0.18)),
        slow_wave_gain=float(rng.lognormal(0.0, 0.15)),
        slow_wave_uv=float(rng.uniform(45.0, 58.0)),
        alpha_peak_hz=float(rng.uniform(8.5, 11.5)),
        alpha_uv=float(rng.uniform(9.0, 20.0)),
        theta_peak_hz=float(rng.uniform(5.0, 6.5)),
        spindle_freq_hz=float(rng.uniform(12.0, 14.5)),
        spindle_density_per_min=float(rng.uniform(3.0, 7.0)),
        spindle_amplitude_uv=float(rng.uniform(16.0, 30.0)),
        k_complex_amplitude_uv=float(rng.uniform(90.0, 170.0)),
        rem_density=float(rng.lognormal(0.0, 0.3)),
        eye_movement_uv=float(rng.uniform(60.0, 140.0)),
        emg_tone_uv=float(rng.uniform(6.0, 16.0)),
        noise_uv=float(rng.uniform(1.0, 3.0)),
        artefacts_per_h=float(rng.uniform(2.0, 8.0)),
        eog_eeg_leak=float(rng.uniform(0.2, 0.45)),
        resp_rate_scale=float(rng.lognormal(0.0, 0.1)),
    )


@dataclass
class PsgSignals:
    """Synthetic signals of one night.

    Parameters
    ----------
    eeg_fpz_cz, eeg_pz_oz, eog_horizontal, emg_submental : np.ndarray of float32
        At ``sfreq`` Hz, in µV; ``emg_submental`` is the raw chin EMG.
    emg_envelope : np.ndarray
        Chin EMG amplitude (RMS over 1 s), µV, at 1 Hz, as Sleep-EDF SC stores it.
    resp_oro_nasal : np.ndarray
        Oro-nasal airflow at 1 Hz, arbitrary units.
    temp_rectal : np.ndarray
        Rectal temperature at 1 Hz, °C.
    event_marker : np.ndarray
        Event marker at 1 Hz (zeros).
    sfreq : float
        Rate of the fast channels, Hz.
    """

    eeg_fpz_cz: np.ndarray
    eeg_pz_oz: np.ndarray
    eog_horizontal: np.ndarray
    emg_submental: np.ndarray | None
    emg_envelope: np.ndarray
    resp_oro_nasal: np.ndarray
    temp_rectal: np.ndarray
    event_marker: np.ndarray
    sfreq: float


# ----------------------------------------------------------------------------------------------------
# Building blocks


def _epoch_stages(stages: np.ndarray) -> np.ndarray:
    """Stage index (into the R&K table) per epoch; unscored epochs behave as wake."""
    return np.where(stages == UNSCORED, RK.code("W"), stages).astype(np.int64)


def _run_context(stage: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where each epoch sits in its run of equal stages.

    Returns
    -------
    from_start, to_end : np.ndarray of int
        Epochs since the run's first epoch and until its last (0 at the borders).
    previous, following : np.ndarray of int
        Stage of the run before and after (the epoch's own stage at the night's ends).
    """
    n = stage.size
    idx = np.arange(n)
    new_run = np.r_[True, stage[1:] != stage[:-1]]
    run_start = np.maximum.accumulate(np.where(new_run, idx, 0))
    last_of_run = np.r_[stage[1:] != stage[:-1], True]
    run_end = np.minimum.accumulate(np.where(last_of_run, idx, n - 1)[::-1])[::-1]
    previous = stage[np.maximum(run_start - 1, 0)]
    following = stage[np.minimum(run_end + 1, n - 1)]
    return idx - run_start, run_end - idx, previous, following


def _blend_weights(rng: np.random.Generator, stage: np.ndarray) -> np.ndarray:
    """Per-epoch weights of the stage prototypes (n_epochs × 6, rows sum to 1).

    Each epoch takes a *physiological* stage (its scored stage, or a neighbour's for a few epochs, as
    scorers would disagree), then blends that stage's prototype with one neighbour's: the stage across
    the nearer border within two epochs of a transition when it is a neighbour, else one drawn from
    ``_NEIGHBOUR_P``. The neighbour's share grows toward run borders.
    """
    n_ep = stage.size
    n_st = len(_STAGE_ORDER)
    from_start, to_end, previous, following = _run_context(stage)
    edge_gain = np.ones(n_ep)
    for d, gain in enumerate(_EDGE_MIX_GAIN):
        edge_gain = np.where((from_start == d) | (to_end == d), np.maximum(edge_gain, gain), edge_gain)
    across = np.where(from_start <= to_end, previous, following)
    near_border = np.minimum(from_start, to_end) < len(_EDGE_MIX_GAIN)

    def neighbour_of(own: np.ndarray, u: np.ndarray) -> np.ndarray:
        # Inverse-CDF draw from each row of _NEIGHBOUR_P, preferring the stage across the border.
        drawn = (u[:, None] > np.cumsum(_NEIGHBOUR_P[own], axis=1)).sum(axis=1)
        drawn = np.minimum(drawn, n_st - 1)
        use_across = near_border & (across != own) & (_NEIGHBOUR_P[own, across] > 0)
        return np.where(use_across, across, drawn)

    u = rng.random((4, n_ep))
    swap = u[0] < np.asarray(_SWAP_P)[stage] * np.where(edge_gain > 1.0, 2.0, 1.0)
    physiological = np.where(swap, neighbour_of(stage, u[1]), stage)
    neighbour = neighbour_of(physiological, u[2])
    low, high = np.asarray(_OWN_WEIGHT).T
    share = 1.0 - (low[physiological] + (high - low)[physiological] * u[3])
    share = np.minimum(share * edge_gain, _MAX_NEIGHBOUR_SHARE)
    weights = np.zeros((n_ep, n_st))
    rows = np.arange(n_ep)
    weights[rows, physiological] = 1.0 - share
    weights[rows, neighbour] += share
    return weights


def _epoch_parameters(
    rng: np.random.Generator, stage: np.ndarray, overrides: dict[str, tuple[float, ...]] | None = None
) -> dict[str, np.ndarray]:
    """Every stage parameter per epoch: a blend of stage prototypes with log-normal jitter.

    ``overrides`` replaces rows of the stage table (parameter name → one value per R&K stage).
    """
    weights = _blend_weights(rng, stage)
    rows = {**_STAGE_TABLE, **(overrides or {})}
    table = np.array([rows[name] for name in _STAGE_TABLE], dtype=np.float64)  # params × stages
    sigma = np.array([_JITTER_SIGMA[name] for name in _STAGE_TABLE])
    # exp(σz - σ²/2) has mean 1, so the jitter leaves each stage's mean parameters where they were.
    jitter = np.exp(
        sigma[:, None] * rng.standard_normal((sigma.size, stage.size)) - 0.5 * sigma[:, None] ** 2
    )
    values = (table @ weights.T) * jitter
    out = dict(zip(_STAGE_TABLE, values, strict=True))
    for name in _FRACTIONS:
        out[name] = np.clip(out[name], 0.0, 0.95)
    return out


def _per_second(per_epoch: np.ndarray, epoch_s: int) -> np.ndarray:
    """An epoch parameter per second, cross-faded across epoch borders (moving average)."""
    return _smooth(np.repeat(per_epoch, epoch_s), _CROSSFADE_S)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``width`` samples with edge padding (same length)."""
    if width <= 1:
        return x.astype(np.float64)
    pad = np.pad(x.astype(np.float64), (width // 2, width - 1 - width // 2), mode="edge")
    c = np.concatenate([[0.0], np.cumsum(pad)])
    return (c[width:] - c[:-width]) / width


def _upsample(per_second: np.ndarray, sfreq: int) -> np.ndarray:
    """Linearly interpolate a 1-Hz envelope (values at second centres) to ``sfreq`` Hz, as float32."""
    a = per_second.astype(np.float32)
    nxt = np.concatenate([a[1:], a[-1:]])
    w = (np.arange(sfreq, dtype=np.float32) / sfreq)[None, :]
    return (a[:, None] * (1.0 - w) + nxt[:, None] * w).ravel()


def _white_spectrum(rng: np.random.Generator, n_fft: int) -> np.ndarray:
    n_bins = n_fft // 2 + 1
    spec = np.empty(n_bins, dtype=np.complex64)
    spec.real = rng.standard_normal(n_bins, dtype=np.float32)
    spec.imag = rng.standard_normal(n_bins, dtype=np.float32)
    return spec


def _band_source(spec: np.ndarray, freqs: np.ndarray, shape: np.ndarray, n: int) -> np.ndarray:
    """Unit-RMS noise with the amplitude spectrum ``shape`` (one inverse FFT over the whole night)."""
    x = scipy.fft.irfft(spec * shape.astype(np.float32), n=2 * (freqs.size - 1))[:n]
    rms = float(np.sqrt(np.mean(np.square(x[: min(n, 2_000_000)], dtype=np.float64))))
    return x / np.float32(rms if rms > 0 else 1.0)


def _bump(
    freqs: np.ndarray, lo: float, hi: float, taper: float = 0.5, taper_hi: float | None = None
) -> np.ndarray:
    """Flat pass band from ``lo`` to ``hi`` Hz with raised-cosine edges ``taper`` Hz wide (the upper
    edge ``taper_hi`` wide when given)."""
    out = np.zeros(freqs.shape)
    inside = (freqs >= lo) & (freqs <= hi)
    out[inside] = 1.0
    for edge, sign, width in ((lo, -1.0, taper), (hi, 1.0, taper if taper_hi is None else taper_hi)):
        d = sign * (freqs - edge)
        ramp = (d > 0) & (d < width)
        out[ramp] = 0.5 * (1.0 + np.cos(np.pi * d[ramp] / width))
    return out


def _gate(rng: np.random.Generator, probability: np.ndarray, corr_s: float) -> np.ndarray:
    """A smoothed on/off process per second that is on a fraction ``probability`` of the time.

    Thresholding a slow Gaussian process gives bursts whose mean duration is about ``corr_s``; the
    result is smoothed over 2 s so bursts wax and wane instead of switching hard.
    """
    n = probability.size
    noise = _smooth(rng.standard_normal(n + 4 * int(corr_s)), int(corr_s))[2 * int(corr_s) :][:n]
    noise /= np.std(noise) or 1.0
    threshold = ndtri(np.clip(1.0 - probability, 1e-6, 1 - 1e-6))
    return _smooth((noise > threshold).astype(np.float64), 2)


def _event_onsets(rng: np.random.Generator, rate_per_min: np.ndarray, sfreq: int) -> np.ndarray:
    """Poisson event onsets (sample indices) for a per-second rate in events per minute."""
    counts = rng.poisson(np.clip(rate_per_min, 0.0, None) / 60.0)
    seconds = np.repeat(np.arange(rate_per_min.size), counts)
    return ((seconds + rng.random(seconds.size)) * sfreq).astype(np.int64)


def _add_events(x: np.ndarray, onsets: np.ndarray, waves: np.ndarray) -> None:
    """Add one waveform (row of ``waves``) at each onset, dropping samples past the end."""
    if onsets.size == 0:
        return
    idx = onsets[:, None] + np.arange(waves.shape[1])[None, :]
    keep = idx < x.size
    x += np.bincount(idx[keep], weights=waves[keep], minlength=x.size)[: x.size].astype(np.float32)


def _spindles(rng: np.random.Generator, n: int, profile: SubjectProfile, sfreq: int) -> np.ndarray:
    """Waxing-waning 0.5-2 s sigma bursts around the subject's spindle frequency."""
    freq = np.clip(profile.spindle_freq_hz + rng.normal(0.0, 0.6, n), 11.0, 16.0)
    dur = rng.uniform(0.5, 2.0, n)
    amp = profile.spindle_amplitude_uv * rng.lognormal(0.0, 0.25, n)
    t = np.arange(int(2.0 * sfreq)) / sfreq
    env = np.clip(np.sin(np.pi * t[None, :] / dur[:, None]), 0.0, None) * (t[None, :] < dur[:, None])
    return (
        amp[:, None] * env**2 * np.sin(2 * np.pi * freq[:, None] * t[None, :] + rng.uniform(0, 6.3, (n, 1)))
    )


def _k_complexes(rng: np.random.Generator, n: int, amplitude_uv: float, sfreq: int) -> np.ndarray:
    """Sharp negative wave followed by a slower positive one (~0.5-1 s), optionally with a spindle."""
    t = np.arange(int(1.5 * sfreq)) / sfreq
    width = rng.uniform(0.08, 0.14, (n, 1))
    amp = amplitude_uv * rng.lognormal(0.0, 0.2, (n, 1)) / 2.0
    wave = -np.exp(-(((t - 0.25) / width) ** 2)) + 0.75 * np.exp(
        -(((t - 0.25 - 3.5 * width) / (2.2 * width)) ** 2)
    )
    return amp * wave


def _vertex_waves(rng: np.random.Generator, n: int, sfreq: int, gain: float) -> np.ndarray:
    t = np.arange(int(0.5 * sfreq)) / sfreq
    amp = gain * rng.uniform(30.0, 60.0, (n, 1))
    return -amp * np.exp(-(((t - 0.2) / 0.06) ** 2))


def _sawtooth_trains(rng: np.random.Generator, n: int, sfreq: int, gain: float) -> np.ndarray:
    """Trains of 2-6 Hz triangular waves, 1-4 s long (REM sawtooth waves)."""
    t = np.arange(int(4.0 * sfreq)) / sfreq
    freq = rng.uniform(2.0, 6.0, (n, 1))
    dur = rng.uniform(1.0, 4.0, (n, 1))
    phase = (freq * t[None, :]) % 1.0
    saw = np.where(phase < 0.8, phase / 0.8, (1.0 - phase) / 0.2) - 0.5  # slow rise, fast fall
    env = np.clip(np.sin(np.pi * t[None, :] / dur), 0.0, None) * (t[None, :] < dur)
    return gain * rng.uniform(25.0, 45.0, (n, 1)) * saw * env


def _blinks(rng: np.random.Generator, n: int, sfreq: int) -> np.ndarray:
    t = np.arange(int(0.6 * sfreq)) / sfreq
    amp = rng.uniform(80.0, 200.0, (n, 1))
    return amp * np.exp(-(((t - 0.2) / 0.08) ** 2))


def _eye_steps(
    rng: np.random.Generator, n: int, sfreq: int, amplitude_uv: float, rise_s: float, decay_s: float
) -> np.ndarray:
    """Eye movements on a high-passed EOG: a quick step of random sign that decays back."""
    t = np.arange(int(4.0 * sfreq)) / sfreq
    amp = amplitude_uv * rng.lognormal(0.0, 0.35, (n, 1)) * rng.choice([-1.0, 1.0], (n, 1))
    rise = np.clip(t / rise_s, 0.0, 1.0)
    return amp * rise * np.exp(-np.clip(t - rise_s, 0.0, None) / decay_s) * (1.0 - t / t[-1])


def _rem_bursts(
    rng: np.random.Generator, onsets: np.ndarray, profile: SubjectProfile, sfreq: int
) -> tuple[np.ndarray, np.ndarray]:
    """Expand REM burst onsets into 2-8 rapid eye movements 0.3-1 s apart."""
    n_moves = rng.integers(2, 9, onsets.size)
    starts = np.repeat(onsets, n_moves)
    within = np.concatenate([np.cumsum(rng.uniform(0.3, 1.0, k)) for k in n_moves]) if onsets.size else []
    moves = starts + (np.asarray(within) * sfreq).astype(np.int64)
    waves = _eye_steps(rng, moves.size, sfreq, profile.eye_movement_uv, rise_s=0.08, decay_s=0.6)
    return moves, waves


def _movement_artefacts(rng: np.random.Generator, onsets: np.ndarray, sfreq: int) -> np.ndarray:
    """Bursts of 2-8 s of large broadband activity (body movement), one row per event."""
    n = onsets.size
    t = np.arange(int(8.0 * sfreq)) / sfreq
    dur = rng.uniform(2.0, 8.0, (n, 1))
    env = np.clip(np.sin(np.pi * t[None, :] / dur), 0.0, None) * (t[None, :] < dur)
    noise = np.cumsum(rng.standard_normal((n, t.size)), axis=1)
    noise -= noise.mean(axis=1, keepdims=True)
    noise /= noise.std(axis=1, keepdims=True) + 1e-9
    return rng.uniform(40.0, 150.0, (n, 1)) * env * noise


# ----------------------------------------------------------------------------------------------------
# The night


def synthesize_psg(
    stages: np.ndarray,
    profile: SubjectProfile,
    rng: np.random.Generator,
    *,
    sfreq: int = 100,
    epoch_s: int = 30,
    start_hour: float = 16.0,
    raw_emg: bool = True,
    variation: Variation | None = None,
) -> PsgSignals:
    """Synthesise the PSG of one night for a stage sequence.

    Parameters
    ----------
    stages : np.ndarray of int
        R&K codes (:data:`somna.stages.RK`), one per epoch; unscored epochs are given wake physiology.
    profile : SubjectProfile
        The subject's physiology (:func:`sample_subject_profile`).
    rng : np.random.Generator
        Source of randomness; the same state gives identical signals.
    sfreq : int
        Rate of EEG, EOG and raw EMG, Hz.
    epoch_s : int
        Epoch length, s.
    start_hour : float
        Clock time of the first sample, hours after midnight (drives the temperature rhythm).
    raw_emg : bool
        Also synthesise the raw chin EMG at ``sfreq`` (Sleep Telemetry layout); the 1-Hz envelope is
        always made.
    variation : Variation | None
        How this night departs from the textbook (:mod:`somna.synth.variation`: EOG pickup of frontal
        EEG, chin tone, NREM tone, REM twitches, EEG and slow-wave amplitude, noise, pops, movements);
        the recording artefacts (ECG, sweat, mains, clipping, a flat lead) and the montage are applied
        when the night is written. ``None``: the textbook night.

    Returns
    -------
    PsgSignals
        Signals in µV (°C for temperature).
    """
    stages = np.asarray(stages)
    if stages.ndim != 1 or stages.size == 0:
        raise ValueError("stages must be a non-empty 1-D array of R&K codes")
    scored = stages[stages != UNSCORED]
    if scored.size and (scored.min() < 0 or scored.max() >= RK.n_classes):
        raise ValueError("stages must be R&K codes (0..5) or UNSCORED")
    stage = _epoch_stages(stages)
    stage_s = np.repeat(stage, epoch_s)
    n_sec = stage_s.size
    n = n_sec * sfreq
    n_fft = scipy.fft.next_fast_len(n, real=True)
    n_fft += n_fft % 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sfreq)
    v = variation or Variation()
    p = profile
    overrides = {}
    if v.nrem_tone is not None:  # S1 halfway between wake and the other NREM stages
        tone = _STAGE_TABLE["emg_tone"]
        overrides["emg_tone"] = (tone[0], (tone[0] + v.nrem_tone) / 2, *(v.nrem_tone,) * 3, tone[5])
    par = {name: _per_second(x, epoch_s) for name, x in _epoch_parameters(rng, stage, overrides).items()}
    g = p.eeg_gain * v.eeg_gain
    slow_gain = p.slow_wave_gain * v.slow_wave_gain
    tone_uv = p.emg_tone_uv * v.emg_tone
    noise_uv = p.noise_uv if v.noise_uv is None else v.noise_uv

    # Band-limited sources. Disjoint bands may share one white spectrum and stay independent.
    spec_a = _white_spectrum(rng, n_fft)
    # Rhythm bands have wide, smooth skirts (real EEG rhythms are not boxes); sources sharing a white
    # spectrum must not overlap in frequency, so delta (< 3.5 Hz), alpha (6.5-13.5 Hz) and beta
    # (> 13.5 Hz) share one and theta another.
    delta = _band_source(spec_a, freqs, _bump(freqs, 0.5, 1.5, 1.0, 2.0) / np.sqrt(np.maximum(freqs, 0.5)), n)
    alpha = _band_source(spec_a, freqs, _bump(freqs, p.alpha_peak_hz - 0.6, p.alpha_peak_hz + 0.6, 1.2), n)
    beta = _band_source(
        spec_a, freqs, _bump(freqs, 16.5, 22.0, 3.0, 12.0) / np.sqrt(np.maximum(freqs, 1.0)), n
    )
    spec_b = _white_spectrum(rng, n_fft)
    theta = _band_source(spec_b, freqs, _bump(freqs, p.theta_peak_hz - 0.8, p.theta_peak_hz + 0.8, 2.0), n)
    # Power falling as 1/f^1.8 (between pink and brown, as scalp EEG), band-limited as Sleep-EDF's
    # 0.5 Hz high-pass does; it fills the gaps between the rhythm bands.
    pink = np.where(freqs > 0, np.maximum(freqs, 0.5) ** -0.9, 0.0) * _bump(freqs, 0.4, 40.0, 0.3)
    # spec_b is free above 12 Hz; a fresh white spectrum fills below. One source, one RMS, so the slope
    # stays continuous at 12 Hz.
    spec_fpz = np.where(freqs > 12.0, spec_b, _white_spectrum(rng, n_fft))
    background_fpz = _band_source(spec_fpz, freqs, pink, n)
    del spec_fpz
    background_pz = _band_source(_white_spectrum(rng, n_fft), freqs, pink, n)

    # Amplitude envelopes per second: slow waves and eyes-closed alpha come in bursts.
    slow_gate = _gate(rng, par["slow_wave_fraction"], corr_s=6.0)
    delta_env = g * (par["delta_uv"] + slow_gain * p.slow_wave_uv * slow_gate)
    alpha_gate = _gate(rng, par["alpha_fraction"], corr_s=5.0)
    alpha_env = g * p.alpha_uv * (0.12 + alpha_gate)
    theta_env = g * par["theta_uv"]
    emg_tone = tone_uv * par["emg_tone"] * np.exp(0.15 * _smooth(rng.standard_normal(n_sec), 20) * 4.0)
    beta_env = g * par["beta_uv"] * (0.7 + 0.3 * par["emg_tone"])  # frontal muscle activity in wake
    bg_env = g * par["background_uv"]

    fpz = _upsample(bg_env, sfreq) * background_fpz
    fpz += _upsample(delta_env, sfreq) * delta
    fpz += _upsample(theta_env, sfreq) * theta
    fpz += _upsample(_FPZ_ALPHA_GAIN * alpha_env, sfreq) * alpha
    fpz += _upsample(beta_env, sfreq) * beta
    pz = _upsample(_EEG_PZ_GAIN["background"] * bg_env, sfreq) * background_pz
    pz += _upsample(_EEG_PZ_GAIN["delta"] * delta_env, sfreq) * delta
    pz += _upsample(_EEG_PZ_GAIN["theta"] * theta_env, sfreq) * theta
    pz += _upsample(alpha_env, sfreq) * alpha
    pz += _upsample(_EEG_PZ_GAIN["beta"] * beta_env, sfreq) * beta
    del delta, alpha, beta, theta, background_fpz, background_pz

    # Transient EEG events.
    on = _event_onsets(rng, p.spindle_density_per_min * par["spindles_per_min_scale"], sfreq)
    waves = _spindles(rng, on.size, p, sfreq) * g
    _add_events(fpz, on, waves)
    _add_events(pz, on, 0.6 * waves)
    on = _event_onsets(rng, par["k_complexes_per_min"], sfreq)
    waves = _k_complexes(rng, on.size, p.k_complex_amplitude_uv * g * v.slow_wave_gain, sfreq)
    _add_events(fpz, on, waves)
    _add_events(pz, on, 0.4 * waves)
    on = _event_onsets(rng, par["vertex_waves_per_min"], sfreq)
    waves = _vertex_waves(rng, on.size, sfreq, g)
    _add_events(fpz, on, waves)
    _add_events(pz, on, 0.5 * waves)
    on = _event_onsets(rng, par["sawtooth_per_min"], sfreq)
    waves = _sawtooth_trains(rng, on.size, sfreq, g)
    _add_events(fpz, on, waves)
    _add_events(pz, on, 0.5 * waves)

    # EOG: slow rolling eye movements (0.1-0.6 Hz), blinks and saccades with open eyes, REM bursts,
    # and the frontal EEG that the electrodes pick up (slow waves and K-complexes show on the EOG).
    eyes_open = 1.0 - alpha_gate
    spec_eog = _white_spectrum(rng, n_fft)
    sem = _band_source(spec_eog, freqs, _bump(freqs, 0.15, 0.6, 0.15), n)
    eog_noise = _band_source(
        spec_eog, freqs, _bump(freqs, 1.0, 40.0, 0.5) / np.sqrt(np.maximum(freqs, 1.0)), n
    )
    eog = _upsample(par["sem_uv"] * (0.5 + eyes_open), sfreq) * sem
    eog += np.float32(noise_uv * 1.5) * eog_noise
    eog += np.float32(p.eog_eeg_leak if v.eog_eeg_leak is None else v.eog_eeg_leak) * fpz
    on = _event_onsets(rng, par["blinks_per_min"] * eyes_open, sfreq)
    waves = _blinks(rng, on.size, sfreq)
    _add_events(fpz, on, g * 0.6 * waves)  # blinks dominate the frontal EEG in wake
    _add_events(eog, on, 0.25 * waves * rng.choice([-1.0, 1.0], (on.size, 1)))
    on = _event_onsets(rng, par["saccades_per_min"] * eyes_open, sfreq)
    _add_events(eog, on, _eye_steps(rng, on.size, sfreq, 0.7 * p.eye_movement_uv, rise_s=0.05, decay_s=1.0))
    on = _event_onsets(rng, par["rem_bursts_per_min"] * p.rem_density, sfreq)
    moves, waves = _rem_bursts(rng, on, p, sfreq)
    _add_events(eog, moves, waves)
    _add_events(fpz, moves, 0.15 * waves)  # eye-movement spill on the frontal electrode

    # EMG: tone with REM atonia, twitches in REM; movement artefacts hit every channel.
    twitch_on = _event_onsets(rng, par["emg_twitches_per_min"] * v.rem_twitches, 1)
    emg_env = emg_tone.copy()
    np.add.at(
        emg_env, np.minimum(twitch_on, n_sec - 1), rng.uniform(1.0, 4.0, twitch_on.size) * tone_uv * 0.4
    )
    art_on = _event_onsets(rng, par["movement_artefact_scale"] * p.artefacts_per_h * v.movement / 60.0, sfreq)
    art = _movement_artefacts(rng, art_on, sfreq)
    _add_events(fpz, art_on, art)
    _add_events(pz, art_on, 0.7 * art)
    _add_events(eog, art_on, 1.2 * art)
    art_sec = np.minimum(art_on // sfreq, n_sec - 1)
    np.add.at(emg_env, art_sec, rng.uniform(3.0, 8.0, art_sec.size) * p.emg_tone_uv)
    # Electrode pops: a step that decays, on one EEG channel at a time.
    pop_on = _event_onsets(rng, np.full(n_sec, v.pops_per_min), sfreq)
    pops = _eye_steps(rng, pop_on.size, sfreq, 80.0, rise_s=0.01, decay_s=0.4)
    which = rng.random(pop_on.size) < 0.5
    _add_events(fpz, pop_on[which], pops[which])
    _add_events(pz, pop_on[~which], pops[~which])

    # Amplifier noise last, so it is the floor under everything.
    noise = rng.standard_normal((2, n), dtype=np.float32) * np.float32(noise_uv)
    fpz += noise[0]
    pz += noise[1]
    del noise

    emg_raw = None
    if raw_emg:
        white = rng.standard_normal(n + 1, dtype=np.float32)
        emg_raw = (np.diff(white) / np.float32(np.sqrt(2.0))) * _upsample(emg_env, sfreq)  # high-passed
    emg_envelope = emg_env * np.exp(0.1 * rng.standard_normal(n_sec))

    return PsgSignals(
        eeg_fpz_cz=fpz,
        eeg_pz_oz=pz,
        eog_horizontal=eog,
        emg_submental=emg_raw,
        emg_envelope=emg_envelope,
        resp_oro_nasal=_respiration(rng, par, p),
        temp_rectal=_temperature(rng, stage_s, start_hour),
        event_marker=np.zeros(n_sec),
        sfreq=float(sfreq),
    )


def _respiration(rng: np.random.Generator, par: dict[str, np.ndarray], p: SubjectProfile) -> np.ndarray:
    """Oro-nasal airflow sampled at 1 Hz (aliased, as Sleep-EDF's 1-Hz respiration is)."""
    n_sec = par["resp_rate_per_min"].size
    rate_hz = par["resp_rate_per_min"] * p.resp_rate_scale / 60.0
    jitter = 1.0 + par["resp_irregularity"] * _smooth(rng.standard_normal(n_sec), 5) * 2.0
    phase = 2 * np.pi * np.cumsum(rate_hz * np.clip(jitter, 0.3, None))
    amp = 300.0 * (1.0 + par["resp_irregularity"] * _smooth(rng.standard_normal(n_sec), 10) * 3.0)
    return amp * np.sin(phase) + 20.0 * rng.standard_normal(n_sec)


def _temperature(rng: np.random.Generator, stage_s: np.ndarray, start_hour: float) -> np.ndarray:
    """Rectal temperature, °C: circadian rhythm (nadir near 05:00) plus a drop while asleep."""
    n_sec = stage_s.size
    clock_h = start_hour + np.arange(n_sec) / 3600.0
    circadian = 37.0 + 0.35 * np.cos(2 * np.pi * (clock_h - 17.0) / 24.0)
    asleep = _smooth((stage_s != RK.code("W")).astype(np.float64), 1801)
    return circadian - 0.25 * asleep + 0.02 * _smooth(rng.standard_normal(n_sec), 300) * 10.0
