"""Tests of somna.evaluation.sleep_metrics: hand-made nights with known answers, and YASA on real nights.

Where our definitions and YASA 0.8.1's ``yasa.sleep_statistics`` differ, and by how much on the 16 real
Sleep-EDF SC nights (whole 22-h recordings: no lights off/on) and the HMC night (lights off/on known):

* TIB — ours: epochs whose midpoint lies in [lights off, lights on), else the whole hypnogram; YASA:
  the whole array it is given (the caller crops). Equal once YASA gets our TIB epochs (HMC: 853 of
  854 epochs, lights off at 33.4 s).
* REM latency — ours ``rem_latency_min`` from sleep onset (AASM); YASA ``Lat_REM`` from the start of
  the array. ours = YASA − SOL, SOL = 320–644.5 min on Sleep-EDF, 3.5 min on HMC.
  ``rem_latency_from_lights_off_min`` equals YASA's ``Lat_REM``.
* N1/N2/N3 latencies — ours from sleep onset, YASA's from the start: ours = YASA − SOL likewise.
* WASO — ``waso_min`` = YASA's (W within SPT), equal. ``waso_aasm_min`` (AASM: W from sleep onset to
  lights on) adds the wake after the final awakening: +0 to +585 min on Sleep-EDF (long post-sleep
  wake in the recording), +5 min on HMC.
* No sleep at all — ours: SPT/WASO 0, latencies and stage % None; YASA: WASO, SOL, latencies, % NaN
  (none of the real nights; covered by the all-wake test).
* Unscored epochs — both: in TIB and SPT (so they lower SE), in no stage time, not in TST or WASO
  (YASA: Uns = -2 / Art = -1 are neither sleep nor wake). Equal (injected-unscored variant below).
* LPS, awakenings, transitions, stage shifts, S3/S4 — ours only.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from somna.evaluation.sleep_metrics import METRIC_LABELS, format_metrics_table, sleep_metrics
from somna.hypnogram import Hypnogram
from somna.io.hypnogram_files import read_hypnogram
from somna.stages import AASM, NREM_REM, RK, THREE_CLASS, TWO_CLASS, UNSCORED, LabelSet


def _hyp(spec: str, label_set: LabelSet = AASM, **kwargs: object) -> Hypnogram:
    """Hypnogram from a spec such as ``"W*3 N1 N2*4 ? REM"`` (``?`` = unscored, ``*k`` = repeat)."""
    codes: list[int] = []
    for token in spec.split():
        name, _, times = token.partition("*")
        code = UNSCORED if name == "?" else label_set.code(name)
        codes.extend([code] * (int(times) if times else 1))
    return Hypnogram(np.array(codes, dtype=np.int8), label_set, **kwargs)


def _plain_json(value: object) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _plain_json(v)
    else:
        assert value is None or type(value) in (int, float, str, bool), type(value)


def test_all_wake_night() -> None:
    m = sleep_metrics(_hyp("W*40"))
    assert m["tib_min"] == 20.0
    assert m["tst_min"] == 0.0 and m["spt_min"] == 0.0 and m["waso_min"] == 0.0
    assert m["sleep_efficiency_pct"] == 0.0
    assert m["wake_min"] == 20.0
    for key in (
        "sleep_latency_min",
        "persistent_sleep_latency_min",
        "rem_latency_min",
        "rem_latency_from_lights_off_min",
        "n1_latency_min",
        "n2_latency_min",
        "n3_latency_min",
        "sleep_maintenance_efficiency_pct",
        "n1_pct",
        "rem_pct",
        "sleep_onset_s",
    ):
        assert m[key] is None, key
    assert m["awakenings"] == 0 and m["stage_transitions"] == 0 and m["stage_shifts"] == 0
    _plain_json(m)


def test_night_without_rem() -> None:
    m = sleep_metrics(_hyp("W*2 N1 N2*6 N3*4 N2 W"))
    assert m["rem_min"] == 0.0 and m["rem_pct"] == 0.0
    assert m["rem_latency_min"] is None and m["rem_latency_from_lights_off_min"] is None
    assert m["n3_latency_min"] == 3.5  # 7 epochs after onset
    assert m["tst_min"] == 6.0 and m["nrem_pct"] == 100.0


def test_sleep_from_first_epoch() -> None:
    m = sleep_metrics(_hyp("N2*3 REM*2 W"))
    assert m["sleep_latency_min"] == 0.0
    assert m["n2_latency_min"] == 0.0 and m["n1_latency_min"] is None
    assert m["rem_latency_min"] == 1.5 == m["rem_latency_from_lights_off_min"]
    assert m["sleep_onset_s"] == 0.0 and m["sleep_end_s"] == 150.0
    assert m["waso_min"] == 0.0 and m["waso_aasm_min"] == 0.5


def test_interrupted_sleep() -> None:
    #            0 1 2  3  4  5 6 7  8 9  10  11  12 13
    m = sleep_metrics(_hyp("W W N1 N2 N2 W W N2 W N2 REM REM W W"))
    assert m["tib_min"] == 7.0
    assert m["tst_min"] == 3.5
    assert m["spt_min"] == 5.0  # epochs 2..11
    assert m["waso_min"] == 1.5  # epochs 5, 6, 8
    assert m["waso_aasm_min"] == 2.5  # plus the final wake 12, 13
    assert m["wake_min"] == 3.5
    assert m["awakenings"] == 2
    assert m["sleep_efficiency_pct"] == 50.0
    assert m["sleep_maintenance_efficiency_pct"] == 70.0
    assert m["sleep_latency_min"] == 1.0
    assert m["rem_latency_min"] == 4.0 and m["rem_latency_from_lights_off_min"] == 5.0
    assert m["n2_latency_min"] == 0.5
    assert m["n2_min"] == 2.0 and m["n2_pct"] == pytest.approx(100 * 2.0 / 3.5)
    # SPT sequence N1 N2 N2 W W N2 W N2 REM REM: 6 changes, 2 of them to lighter sleep (N2 → W twice).
    assert m["stage_transitions"] == 6
    assert m["stage_shifts"] == 2
    assert m["persistent_sleep_latency_min"] is None  # no 10-min run


def test_unscored_epochs() -> None:
    m = sleep_metrics(_hyp("? W N2*4 W ? W N2*2 ? N2 W"))
    assert m["unscored_min"] == 1.5
    assert m["tib_min"] == m["wake_min"] + m["tst_min"] + m["unscored_min"] == 7.0
    assert m["sleep_latency_min"] == 1.0  # the unscored first epoch is elapsed time
    assert m["spt_min"] == 5.5  # epochs 2..12, the unscored ones included
    assert m["waso_min"] == 1.0  # W epochs only
    assert m["awakenings"] == 1  # W ? W is one awakening; N2 ? N2 none
    assert m["sleep_efficiency_pct"] == 50.0
    assert "lower SE" in format_metrics_table(m)


def test_persistent_sleep_latency() -> None:
    m = sleep_metrics(_hyp("W*4 N1 N2*18 W N2*20 W"))
    assert m["sleep_latency_min"] == 2.0
    assert m["persistent_sleep_latency_min"] == 12.0  # run starts at epoch 24
    # An unscored epoch breaks a run just as W does.
    broken = sleep_metrics(_hyp("W*4 N2*10 ? N2*10 W"))
    assert broken["persistent_sleep_latency_min"] is None
    exact = sleep_metrics(_hyp("W N2*10 REM*10"))
    assert exact["persistent_sleep_latency_min"] == 0.5


def test_lights_off_on_cropping() -> None:
    # Sleep before lights off and after lights on is ignored.
    h = _hyp("N2*2 W*4 N1 N2*3 REM W*2 N2*5")
    m = sleep_metrics(h, lights_off_s=60.0, lights_on_s=13 * 30.0)
    assert (m["tib_first_epoch"], m["tib_stop_epoch"]) == (2, 13)
    assert m["tib_min"] == 5.5
    assert m["sleep_latency_min"] == 2.0
    assert m["tst_min"] == 2.5
    assert m["waso_aasm_min"] == 1.0 and m["waso_min"] == 0.0
    assert m["rem_latency_min"] == 2.0 and m["rem_latency_from_lights_off_min"] == 4.0
    assert m["sleep_onset_s"] == 180.0
    # The hypnogram's own lights off/on are used when no argument is given; off-grid times pick
    # the epochs whose midpoint lies inside.
    own = sleep_metrics(replace(h, lights_off_s=50.0, lights_on_s=13 * 30.0 + 10.0))
    assert {k: own[k] for k in m if not k.startswith("lights")} == {
        k: m[k] for k in m if not k.startswith("lights")
    }
    assert sleep_metrics(h)["tib_min"] == len(h) * 0.5
    with pytest.raises(ValueError, match="after lights off"):
        sleep_metrics(h, lights_off_s=300.0, lights_on_s=100.0)
    with pytest.raises(ValueError, match="no epoch"):
        sleep_metrics(h, lights_off_s=10_000.0)


_NIGHT = "W*6 S1*2 S2*10 S3*4 S4*12 S3 S2*6 W S1 S2*8 REM*10 W*2 S2*20 S3*2 S4*3 S2*4 REM*15 ? W*3"


def test_rk_matches_its_aasm_conversion() -> None:
    rk = _hyp(_NIGHT, RK)
    m_rk = sleep_metrics(rk)
    m_aasm = sleep_metrics(rk.to(AASM))
    assert m_rk["s3_min"] == 3.5 and m_rk["s4_min"] == 7.5
    assert m_rk["n3_min"] == m_rk["s3_min"] + m_rk["s4_min"]
    assert m_aasm["s3_min"] is None
    skip = {"label_set", "s3_min", "s4_min", "s3_pct", "s4_pct"}
    assert {k: v for k, v in m_rk.items() if k not in skip} == {
        k: v for k, v in m_aasm.items() if k not in skip
    }
    assert "S4 (R&K)" in format_metrics_table(m_rk)
    assert "S4 (R&K)" not in format_metrics_table(m_aasm)


def test_three_and_two_class_input() -> None:
    aasm = _hyp(_NIGHT, RK).to(AASM)
    m = sleep_metrics(aasm)
    m3 = sleep_metrics(aasm.to(THREE_CLASS))
    shared = (
        "tib_min tst_min spt_min waso_min waso_aasm_min wake_min unscored_min sleep_efficiency_pct "
        "sleep_latency_min persistent_sleep_latency_min rem_latency_min rem_latency_from_lights_off_min "
        "nrem_min rem_min rem_pct awakenings"
    ).split()
    for key in shared:
        assert m3[key] == m[key], key
    assert m3["n1_min"] is None and m3["n3_latency_min"] is None and m3["stage_shifts"] is None
    assert m3["stage_transitions"] < m["stage_transitions"]
    m2 = sleep_metrics(aasm.to(TWO_CLASS))
    for key in ("tib_min", "tst_min", "spt_min", "waso_min", "sleep_efficiency_pct", "sleep_latency_min"):
        assert m2[key] == m[key], key
    assert m2["rem_min"] is None and m2["rem_latency_min"] is None
    assert "–" in format_metrics_table(m2)
    with pytest.raises(ValueError, match="no W stage"):
        sleep_metrics(aasm.to(NREM_REM))


def test_output_is_json_ready_and_labelled() -> None:
    m = sleep_metrics(_hyp(_NIGHT, RK))
    _plain_json(m)
    assert set(METRIC_LABELS) <= set(m)
    table = format_metrics_table(m)
    assert "Total sleep time (TST)" in table and "min" in table


# --- YASA cross-check on real nights --------------------------------------------------------------

_YASA_CODES = {"W": 0, "N1": 1, "N2": 2, "N3": 3, "REM": 4}  # yasa 0.8.1: Art = -1, Uns = -2
_YASA_UNSCORED = -2
# YASA key → ours. Minutes and percentages; exact equality holds because all are multiples of
# 0.5 min and the same divisions are made.
_SAME = {
    "TIB": "tib_min",
    "SPT": "spt_min",
    "WASO": "waso_min",
    "TST": "tst_min",
    "N1": "n1_min",
    "N2": "n2_min",
    "N3": "n3_min",
    "REM": "rem_min",
    "NREM": "nrem_min",
    "%N1": "n1_pct",
    "%N2": "n2_pct",
    "%N3": "n3_pct",
    "%REM": "rem_pct",
    "%NREM": "nrem_pct",
    "SE": "sleep_efficiency_pct",
    "SME": "sleep_maintenance_efficiency_pct",
    "SOL": "sleep_latency_min",
}
# YASA latency (from the start of the array) → ours (from sleep onset): ours == YASA − SOL.
_FROM_ONSET = {"Lat_REM": "rem_latency_min", "Lat_N1": "n1_latency_min", "Lat_N2": "n2_latency_min"}


def _real_files(shared: Path) -> list[Path]:
    files = sorted((shared / "sleep-edf-hypnograms").glob("SC4*.csv"))
    assert len(files) == 16
    return [*files, shared / "hmc" / "SN001_sleepscoring.edf"]


def _yasa_stats(h: Hypnogram, m: dict) -> dict[str, float]:
    import yasa

    stages = h.to(AASM).stages[m["tib_first_epoch"] : m["tib_stop_epoch"]]  # YASA expects TIB only
    hypno = np.array([_YASA_UNSCORED if c == UNSCORED else _YASA_CODES[AASM.label(c)] for c in stages])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sleep_statistics is deprecated in 0.8
        return yasa.sleep_statistics(hypno, sf_hyp=1 / 30)


def _assert_matches_yasa(h: Hypnogram) -> None:
    m = sleep_metrics(h)
    y = _yasa_stats(h, m)
    for ykey, key in _SAME.items():
        if math.isnan(y[ykey]):
            assert m[key] is None, (key, m[key])
        else:
            assert m[key] == y[ykey], (key, m[key], y[ykey])
    for ykey, key in _FROM_ONSET.items():
        if math.isnan(y[ykey]):
            assert m[key] is None, key
        else:
            assert m[key] == y[ykey] - y["SOL"], (key, m[key], y[ykey], y["SOL"])
    lat_n3 = y["Lat_N3"]
    assert (m["n3_latency_min"] is None) if math.isnan(lat_n3) else m["n3_latency_min"] == lat_n3 - y["SOL"]
    rem_from_off = m["rem_latency_from_lights_off_min"]
    assert (rem_from_off is None) if math.isnan(y["Lat_REM"]) else rem_from_off == y["Lat_REM"]
    # Our own identities.
    assert m["waso_aasm_min"] >= m["waso_min"]
    assert m["tib_min"] == m["wake_min"] + m["tst_min"] + m["unscored_min"]


@pytest.mark.realdata
def test_matches_yasa_on_real_nights(shared_data: Path) -> None:
    for path in _real_files(shared_data):
        h = read_hypnogram(path)
        _assert_matches_yasa(h)
    hmc = read_hypnogram(shared_data / "hmc" / "SN001_sleepscoring.edf")
    m = sleep_metrics(hmc)
    assert hmc.lights_off_s is not None and m["tib_first_epoch"] == 1  # lights off at 33.4 s
    assert m["tib_min"] == pytest.approx((hmc.lights_on_s - hmc.lights_off_s) / 60, abs=0.5)


@pytest.mark.realdata
def test_matches_yasa_with_unscored_epochs(shared_data: Path) -> None:
    """Sleep-EDF's unscored epochs were dropped by the source: inject some, at both ends and in SPT."""
    rng = np.random.default_rng(0)
    for path in _real_files(shared_data)[::4]:
        h = read_hypnogram(path)
        stages = h.stages.copy()
        stages[:3] = UNSCORED
        stages[rng.choice(stages.size, size=40, replace=False)] = UNSCORED
        stages[-2:] = UNSCORED
        _assert_matches_yasa(replace(h, stages=stages))
