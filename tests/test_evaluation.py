"""Tests of somna.evaluation: agreement metrics against hand-computed values, reports and figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from somna.evaluation.agreement import epoch_agreement, mean_sd, per_subject_agreement
from somna.report.figures import plot_confusion_matrix, save_figure
from somna.report.run import format_agreement_table, format_comparison_table, write_evaluation_report
from somna.stages import AASM, RK, THREE_CLASS, TWO_CLASS, UNSCORED

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _aasm(*names: str) -> list[int]:
    return [UNSCORED if n == "?" else AASM.code(n) for n in names]


def _plain_json(value: object) -> None:
    """Assert a value holds only plain Python JSON types (no numpy scalars)."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str)
            _plain_json(v)
    elif isinstance(value, list):
        for v in value:
            _plain_json(v)
    else:
        assert value is None or type(value) in (int, float, str, bool), type(value)


# --------------------------------------------------------------------------- epoch_agreement


def test_perfect_prediction() -> None:
    y = _aasm("W", "N1", "N2", "N2", "N3", "REM", "W")
    result = epoch_agreement(y, y, AASM)
    assert result["accuracy"] == 1.0
    assert result["cohen_kappa"] == pytest.approx(1.0)
    assert result["macro_f1"] == pytest.approx(1.0)
    assert result["weighted_f1"] == pytest.approx(1.0)
    assert result["n_epochs"] == 7 and result["n_unscored"] == 0
    assert result["labels"] == list(AASM.labels) and result["label_set"] == "aasm"
    assert np.array_equal(np.diag(result["confusion"]), [2, 1, 2, 1, 1])
    assert np.allclose(result["confusion_normalised"], np.eye(AASM.n_classes))
    _plain_json(result)
    json.dumps(result, allow_nan=False)


def test_two_class_known_values() -> None:
    # Reference 4 W, 6 Sleep. Confusion (rows = reference, cols = predicted): [[3, 1], [1, 5]].
    # accuracy p_o = 8/10 = 0.8; chance p_e = (4*4 + 6*6) / 100 = 0.52
    # kappa = (0.8 - 0.52) / (1 - 0.52) = 0.28 / 0.48 = 7/12 = 0.58333...
    # W: precision 3/4, recall 3/4, F1 0.75.  Sleep: precision 5/6, recall 5/6, F1 5/6.
    # macro F1 = (0.75 + 5/6) / 2 = 19/24; weighted F1 = 0.4*0.75 + 0.6*5/6 = 0.8
    w, s = TWO_CLASS.code("W"), TWO_CLASS.code("Sleep")
    y_true = [w, w, w, w, s, s, s, s, s, s]
    y_pred = [w, w, w, s, w, s, s, s, s, s]
    r = epoch_agreement(y_true, y_pred, TWO_CLASS)
    assert r["confusion"] == [[3, 1], [1, 5]]
    assert r["accuracy"] == pytest.approx(0.8)
    assert r["cohen_kappa"] == pytest.approx(7 / 12)
    assert r["per_class"]["W"] == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4})
    assert r["per_class"]["Sleep"]["f1"] == pytest.approx(5 / 6)
    assert r["macro_f1"] == pytest.approx(19 / 24)
    assert r["weighted_f1"] == pytest.approx(0.8)
    assert np.allclose(r["confusion_normalised"], [[0.75, 0.25], [1 / 6, 5 / 6]])


def test_five_class_known_values_with_unscored_and_missing_class() -> None:
    # After dropping the two unscored reference epochs:
    #   reference  W  W  N2 N2 N3 REM
    #   predicted  W  N1 N2 N2 N2 REM
    # W: P 1/1, R 1/2, F1 2/3.  N1: never in the reference, predicted once: P 0, R 0 (0/0), F1 0.
    # N2: P 2/3, R 2/2, F1 0.8.  N3: P 0 (never predicted), R 0/1, F1 0.  REM: 1, 1, 1.
    # macro F1 over the classes in reference or prediction (all five here) = (2/3 + 0 + .8 + 0 + 1)/5
    # p_o = 4/6; reference marginals (2,0,2,1,1), predicted (1,1,3,0,1):
    # p_e = (2*1 + 0*1 + 2*3 + 1*0 + 1*1) / 36 = 9/36 = 1/4; kappa = (2/3 - 1/4) / (3/4) = 5/9
    y_true = _aasm("W", "?", "W", "N2", "N2", "N3", "?", "REM")
    y_pred = _aasm("W", "N3", "N1", "N2", "N2", "N2", "?", "REM")
    r = epoch_agreement(y_true, y_pred, AASM)
    assert r["n_epochs"] == 6 and r["n_unscored"] == 2
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["cohen_kappa"] == pytest.approx(5 / 9)
    assert r["per_class"]["W"]["f1"] == pytest.approx(2 / 3)
    assert r["per_class"]["N1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["per_class"]["N2"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["N2"]["f1"] == pytest.approx(0.8)
    assert r["per_class"]["N3"]["support"] == 1 and r["per_class"]["N3"]["f1"] == 0.0
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 1) / 5)
    assert sum(map(sum, r["confusion"])) == 6
    assert r["confusion"][AASM.code("N3")][AASM.code("N2")] == 1
    assert r["confusion_normalised"][AASM.code("N1")] == [0.0] * 5  # no support: zeros, not NaN
    assert "N2" in r["report"] and "macro avg" in r["report"]


