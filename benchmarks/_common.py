"""Helpers shared by the benchmark scripts: a synthetic cohort to measure on, and JSON results."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from somna import __version__
from somna.data import Cohort, prepare_cohort
from somna.stages import stage_codes_from_strings
from somna.storage import write_json_atomic
from somna.synth import write_synthetic_cohort

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_cohort(
    work: Path, n_subjects: int, seed: int, hours: float | None = None, in_subprocess: bool = False
) -> Cohort:
    """Synthesise (once) and prepare a cohort under ``work``; reused when already there.

    ``in_subprocess`` runs both through the ``somna`` command in child processes, so that they do not
    count towards this process's peak memory.
    """
    edf = work / "edf"
    somna = [sys.executable, "-m", "somna"]
    if not any(edf.glob("*-PSG.edf")):
        if in_subprocess:
            extra = ["--hours", str(hours)] if hours else []
            cmd = [
                *somna,
                "synth",
                "--subjects",
                str(n_subjects),
                "--seed",
                str(seed),
                "--out",
                str(edf),
                *extra,
            ]
            subprocess.run(cmd, check=True, capture_output=True)
        else:
            write_synthetic_cohort(
                edf,
                n_subjects=n_subjects,
                layout="sc",
                seed=seed,
                nights=2,
                hours=hours,
                variation="textbook",
            )
    if in_subprocess:
        subprocess.run([*somna, "prepare", str(edf), str(work / "cache")], check=True, capture_output=True)
        return Cohort.open(work / "cache")
    return prepare_cohort(edf, work / "cache", workers=2, progress=False)


def environment() -> dict[str, Any]:
    """Where a number was measured."""
    cpu = platform.processor() or platform.machine()
    try:
        model = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(
            (line.split(":", 1)[1].strip() for line in model.splitlines() if line.startswith("Model name")),
            cpu,
        )
    except OSError:
        pass
    return {
        "somna": __version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1_5_15min": list(os.getloadavg()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def write_result(name: str, data: dict[str, Any], out: Path = RESULTS) -> Path:
    """Write ``out/<name>.json`` atomically, with the environment."""
    path = out / f"{name}.json"
    write_json_atomic(path, {**data, "environment": environment()})
    print(f"wrote {path}")
    return path


YASA_EEG = ("C4-M1", "EEG Fpz-Cz")
"""EEG derivations YASA's pretrained stager is given, in order of preference (it was trained on C4-M1)."""
YASA_EOG = ("E1-M2", "EOG horizontal")


def yasa_channels(names: list[str]) -> tuple[str, str]:
    """The EEG and EOG channel YASA is given from a file's channels (AASM or Sleep-EDF montage)."""
    eeg = next(n for n in YASA_EEG if n in names)
    eog = next(n for n in YASA_EOG if n in names)
    return eeg, eog


def yasa_stages(psg: Path, first_epoch: int, n_epochs: int) -> np.ndarray:
    """AASM codes from YASA's pretrained ``SleepStaging`` (one EEG + one EOG) for epochs
    ``first_epoch`` … ``first_epoch + n_epochs - 1`` of a PSG in Sleep-EDF's or the AASM montage.

    YASA's features include the time of night, so it sees the same span somna stages. It reads through
    MNE, which is fine here because only EEG and EOG channels, sampled alike, are loaded.
    """
    import mne
    import yasa

    mne.set_log_level("ERROR")
    eeg, eog = yasa_channels(mne.io.read_raw_edf(psg, preload=False).ch_names)
    raw = mne.io.read_raw_edf(psg, include=[eeg, eog], preload=True)
    raw.crop(tmin=first_epoch * 30.0, tmax=(first_epoch + n_epochs) * 30.0, include_tmax=False)
    predicted = yasa.SleepStaging(raw, eeg_name=eeg, eog_name=eog).predict()
    _, codes = stage_codes_from_strings(np.asarray(predicted.hypno).astype(str).tolist())
    if codes.size < n_epochs:  # YASA drops a trailing partial epoch
        codes = np.concatenate([codes, np.full(n_epochs - codes.size, codes[-1], dtype=codes.dtype)])
    return codes[:n_epochs]
