"""PSG files beyond EDF+C (issue 15): BDF/BDF+ (24-bit), EDF+D (discontinuous), rates 50 Hz to 1 kHz.

Fixtures are written here from the formats' descriptions: BDF through edfio's writer (``\\xffBIOSEMI``,
3 bytes per sample), EDF+D by turning an EDF+C file's reserved field into ``EDF+D`` and moving the
time-keeping annotation (``+<onset>\\x14\\x14``) of later data records, as a recorder paused for a while
writes them.
"""

from __future__ import annotations

import re
from pathlib import Path

import edfio
import numpy as np
import pytest

import somna
from somna.errors import EDFReadError
from somna.io import read_psg
from somna.io.edf_write import EdfChannel, write_psg_edf
from somna.stages import UNSCORED


def _bdf_copy(psg: Path, dest: Path) -> Path:
    rec = read_psg(psg)
    signals = [
        edfio.BdfSignal(
            np.asarray(x, dtype=np.float64),
            rec.sfreq[m],
            label=name,
            physical_dimension="uV",
            physical_range=(-500.0, 500.0),
        )
        for m in ("eeg", "eog", "emg")
        for name, x in zip(rec.channel_names[m], rec.signals[m], strict=True)
    ]
    bdf = edfio.Bdf(
        signals,
        recording=edfio.Recording(startdate=rec.start.date()),
        starttime=rec.start.time(),
        data_record_duration=30,
        annotations=[edfio.EdfAnnotation(600.0, None, "Lights off")],
    )
    bdf.write(dest)
    return dest


def test_bdf_plus_reads_with_24_bit_resolution_and_scores(tiny_trained_run, tmp_path: Path) -> None:
    run, psg, _ = tiny_trained_run
    bdf = _bdf_copy(psg, tmp_path / "night.bdf")
    assert bdf.read_bytes()[:8] == b"\xffBIOSEMI"
    edf, back = read_psg(psg), read_psg(bdf)
    assert back.sfreq == edf.sfreq and back.start == edf.start and back.lights_off_s == 600.0
    # 24 bits over ±500 µV: far finer than the EDF copy it was written from
    assert np.abs(back.signals["eeg"] - edf.signals["eeg"]).max() < 1e-3
    hypnogram = somna.load_stager(run).predict(bdf)
    assert np.array_equal(hypnogram.stages, somna.load_stager(run).predict(psg).stages)


def _discontinuous(psg: Path, dest: Path, gap_s: int, after_record: int) -> Path:
    """An EDF+D copy of a night with a pause of ``gap_s`` seconds after ``after_record`` records."""
    rec = read_psg(psg)
    channels = [
        EdfChannel(name, np.asarray(x, dtype=np.float64), rec.sfreq[m])
        for m in ("eeg", "eog", "emg")
        for name, x in zip(rec.channel_names[m], rec.signals[m], strict=True)
    ]
    write_psg_edf(dest, channels, rec.start, annotations=[(60.0, "Lights off")])
    data = bytearray(dest.read_bytes())
    n_signals = int(data[252:256])
    header = 256 + 256 * n_signals
    samples = [
        int(data[256 + 216 * n_signals + 8 * i : 256 + 216 * n_signals + 8 * (i + 1)])
        for i in range(n_signals)
    ]
    record, before, width = 2 * sum(samples), 2 * sum(samples[:-1]), 2 * samples[-1]
    n_records = (len(data) - header) // record
    data[192:197] = b"EDF+D"
    for k in range(after_record, n_records):
        at = header + k * record + before
        tal = bytes(data[at : at + width])
        onset = re.match(rb"\+(\d+)\x14\x14", tal)
        moved = b"+%d" % (int(onset.group(1)) + gap_s) + tal[onset.end(1) :]
        data[at : at + width] = moved[:width].ljust(width, b"\x00")
    dest.write_bytes(bytes(data))
    return dest


def test_edf_plus_d_keeps_its_gaps_as_unscored_epochs(tiny_trained_run, tmp_path: Path) -> None:
    run, psg, _ = tiny_trained_run
    original = read_psg(psg)
    gapped = _discontinuous(psg, tmp_path / "paused.edf", gap_s=300, after_record=40)
    rec = read_psg(gapped)
    assert rec.extra["gaps_s"] == [(1200.0, 1500.0)]
    assert rec.duration_s == original.duration_s + 300
    fs = rec.sfreq["eeg"]
    assert np.all(rec.signals["eeg"][:, int(1200 * fs) : int(1500 * fs)] == 0)
    after = original.signals["eeg"][:, int(1200 * fs) :]  # re-written over ±500 µV in 16 bits
    assert np.allclose(rec.signals["eeg"][:, int(1500 * fs) :], after, atol=0.02)
    hypnogram = somna.load_stager(run).predict(gapped)
    assert np.all(hypnogram.stages[40:50] == UNSCORED) and hypnogram.stages[39] != UNSCORED
    assert any("discontinuous (EDF+D): 1 gap(s), 5.0 min" in w for w in hypnogram.info["warnings"])


def test_edf_plus_d_without_gaps_reads_as_continuous(tiny_trained_run, tmp_path: Path) -> None:
    psg = tiny_trained_run[1]
    same = _discontinuous(psg, tmp_path / "d.edf", gap_s=0, after_record=0)
    rec = read_psg(same)
    assert rec.extra["gaps_s"] == [] and rec.duration_s == read_psg(psg).duration_s


def test_edf_plus_d_records_going_back_in_time_are_refused(tiny_trained_run, tmp_path: Path) -> None:
    psg = tiny_trained_run[1]
    bad = _discontinuous(psg, tmp_path / "bad.edf", gap_s=-45, after_record=10)
    with pytest.raises(EDFReadError, match="data record 10 starts at 255 s, before the previous record ends"):
        read_psg(bad)


@pytest.mark.parametrize("rate", [50.0, 128.0, 256.0, 512.0, 1000.0])
def test_any_rate_from_50_hz_to_1_khz_scores(tiny_trained_run, tmp_path: Path, rate: float) -> None:
    run, psg, _ = tiny_trained_run
    rec = read_psg(psg)
    minutes = 20
    t_new = np.arange(int(minutes * 60 * rate)) / rate
    t_old = np.arange(int(minutes * 60 * rec.sfreq["eeg"])) / rec.sfreq["eeg"]
    channels = [
        EdfChannel(name, np.interp(t_new, t_old, np.asarray(x[: t_old.size], dtype=np.float64)), rate)
        for m in ("eeg", "eog")
        for name, x in zip(rec.channel_names[m], rec.signals[m], strict=True)
    ]
    emg = np.asarray(rec.signals["emg"][0][: minutes * 60], dtype=np.float64)
    channels.append(EdfChannel(rec.channel_names["emg"][0], emg, rec.sfreq["emg"]))
    path = write_psg_edf(tmp_path / f"{int(rate)}.edf", channels, rec.start)
    hypnogram = somna.load_stager(run).predict(path)
    assert len(hypnogram) == minutes * 2 and np.all(hypnogram.stages >= 0)
    assert np.allclose(hypnogram.proba.sum(axis=1), 1.0, atol=1e-4)
