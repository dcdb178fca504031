"""Preprocessing: resample, band-pass, EMG envelope, running robust normalisation, epoching.

One code path serves cohort preparation, offline scoring and live staging (:mod:`somna.preprocess.stream`).
"""

from somna.preprocess.filters import fir_bandpass, firwin_bandpass
from somna.preprocess.pipeline import EpochedNight, preprocess_night
from somna.preprocess.stream import ModalityStream, Preprocessor

__all__ = [
    "EpochedNight",
    "ModalityStream",
    "Preprocessor",
    "fir_bandpass",
    "firwin_bandpass",
    "preprocess_night",
]
