"""Reading and writing PSG recordings and hypnograms (EDF/EDF+, stage tables, Dreem JSON, Sleep-EDF)."""

from __future__ import annotations

from somna.io.edf import read_psg
from somna.io.edf_write import EdfChannel, write_hypnogram_edf, write_psg_edf
from somna.io.hypnogram_files import align_hypnogram, read_hypnogram
from somna.io.recording import SLEEP_EDF_CHANNELS, Recording, check_signals
from somna.io.sleepedf import download_sleep_edf, find_sleep_edf_pairs, parse_sleep_edf_name

__all__ = [
    "SLEEP_EDF_CHANNELS",
    "EdfChannel",
    "Recording",
    "align_hypnogram",
    "check_signals",
    "download_sleep_edf",
    "find_sleep_edf_pairs",
    "parse_sleep_edf_name",
    "read_hypnogram",
    "read_psg",
    "write_hypnogram_edf",
    "write_psg_edf",
]
