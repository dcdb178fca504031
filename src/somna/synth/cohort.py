"""Write a synthetic cohort as EDF files in Sleep-EDF Expanded's exact naming and layout."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from tqdm import tqdm

from somna.errors import SomnaError
from somna.hypnogram import EPOCH_SECONDS, Hypnogram, sleep_period_bounds
from somna.io.edf_write import EdfChannel, write_hypnogram_edf, write_psg_edf
from somna.stages import RK
from somna.storage import atomic_write, write_json_atomic
from somna.synth.hypnograms import HYPNOGRAM_DIR, load_reference_hypnograms, sample_night_stages
from somna.synth.physiology import PsgSignals, sample_subject_profile, synthesize_psg
from somna.synth.variation import Variation, apply_technique, sample_variation, shifted_variation

__all__ = ["GENERATOR_VERSION", "HYPNOGRAM_LETTERS", "night_file_names", "write_synthetic_cohort"]

GENERATOR_VERSION = "2.0.0"
"""Bumped whenever the same seed would give different files."""

HYPNOGRAM_LETTERS = "CHJMPVAOEGRUWY"
"""Second letter of Sleep-EDF hypnogram file suffixes (the scorer's code: SC4001EC, SC4011EH, ST7011JP)."""

_LAYOUTS = {
    # file-name prefix and recording letter (SC4001E0, ST7011J0)
    "sc": ("SC4", "E"),
    "st": ("ST7", "J"),
}
# Sleep-EDF headers' prefiltering fields and physical ranges, approximately.
_EEG_PREFILTER = "HP:0.5Hz LP:100Hz"
_MAX_SUBJECTS = 100  # two digits of subject number in the file name


def night_file_names(layout: str, subject: int, night: int, letter: str) -> tuple[str, str]:
    """Sleep-EDF file names of one night.

    Parameters
    ----------
    layout : {"sc", "st"}
        Sleep Cassette (``SC4ssnE0``) or Sleep Telemetry (``ST7ssnJ0``).
    subject : int
        Subject number, 0-99.
    night : int
        Night number, 1 or 2 (more are allowed: 1-9).
    letter : str
        Scorer letter of the hypnogram file (``"C"`` gives ``SC4001EC-Hypnogram.edf``).

    Returns
    -------
    psg, hypnogram : str
        For example ``("SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf")``.
    """
    prefix, rec = _LAYOUTS[layout]
    stem = f"{prefix}{subject:02d}{night}{rec}"
    return f"{stem}0-PSG.edf", f"{stem}{letter}-Hypnogram.edf"


# AASM derivations as mixtures of the generator's frontal (Fpz-Cz-like) and parietal (Pz-Oz-like)
# signals: mastoid references see more of everything, frontal leads more slow waves, occipital ones more
# alpha. The single-sided EOGs see the eye movements with opposite signs and much frontal EEG.
_AASM_EEG = {"F4-M1": (1.3, 0.2), "C4-M1": (0.7, 0.8), "O2-M1": (0.25, 1.3)}
_AASM_EOG = {"E1-M2": 0.6, "E2-M2": -0.6}
_AASM_EOG_EEG = 0.5


def _channels(
    signals: PsgSignals, layout: str, variation: Variation, rng: np.random.Generator
) -> list[EdfChannel]:
    fs = signals.sfreq
    raw_emg = signals.emg_submental if layout == "st" else None
    if variation.montage == "aasm":
        fast = {name: a * signals.eeg_fpz_cz + b * signals.eeg_pz_oz for name, (a, b) in _AASM_EEG.items()}
        fast |= {
            name: g * signals.eog_horizontal + _AASM_EOG_EEG * signals.eeg_fpz_cz
            for name, g in _AASM_EOG.items()
        }
        roles = {name: "eeg" for name in _AASM_EEG} | {name: "eog" for name in _AASM_EOG}
        emg_name, ranges = "Chin1-Chin2", {"eeg": 400.0, "eog": 1000.0}
    else:
        fast = {
            "EEG Fpz-Cz": signals.eeg_fpz_cz,
            "EEG Pz-Oz": signals.eeg_pz_oz,
            "EOG horizontal": signals.eog_horizontal,
        }
        roles = {"EEG Fpz-Cz": "eeg", "EEG Pz-Oz": "eeg", "EOG horizontal": "eog"}
        emg_name, ranges = "EMG submental", {"eeg": 200.0, "eog": 1000.0}
    if raw_emg is not None:
        fast[emg_name], roles[emg_name] = raw_emg.copy(), "emg"
    fast = apply_technique(
        {k: np.array(x, dtype=np.float32) for k, x in fast.items()}, roles, fs, variation, rng
    )
    chans = [
        EdfChannel(name, data, fs, "uV", (-ranges[roles[name]], ranges[roles[name]]), _EEG_PREFILTER)
        for name, data in fast.items()
        if roles[name] != "emg"
    ]
    chans.append(
        EdfChannel("Resp oro-nasal", signals.resp_oro_nasal, 1.0, "", (-2048.0, 2048.0), "HP:0.03Hz LP:0.9Hz")
    )
    if raw_emg is None:
        emg = EdfChannel(
            emg_name, signals.emg_envelope, 1.0, "uV", (0.0, 500.0), "HP:16Hz Rectification LP:0.7Hz"
        )
    else:
        emg = EdfChannel(emg_name, fast[emg_name], fs, "uV", (-500.0, 500.0), "HP:16Hz LP:100Hz")
    chans.append(emg)
    chans.append(EdfChannel("Temp rectal", signals.temp_rectal, 1.0, "DegC", (34.0, 40.0), "LP:0.1Hz"))
    chans.append(EdfChannel("Event marker", signals.event_marker, 1.0, "", (-2048.0, 2048.0), ""))
    return chans


LIGHTS_TABLE = "lights.csv"
"""The lights table :func:`write_synthetic_cohort` writes beside its nights."""


def _lights(stages: np.ndarray, start: datetime, seed: list[int]) -> tuple[str, str]:
    """Lights off and on of a night as clock times: a sleep latency before its persistent sleep (the
    first 10 minutes of unbroken sleep: a doze in the evening, hours before, happens before bedtime)
    and a few minutes after its last sleep epoch, within the recording."""
    rng = np.random.default_rng(seed)
    hypnogram = Hypnogram(stages, RK)
    first, stop = sleep_period_bounds(hypnogram, wake_margin_min=0.0)
    persistent = hypnogram.sleep_metrics()["persistent_sleep_latency_min"]
    if persistent is not None:
        first = round(persistent * 60.0 / EPOCH_SECONDS)
    latency_s = float(np.clip(rng.lognormal(np.log(12.0), 0.6), 2.0, 60.0)) * 60.0
    after_s = float(rng.uniform(2.0, 20.0)) * 60.0
    off_s = max(0.0, first * EPOCH_SECONDS - latency_s)
    on_s = min(stages.size * EPOCH_SECONDS, stop * EPOCH_SECONDS + after_s)
    return tuple((start + timedelta(seconds=round(t))).strftime("%H:%M:%S") for t in (off_s, on_s))


def _write_lights_table(path: Path, rows: list[list[str]]) -> None:
    import csv

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["record", "lights_off", "lights_on"])
            writer.writerows(rows)

    atomic_write(path, write)


