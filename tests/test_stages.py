"""Stage vocabularies and mappings (somna.stages)."""

from __future__ import annotations

import numpy as np
import pytest

from somna.stages import (
    AASM,
    NREM_REM,
    RK,
    THREE_CLASS,
    TWO_CLASS,
    UNSCORED,
    convert,
    get_label_set,
    is_stage_annotation,
    parse_stage,
    stage_codes_from_strings,
    stage_counts,
)

RK_ALL = np.array([RK.code(s) for s in RK.labels] + [UNSCORED], dtype=np.int8)  # W S1 S2 S3 S4 REM ?


def test_rk_to_aasm_merges_s3_s4_and_keeps_unscored():
    out = convert(RK_ALL, RK, AASM)
    expected = [AASM.code(s) for s in ("W", "N1", "N2", "N3", "N3", "REM")] + [UNSCORED]
    assert out.tolist() == expected
    assert out.dtype == np.int8


def test_chain_to_three_and_two_class():
    three = convert(RK_ALL, RK, THREE_CLASS)
    assert [THREE_CLASS.label(c) for c in three] == ["W", "NREM", "NREM", "NREM", "NREM", "REM", "?"]
    two = convert(RK_ALL, RK, TWO_CLASS)
    assert [TWO_CLASS.label(c) for c in two] == ["W", "Sleep", "Sleep", "Sleep", "Sleep", "Sleep", "?"]
    aasm = np.array([0, 1, 2, 3, 4, UNSCORED])
    assert (
        convert(aasm, AASM, TWO_CLASS).tolist()
        == convert(convert(aasm, AASM, THREE_CLASS), THREE_CLASS, TWO_CLASS).tolist()
    )


def test_nrem_rem_makes_wake_unscored():
    out = convert(RK_ALL, RK, NREM_REM)
    assert [NREM_REM.label(c) for c in out] == ["?", "NREM", "NREM", "NREM", "NREM", "REM", "?"]


def test_convert_refuses_finer_target_and_bad_codes():
    with pytest.raises(ValueError, match="coarser"):
        convert(np.array([0, 1]), AASM, RK)
    with pytest.raises(ValueError, match="outside"):
        convert(np.array([0, 5]), AASM, THREE_CLASS)


@pytest.mark.parametrize(
    ("text", "vocab", "code"),
    [
        ("Sleep stage W", None, 0),
        ("Sleep stage 1", "rk", 1),
        ("Sleep stage 2", "rk", 2),
        ("Sleep stage 3", "rk", 3),
        ("Sleep stage 4", "rk", 4),
        ("Sleep stage R", None, 4),
        ("Sleep stage ?", None, UNSCORED),
        ("Movement time", None, UNSCORED),
        ("Sleep stage N1", "aasm", 1),
        ("Sleep stage N2", "aasm", 2),
        ("Sleep stage N3", "aasm", 3),
        ("  sleep   STAGE n2 ", "aasm", 2),
        ("N3", "aasm", 3),
        ("R", None, 4),
    ],
)
def test_parse_every_sleep_edf_and_hmc_string(text, vocab, code):
    assert parse_stage(text) == (vocab, code)


def test_rem_resolves_to_the_file_vocabulary():
    label_set, codes = stage_codes_from_strings(
        ["Sleep stage W", "Sleep stage 4", "Sleep stage R", "Sleep stage ?"]
    )
    assert label_set is RK
    assert codes.tolist() == [0, RK.code("S4"), RK.code("REM"), UNSCORED]
    label_set, codes = stage_codes_from_strings(["Sleep stage W", "Sleep stage N3", "Sleep stage R"])
    assert label_set is AASM
    assert codes.tolist() == [0, AASM.code("N3"), AASM.code("REM")]


def test_unknown_string_and_mixing_are_errors():
    with pytest.raises(ValueError, match=r"'Sleep stage X'.*entry 1"):
        stage_codes_from_strings(["Sleep stage W", "Sleep stage X"])
    with pytest.raises(ValueError, match="mixes R&K"):
        stage_codes_from_strings(["Sleep stage 1", "Sleep stage N2"])


def test_annotation_kinds_and_counts():
    assert is_stage_annotation("Sleep stage ?")
    assert is_stage_annotation("Movement time")
    assert not is_stage_annotation("Lights off")
    assert stage_counts(np.array([0, 0, 4, UNSCORED]), AASM) == {
        "W": 2,
        "N1": 0,
        "N2": 0,
        "N3": 0,
        "REM": 1,
        "?": 1,
    }
    assert get_label_set("3class") is THREE_CLASS
    with pytest.raises(ValueError, match="unknown label set"):
        get_label_set("nope")