def test_class_absent_from_both_is_reported_but_not_in_macro_f1() -> None:
    y = _aasm("W", "N2", "N2", "REM", "?")
    pred = _aasm("W", "N2", "N2", "REM", "N3")  # the N3 prediction falls on an unscored epoch
    r = epoch_agreement(y, pred, AASM)
    assert r["n_epochs"] == 4 and r["n_unscored"] == 1 and r["accuracy"] == 1.0
    assert set(r["per_class"]) == set(AASM.labels)
    assert r["per_class"]["N1"]["support"] == 0 and r["per_class"]["N3"]["support"] == 0
    assert r["macro_f1"] == pytest.approx(1.0)


def test_label_set_is_taken_from_argument() -> None:
    y = [RK.code(s) for s in RK.labels]
    r = epoch_agreement(y, y, RK)
    assert list(r["per_class"]) == list(RK.labels)
    assert np.shape(r["confusion"]) == (6, 6)


def test_undefined_kappa_is_none() -> None:
    r = epoch_agreement(_aasm("N2", "N2"), _aasm("N2", "N2"), AASM)
    assert r["cohen_kappa"] is None and r["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        (_aasm("W", "N1"), _aasm("W"), "epochs"),
        (_aasm("W", "N1"), [0, 5], "y_pred"),
        (_aasm("W", "N1"), [0, UNSCORED], "y_pred"),
        (_aasm("W", "N1"), [0.0, 1.5], "integer"),
        ([0, 7], [0, 1], "y_true"),
        (_aasm("?", "?"), _aasm("W", "W"), "no scored epoch"),
    ],
)
def test_invalid_input_raises(y_true: list, y_pred: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        epoch_agreement(y_true, y_pred, AASM)


# --------------------------------------------------------------------------- per subject


def test_mean_sd() -> None:
    assert mean_sd([1.0, 3.0]) == pytest.approx((2.0, math.sqrt(2.0)))  # ddof=1
    assert mean_sd([0.7]) == (0.7, 0.0)
    assert mean_sd([0.5, None, float("nan"), 1.0]) == pytest.approx((0.75, math.sqrt(0.125)))
    with pytest.raises(ValueError):
        mean_sd([None])


def test_per_subject_mean_sd_known_case() -> None:
    # Subject "a" (two nights pooled): perfect, accuracy 1, kappa 1; no N3 in its reference.
    # Subject "b": reference W W N3 N3, predicted W N3 W N3 -> accuracy 0.5,
    #   p_e = (2*2 + 2*2)/16 = 0.5 -> kappa 0; F1 W = F1 N3 = 0.5.
    # accuracy mean 0.75, sd (ddof=1) = sqrt(2 * 0.25**2 / 1) = 0.353553...
    # N3 F1 comes from "b" alone (absent from a's reference): mean 0.5, sd 0, n 1.
    y_true = _aasm("W", "N2", "REM") + _aasm("N2", "W") + _aasm("W", "W", "N3", "N3", "?")
    y_pred = _aasm("W", "N2", "REM") + _aasm("N2", "W") + _aasm("W", "N3", "W", "N3", "W")
    ids = ["a"] * 5 + ["b"] * 5
    out = per_subject_agreement(y_true, y_pred, ids, AASM)
    assert list(out["subjects"]) == ["a", "b"]
    assert out["subjects"]["a"]["n_epochs"] == 5
    assert out["subjects"]["b"]["n_unscored"] == 1
    s = out["summary"]
    assert s["n_subjects"] == 2
    assert s["accuracy"]["mean"] == pytest.approx(0.75)
    assert s["accuracy"]["sd"] == pytest.approx(math.sqrt(0.125))
    assert s["cohen_kappa"]["mean"] == pytest.approx(0.5)
    assert s["per_class_f1"]["N3"] == pytest.approx({"mean": 0.5, "sd": 0.0, "n": 1})
    assert s["per_class_f1"]["W"]["n"] == 2 and s["per_class_f1"]["W"]["mean"] == pytest.approx(0.75)
    assert s["per_class_f1"]["N1"] == {"mean": None, "sd": None, "n": 0}
    _plain_json(out)


def test_per_subject_single_subject_sd_zero_and_excluded() -> None:
    out = per_subject_agreement(_aasm("W", "N2", "?"), _aasm("W", "N1", "W"), [7, 7, 8], AASM)
    assert list(out["subjects"]) == ["7"] and out["excluded_subjects"] == ["8"]
    assert out["summary"]["accuracy"] == {"mean": 0.5, "sd": 0.0, "n": 1}
    with pytest.raises(ValueError, match="subject_ids"):
        per_subject_agreement(_aasm("W", "N2"), _aasm("W", "N2"), ["a"], AASM)


# --------------------------------------------------------------------------- reports and figures


@pytest.fixture(scope="module")
def results() -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, AASM.n_classes, 600)
    y_true[::50] = UNSCORED
    y_pred = np.where(rng.random(600) < 0.8, np.clip(y_true, 0, None), rng.integers(0, AASM.n_classes, 600))
    ids = np.repeat(["SC4001", "SC4011", "SC4021"], 200)
    return epoch_agreement(y_true, y_pred, AASM), per_subject_agreement(y_true, y_pred, ids, AASM)


