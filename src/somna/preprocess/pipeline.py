"""From a recording and its hypnogram to normalised 30-s epochs per modality."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from somna.config import PreprocessConfig
from somna.errors import SignalQualityError, SomnaError
from somna.hypnogram import Hypnogram, sleep_period_bounds
from somna.io.channels import MODALITIES
from somna.io.recording import Recording, check_signals
from somna.preprocess.stream import ModalityStream
from somna.stages import AASM, RK, UNSCORED, convert

__all__ = ["EpochedNight", "preprocess_night", "stream_epochs"]


@dataclass
class EpochedNight:
    """One night as model input: normalised epochs per modality and their stages.

    Parameters
    ----------
    record : str
        Recording id (``"SC4001"``, or the file stem for non-Sleep-EDF files).
    subject_id : str
        Subject id; both nights of a subject share it (subject-wise splits use it).
    night, study : int | None, str | None
        Sleep-EDF night (1 or 2) and study (``"SC"``/``"ST"``) when known.
    signals : dict of str to np.ndarray
        Per modality, float32 array of shape (n_epochs, n_channels, samples_per_epoch), in robust
        standard deviations of that recording.
    stages : np.ndarray of int8, shape (n_epochs,)
        AASM codes, UNSCORED where not scored.
    rk_stages : np.ndarray of int8, shape (n_epochs,)
        R&K codes when the hypnogram was R&K-scored, else all UNSCORED.
    first_epoch : int
        Index of the first kept epoch in the original recording (trimming removes leading wake).
    """

    record: str
    subject_id: str
    night: int | None
    study: str | None
    signals: dict[str, np.ndarray]
    stages: np.ndarray
    rk_stages: np.ndarray
    first_epoch: int

    @property
    def n_epochs(self) -> int:
        """Number of epochs kept."""
        return int(self.stages.size)


def stream_epochs(
    recording: Recording, modality: str, first: int, stop: int, config: PreprocessConfig, out: np.ndarray
) -> None:
    """Epochs ``first`` … ``stop - 1`` of one modality, as a stream that starts at epoch ``first``.

    The filters and the running normalisation start at the first sample of epoch ``first``, as a live
    recording started there would (:meth:`~somna.preprocess.stream.ModalityStream.run`).

    Parameters
    ----------
    out : np.ndarray of float32, shape (stop - first, n_chans, samples_per_epoch)
        Receives the epochs.

    Raises
    ------
    SomnaError
        If the rate cannot be handled (:class:`~somna.preprocess.stream.ModalityStream`).
    """
    sfreq = recording.sfreq[modality]
    signal = recording.signals[modality]
    begin = round(first * config.epoch_s * sfreq)
    end = round(stop * config.epoch_s * sfreq)
    try:
        stream = ModalityStream(modality, sfreq, signal.shape[0], config)
    except SomnaError as err:
        raise SomnaError(err.problem, recording.path) from None
    done = len(stream.run(signal[:, begin:end], out))
    if done == 0:
        raise SignalQualityError(f"{modality.upper()} gave no whole epoch", recording.path)
    out[done:] = out[done - 1]  # a resampler's rounding can lose part of the very last sample


def preprocess_night(
    recording: Recording,
    hypnogram: Hypnogram,
    config: PreprocessConfig | None = None,
    modalities: tuple[str, ...] = MODALITIES,
    stream_starts: tuple[int, ...] = (),
) -> EpochedNight:
    """Filter, resample, trim, normalise and epoch one night.

    Parameters
    ----------
    recording : Recording
        Signals at their native rates (from :func:`somna.io.read_psg`).
    hypnogram : Hypnogram
        Stages aligned to the recording's epochs (from :func:`somna.io.align_hypnogram`), R&K or AASM.
    config : PreprocessConfig | None
        Defaults to :class:`PreprocessConfig()`: EEG/EOG 0.3–35 Hz at 100 Hz, EMG 1 Hz log-RMS envelope,
        30 min of wake kept around the sleep period.
    modalities : tuple of str
        Modalities to keep (all must be in the recording).
    stream_starts : tuple of int
        Epochs (of the recording) where a new stream starts in addition to the first kept epoch: filters
        and normalisation start afresh there (scoring starts one where the night most likely begins,
        see :class:`somna.inference.Stager`).

    Notes
    -----
    The kept span is processed as streams (:func:`stream_epochs`), through the very code that stages
    live: a model sees the same epochs offline and in a stream started at the same sample.

    Returns
    -------
    EpochedNight

    Raises
    ------
    SignalQualityError
        If a signal contains non-finite values, is flat, or is too short for one epoch.
    """
    config = config or PreprocessConfig()
    check_signals(recording)
    n_epochs = min(len(hypnogram), recording.n_epochs(config.epoch_s))
    if n_epochs < 1:
        raise SignalQualityError("recording is shorter than one 30-s epoch", recording.path)
    hypnogram = hypnogram.crop(0, n_epochs)
    first, stop = sleep_period_bounds(hypnogram, config.trim_wake_min)
    bounds = sorted({first, stop, *(s for s in stream_starts if first < s < stop)})
    signals = {}
    for m in modalities:
        per_epoch = config.emg_samples_per_epoch if m == "emg" else config.samples_per_epoch
        signals[m] = np.empty((stop - first, recording.signals[m].shape[0], per_epoch), dtype=np.float32)
        for a, b in itertools.pairwise(bounds):
            stream_epochs(recording, m, a, b, config, signals[m][a - first : b - first])
    kept = hypnogram.crop(first, stop)
    stages = kept.stages if kept.label_set is AASM else convert(kept.stages, kept.label_set, AASM)
    rk_stages = kept.stages if kept.label_set is RK else np.full(stop - first, UNSCORED, dtype=np.int8)
    record = recording.extra.get("record") or recording.path.name.split("-")[0].split(".")[0]
    return EpochedNight(
        record=str(record),
        subject_id=recording.subject or str(record),
        night=recording.night,
        study=recording.study,
        signals=signals,
        stages=np.asarray(stages, dtype=np.int8),
        rk_stages=np.asarray(rk_stages, dtype=np.int8),
        first_epoch=first,
    )
