"""Preprocessing: band-pass and resample, EMG envelope, robust normalisation, epoching."""

from somna.preprocess.normalise import robust_scale
from somna.preprocess.pipeline import EpochedNight, preprocess_night
from somna.preprocess.signals import bandpass_resample, emg_envelope, resample

__all__ = [
    "EpochedNight",
    "bandpass_resample",
    "emg_envelope",
    "preprocess_night",
    "resample",
    "robust_scale",
]
