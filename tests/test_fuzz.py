"""Fuzzing the readers: corrupted EDF/EDF+ and hypnogram files give a SomnaError or a valid result.

The mutators live in ``benchmarks/fuzz_readers.py`` and, for the scoring files of
:mod:`somna.io.formats`, ``benchmarks/_fuzz_scoring.py`` (thousands of cases); here hypothesis
drives them (``st.randoms``), deterministically, a few hundred cases in all. Below them, one regression
test per bug the fuzzer found.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from somna.errors import EDFReadError, HypnogramError
from somna.io import read_hypnogram, read_psg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fuzz_readers as fz

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, fz.Seeds]:
    folder = tmp_path_factory.mktemp("fuzz")
    return folder, fz.make_seeds(folder)


@pytest.mark.parametrize("target", fz.TARGETS)
@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_corrupted_files_are_handled(work, target, rng):
    """Each family of files (PSG EDF, EDF+ hypnograms, tables, JSON, scoring XML, BIDS/Noxturnal
    tables, stage text), corrupted: a clear somna error or a valid result."""
    folder, seeds = work
    outcome = fz.fuzz_one(target, seeds, rng, folder)
    assert outcome.outcome in fz.OUTCOMES, f"[{outcome.kind}] {outcome.outcome}: {outcome.detail}"


def test_seeds_are_valid_and_the_checker_refuses_bad_results(work):
    folder, seeds = work
    assert fz.run_case(folder / "seed-PSG.edf", "psg").outcome == "valid"
    assert fz.run_case(folder / "seed-Hypnogram.edf", "hypnogram", seeds.recording).outcome == "valid"
    assert len(seeds.xml) == 3
    for i in range(len(seeds.xml)):
        assert fz.run_case(folder / f"seed-{i}.xml", "hypnogram", seeds.recording).outcome == "valid"
    seeds.recording.sfreq["eeg"] = float("nan")
    with pytest.raises(fz.InvariantError):
        fz.check_recording(seeds.recording)
    seeds.recording.sfreq["eeg"] = 100.0


# --- regressions: one per bug the fuzzer found --------------------------------------------------


def _field(data: bytes, offset: int, width: int, value: str) -> bytes:
    out = bytearray(data)
    out[offset : offset + width] = value.encode("latin-1").ljust(width)
    return bytes(out)


def _psg(work: tuple[Path, fz.Seeds], name: str, data: bytes) -> Path:
    path = work[0] / name
    path.write_bytes(data)
    return path


N_SIGNALS = 4  # in the seed PSG
PHYSICAL_MIN = 256 + N_SIGNALS * (16 + 80 + 8)  # offset of the first signal's physical minimum


@pytest.mark.parametrize("duration", ["0", "-30", "nan", "inf", "abc"])
def test_record_duration_not_positive_is_a_header_error(work, duration):
    # "0" crashed inside edfio (UnboundLocalError); "nan" gave a ChannelError about "nan Hz".
    path = _psg(work, "duration.edf", _field(work[1].psg, 244, 8, duration))
    with pytest.raises(EDFReadError, match="data-record duration") as err:
        read_psg(path)
    assert str(path) in str(err.value)


def test_absurd_sampling_rate_is_refused(work):
    # A 1e-9-s record made a 3e12-Hz "valid" recording.
    with pytest.raises(Exception, match="above the 100000 Hz"):
        read_psg(_psg(work, "fast.edf", _field(work[1].psg, 244, 8, "1e-9")))


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({PHYSICAL_MIN + 8 * N_SIGNALS: "-500"}, "physical minimum equals physical maximum"),
        ({PHYSICAL_MIN + 3 * 8 * N_SIGNALS: "-32768"}, "digital maximum -32768 is not above"),
        ({PHYSICAL_MIN: "abc"}, "is not a number"),  # edfio returned unscaled samples silently
        ({PHYSICAL_MIN: "-1e308", PHYSICAL_MIN + 8 * N_SIGNALS: "1e308"}, "not finite"),
    ],
)
def test_unusable_calibration_is_a_header_error(work, fields, problem):
    # edfio returned the raw digital values (with a warning, or silently) as if they were µV.
    data = work[1].psg
    for offset, value in fields.items():
        data = _field(data, offset, 8, value)
    path = _psg(work, "calibration.edf", data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(EDFReadError, match=problem):
            read_psg(path)


def test_minus_one_records_reads_whole_records(work):
    # -1 ("unknown") was meant to be accepted, but edfio's "Updating header" warning made it an error.
    rec = read_psg(_psg(work, "running.edf", _field(work[1].psg, 236, 8, "-1")))
    assert rec.signals["eeg"].shape == (2, fz.SECONDS * 100)
    with pytest.raises(EDFReadError, match="-2 data records"):
        read_psg(_psg(work, "minus2.edf", _field(work[1].psg, 236, 8, "-2")))


def test_different_startdates_read_without_warning(work):
    data = _field(work[1].psg, 168, 8, "25.04.89")  # EDF+ recording field still says 24-APR-1989
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # edfio raises this warning where errors are suppressed
        rec = read_psg(_psg(work, "dates.edf", data))
    assert not caught
    assert rec.start.date().isoformat() == "1989-04-24"


def _hypnogram_with_tals(work: tuple[Path, fz.Seeds], tals: bytes) -> Path:
    """The seed hypnogram with its one data record replaced by ``tals`` (record size adjusted)."""
    region = tals + b"\x00" * (2 - len(tals) % 2)
    header = _field(work[1].hypnogram[:512], 256 + 216, 8, str(len(region) // 2))  # samples per record
    path = work[0] / "tals.edf"
    path.write_bytes(header + region)
    return path


@pytest.mark.parametrize(
    "tals",
    [
        b"+0\x14\x14\x00+0\x1599999999999999999999\x14Sleep stage W\x14\x00",  # MemoryError
        b"+0\x14\x14\x00+99999999999999999999\x1530\x14Sleep stage W\x14\x00",  # MemoryError
        b"+0\x14\x14\x00+0\x15" + b"9" * 400 + b"\x14Sleep stage W\x14\x00",  # inf duration
    ],
)
def test_huge_annotation_times_are_a_hypnogram_error(work, tals):
    path = _hypnogram_with_tals(work, tals)
    with pytest.raises(HypnogramError, match="14-day limit") as err:
        read_hypnogram(path)
    assert str(path) in str(err.value)


def test_huge_timekeeping_onset_is_a_header_error(work):
    # The record's first TAL sets the sub-second start; a huge one raised OverflowError in edfio.
    path = _hypnogram_with_tals(work, b"+" + b"9" * 30 + b"\x14\x14\x00+0\x1530\x14Sleep stage W\x14\x00")
    with pytest.raises(EDFReadError, match="start time"):
        read_hypnogram(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[" * 200_000 + "]" * 200_000, "RecursionError"),
        ("[" + "9" * 5000 + "]", "digits"),
        ("[NaN, Infinity]", "unknown sleep stage nan"),
        (json.dumps([2] * 50_000), "more than the 40320"),
    ],
)
def test_json_crashes_are_hypnogram_errors(work, text, match):
    path = work[0] / "bad.json"
    path.write_text(text)
    with pytest.raises(HypnogramError, match=match):
        read_hypnogram(path)


@pytest.mark.parametrize("epoch", ["99999999", "99999999999", "9" * 30])
def test_huge_epoch_index_is_refused(work, epoch):
    # 99999999 allocated a 3-year hypnogram, 99999999999 raised MemoryError.
    path = work[0] / "epochs.csv"
    path.write_text(f"epoch,stage\n{epoch},W\n")
    with pytest.raises(HypnogramError, match="epoch"):
        read_hypnogram(path)


def test_json_with_bom_or_top_level_object(work):
    path = work[0] / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf[0, 1, 2]")
    assert read_hypnogram(path).stages.tolist() == [0, 1, 2]
    path = work[0] / "object"  # no suffix: recognised as JSON by its "{"
    path.write_text('{"stages": [0, 1]}')
    with pytest.raises(HypnogramError, match="JSON list"):
        read_hypnogram(path)
