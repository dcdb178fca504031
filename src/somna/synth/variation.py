"""How a synthetic night departs from the textbook: physiology and recording technique, drawn per night.

Real recordings differ from one another in ways a staging model must not lean on. Each synthetic night
draws every factor below from a broad range (:func:`sample_variation`), so that a model trained on many
nights cannot learn one generator's habits; :func:`shifted_variation` instead pushes one named factor to
the far end of its range with every other factor at its textbook value, so that a shift can be tested
alone (``somna synth --shift NAME``; ``"all"`` pushes every factor at once).

The factors (what the sleep literature and clinical PSG show):

* ``eog-frontal``: the EOG electrodes pick up frontal EEG, so N3 slow waves and N2 K-complexes show in
  the EOG channel, often at high amplitude (share of frontal EEG in the EOG: 0.15-1.3; shift 1.3).
* ``emg-low``: chin-EMG tone differs between people and nights by large factors (×0.15-4, log-uniform;
  shift ×0.15, which also brings wake tone near the noise floor).
* ``nrem-tone``: NREM tone can be close to relaxed wake (NREM tone 0.3-0.95 of wake tone; shift 0.95).
* ``rem-twitches``: REM atonia is broken by phasic twitches (×0.5-8 the textbook rate, log-uniform;
  shift ×8).
* ``old-age``: EEG amplitude falls with age and older sleepers' slow waves can miss the 75 µV criterion
  (EEG gain ×0.5-2, log-uniform; slow waves ×0.35-1.3; shift: gain 0.6, slow waves 0.35).
* ``noise``: electrode impedance and amplifier noise (0.5-14 µV RMS, log-uniform; shift 14 µV) and
  electrode pops (0.01-4 per minute, log-uniform; shift 4 per minute).
* ``ecg``: the ECG in EEG and EMG (in 40 % of nights, 2-25 µV on the EEG, 5 times that on the EMG;
  shift 25 µV).
* ``sweat``: slow sweat drifts (in 30 % of nights, 20-200 µV over 10-50 % of the night; shift 200 µV
  over half of it).
* ``movement``: movement and arousal bursts (×0.5-6 the textbook rate; shift ×6).
* ``mains``: 50/60 Hz line noise (in 30 % of nights, 2-40 µV; shift 40 µV at 50 Hz, recorded at 256 Hz).
* ``clipping``: clipping at the amplifier's range (in 20 % of nights at ±60-200 µV; shift ±60 µV).
* ``flat-lead``: a loose lead leaves one EEG channel flat (in 20 % of nights for 0.2-4 h; shift 4 h).
* ``montage``: the AASM montage (F4-M1, C4-M1, O2-M1; E1-M2, E2-M2; Chin1-Chin2) instead of Sleep-EDF's
  (in 40 % of nights; shift: always).
* ``rate``: sampling rates of 128, 200 and 256 Hz besides 100 Hz (in 45 % of nights; shift 512 Hz, which
  a broad night skips: a 22-h night at 512 Hz takes a minute and gigabytes to synthesise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from somna.errors import SomnaError

__all__ = ["SHIFTS", "Variation", "apply_technique", "sample_variation", "shifted_variation"]


@dataclass(frozen=True)
class Variation:
    """Every factor of one night (see the module docstring); the defaults are the textbook night.

    Parameters
    ----------
    eog_eeg_leak : float | None
        Share of the frontal EEG in the EOG; ``None`` keeps the subject's own (0.2-0.45).
    emg_tone : float
        Factor on the subject's chin-EMG tone.
    nrem_tone : float | None
        NREM (S2-S4) tone as a share of wake tone; S1 lies halfway; ``None`` keeps the textbook values.
    rem_twitches : float
        Factor on the rate of REM twitches.
    eeg_gain, slow_wave_gain : float
        Factors on all EEG amplitudes and on slow waves (and K-complexes).
    noise_uv : float | None
        Electrode and amplifier noise RMS, µV; ``None`` keeps the subject's (1-3 µV).
    pops_per_min : float
        Electrode pops per minute.
    ecg_uv : float
        ECG amplitude on the EEG channels (the EMG gets 5 times as much), µV.
    heart_rate_bpm : float
        Heart rate.
    sweat_uv, sweat_fraction : float
        Sweat drift amplitude (µV) and the share of the night it covers.
    movement : float
        Factor on the rate of movement and arousal bursts.
    mains_uv, mains_hz : float
        Line noise amplitude (µV) and frequency (50 or 60 Hz).
    clip_uv : float | None
        Amplifier range: EEG and EOG clip at ± this, µV.
    flat_hours : float
        A loose lead: one EEG channel is flat for this long.
    montage : {"sleep-edf", "aasm"}
        Channels written: EEG Fpz-Cz, Pz-Oz, EOG horizontal, EMG submental; or F4-M1, C4-M1, O2-M1,
        E1-M2, E2-M2, Chin1-Chin2.
    sfreq : int
        Rate of EEG, EOG and raw EMG, Hz.
    """

    eog_eeg_leak: float | None = None
    emg_tone: float = 1.0
    nrem_tone: float | None = None
    rem_twitches: float = 1.0
    eeg_gain: float = 1.0
    slow_wave_gain: float = 1.0
    noise_uv: float | None = None
    pops_per_min: float = 1.0 / 60.0
    ecg_uv: float = 0.0
    heart_rate_bpm: float = 65.0
    sweat_uv: float = 0.0
    sweat_fraction: float = 0.0
    movement: float = 1.0
    mains_uv: float = 0.0
    mains_hz: float = 50.0
    clip_uv: float | None = None
    flat_hours: float = 0.0
    montage: str = "sleep-edf"
    sfreq: int = 100

    def to_dict(self) -> dict[str, object]:
        """Plain-dict form (for the ``synthetic.json`` written beside the files)."""
        return asdict(self)


def sample_variation(rng: np.random.Generator) -> Variation:
    """One night's factors, each drawn from its broad range (see the module docstring).

    Parameters
    ----------
    rng : np.random.Generator
        Source of randomness; the same state gives the same night.

    Returns
    -------
    Variation
    """
    u = rng.random(8)  # which of the occasional artefacts this night has
    return Variation(
        eog_eeg_leak=float(rng.uniform(0.15, 1.3)),
        emg_tone=float(np.exp(rng.uniform(np.log(0.15), np.log(4.0)))),
        nrem_tone=float(rng.uniform(0.3, 0.95)),
        rem_twitches=float(np.exp(rng.uniform(np.log(0.5), np.log(8.0)))),
        eeg_gain=float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
        slow_wave_gain=float(rng.uniform(0.35, 1.3)),
        noise_uv=float(np.exp(rng.uniform(np.log(0.5), np.log(14.0)))),
        pops_per_min=float(np.exp(rng.uniform(np.log(0.01), np.log(4.0)))),
        ecg_uv=float(rng.uniform(2.0, 25.0)) if u[0] < 0.4 else 0.0,
        heart_rate_bpm=float(rng.uniform(50.0, 90.0)),
        sweat_uv=float(rng.uniform(20.0, 200.0)) if u[1] < 0.3 else 0.0,
        sweat_fraction=float(rng.uniform(0.1, 0.5)),
        movement=float(rng.uniform(0.5, 6.0)),
        mains_uv=float(rng.uniform(2.0, 40.0)) if u[2] < 0.3 else 0.0,
        mains_hz=50.0 if u[3] < 0.5 else 60.0,
        clip_uv=float(rng.uniform(60.0, 200.0)) if u[4] < 0.2 else None,
        flat_hours=float(rng.uniform(0.2, 4.0)) if u[5] < 0.2 else 0.0,
        montage="aasm" if u[6] < 0.4 else "sleep-edf",
        sfreq=int(rng.choice([100, 128, 200, 256], p=[0.55, 0.15, 0.15, 0.15])),
    )


SHIFTS: dict[str, Callable[[Variation], Variation]] = {
    "eog-frontal": lambda v: replace(v, eog_eeg_leak=1.3),
    "emg-low": lambda v: replace(v, emg_tone=0.15),
    "nrem-tone": lambda v: replace(v, nrem_tone=0.95),
    "rem-twitches": lambda v: replace(v, rem_twitches=8.0),
    "old-age": lambda v: replace(v, eeg_gain=0.6, slow_wave_gain=0.35),
    "noise": lambda v: replace(v, noise_uv=14.0, pops_per_min=4.0),
    "ecg": lambda v: replace(v, ecg_uv=25.0, heart_rate_bpm=75.0),
    "sweat": lambda v: replace(v, sweat_uv=200.0, sweat_fraction=0.5),
    "movement": lambda v: replace(v, movement=6.0),
    "mains": lambda v: replace(v, mains_uv=40.0, mains_hz=50.0, sfreq=max(v.sfreq, 256)),
    "clipping": lambda v: replace(v, clip_uv=60.0),
    "flat-lead": lambda v: replace(v, flat_hours=4.0),
    "montage": lambda v: replace(v, montage="aasm"),
    "rate": lambda v: replace(v, sfreq=512),
}
"""Each named shift: one factor pushed to the far end of its range."""


def shifted_variation(name: str) -> Variation:
    """The textbook night with one factor (or, for ``"all"``, every factor) at the far end of its range.

    Raises
    ------
    SomnaError
        For an unknown name (the message lists the known ones).
    """
    if name == "all":
        variation = Variation()
        for shift in SHIFTS.values():
            variation = shift(variation)
        return variation
    if name not in SHIFTS:
        raise SomnaError(f"unknown shift {name!r}; known: {', '.join([*SHIFTS, 'all'])}")
    return SHIFTS[name](Variation())


def _ecg(n: int, sfreq: float, heart_rate_bpm: float, rng: np.random.Generator) -> np.ndarray:
    """A unit-amplitude ECG as a scalp or chin electrode sees it: a sharp QRS spike and a T wave per beat."""
    beat_s = 60.0 / heart_rate_bpm
    intervals = beat_s * (1.0 + 0.05 * rng.standard_normal(int(n / sfreq / beat_s) + 2))
    beats = np.cumsum(np.clip(intervals, 0.4 * beat_s, None))
    t = np.arange(int(0.6 * sfreq)) / sfreq
    wave = np.exp(-(((t - 0.05) / 0.012) ** 2)) - 0.25 * np.exp(-(((t - 0.08) / 0.015) ** 2))
    wave += 0.3 * np.exp(-(((t - 0.3) / 0.06) ** 2))
    out = np.zeros(n, dtype=np.float32)
    for onset in (beats * sfreq).astype(np.int64):
        stop = min(n, onset + wave.size)
        if onset < n:
            out[onset:stop] += wave[: stop - onset]
    return out


def _sweat(n: int, sfreq: float, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-amplitude slow drift (0.05-0.3 Hz) present in bouts covering ``fraction`` of the recording."""
    n_sec = int(np.ceil(n / sfreq))
    gate = np.zeros(n_sec)
    covered = 0
    while covered < fraction * n_sec:
        length = int(rng.uniform(600, 3600))
        start = int(rng.integers(0, max(1, n_sec - length)))
        gate[start : start + length] = 1.0
        covered = int(gate.sum())
    drift = np.cumsum(rng.standard_normal(n_sec))
    drift -= np.convolve(drift, np.ones(20) / 20, mode="same")  # no more than a few seconds of trend
    drift /= np.std(drift) or 1.0
    per_second = gate * drift
    return np.interp(np.arange(n) / sfreq, np.arange(n_sec), per_second).astype(np.float32)


