"""One-night figures and the self-contained HTML night report."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from somna.hypnogram import Hypnogram
from somna.report.figures import figure_png, plot_hypnodensity, plot_hypnogram, plot_stage_percentages
from somna.report.night import format_metric_value, write_night_report
from somna.stages import AASM, RK, THREE_CLASS, UNSCORED, LabelSet, convert

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START = datetime(2024, 3, 1, 22, 47, 13)


def _night(label_set: LabelSet, n: int = 240, seed: int = 0, start: datetime | None = START) -> Hypnogram:
    """A short synthetic night in ``label_set`` (built from stage names), with two unscored stretches."""
    rng = np.random.default_rng(seed)
    pattern = ["W"] * 10 + ["N1"] * 5 + ["N2"] * 20 + ["N3"] * 20 + ["N2"] * 10 + ["REM"] * 15
    aasm = np.array([AASM.code(s) for s in pattern * (n // len(pattern) + 1)][:n], dtype=np.int8)
    noisy = rng.random(n) < 0.1
    aasm[noisy] = rng.integers(0, AASM.n_classes, noisy.sum())
    aasm[30:34] = UNSCORED
    aasm[-3:] = UNSCORED
    if label_set is RK:
        stages = aasm.copy()
        stages[aasm == AASM.code("REM")] = RK.code("REM")
        deep = aasm == AASM.code("N3")
        stages[deep & (rng.random(n) < 0.5)] = RK.code("S4")
    else:
        stages = convert(aasm, AASM, label_set)
    return Hypnogram(stages, label_set, start=start, lights_off_s=120.0, lights_on_s=(n - 5) * 30.0)


def _probs(hypnogram: Hypnogram, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = hypnogram.label_set.n_classes
    p = rng.dirichlet(np.ones(k), size=len(hypnogram))
    scored = hypnogram.stages != UNSCORED
    p[np.flatnonzero(scored), hypnogram.stages[scored]] += 2.0
    return p / p.sum(axis=1, keepdims=True)


METRICS = {
    "tst_min": 98.5,
    "sleep_efficiency_pct": 82.08333,
    "sleep_latency_min": 4.0,
    "rem_latency_min": None,
    "waso_min": 12.25,
    "awakenings": 7,
    "label_set": "aasm",
}


@pytest.mark.parametrize("label_set", [AASM, RK, THREE_CLASS], ids=lambda s: s.name)
@pytest.mark.parametrize("start", [START, None], ids=["clock", "no-start"])
def test_figures_build_and_render_png(label_set: LabelSet, start: datetime | None) -> None:
    night = _night(label_set, start=start)
    reference = _night(label_set, seed=5, start=start)
    figures = [
        plot_hypnogram(night),
        plot_hypnogram(night, reference),
        plot_hypnodensity(_probs(night), label_set, night.epoch_s, start),
        plot_stage_percentages(night),
        plot_stage_percentages(night, reference),
    ]
    for fig in figures:
        assert isinstance(fig, Figure)
        png = figure_png(fig, dpi=40)
        assert png.startswith(PNG_MAGIC) and len(png) > 1000
    assert len(figures[1].axes) == 2


def test_every_figure_draws_into_the_callers_axes() -> None:
    from somna.report.figures import plot_bland_altman, plot_confusion_matrix

    night, reference = _night(AASM), _night(AASM, seed=5)
    fig = Figure(figsize=(12, 14))
    axes = fig.subplots(4, 2).ravel()
    calls = [
        (lambda ax: plot_hypnogram(night, ax=ax), axes[0]),
        (lambda ax: plot_hypnogram(night, reference, ax=ax), list(axes[1:3])),
        (lambda ax: plot_hypnodensity(_probs(night), AASM, ax=ax), axes[3]),
        (lambda ax: plot_stage_percentages(night, reference, ax=ax), axes[4]),
        (lambda ax: plot_confusion_matrix(np.eye(5) * 10 + 1, AASM.labels, ax=ax), axes[5]),
        (
            lambda ax: plot_bland_altman(
                [{"tst_min": 400.0}] * 3, [{"tst_min": 410.0}] * 3, ["tst_min"], ax=ax
            ),
            [axes[6]],
        ),
    ]
    for draw, target in calls:
        assert draw(target) is fig
    assert all(ax.has_data() or ax.images for ax in axes[:7])
    assert not axes[7].has_data()
    with pytest.raises(ValueError, match="needs 2 axes"):
        plot_hypnogram(night, reference, ax=axes[7])
    assert figure_png(fig, dpi=30).startswith(PNG_MAGIC)


def test_hypnogram_axis_order_and_clock_ticks() -> None:
    night = _night(AASM)
    fig = plot_hypnogram(night)
    fig.canvas.draw()
    ax = fig.axes[0]
    # top to bottom: W, REM, N1, N2, N3 (y tick labels are listed bottom-up)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["N3", "N2", "N1", "REM", "W"]
    assert all(re.fullmatch(r"\d\d:\d\d", t.get_text()) for t in ax.get_xticklabels())
    rk_ax = plot_hypnogram(_night(RK)).axes[0]
    assert [t.get_text() for t in rk_ax.get_yticklabels()] == ["S4", "S3", "S2", "S1", "REM", "W"]


def test_hypnodensity_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="n_epochs, 5"):
        plot_hypnodensity(np.zeros((10, 3)), AASM)


def test_format_metric_value() -> None:
    assert format_metric_value("sleep_efficiency_pct", 82.08333) == "82.1"
    assert format_metric_value("tst_min", 98) == "98"
    assert format_metric_value("tst_min", 98.0) == "98.0"
    assert format_metric_value("rem_latency_min", None) == "–"
    assert format_metric_value("ratio", float("nan")) == "–"
    assert format_metric_value("awakenings", 7) == "7"
    assert format_metric_value("label_set", "aasm") == "aasm"


def _data_uris(text: str) -> list[str]:
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)


def _assert_self_contained(text: str) -> None:
    lowered = text.lower()
    assert 'src="http' not in lowered and "src='http" not in lowered
    assert "<link" not in lowered
    assert "<script" not in lowered
    assert "url(" not in lowered and "@import" not in lowered


def test_report_without_reference(tmp_path: Path) -> None:
    night = _night(AASM)
    path = write_night_report(
        tmp_path / "night.html",
        night,
        _probs(night),
        METRICS,
        "Night of subject 7",
        notes=["the first 19 epochs have a zero-padded context"],
        info={"model": "tiny-cnn v3"},
    )
    text = path.read_text(encoding="utf-8")
    _assert_self_contained(text)
    import base64

    uris = _data_uris(text)
    assert len(uris) >= 3
    assert all(base64.b64decode(u).startswith(PNG_MAGIC) for u in uris)
    for name in METRICS:
        assert name in text
    for value in ("98.5", "82.1", "4.0", "12.2", "–", "tiny-cnn v3", "zero-padded context"):
        assert value in text
    assert 'id="agreement"' not in text and "Cohen" not in text
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_with_reference(tmp_path: Path) -> None:
    night = _night(AASM)
    reference = _night(AASM, seed=3)
    scored_metrics = {**METRICS, "tst_min": 101.0, "awakenings": 9}
    path = write_night_report(
        tmp_path / "night.html",
        night,
        _probs(night),
        METRICS,
        "Night with reference",
        reference=reference,
        reference_metrics=scored_metrics,
    )
    text = path.read_text(encoding="utf-8")
    _assert_self_contained(text)
    assert len(_data_uris(text)) >= 3
    assert 'id="agreement"' in text and "Cohen" in text and "Macro-F1" in text
    assert 'class="confusion"' in text and 'class="per-class"' in text
    assert "Scored" in text and "Estimated" in text and "Difference" in text
    assert "−2.5" in text  # TST difference, estimate − scored
    assert "−2<" in text  # awakenings difference stays an integer


def test_report_reference_in_finer_label_set(tmp_path: Path) -> None:
    """An R&K reference is converted to the AASM estimate's stages for agreement."""
    night = _night(AASM)
    path = write_night_report(tmp_path / "n.html", night, None, {}, "RK ref", reference=_night(RK, seed=2))
    text = path.read_text(encoding="utf-8")
    assert 'id="agreement"' in text and len(_data_uris(text)) == 2


def test_report_escapes_text(tmp_path: Path) -> None:
    night = _night(THREE_CLASS, start=None)
    title = "<script>alert('x')</script> & co"
    path = write_night_report(
        tmp_path / "n.html",
        night,
        _probs(night),
        {"<b>odd</b>_min": 3.0},
        title,
        notes="<img src=x onerror=alert(1)>",
    )
    text = path.read_text(encoding="utf-8")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in text
    assert "<b>odd</b>" not in text and "&lt;b&gt;odd&lt;/b&gt;" in text
    assert "<img src=x" not in text
