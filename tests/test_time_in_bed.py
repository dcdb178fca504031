"""Time in bed from each source (option, table, annotation, estimate), and onset and REM latency rules."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from somna.cli import main
from somna.errors import SomnaError
from somna.evaluation.sleep_metrics import format_metrics_table, sleep_metrics
from somna.hypnogram import Hypnogram
from somna.inference import load_stager
from somna.inference.scoring import ScoreOptions, score_psg, write_scored_night
from somna.io import read_hypnogram, read_psg
from somna.io.edf_write import EdfChannel, write_psg_edf
from somna.io.lights import (
    parse_lights_time,
    read_lights_table,
    record_keys,
    resolve_time_in_bed,
    table_lights,
)
from somna.stages import AASM

START = datetime(2024, 5, 1, 21, 0, 0)


# --- reading times and tables ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("22:30", 5400.0),
        ("22:30:15", 5415.0),
        ("00:15", 11700.0),  # after midnight: the next day
        ("20:30", -1800.0),  # up to an hour before the start: before it, not the next evening
        ("5400", 5400.0),
        (" -60 ", -60.0),
        (7200, 7200.0),
    ],
)
def test_lights_times_are_clock_times_or_seconds(text, seconds: float) -> None:
    assert parse_lights_time(text, START) == seconds


@pytest.mark.parametrize(
    ("text", "start", "match"),
    [
        ("22h30", START, "neither a clock time"),
        ("25:10", START, "not a time of day"),
        ("22:30", None, "start time is unknown"),
    ],
)
def test_unreadable_lights_times_are_clear_errors(text: str, start, match: str) -> None:
    with pytest.raises(SomnaError, match=match):
        parse_lights_time(text, start, "--lights-off")


def test_lights_table_rows_match_a_recording_by_any_of_its_names(tmp_path: Path) -> None:
    table = tmp_path / "lights.csv"
    table.write_text("record,lights_off,lights_on,comment\nSC4001,22:31,,x\npatient7,23:00,07:00,\n")
    rows = read_lights_table(table)
    assert rows == {"SC4001": ("22:31", None), "patient7": ("23:00", "07:00")}
    assert "SC4001" in record_keys("SC4001E0-PSG.edf")
    assert table_lights(rows, "/data/SC4001E0-PSG.edf") == ("22:31", None)
    assert table_lights(rows, "patient7.edf") == ("23:00", "07:00")
    assert table_lights(rows, "patient7-PSG.edf") == ("23:00", "07:00")
    assert table_lights(rows, "patient8.edf") is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("record,lights_off\nA,22:00\n", "no lights_on column"),
        ("record,lights_off,lights_on\nA,22:00,\nA,23:00,\n", "'A' appears twice"),
        ("record,lights_off,lights_on\n,22:00,\n", "empty record"),
    ],
)
def test_bad_lights_tables_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "lights.csv"
    path.write_text(text)
    with pytest.raises(SomnaError, match=match):
        read_lights_table(path)
    with pytest.raises(SomnaError, match="cannot read lights table"):
        read_lights_table(tmp_path / "missing.csv")


# --- which source wins ----------------------------------------------------------------------------


def test_each_bound_comes_from_the_best_source_it_has() -> None:
    window = (3600.0, 36000.0)
    annotations = [((2000.0, None), "the PSG's EDF+ annotations")]
    by_option = resolve_time_in_bed(40000, START, window, options=("22:00", None), annotations=annotations)
    assert (by_option.off_source, by_option.lights_off_s) == ("option", 3600.0)
    assert (by_option.on_source, by_option.lights_on_s) == ("estimated", 36000.0)
    by_table = resolve_time_in_bed(
        40000, START, window, table=(("21:45", "07:00"), "t.csv"), annotations=annotations
    )
    assert (by_table.off_source, by_table.off_detail, by_table.lights_off_s) == ("table", "t.csv", 2700.0)
    assert (by_table.on_source, by_table.lights_on_s) == ("table", 36000.0)
    by_annotation = resolve_time_in_bed(40000, START, window, annotations=annotations)
    assert (by_annotation.off_source, by_annotation.lights_off_s) == ("annotation", 2000.0)
    estimated = resolve_time_in_bed(40000, START, (0.0, 40000.0))
    assert estimated.estimated and estimated.off_detail == "the recording's start"
    assert "lights off 21:00:00 (estimated: the recording's start)" in estimated.describe()
    with pytest.raises(SomnaError, match="not after lights off"):
        resolve_time_in_bed(40000, START, window, options=("23:00", "22:00"))


# --- metrics: onset inside time in bed, REM latency rule, sleep-onset REM --------------------------


def _night(*runs: tuple[str, int]) -> Hypnogram:
    return Hypnogram(np.concatenate([[AASM.code(s)] * n for s, n in runs]), AASM, start=START)


def test_sleep_onset_and_latencies_count_only_inside_time_in_bed() -> None:
    # an afternoon doze (N1), hours of wake, then the night
    night = _night(
        ("W", 20), ("N1", 1), ("W", 300), ("N1", 4), ("N2", 60), ("REM", 1), ("N2", 30), ("REM", 20)
    )
    whole = sleep_metrics(night)
    assert whole["sleep_latency_min"] == 10.0  # the doze is the onset of the whole recording
    in_bed = sleep_metrics(night, lights_off_s=300 * 30.0)
    assert in_bed["sleep_latency_min"] == 10.5  # 21 epochs of wake from lights off
    assert in_bed["rem_latency_min"] == 32.0  # the isolated REM epoch, as the AASM counts
    episode = sleep_metrics(night, lights_off_s=300 * 30.0, rem_min_epochs=2)
    assert episode["rem_latency_min"] == 47.5 and episode["rem_min_epochs"] == 2  # the first REM period
    assert in_bed["sleep_onset_rem"] is False
    with pytest.raises(ValueError, match="rem_min_epochs"):
        sleep_metrics(night, rem_min_epochs=0)


def test_sleep_onset_rem_is_flagged_only_for_a_real_rem_episode() -> None:
    sorem = _night(("W", 10), ("N1", 4), ("REM", 8), ("N2", 40))
    assert sleep_metrics(sorem)["sleep_onset_rem"] is True
    single = _night(("W", 10), ("N1", 4), ("REM", 1), ("N2", 60), ("REM", 10))
    assert sleep_metrics(single)["sleep_onset_rem"] is True
    assert sleep_metrics(single, rem_min_epochs=3)["sleep_onset_rem"] is False
    assert sleep_metrics(_night(("W", 10), ("N2", 40)))["sleep_onset_rem"] is None


def test_the_metrics_table_names_where_time_in_bed_came_from_and_never_claims_lights_off() -> None:
    night = _night(("W", 30), ("N2", 100), ("W", 10))
    tib = resolve_time_in_bed(night.duration_s, START, (0.0, night.duration_s))
    text = format_metrics_table({**sleep_metrics(night), "time_in_bed": tib.to_dict()})
    assert "Time in bed: lights off 21:00:00 (estimated: the recording's start)" in text
    assert "not the clinical ones" in text and "lights off →" not in text
    plain = format_metrics_table(sleep_metrics(night))
    assert "the whole hypnogram (no lights off/on given)" in plain


# --- recordings, scoring and the command line ------------------------------------------------------


def _psg_with_lights(path: Path, lights: list[tuple[float, str]]) -> Path:
    rng = np.random.default_rng(0)
    channels = [
        EdfChannel(name, rng.standard_normal(100 * 600).astype(np.float32) * 20, 100.0, "uV")
        for name in ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal")
    ] + [EdfChannel("EMG submental", np.abs(rng.standard_normal(600)).astype(np.float32) + 1, 1.0, "uV")]
    return write_psg_edf(path, channels, START, data_record_s=30.0, annotations=lights)


def test_a_psg_with_lights_annotations_carries_them(tmp_path: Path) -> None:
    psg = _psg_with_lights(tmp_path / "night.edf", [(60.0, "Lights off"), (540.0, "LIGHTS ON")])
    recording = read_psg(psg)
    assert (recording.lights_off_s, recording.lights_on_s) == (60.0, 540.0)


@pytest.mark.slow
def test_scoring_takes_lights_from_each_source_and_says_which(tiny_trained_run, tmp_path: Path) -> None:
    import shutil

    run, psg, hypnogram = tiny_trained_run
    stager = load_stager(run)
    beside = score_psg(psg, stager, reference=hypnogram)  # the synthetic cohort's lights.csv is beside it
    assert beside.metrics["time_in_bed"]["lights_off_source"] == "table"
    assert beside.metrics["time_in_bed"]["lights_off_detail"] == "lights.csv beside the PSG"
    alone = tmp_path / "alone"
    alone.mkdir()
    psg, hypnogram = (Path(shutil.copy(f, alone)) for f in (psg, hypnogram))
    estimated = score_psg(psg, stager, reference=hypnogram)
    tib = estimated.metrics["time_in_bed"]
    assert tib["lights_off_source"] == "estimated" and estimated.hypnogram.lights_off_s == tib["lights_off_s"]
    assert estimated.reference_metrics["tib_min"] == estimated.metrics["tib_min"]  # the same time in bed
    start = estimated.hypnogram.start
    off = (start.replace(second=0) if start.second else start).strftime("%H:%M")
    table = tmp_path / "lights.csv"
    table.write_text(f"record,lights_off,lights_on\n{Path(psg).name[:6]},{off},\n")
    options = ScoreOptions(table=read_lights_table(table), table_name="lights.csv")
    by_table = score_psg(psg, stager, reference=hypnogram, options=options)
    assert by_table.metrics["time_in_bed"]["lights_off_source"] == "table"
    assert by_table.metrics["time_in_bed"]["lights_on_source"] == "estimated"
    assert by_table.reference_metrics["time_in_bed"] == by_table.metrics["time_in_bed"]
    out = write_scored_night(by_table, tmp_path / "out")
    back = read_hypnogram(out["hypnogram_edf"])
    assert back.lights_off_s is not None and back.lights_on_s is None  # an estimate is not annotated
    html = out["report"].read_text()
    assert "Time in bed" in html and str(Path(psg).parent) not in html  # the file name only
    assert "Sleep latency (SOL, start of TIB → onset)" in html  # the terminal's labels
    metrics = json.loads(out["metrics"].read_text())
    assert metrics["metrics"]["time_in_bed"]["lights_off_detail"] == "lights.csv"


@pytest.mark.slow
def test_score_and_metrics_commands_take_clock_times(tiny_trained_run, tmp_path, capsys) -> None:
    run, psg, hypnogram = tiny_trained_run
    start = read_psg(psg).start
    off = f"{start.hour:02d}:{(start.minute + 10) % 60:02d}" if start.minute < 50 else None
    if off is None:
        pytest.skip("the synthetic start leaves no whole 10 minutes in its hour")  # never with seed 5
    code = main(["score", str(psg), "--model", str(run), "--lights-off", off, "--out", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert code == 0 and f"(option: --lights-off {off})" in out
    assert main(["metrics", str(hypnogram), "--lights-off", off, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["time_in_bed"]["lights_off_source"] == "option" and metrics["lights_off_s"] == 600.0
    assert main(["metrics", str(hypnogram), "--lights-off", "25:00"]) == 2
    assert "not a time of day" in capsys.readouterr().err


def test_synthetic_nights_come_with_a_lights_table_before_their_persistent_sleep(tmp_path: Path) -> None:
    from somna.synth import write_synthetic_cohort

    paths = write_synthetic_cohort(
        tmp_path, n_subjects=2, seed=3, nights=1, progress=False, variation="textbook"
    )
    rows = list(csv.DictReader((tmp_path / "lights.csv").open()))
    table = read_lights_table(tmp_path / "lights.csv")
    assert [r["record"] for r in rows] == [p.name.removesuffix("-PSG.edf") for p in paths[::2]]
    for psg, hyp in zip(paths[::2], paths[1::2], strict=True):
        scored = read_hypnogram(hyp)
        off, on = (parse_lights_time(t, scored.start) for t in table_lights(table, psg))
        metrics = sleep_metrics(scored, lights_off_s=off, lights_on_s=on)
        assert 2 <= metrics["persistent_sleep_latency_min"] <= 60
        assert metrics["sleep_efficiency_pct"] > 50 and 0 < off < on <= scored.duration_s


def test_prepare_records_each_nights_lights_and_the_evaluation_uses_them(
    small_cohort, tmp_path: Path
) -> None:
    import shutil
    from datetime import datetime

    from somna.data.cohort import prepare_cohort
    from somna.training.experiment import RunPredictions, night_metric_agreement

    edf = Path(small_cohort.entries[0].psg).parent
    table = read_lights_table(edf / "lights.csv")
    for entry in small_cohort.entries:  # the folder's own lights.csv, read by default
        start = datetime.fromisoformat(entry.start)
        assert entry.lights_source == "lights.csv"
        assert entry.lights_off_s == parse_lights_time(table_lights(table, entry.psg)[0], start)
    other = tmp_path / "other.csv"
    first = small_cohort.entries[0]
    other.write_text(
        f"record,lights_off,lights_on\n{Path(first.psg).name[:6]},,{first.lights_on_s - 600:g}\n"
    )
    cache = Path(shutil.copytree(small_cohort.root, tmp_path / "cache"))  # the shared cohort stays as it is
    again = prepare_cohort(edf, cache, workers=1, progress=False, lights=other)  # nothing is redone
    entry = next(e for e in again.entries if e.record == first.record)
    assert entry.lights_source == "other.csv" and entry.lights_on_s == first.lights_on_s - 600
    assert entry.lights_off_s is None  # the table has none, and the synthetic files no annotation
    # the run's evaluation takes the night's metrics between its lights off and on
    night = again.night(first.record)
    stages = night["stage"].astype(np.int64)
    payload = {"cohort": str(again.root)}
    run = RunPredictions(
        payload,
        AASM,
        stages,
        stages,
        np.array(["s"] * stages.size),
        np.array([first.record] * stages.size),
        [],
    )
    agreement = night_metric_agreement(run)
    on_rel = entry.lights_on_s - entry.first_epoch * 30.0
    expected = sleep_metrics(
        Hypnogram(stages, AASM), lights_on_s=on_rel if on_rel < stages.size * 30 else None
    )
    assert agreement["tst_min"]["mean_scored"] == pytest.approx(expected["tst_min"])


def test_a_staged_hypnogram_takes_rem_latency_to_the_first_rem_episode_of_three_epochs() -> None:
    night = _night(("W", 10), ("N1", 2), ("REM", 1), ("N2", 40), ("REM", 2), ("N2", 10), ("REM", 5))
    proba = np.full((len(night), AASM.n_classes), 0.2, dtype=np.float32)
    staged = Hypnogram(night.stages, AASM, proba=proba)
    assert night.sleep_metrics()["rem_latency_min"] == 1.0  # scored: the AASM's first REM epoch
    assert staged.sleep_metrics()["rem_latency_min"] == 27.5  # staged: the first 3-epoch REM episode
    assert staged.sleep_metrics(rem_min_epochs=1)["rem_latency_min"] == 1.0
    text = format_metrics_table(staged.sleep_metrics())
    assert "REM latency (from sleep onset, first REM ≥ 3 epochs)" in text
