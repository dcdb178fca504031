"""Reading and writing PSG recordings and hypnograms (EDF/EDF+, MNE Raw, stage tables, Dreem JSON, and the
scoring files of sleep labs and public databases in :mod:`somna.io.formats`)."""

from __future__ import annotations

from somna.io.channels import SLEEP_EDF_CHANNELS, channel_spec
from somna.io.edf import read_psg
from somna.io.edf_write import EdfChannel, write_hypnogram_edf, write_psg_edf
from somna.io.hypnogram_files import align_hypnogram, read_hypnogram
from somna.io.raw import recording_from_raw
from somna.io.recording import Recording, check_signals
from somna.io.sleepedf import download_sleep_edf, find_sleep_edf_pairs, parse_sleep_edf_name

__all__ = [
    "SLEEP_EDF_CHANNELS",
    "EdfChannel",
    "Recording",
    "align_hypnogram",
    "channel_spec",
    "check_signals",
    "download_sleep_edf",
    "find_sleep_edf_pairs",
    "parse_sleep_edf_name",
    "read_hypnogram",
    "read_psg",
    "recording_from_raw",
    "write_hypnogram_edf",
    "write_psg_edf",
]
