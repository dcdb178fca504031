"""From a recording and its hypnogram to normalised 30-s epochs per modality."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from somna.config import PreprocessConfig
from somna.errors import SignalQualityError
from somna.hypnogram import Hypnogram, sleep_period_bounds
from somna.io.recording import MODALITIES, Recording, check_signals
from somna.preprocess.normalise import robust_scale_epochs
from somna.preprocess.online import ModalityStream, RunningRobustScaler
from somna.preprocess.signals import bandpass_resample, emg_envelope, preprocess_threads
from somna.stages import AASM, RK, UNSCORED, convert

__all__ = ["EpochedNight", "preprocess_night"]

# Signal kept beyond the trimmed range while filtering, so that filter edge effects fall outside it.
_EDGE_PAD_S = 60.0


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


def _causal_epochs(
    recording: Recording, modality: str, first: int, stop: int, config: PreprocessConfig
) -> np.ndarray:
    """Epochs ``first`` … ``stop - 1`` through the online (streaming) code path, as one stream that
    starts at the first sample of epoch ``first``: filters and running statistics start there."""
    sfreq = recording.sfreq[modality]
    signal = recording.signals[modality]
    begin = round(first * config.epoch_s * sfreq)
    end = round(stop * config.epoch_s * sfreq)
    stream = ModalityStream(modality, sfreq, signal.shape[0], config, normalise=config.normalise == "running")
    epochs = stream.push(signal[:, begin:end])
    if len(epochs) != stop - first:
        raise SignalQualityError(
            f"{modality.upper()} gave {len(epochs)} epochs instead of {stop - first} after causal resampling",
            recording.path,
        )
    return np.stack(epochs, axis=1)  # (n_chans, n_epochs, per_epoch)


def _modality_epochs(
    recording: Recording,
    modality: str,
    first: int,
    stop: int,
    config: PreprocessConfig,
    reference: tuple[int, int] | None = None,
) -> np.ndarray:
    n_epochs = stop - first
    if config.filter == "causal":
        stacked = _causal_epochs(recording, modality, first, stop, config)
        if config.normalise == "running":
            return stacked.transpose(1, 0, 2).astype(np.float32)
        per_epoch = stacked.shape[-1]
        kept = stacked.reshape(stacked.shape[0], n_epochs * per_epoch)
    else:
        kept, per_epoch = _zero_phase_kept(recording, modality, first, stop, config)
    if config.normalise == "running":
        # Same estimator as streaming, applied epoch by epoch from the start of the kept span.
        scaler = RunningRobustScaler(kept.shape[0], config.clip)
        epochs = [scaler.scale_epoch(kept[:, i * per_epoch : (i + 1) * per_epoch]) for i in range(n_epochs)]
        return np.stack(epochs)
    try:
        span = None
        if reference is not None:
            span = slice((reference[0] - first) * per_epoch, (reference[1] - first) * per_epoch)
        # `kept` is preprocessing's own work array (filter output, envelope, causal epochs): where
        # it is float32 with contiguous rows, it is scaled in place (no second copy of the night)
        in_place = kept.dtype == np.float32 and kept.strides[-1] == kept.itemsize
        return robust_scale_epochs(
            kept,
            per_epoch,
            config.clip,
            span,
            threads=preprocess_threads(),
            overwrite=in_place,
            max_samples=config.stats_samples,
        )
    except ValueError as err:
        raise SignalQualityError(f"{modality.upper()} {err}", recording.path) from None


def _zero_phase_kept(
    recording: Recording, modality: str, first: int, stop: int, config: PreprocessConfig
) -> tuple[np.ndarray, int]:
    sfreq = recording.sfreq[modality]
    pad = round(_EDGE_PAD_S * sfreq)
    begin = round(first * config.epoch_s * sfreq)
    end = round(stop * config.epoch_s * sfreq)
    signal = recording.signals[modality]
    lo, hi = max(0, begin - pad), min(signal.shape[-1], end + pad)
    chunk = signal[:, lo:hi]
    if modality == "emg":
        out_sfreq = config.emg_sfreq
        processed = emg_envelope(chunk, sfreq, out_sfreq, config.emg_highpass)
        # A log envelope makes tone changes (atonia in REM) additive and the distribution less skewed.
        processed = np.log(processed + 1e-3)
    else:
        out_sfreq = config.sfreq
        band = config.eeg_band if modality == "eeg" else config.eog_band
        processed = bandpass_resample(chunk, sfreq, band, out_sfreq)
    offset = round((begin - lo) / sfreq * out_sfreq)
    per_epoch = round(config.epoch_s * out_sfreq)
    n_epochs = stop - first
    kept = processed[:, offset : offset + n_epochs * per_epoch]
    if kept.shape[-1] < n_epochs * per_epoch:  # resampling rounding can lose the very last sample
        kept = np.pad(kept, ((0, 0), (0, n_epochs * per_epoch - kept.shape[-1])), mode="edge")
    return kept, per_epoch


def preprocess_night(
    recording: Recording,
    hypnogram: Hypnogram,
    config: PreprocessConfig | None = None,
    modalities: tuple[str, ...] = MODALITIES,
    normalise_epochs: tuple[int, int] | None = None,
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
    normalise_epochs : tuple of int | None
        Epoch range (of the recording) whose median and IQR normalise every kept epoch; default: the kept
        epochs themselves. Must lie within the kept range. Ignored with ``config.normalise == "running"``,
        whose statistics always accumulate from the first kept epoch (as a stream started there would).

    Notes
    -----
    With ``config.filter == "causal"`` the kept span (after trimming) is processed as one stream that
    starts at its first sample, through the same code as live streaming
    (:class:`somna.preprocess.online.ModalityStream`); with ``normalise == "running"`` as well, the
    epochs equal those :class:`somna.preprocess.online.OnlinePreprocessor` emits for that span.

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
    if normalise_epochs is not None and not first <= normalise_epochs[0] < normalise_epochs[1] <= stop:
        raise ValueError(f"normalise_epochs {normalise_epochs} is outside the kept epochs ({first}, {stop})")
    signals = {m: _modality_epochs(recording, m, first, stop, config, normalise_epochs) for m in modalities}
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