def _start_time(rng: np.random.Generator, layout: str, subject: int, night: int) -> datetime:
    # Sleep-EDF's SC recordings began in the afternoon (1989-1991), ST ones in the evening (1994).
    if layout == "sc":
        day = datetime(1989, 3, 1) + timedelta(days=9 * subject + night - 1)
        minutes = int(rng.integers(14 * 60, 17 * 60 + 30))
    else:
        day = datetime(1994, 5, 1) + timedelta(days=9 * subject + night - 1)
        minutes = int(rng.integers(22 * 60, 23 * 60 + 45))
    return day + timedelta(minutes=minutes)


def write_synthetic_cohort(
    out_dir: str | Path,
    n_subjects: int,
    layout: str = "sc",
    seed: int = 0,
    nights: int = 2,
    hours: float | None = None,
    *,
    variation: str = "broad",
    hypnogram_dir: Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """Synthesise a cohort and write it as Sleep-EDF Expanded files.

    Each night gives ``<stem>0-PSG.edf`` and ``<stem><letter>-Hypnogram.edf`` (R&K EDF+ annotations),
    the scorer letter varying between nights as in Sleep-EDF. SC nights carry EEG Fpz-Cz, EEG Pz-Oz
    and EOG horizontal at 100 Hz and Resp oro-nasal, EMG submental (an RMS envelope in µV), Temp
    rectal and Event marker at 1 Hz; ST nights have the raw EMG at 100 Hz. Data records are 30 s. Both
    nights of a subject share the subject's physiology; a subject's files do not depend on
    ``n_subjects``. A ``synthetic.json`` next to the files records how they were made, and a
    ``lights.csv`` (``record, lights_off, lights_on``: :func:`somna.io.lights.read_lights_table`) holds
    each night's lights off and on, as Sleep-EDF's subject table holds lights off: lights off a sleep
    latency (2-60 min, median 12) before the night's persistent sleep (its first 10 minutes of unbroken
    sleep), lights on 2-20 min after its last sleep epoch.

    Parameters
    ----------
    out_dir : str | Path
        Folder to write into (created).
    n_subjects : int
        Number of subjects, 1-100 (numbered 00, 01, ...).
    layout : {"sc", "st"}
        Sleep Cassette (20+ h nights, hours of wake) or Sleep Telemetry (about 9 h).
    seed : int
        Seed; the same seed gives byte-identical files.
    nights : int
        Nights per subject, 1-9.
    hours : float | None
        Cap each night at this many hours, keeping the sleep onset (for fast tests and demos).
    variation : str
        How the nights depart from the textbook (:mod:`somna.synth.variation`): ``"broad"`` draws every
        factor of every night from its broad range (montage, rate, EOG pickup of frontal EEG, chin tone,
        artefacts ...); ``"textbook"`` keeps them all at their textbook values; the name of a shift
        (``"eog-frontal"``, ``"montage"``, ..., or ``"all"``) pushes that factor to the far end of its
        range on every night.
    hypnogram_dir : Path | None
        Real Sleep-EDF hypnograms to resample; the Markov fallback is used where there are none.
    progress : bool
        Show a progress bar over nights.

    Returns
    -------
    list of Path
        The written files in order: PSG, hypnogram, PSG, hypnogram, ...

    Raises
    ------
    SomnaError
        For a layout, subject count or night count outside the ranges above.
    """
    if layout not in _LAYOUTS:
        raise SomnaError(f"unknown layout {layout!r}; use 'sc' (Sleep Cassette) or 'st' (Sleep Telemetry)")
    if not 1 <= n_subjects <= _MAX_SUBJECTS:
        raise SomnaError(f"n_subjects must be 1-{_MAX_SUBJECTS}, not {n_subjects}")
    if not 1 <= nights <= 9:
        raise SomnaError(f"nights must be 1-9, not {nights}")
    if variation not in ("broad", "textbook"):
        shifted_variation(variation)  # an unknown name is an error before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    lights: list[list[str]] = []
    factors: dict[str, dict[str, object]] = {}
    jobs = [(s, k) for s in range(n_subjects) for k in range(1, nights + 1)]
    for subject, night in tqdm(
        jobs, desc="synthetic nights", unit="night", disable=None if progress else True
    ):
        subject_rng = np.random.default_rng([seed, subject])
        profile = sample_subject_profile(subject_rng)
        rng = np.random.default_rng([seed, subject, night])
        stages = sample_night_stages(rng, layout=layout, hours=hours, hypnogram_dir=hypnogram_dir)
        start = _start_time(rng, layout, subject, night)
        letter = HYPNOGRAM_LETTERS[int(rng.integers(len(HYPNOGRAM_LETTERS)))]
        # the night's factors come from a stream of their own: a textbook night stays the same night
        technique_rng = np.random.default_rng([seed, subject, night, 1])
        if variation == "broad":
            night_variation = sample_variation(technique_rng)
        elif variation == "textbook":
            night_variation = Variation()
        else:
            night_variation = shifted_variation(variation)
        signals = synthesize_psg(
            stages,
            profile,
            rng,
            sfreq=night_variation.sfreq,
            start_hour=start.hour + start.minute / 60.0,
            raw_emg=layout == "st",
            variation=night_variation,
        )
        psg_name, hyp_name = night_file_names(layout, subject, night, letter)
        channels = _channels(signals, layout, night_variation, technique_rng)
        paths.append(write_psg_edf(out / psg_name, channels, start, data_record_s=30.0))
        factors[psg_name] = night_variation.to_dict()
        paths.append(write_hypnogram_edf(out / hyp_name, Hypnogram(stages, RK, start=start), start))
        lights.append([psg_name.removesuffix("-PSG.edf"), *_lights(stages, start, [seed, subject, night, 2])])
    _write_lights_table(out / LIGHTS_TABLE, lights)
    write_json_atomic(
        out / "synthetic.json",
        {
            "generator": "somna.synth",
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "layout": layout,
            "n_subjects": n_subjects,
            "nights": nights,
            "hours": hours,
            "variation": variation,
            "night_variation": factors,
            "stage_source": "sleep-edf-hypnograms" if load_reference_hypnograms(hypnogram_dir) else "markov",
            "hypnogram_dir": str(hypnogram_dir if hypnogram_dir is not None else HYPNOGRAM_DIR),
            "files": [p.name for p in paths],
        },
    )
    return paths
