"""Tests of somna.evaluation.metric_agreement: bias/LoA/MAE/r on hand-made numbers, Bland–Altman PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from somna.evaluation.metric_agreement import metric_agreement
from somna.evaluation.sleep_metrics import sleep_metrics
from somna.hypnogram import Hypnogram
from somna.io.hypnogram_files import read_hypnogram
from somna.report.figures import plot_bland_altman, save_figure
from somna.stages import AASM

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _nights(tst: list[float | None], se: list[float | None] | None = None) -> list[dict]:
    se = se if se is not None else [None] * len(tst)
    return [{"tst_min": t, "sleep_efficiency_pct": s} for t, s in zip(tst, se, strict=True)]


def test_known_bias_sd_loa_mae_and_r() -> None:
    scored = _nights([400.0, 420.0, 380.0, 450.0])
    estimated = _nights([410.0, 420.0, 395.0, 445.0])  # differences 10, 0, 15, -5
    r = metric_agreement(scored, estimated, ["tst_min"])["tst_min"]
    diffs = np.array([10.0, 0.0, 15.0, -5.0])
    sd = float(np.std(diffs, ddof=1))  # 9.1287...
    assert r["key"] == "tst_min" and r["unit"] == "min"
    assert r["n"] == 4 and r["n_skipped"] == 0
    assert r["bias"] == pytest.approx(5.0)
    assert r["sd_diff"] == pytest.approx(sd) and sd == pytest.approx(math.sqrt(250 / 3))
    assert r["loa_lower"] == pytest.approx(5.0 - 1.96 * sd)
    assert r["loa_upper"] == pytest.approx(5.0 + 1.96 * sd)
    assert r["mae"] == pytest.approx(7.5)
    assert r["pearson_r"] == pytest.approx(np.corrcoef([400, 420, 380, 450], [410, 420, 395, 445])[0, 1])
    assert r["mean_scored"] == pytest.approx(412.5) and r["mean_estimated"] == pytest.approx(417.5)
    json.dumps(r)


def test_none_skipped_and_small_n_guards() -> None:
    scored = _nights([400.0, None, 380.0, 300.0], se=[90.0, 80.0, None, None])
    estimated = _nights([390.0, 410.0, float("nan"), 310.0], se=[85.0, 80.0, 70.0, None])
    out = metric_agreement(scored, estimated, ["TST", "SE"])  # short names are accepted
    tst, se = out["TST"], out["SE"]
    assert tst["key"] == "tst_min" and tst["n"] == 2 and tst["n_skipped"] == 2
    assert tst["bias"] == pytest.approx(0.0) and tst["sd_diff"] == pytest.approx(math.sqrt(200))
    assert tst["pearson_r"] is None  # n < 3
    assert se["unit"] == "%" and se["n"] == 2 and se["n_skipped"] == 2
    one = metric_agreement(_nights([1.0, None]), _nights([3.0, 2.0]), ["tst_min"])["tst_min"]
    assert one["n"] == 1 and one["bias"] == 2.0 and one["sd_diff"] is None and one["loa_upper"] is None
    none = metric_agreement(_nights([None]), _nights([None]), ["tst_min"])["tst_min"]
    assert none["n"] == 0 and none["bias"] is None and none["mae"] is None
    flat = metric_agreement(_nights([5.0, 5.0, 5.0]), _nights([4.0, 6.0, 7.0]), ["tst_min"])["tst_min"]
    assert flat["pearson_r"] is None  # zero variance on the scored side


def test_errors() -> None:
    with pytest.raises(ValueError, match="2 scored nights but 1"):
        metric_agreement(_nights([1.0, 2.0]), _nights([1.0]), ["tst_min"])
    with pytest.raises(ValueError, match="no 'waso_min'"):
        metric_agreement(_nights([1.0]), _nights([1.0]), ["WASO"])


def _hyp(codes: list[str]) -> Hypnogram:
    return Hypnogram(np.array([AASM.code(c) for c in codes], dtype=np.int8), AASM)


def test_default_metrics_on_sleep_metrics_dicts() -> None:
    base = ["W"] * 6 + ["N1", "N2", "N2", "N3", "N3", "REM", "W", "N2", "REM", "W"]
    shifted = ["W"] * 8 + ["N2", "N2", "N3", "N3", "REM", "W", "N2", "REM"]
    no_rem = ["W"] * 4 + ["N2"] * 10 + ["W"] * 2
    scored = [sleep_metrics(_hyp(c)) for c in (base, base, no_rem)]
    estimated = [sleep_metrics(_hyp(c)) for c in (base, shifted, no_rem)]
    out = metric_agreement(scored, estimated)
    assert list(out) == [
        "tst_min",
        "sleep_efficiency_pct",
        "sleep_latency_min",
        "rem_latency_min",
        "waso_min",
    ]
    assert out["sleep_latency_min"]["bias"] == pytest.approx(1.0 / 3)  # one night +1 min
    assert out["rem_latency_min"]["n"] == 2 and out["rem_latency_min"]["n_skipped"] == 1


def test_bland_altman_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tst = rng.normal(400, 40, size=12)
    scored = [{"tst_min": float(t), "rem_latency_min": float(t / 5), "awakenings": 10} for t in tst]
    estimated = [
        {"tst_min": float(t + rng.normal(8, 10)), "rem_latency_min": None, "awakenings": 12} for t in tst
    ]
    figure = plot_bland_altman(scored, estimated, ["TST", "rem_latency_min", "awakenings"])
    assert len(figure.axes) == 3
    path = save_figure(figure, tmp_path / "f" / "ba.png")
    assert path == tmp_path / "f" / "ba.png"
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.realdata
def test_bland_altman_on_real_nights(shared_data: Path, tmp_path: Path) -> None:
    """Scored Sleep-EDF nights against the same nights with the first 20 min of sleep called W."""
    scored, estimated = [], []
    for path in sorted((shared_data / "sleep-edf-hypnograms").glob("SC4*.csv"))[:6]:
        h = read_hypnogram(path)
        m = sleep_metrics(h)
        scored.append(m)
        stages = h.stages.copy()
        onset = m["tib_first_epoch"] + int(m["sleep_onset_s"] / h.epoch_s)
        stages[onset : onset + 40] = h.label_set.code("W")
        estimated.append(sleep_metrics(Hypnogram(stages, h.label_set)))
    out = metric_agreement(scored, estimated)
    assert out["tst_min"]["bias"] < 0 and out["sleep_latency_min"]["bias"] >= 20.0
    save_figure(plot_bland_altman(scored, estimated, list(out)), tmp_path / "ba.png")
    assert (tmp_path / "ba.png").stat().st_size > 10_000
