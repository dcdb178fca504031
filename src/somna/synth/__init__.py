"""Synthetic polysomnography in Sleep-EDF Expanded's layout, for development without the real files.

Stage sequences are resampled from real Sleep-EDF hypnograms (:mod:`somna.synth.hypnograms`),
signals follow AASM stage physiology (:mod:`somna.synth.physiology`), and
:func:`write_synthetic_cohort` writes both as EDF files named as Sleep-EDF names them.
"""

from __future__ import annotations

from somna.synth.cohort import GENERATOR_VERSION, HYPNOGRAM_LETTERS, night_file_names, write_synthetic_cohort
from somna.synth.hypnograms import (
    HYPNOGRAM_DIR,
    MARKOV_TRANSITIONS,
    SHARED_DATA_DIR,
    fit_stage_transitions,
    load_reference_hypnograms,
    sample_night_stages,
)
from somna.synth.physiology import PsgSignals, SubjectProfile, sample_subject_profile, synthesize_psg

__all__ = [
    "GENERATOR_VERSION",
    "HYPNOGRAM_DIR",
    "HYPNOGRAM_LETTERS",
    "MARKOV_TRANSITIONS",
    "SHARED_DATA_DIR",
    "PsgSignals",
    "SubjectProfile",
    "fit_stage_transitions",
    "load_reference_hypnograms",
    "night_file_names",
    "sample_night_stages",
    "sample_subject_profile",
    "synthesize_psg",
    "write_synthetic_cohort",
]