def test_plot_confusion_matrix_png(tmp_path, results) -> None:
    pooled, _ = results
    figure = plot_confusion_matrix(pooled["confusion"], pooled["labels"], title="t")
    assert len(figure.axes) >= 2  # counts and row-normalised panels (plus colour bars)
    path = save_figure(figure, tmp_path / "cm.png")
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2]], ["W", "N1"])


def test_write_evaluation_report(tmp_path, results) -> None:
    pooled, per_subject = results
    paths = write_evaluation_report(
        tmp_path / "eval", pooled, per_subject, title="Test run", extra={"config": {"seed": np.int64(3)}}
    )
    assert set(paths) == {"json", "markdown", "figure"}
    assert all(p.is_file() for p in paths.values())
    assert paths["figure"].name == "confusion_matrix.png"
    png = paths["figure"].read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 10_000

    doc = json.loads(paths["json"].read_text())
    assert doc["pooled"]["accuracy"] == pytest.approx(pooled["accuracy"])
    assert set(doc["per_subject"]["subjects"]) == {"SC4001", "SC4011", "SC4021"}
    assert doc["extra"] == {"config": {"seed": 3}}

    md = paths["markdown"].read_text()
    assert md.startswith("# Test run")
    for number in (pooled["accuracy"], pooled["macro_f1"], pooled["cohen_kappa"]):
        assert f"{number:.3f}" in md
    n2 = pooled["per_class"]["N2"]
    assert f"| N2 | {n2['precision']:.3f} | {n2['recall']:.3f} | {n2['f1']:.3f} | {n2['support']} |" in md
    w_row = pooled["confusion"][0]
    assert "| W | " + " | ".join(str(v) for v in w_row) + f" | {sum(w_row)} |" in md
    assert f"{100 * pooled['confusion_normalised'][0][0]:.1f}" in md
    acc = per_subject["summary"]["accuracy"]
    assert f"{acc['mean']:.3f} ± {acc['sd']:.3f}" in md
    assert "SC4011" in md and "```text" in md and "macro avg" in md and '"seed": 3' in md


def test_write_evaluation_report_without_per_subject(tmp_path, results) -> None:
    pooled, _ = results
    paths = write_evaluation_report(tmp_path, pooled)
    md = paths["markdown"].read_text()
    assert "Per subject" not in md and "# Evaluation" in md
    assert json.loads(paths["json"].read_text())["per_subject"] is None


def test_format_agreement_table(results) -> None:
    pooled, _ = results
    text = format_agreement_table(pooled)
    assert f"{pooled['accuracy']:.3f}" in text and f"{pooled['cohen_kappa']:.3f}" in text
    for label in AASM.labels:
        assert label in text
    assert "rows = reference" in text


def test_format_comparison_table(results) -> None:
    pooled, per_subject = results
    three = epoch_agreement([0, 1, 2], [0, 1, 1], THREE_CLASS)
    table = format_comparison_table(
        {"EEG": pooled, "EEG+EOG": per_subject["subjects"]["SC4001"], "3c": three}
    )
    lines = table.splitlines()
    assert len(lines) == 4
    for name in ("EEG", "EEG+EOG", "3c"):
        assert any(line.startswith(name) for line in lines[1:])
    assert "F1 W" in lines[0] and "F1 N2" not in lines[0]  # only W is a class of every row
    assert f"{pooled['macro_f1']:.3f}" in lines[1]
    with pytest.raises(ValueError):
        format_comparison_table({})
