"""Reading PSG EDF files (somna.io.edf.read_psg) and the signal checks (check_signals)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from somna.errors import ChannelError, EDFReadError, SignalQualityError
from somna.io import EdfChannel, Recording, check_signals, read_psg, write_psg_edf

START = dt.datetime(1989, 4, 24, 16, 13)
SECONDS = 240  # 8 epochs, 8 data records of 30 s


def _noise(rate: float, scale: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, int(SECONDS * rate))


def _sc_channels() -> list[EdfChannel]:
    """Sleep-EDF SC layout: EEG/EOG at 100 Hz, EMG/resp/temp/marker at 1 Hz."""
    return [
        EdfChannel("EEG Fpz-Cz", _noise(100, 40, 1), 100),
        EdfChannel("EEG Pz-Oz", _noise(100, 30, 2), 100),
        EdfChannel("EOG horizontal", _noise(100, 60, 3), 100),
        EdfChannel("Resp oro-nasal", _noise(1, 100, 4), 1),
        EdfChannel("EMG submental", np.abs(_noise(1, 5, 5)) + 1, 1, physical_range=(-5.0, 50.0)),
        EdfChannel("Temp rectal", 37 + _noise(1, 0.1, 6), 1, unit="DegC", physical_range=(34.0, 40.0)),
        EdfChannel("Event marker", np.zeros(SECONDS), 1, unit="", physical_range=(-1.0, 1.0)),
    ]


@pytest.fixture
def sc_psg(tmp_path: Path) -> tuple[Path, list[EdfChannel]]:
    channels = _sc_channels()
    return write_psg_edf(tmp_path / "SC4001E0-PSG.edf", channels, START), channels


def test_sc_layout_keeps_native_rates_and_values(sc_psg):
    path, channels = sc_psg
    rec = read_psg(path)
    assert rec.sfreq == {"eeg": 100.0, "eog": 100.0, "emg": 1.0}
    assert rec.signals["eeg"].shape == (2, SECONDS * 100)
    assert rec.signals["emg"].shape == (1, SECONDS)
    assert rec.channel_names == {
        "eeg": ["EEG Fpz-Cz", "EEG Pz-Oz"],
        "eog": ["EOG horizontal"],
        "emg": ["EMG submental"],
    }
    assert rec.start == START
    assert rec.duration_s == SECONDS and rec.n_epochs() == SECONDS // 30
    # 16-bit quantisation of a 1000-µV range: one step is 1000 / 65535 µV.
    step = 1000.0 / 65535
    for row, ch in zip(rec.signals["eeg"], channels[:2], strict=True):
        assert np.max(np.abs(row - np.clip(ch.data, -500, 500))) <= step
    assert np.max(np.abs(rec.signals["emg"][0] - channels[4].data)) <= 55.0 / 65535
    assert (rec.study, rec.subject, rec.night) == ("SC", "SC00", 1)


def test_samples_are_float32_and_equal_mne_calibration(sc_psg):
    import mne

    path, _ = sc_psg
    rec = read_psg(path)
    assert all(data.dtype == np.float32 for data in rec.signals.values())
    raw = mne.io.read_raw_edf(path, include=["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal"], verbose="error")
    expected = raw.get_data() * 1e6  # MNE: volts, from the same digital samples and ranges
    got = np.vstack([rec.signals["eeg"], rec.signals["eog"]])
    assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()


def test_st_layout_with_100hz_emg_and_aliases(tmp_path):
    channels = [
        EdfChannel("Fpz-Cz", _noise(100, 40, 1), 100),
        EdfChannel(" pz-oz ", _noise(100, 30, 2), 100),
        EdfChannel("EOG horizontal", _noise(100, 60, 3), 100),
        EdfChannel("EMG submental", _noise(100, 10, 4), 100),
    ]
    rec = read_psg(write_psg_edf(tmp_path / "ST7011J0-PSG.edf", channels, START))
    assert rec.sfreq["emg"] == 100.0
    assert rec.signals["emg"].shape == (1, SECONDS * 100)
    assert rec.channel_names["eeg"] == ["Fpz-Cz", " pz-oz"]  # labels as written in the file
    assert (rec.study, rec.subject, rec.night) == ("ST", "ST01", 1)


def test_non_sleep_edf_name_has_no_ids(tmp_path):
    rec = read_psg(write_psg_edf(tmp_path / "night.edf", _sc_channels(), START))
    assert (rec.study, rec.subject, rec.night) == (None, None, None)


def test_missing_channel_lists_available(tmp_path):
    channels = [ch for ch in _sc_channels() if ch.label != "EOG horizontal"]
    path = write_psg_edf(tmp_path / "p.edf", channels, START)
    with pytest.raises(ChannelError) as err:
        read_psg(path)
    message = str(err.value)
    assert str(path) in message and "eog" in message
    assert "'EEG Fpz-Cz'" in message and "'Event marker'" in message


def test_modality_subset(tmp_path):
    channels = [ch for ch in _sc_channels() if ch.label != "EOG horizontal"]
    rec = read_psg(write_psg_edf(tmp_path / "p.edf", channels, START), modalities=("eeg", "emg"))
    assert rec.modalities == ["eeg", "emg"]


def test_truncated_file(sc_psg, tmp_path):
    path, _ = sc_psg
    cut = tmp_path / "cut.edf"
    cut.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(EDFReadError, match="truncated"):
        read_psg(cut)


def test_text_file_is_not_edf(tmp_path):
    path = tmp_path / "notes.edf"
    path.write_text("this is a text file, not a recording\n" * 20)
    with pytest.raises(EDFReadError, match="not an EDF file"):
        read_psg(path)


def test_corrupt_header_and_missing_file(sc_psg, tmp_path):
    path, _ = sc_psg
    data = bytearray(path.read_bytes())
    data[236:244] = b"eight   "  # number of data records
    bad = tmp_path / "bad.edf"
    bad.write_bytes(bytes(data))
    with pytest.raises(EDFReadError, match="corrupt EDF header"):
        read_psg(bad)
    with pytest.raises(EDFReadError, match="no such file"):
        read_psg(tmp_path / "absent.edf")


def test_eeg_below_50_hz(tmp_path):
    channels = _sc_channels()
    channels[0] = EdfChannel("EEG Fpz-Cz", _noise(40, 40, 1), 40)
    channels[1] = EdfChannel("EEG Pz-Oz", _noise(40, 40, 2), 40)
    with pytest.raises(ChannelError, match=r"'EEG Fpz-Cz' is sampled at 40 Hz"):
        read_psg(write_psg_edf(tmp_path / "p.edf", channels, START))


def test_mixed_rates_within_a_modality(tmp_path):
    channels = _sc_channels()
    channels[1] = EdfChannel("EEG Pz-Oz", _noise(200, 40, 2), 200)
    with pytest.raises(ChannelError, match="share one sampling rate"):
        read_psg(write_psg_edf(tmp_path / "p.edf", channels, START))


def test_flat_channel(tmp_path):
    channels = _sc_channels()
    channels[2] = EdfChannel("EOG horizontal", np.full(SECONDS * 100, 12.0), 100)
    with pytest.raises(
        SignalQualityError, match="eog channel 'EOG horizontal' is flat: every sample equals 12"
    ) as err:
        read_psg(write_psg_edf(tmp_path / "p.edf", channels, START))
    assert "p.edf" in str(err.value)


def test_millivolt_and_volt_are_converted(tmp_path):
    channels = _sc_channels()
    eeg_uv = channels[0].data
    channels[0] = EdfChannel("EEG Fpz-Cz", eeg_uv / 1000.0, 100, unit="mV", physical_range=(-0.5, 0.5))
    channels[1] = EdfChannel("EEG Pz-Oz", channels[1].data / 1e6, 100, unit="V", physical_range=(-5e-4, 5e-4))
    rec = read_psg(write_psg_edf(tmp_path / "p.edf", channels, START))
    assert np.max(np.abs(rec.signals["eeg"][0] - np.clip(eeg_uv, -500, 500))) <= 1000.0 / 65535 + 1e-9
    assert np.std(rec.signals["eeg"][1]) == pytest.approx(30, rel=0.1)
    assert rec.extra["assumed_microvolt"] == []


def test_empty_unit_is_assumed_microvolt(tmp_path):
    channels = _sc_channels()
    channels[2] = EdfChannel("EOG horizontal", channels[2].data, 100, unit="")
    rec = read_psg(write_psg_edf(tmp_path / "p.edf", channels, START))
    assert rec.extra["assumed_microvolt"] == ["EOG horizontal"]
    assert np.std(rec.signals["eog"]) == pytest.approx(60, rel=0.1)


def _in_memory(eeg: np.ndarray) -> Recording:
    return Recording(
        path=Path("mem.edf"),
        signals={"eeg": eeg},
        sfreq={"eeg": 100.0},
        channel_names={"eeg": ["C3", "C4"]},
        start=START,
    )


def test_check_signals_in_memory():
    good = np.random.default_rng(0).normal(size=(2, 3000))
    check_signals(_in_memory(good))
    nan = good.copy()
    nan[1, 250] = np.nan
    with pytest.raises(SignalQualityError, match=r"'C4' contains 1 non-finite .* 2\.50 s"):
        check_signals(_in_memory(nan))
    inf = good.copy()
    inf[0, 5] = np.inf
    with pytest.raises(SignalQualityError, match="'C3' contains 1 non-finite"):
        check_signals(_in_memory(inf))
    flat = good.copy()
    flat[0] = 0.0
    with pytest.raises(SignalQualityError, match="'C3' is flat"):
        check_signals(_in_memory(flat))
    with pytest.raises(SignalQualityError, match="no samples"):
        check_signals(_in_memory(np.zeros((2, 0))))
    # +inf and -inf together, and finite samples whose sum overflows, are told apart
    both = good.copy()
    both[0, 7], both[0, 9] = np.inf, -np.inf
    with pytest.raises(SignalQualityError, match="'C3' contains 2 non-finite"):
        check_signals(_in_memory(both))
    huge = good.copy()
    huge[1, :3] = 1.7e308
    check_signals(_in_memory(huge))