def apply_technique(
    channels: dict[str, np.ndarray],
    roles: dict[str, str],
    sfreq: float,
    variation: Variation,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Recording artefacts on the channels of one night: ECG, sweat, line noise, clipping, a flat lead.

    Parameters
    ----------
    channels : dict of str to np.ndarray
        Channel label → samples in µV at ``sfreq``; changed in place and returned.
    roles : dict of str to str
        Channel label → ``"eeg"``, ``"eog"`` or ``"emg"`` (a raw chin EMG at ``sfreq``).
    sfreq : float
        Their rate, Hz.
    variation : Variation
        The night's factors.
    rng : np.random.Generator
        Source of randomness.

    Returns
    -------
    dict of str to np.ndarray
    """
    n = next(iter(channels.values())).size
    eeg = [k for k in channels if roles[k] == "eeg"]
    emg = [k for k in channels if roles[k] == "emg"]
    scalp = [k for k in channels if roles[k] in ("eeg", "eog")]
    if variation.ecg_uv > 0:
        ecg = _ecg(n, sfreq, variation.heart_rate_bpm, rng)
        for i, k in enumerate(scalp):  # the cardiac field's polarity differs between derivations
            channels[k] += np.float32(variation.ecg_uv * (1.0 if i % 2 == 0 else -0.6)) * ecg
        for k in emg:
            channels[k] += np.float32(5.0 * variation.ecg_uv) * ecg
    if variation.sweat_uv > 0:
        sweat = _sweat(n, sfreq, variation.sweat_fraction, rng)
        for k in scalp:
            channels[k] += np.float32(variation.sweat_uv * rng.uniform(0.5, 1.0)) * sweat
    if variation.mains_uv > 0 and variation.mains_hz < sfreq / 2:
        t = np.arange(n) / sfreq
        for k in channels:
            phase = rng.uniform(0, 2 * np.pi)
            channels[k] += (variation.mains_uv * np.sin(2 * np.pi * variation.mains_hz * t + phase)).astype(
                np.float32
            )
    if variation.clip_uv is not None:
        for k in scalp:
            np.clip(channels[k], -variation.clip_uv, variation.clip_uv, out=channels[k])
    if variation.flat_hours > 0 and eeg:
        length = min(n, int(variation.flat_hours * 3600 * sfreq))
        start = int(rng.integers(0, max(1, n - length)))
        lead = eeg[int(rng.integers(len(eeg)))]
        channels[lead][start : start + length] = channels[lead][start]
    return channels
