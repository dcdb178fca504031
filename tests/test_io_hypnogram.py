"""Reading hypnogram files and aligning them to PSG epochs (somna.io.hypnogram_files)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import edfio
import numpy as np
import pytest

from somna.errors import EDFReadError, HypnogramError
from somna.hypnogram import Hypnogram, sleep_period_bounds
from somna.io import Recording, align_hypnogram, read_hypnogram, write_hypnogram_edf
from somna.stages import AASM, RK, UNSCORED

START = dt.datetime(1989, 4, 24, 16, 13)
U = UNSCORED


def _rk(*labels: str) -> np.ndarray:
    return np.array([U if s == "?" else RK.code(s) for s in labels], dtype=np.int8)


def _recording(seconds: float, start: dt.datetime = START) -> Recording:
    rng = np.random.default_rng(0)
    return Recording(
        path=Path("SC4001E0-PSG.edf"),
        signals={"eeg": rng.normal(size=(1, int(seconds * 100))), "emg": rng.normal(size=(1, int(seconds)))},
        sfreq={"eeg": 100.0, "emg": 1.0},
        channel_names={"eeg": ["EEG Fpz-Cz"], "emg": ["EMG submental"]},
        start=start,
    )


def _write_annotations(path: Path, annotations: list[tuple[float, float | None, str]]) -> Path:
    edf = edfio.Edf(
        [],
        starttime=START.time(),
        recording=edfio.Recording(startdate=START.date()),
        annotations=[edfio.EdfAnnotation(o, d, t) for o, d, t in annotations],
    )
    edf.write(path)
    return path


# --- EDF+ ----------------------------------------------------------------------------------------


def test_rk_edf_round_trip(tmp_path):
    stages = _rk("W", "W", "S1", "S2", "S2", "S3", "S4", "S4", "REM", "?", "W", "?", "?")
    hyp = Hypnogram(stages, RK, lights_off_s=45.0, lights_on_s=330.0)
    path = write_hypnogram_edf(tmp_path / "SC4001EC-Hypnogram.edf", hyp, START)
    back = read_hypnogram(path)
    assert back.label_set is RK
    np.testing.assert_array_equal(back.stages, stages)
    assert back.start == START
    assert (back.lights_off_s, back.lights_on_s) == (45.0, 330.0)
    assert back.source == path


def test_aasm_edf_round_trip(tmp_path):
    stages = np.array([0, 1, 2, 3, 4, U, 0], dtype=np.int8)
    path = write_hypnogram_edf(tmp_path / "h.edf", Hypnogram(stages, AASM), START)
    back = read_hypnogram(path)
    assert back.label_set is AASM
    np.testing.assert_array_equal(back.stages, stages)


def test_edf_first_stage_later_than_header_start_and_events(tmp_path):
    path = _write_annotations(
        tmp_path / "h.edf",
        [
            (60.0, 60.0, "Sleep stage W"),
            (120.0, 30.0, "Sleep stage 2"),
            (150.0, 30.0, "Movement time"),
            (130.0, 0.0, "Arousal@@EEG Fpz-Cz"),
            (75.0, None, "Lights off"),
        ],
    )
    hyp = read_hypnogram(path)
    assert hyp.start == START + dt.timedelta(seconds=60)
    assert hyp.stages.tolist() == [0, 0, RK.code("S2"), U]
    assert hyp.lights_off_s == 15.0 and hyp.lights_on_s is None
    assert hyp.events == [(70.0, "Arousal")]


def test_edf_gap_is_unscored_and_overlap_is_error(tmp_path):
    gap = _write_annotations(
        tmp_path / "gap.edf", [(0.0, 30.0, "Sleep stage W"), (90.0, 30.0, "Sleep stage N2")]
    )
    assert read_hypnogram(gap).stages.tolist() == [0, U, U, 2]
    overlap = _write_annotations(
        tmp_path / "overlap.edf", [(0.0, 60.0, "Sleep stage W"), (30.0, 30.0, "Sleep stage N2")]
    )
    with pytest.raises(HypnogramError, match="overlaps"):
        read_hypnogram(overlap)


def test_edf_off_grid_onset_and_bad_duration(tmp_path):
    path = _write_annotations(
        tmp_path / "h.edf", [(0.0, 30.0, "Sleep stage W"), (45.0, 30.0, "Sleep stage 1")]
    )
    with pytest.raises(HypnogramError, match=r"'Sleep stage 1' at 45 s\) is not on the 30-s grid") as err:
        read_hypnogram(path)
    assert str(path) in str(err.value)
    path = _write_annotations(tmp_path / "d.edf", [(0.0, 45.0, "Sleep stage W")])
    with pytest.raises(HypnogramError, match="not a whole number of 30-s epochs"):
        read_hypnogram(path)


def test_edf_unknown_stage_and_mixed_vocabulary(tmp_path):
    path = _write_annotations(
        tmp_path / "h.edf", [(0.0, 30.0, "Sleep stage W"), (30.0, 30.0, "Sleep stage X")]
    )
    with pytest.raises(HypnogramError, match=r"unknown sleep stage 'Sleep stage X' in annotation 1") as err:
        read_hypnogram(path)
    assert str(path) in str(err.value)
    mixed = _write_annotations(
        tmp_path / "m.edf", [(0.0, 30.0, "Sleep stage 1"), (30.0, 30.0, "Sleep stage N2")]
    )
    with pytest.raises(HypnogramError, match="mixes"):
        read_hypnogram(mixed)


def test_truncated_hypnogram_edf(tmp_path):
    path = write_hypnogram_edf(tmp_path / "h.edf", Hypnogram(_rk("W", "S1", "S2"), RK), START)
    cut = tmp_path / "cut.edf"
    cut.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(EDFReadError, match="truncated"):
        read_hypnogram(cut)


@pytest.mark.realdata
def test_hmc_real_file(shared_data):
    hyp = read_hypnogram(shared_data / "hmc" / "SN001_sleepscoring.edf")
    assert len(hyp) == 854
    assert hyp.label_set is AASM
    assert hyp.counts() == {"W": 151, "N1": 109, "N2": 430, "N3": 23, "REM": 141, "?": 0}
    assert hyp.lights_off_s == pytest.approx(33.43)
    assert hyp.lights_on_s == pytest.approx(25618.74)
    assert hyp.start is None  # the file hides its date ("X")
    assert hyp.events == []


# --- tables and JSON ---------------------------------------------------------------------------


@pytest.mark.realdata
def test_sleep_edf_csvs_trimmed_keep_30_min_of_wake(shared_data):
    files = sorted((shared_data / "sleep-edf-hypnograms").glob("SC4*.csv"))
    assert len(files) == 16
    wake, margin = AASM.code("W"), 60
    for path in files:
        hyp = read_hypnogram(path)
        assert hyp.label_set is AASM
        sleep = np.flatnonzero((hyp.stages != U) & (hyp.stages != wake))
        first, stop = sleep_period_bounds(hyp, wake_margin_min=30)
        trimmed = hyp.crop(first, stop)
        assert first == max(0, sleep[0] - margin) and stop == min(len(hyp), sleep[-1] + 1 + margin)
        if sleep[0] >= margin:  # the night has 30 min of wake before sleep onset
            assert np.all(trimmed.stages[:margin] == wake), path.name
            assert trimmed.stages[margin] != wake
        if len(hyp) - 1 - sleep[-1] >= margin:
            assert np.all(trimmed.stages[-margin:] == wake), path.name
            assert trimmed.stages[-margin - 1] != wake


def test_csv_epoch_column_gaps_are_unscored(tmp_path):
    path = tmp_path / "SC4001E0.csv"
    path.write_text("epoch,stage\n0,W\n1,N1\n3,N2\n4,R\n")
    hyp = read_hypnogram(path)
    assert hyp.stages.tolist() == [0, 1, U, 2, 4]
    assert hyp.label_set is AASM


def test_table_variants(tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("W\nS1\nS2\nS3\nS4\nREM\n?\n")
    hyp = read_hypnogram(one)
    assert hyp.label_set is RK and hyp.stages.tolist() == [0, 1, 2, 3, 4, 5, U]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("onset\tStage\n0\t0\n30\t4\n60\t-1\n")
    assert read_hypnogram(tsv).stages.tolist() == [0, AASM.code("REM"), U]
    rk = read_hypnogram(tsv, int_codes=RK)
    assert rk.label_set is RK and rk.stages.tolist() == [0, RK.code("S4"), U]
    headerless = tmp_path / "h.csv"
    headerless.write_text("0,W\n2,N3\n")
    assert read_hypnogram(headerless).stages.tolist() == [0, U, 3]


def test_table_errors_name_row_and_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("epoch,stage\n0,W\n1,N2\n2,deep\n")
    with pytest.raises(HypnogramError, match=r"unknown sleep stage 'deep' in row 4") as err:
        read_hypnogram(path)
    assert str(path) in str(err.value)
    dup = tmp_path / "dup.csv"
    dup.write_text("epoch,stage\n0,W\n0,N2\n")
    with pytest.raises(HypnogramError, match="epoch 0 appears 2 times"):
        read_hypnogram(dup)
    codes = tmp_path / "codes.csv"
    codes.write_text("stage\n0\n7\n")
    with pytest.raises(HypnogramError, match="unknown sleep stage 7 in row 3"):
        read_hypnogram(codes)


def test_dreem_json(tmp_path):
    path = tmp_path / "night.json"
    path.write_text(json.dumps([-1, 0, 1, 2, 3, 4, -1]))
    hyp = read_hypnogram(path)
    assert hyp.label_set is AASM
    assert hyp.stages.tolist() == [U, 0, 1, 2, 3, 4, U]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([0, 1, 5]))
    with pytest.raises(HypnogramError, match="unknown sleep stage 5 at position 2"):
        read_hypnogram(bad)
    nojson = tmp_path / "broken.json"
    nojson.write_text("[0, 1,")
    with pytest.raises(HypnogramError, match="not valid JSON"):
        read_hypnogram(nojson)


@pytest.mark.realdata
def test_dreem_real_scorers_agree_on_length(shared_data):
    name = sorted((shared_data / "dreem-dod-o" / "scorer_1").glob("*.json"))[0].name
    hyps = [read_hypnogram(shared_data / "dreem-dod-o" / f"scorer_{k}" / name) for k in range(1, 6)]
    assert len({len(h) for h in hyps}) == 1
    raw = json.loads((shared_data / "dreem-dod-o" / "scorer_1" / name).read_text())
    np.testing.assert_array_equal(hyps[0].stages, raw)
    assert all(h.label_set is AASM for h in hyps)


# --- alignment ---------------------------------------------------------------------------------


def test_align_drops_trailing_unscored_past_signal_end():
    hyp = Hypnogram(_rk("W", "S1", "S2", "W", "?", "?", "?"), RK, start=START)
    aligned = align_hypnogram(hyp, _recording(4 * 30 + 10))
    assert aligned.stages.tolist() == _rk("W", "S1", "S2", "W").tolist()
    assert aligned.start == START


def test_align_scored_epochs_past_end_is_error():
    hyp = Hypnogram(_rk("W", "S1", "S2", "W", "W", "?", "W"), RK, start=START, source=Path("h.edf"))
    with pytest.raises(
        HypnogramError, match=r"longer than the signals: 2 scored epochs after the end at 120 s \(16:15:00\)"
    ) as err:
        align_hypnogram(hyp, _recording(4 * 30))
    assert "h.edf" in str(err.value)


def test_align_shorter_hypnogram_is_error_but_one_epoch_is_padded():
    hyp = Hypnogram(_rk("W", "S1", "S2"), RK, start=START)
    with pytest.raises(HypnogramError, match="shorter than the signals"):
        align_hypnogram(hyp, _recording(5 * 30))
    padded = align_hypnogram(hyp, _recording(4 * 30))
    assert padded.stages.tolist() == [0, 1, 2, U]


def test_align_start_offsets():
    rec = _recording(6 * 30)
    later = Hypnogram(
        _rk("W", "S1", "S2", "W"), RK, start=START + dt.timedelta(seconds=60), lights_off_s=10.0
    )
    aligned = align_hypnogram(later, rec)
    assert aligned.stages.tolist() == [U, U, 0, 1, 2, 0]
    assert aligned.lights_off_s == 70.0
    earlier = Hypnogram(_rk("?", "W", "S1", "S2", "W", "W", "W"), RK, start=START - dt.timedelta(seconds=30))
    assert align_hypnogram(earlier, rec).stages.tolist() == [0, 1, 2, 0, 0, 0]
    scored_before = Hypnogram(
        _rk("W", "W", "S1", "S2", "W", "W", "W"), RK, start=START - dt.timedelta(seconds=30)
    )
    with pytest.raises(HypnogramError, match="1 scored epochs before the signals start"):
        align_hypnogram(scored_before, rec)
    off_grid = Hypnogram(_rk("W", "S1", "S2", "W", "W", "W"), RK, start=START + dt.timedelta(seconds=10))
    with pytest.raises(HypnogramError, match="not a whole number of 30-s epochs"):
        align_hypnogram(off_grid, rec)
    no_start = Hypnogram(_rk("W", "S1", "S2", "W", "W", "W"), RK)
    assert align_hypnogram(no_start, rec).stages.tolist() == [0, 1, 2, 0, 0, 0]


def test_read_and_align_sleep_edf_pair(tmp_path):
    """The whole path: a Sleep-EDF-style hypnogram whose final '?' run outlasts the PSG."""
    hyp = Hypnogram(_rk("W", "W", "S1", "S2", "REM", "W", "?", "?", "?", "?"), RK)
    path = write_hypnogram_edf(tmp_path / "SC4001EC-Hypnogram.edf", hyp, START)
    aligned = align_hypnogram(read_hypnogram(path), _recording(6 * 30 + 20))
    assert aligned.stages.tolist() == _rk("W", "W", "S1", "S2", "REM", "W").tolist()
