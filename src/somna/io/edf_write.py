"""Write PSG signals and hypnograms as EDF/EDF+ files, atomically.

Used by the synthetic cohort generator and by ``somna score`` to write hypnograms that EDF viewers
open. Reading lives in :mod:`somna.io.edf`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import edfio
import numpy as np

from somna.hypnogram import Hypnogram
from somna.stages import RK, UNSCORED
from somna.storage import atomic_write

__all__ = ["EdfChannel", "hypnogram_annotation_text", "write_hypnogram_edf", "write_psg_edf"]


@dataclass
class EdfChannel:
    """One signal to write.

    Parameters
    ----------
    label : str
        Channel label as it appears in the header (``"EEG Fpz-Cz"``).
    data : np.ndarray
        Samples in ``unit``.
    sfreq : float
        Sampling rate in Hz.
    unit : str
        Physical dimension (``"uV"``, ``"DegC"``, ``""``).
    physical_range : tuple of float
        Range the 16-bit digital values span; data outside it are clipped, as an amplifier would.
    """

    label: str
    data: np.ndarray
    sfreq: float
    unit: str = "uV"
    physical_range: tuple[float, float] = (-500.0, 500.0)
    prefiltering: str = ""


def write_psg_edf(
    path: str | Path,
    channels: Sequence[EdfChannel],
    start: datetime,
    data_record_s: float = 30.0,
    patient: str = "X X X X",
    annotations: Sequence[tuple[float, str]] = (),
) -> Path:
    """Write a multi-rate PSG as an EDF file (written to a temporary name, then renamed).

    Parameters
    ----------
    path : str | Path
        Target file.
    channels : sequence of EdfChannel
        Signals; each may have its own rate, as long as ``data_record_s * sfreq`` is whole.
    start : datetime
        Recording start written to the header.
    data_record_s : float
        Data-record duration in seconds (Sleep-EDF uses 30 s).
    patient : str
        Local patient identification field.
    annotations : sequence of (float, str)
        Events (onset in s from the start, text: ``Lights off`` ...); any makes the file EDF+.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    signals = []
    for ch in channels:
        lo, hi = ch.physical_range
        data = np.clip(np.asarray(ch.data, dtype=np.float64), lo, hi)
        signals.append(
            edfio.EdfSignal(
                data,
                ch.sfreq,
                label=ch.label,
                physical_dimension=ch.unit,
                physical_range=(lo, hi),
                prefiltering=ch.prefiltering,
            )
        )
    edf = edfio.Edf(
        signals,
        starttime=start.time(),
        data_record_duration=data_record_s,
        patient=_patient(patient),
        recording=edfio.Recording(startdate=start.date()),
        annotations=[edfio.EdfAnnotation(float(onset), None, text) for onset, text in annotations] or None,
    )
    atomic_write(path, edf.write)
    return path


def _patient(text: str) -> edfio.Patient:
    code, sex, _birth, name = (text.split(" ") + ["X"] * 4)[:4]
    return edfio.Patient(code=code, sex=sex if sex in {"M", "F"} else "X", name=name)


EDF_VOCABULARIES = ("aasm", "sleep-edf")
"""Stage strings :func:`write_hypnogram_edf` can write: AASM's as HMC and NSRR exports spell them
(``Sleep stage N1`` …) or Sleep-EDF's R&K strings (``Sleep stage 1`` … ``4``)."""


def hypnogram_annotation_text(code: int, label_set_name: str, vocabulary: str | None = None) -> str:
    """Annotation string of a stage code.

    Parameters
    ----------
    code : int
        Stage code of ``label_set_name`` (or :data:`~somna.stages.UNSCORED`: ``Sleep stage ?``).
    label_set_name : {"rk", "aasm"}
        The hypnogram's label set.
    vocabulary : {"aasm", "sleep-edf"} | None
        ``None`` writes each label set in its own strings (R&K as Sleep-EDF does, AASM as HMC does);
        ``"aasm"`` writes R&K S3 and S4 both as ``Sleep stage N3``; ``"sleep-edf"`` writes AASM N1, N2
        as ``Sleep stage 1``, ``2`` and N3 as ``Sleep stage 3`` (R&K's S3 + S4: readers of Sleep-EDF
        files take both as N3).
    """
    if code == UNSCORED:
        return "Sleep stage ?"
    if vocabulary not in (None, *EDF_VOCABULARIES):
        raise ValueError(f"unknown EDF+ stage vocabulary {vocabulary!r}; use one of {EDF_VOCABULARIES}")
    rk = (
        "Sleep stage W",
        "Sleep stage 1",
        "Sleep stage 2",
        "Sleep stage 3",
        "Sleep stage 4",
        "Sleep stage R",
    )
    aasm = ("Sleep stage W", "Sleep stage N1", "Sleep stage N2", "Sleep stage N3", "Sleep stage R")
    if label_set_name == RK.name:
        return aasm[(0, 1, 2, 3, 3, 4)[code]] if vocabulary == "aasm" else rk[code]
    if label_set_name == "aasm":
        return rk[(0, 1, 2, 3, 5)[code]] if vocabulary == "sleep-edf" else aasm[code]
    raise ValueError(f"no EDF+ annotation vocabulary for the {label_set_name} label set; use rk or aasm")


def write_hypnogram_edf(
    path: str | Path, hypnogram: Hypnogram, start: datetime, vocabulary: str | None = None
) -> Path:
    """Write a hypnogram as an EDF+ annotation file in Sleep-EDF's style.

    Runs of equal stages become one annotation each (onset, duration, ``"Sleep stage X"``), as in
    Sleep-EDF's ``*-Hypnogram.edf`` files; by default R&K hypnograms use ``Sleep stage 1..4``, AASM ones
    ``Sleep stage N1..N3`` (``vocabulary``: see :func:`hypnogram_annotation_text`). Lights off/on, when
    known, are written as ``Lights off``/``Lights on``.

    Parameters
    ----------
    path : str | Path
        Target file.
    hypnogram : Hypnogram
        Stages in the R&K or AASM label set.
    start : datetime
        Start written to the header; must equal the PSG's start for the pair to align.
    vocabulary : {"aasm", "sleep-edf"} | None
        Stage strings; ``None``: the label set's own.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    stages = hypnogram.stages
    annotations = []
    if stages.size:
        change = np.flatnonzero(np.diff(stages)) + 1
        run_starts = np.concatenate([[0], change])
        run_stops = np.concatenate([change, [stages.size]])
        for first, stop in zip(run_starts, run_stops, strict=True):
            text = hypnogram_annotation_text(int(stages[first]), hypnogram.label_set.name, vocabulary)
            annotations.append(
                edfio.EdfAnnotation(
                    float(first * hypnogram.epoch_s), float((stop - first) * hypnogram.epoch_s), text
                )
            )
    for onset, text in ((hypnogram.lights_off_s, "Lights off"), (hypnogram.lights_on_s, "Lights on")):
        if onset is not None:
            annotations.append(edfio.EdfAnnotation(float(onset), None, text))
    edf = edfio.Edf(
        [],
        starttime=start.time(),
        recording=edfio.Recording(startdate=start.date()),
        annotations=annotations,
    )
    atomic_write(path, edf.write)
    return path
