"""A one-night staging report as ONE self-contained HTML page.

The page needs nothing but itself: figures are embedded as base64 PNG data URIs, the CSS is inline,
there is no JavaScript and no link to anything outside the file, so it can be mailed, archived or
opened offline years later. It is laid out to print on A4. Every piece of text that comes from the
caller (title, file names, metric names, notes …) is HTML-escaped.

Typical use::

    write_night_report(
        "runs/night/report.html", hypnogram, probs, sleep_metrics(hypnogram), "SC4001 night 1",
        reference=scored, reference_metrics=sleep_metrics(scored), info={"model": "tiny-cnn v3"},
    )
"""

from __future__ import annotations

import base64
import html
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from somna import __version__
from somna.evaluation.sleep_metrics import METRIC_LABELS
from somna.hypnogram import Hypnogram
from somna.report.figures import figure_png, plot_hypnodensity, plot_hypnogram, plot_stage_percentages
from somna.stages import UNSCORED
from somna.storage import atomic_write

__all__ = ["format_metric_value", "write_night_report"]

_DASH = "–"
_UNITS = (("_min", "min"), ("_pct", "%"), ("_percent", "%"), ("_h", "h"), ("_s", "s"))
_ACRONYMS = {
    "tst", "tib", "spt", "trt", "waso", "aasm", "se", "sol", "lps", "rem", "nrem", "n1", "n2", "n3",
    "s1", "s2", "s3", "s4", "ahi", "rdi",
}  # fmt: skip
_COMPACT_ROWS = 14  # a metrics table longer than this is split into two side-by-side columns

_CSS = """
:root { --ink: #1d1d1f; --muted: #666; --rule: #d0d0d0; --accent: #0072b2; }
* { box-sizing: border-box; }
body { font: 13px/1.4 "Helvetica Neue", Arial, sans-serif; color: var(--ink); margin: 0 auto;
       max-width: 1120px; padding: 18px 22px; }
h1 { font-size: 21px; margin: 0 0 2px; }
h2 { font-size: 15px; margin: 16px 0 6px; padding-bottom: 2px; border-bottom: 1px solid var(--rule); }
h3 { font-size: 13px; margin: 8px 0 4px; }
.sub { color: var(--muted); font-size: 11px; margin-bottom: 8px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { padding: 2px 8px; text-align: left; vertical-align: top; }
thead th { border-bottom: 1px solid #999; font-weight: 600; }
tbody tr:nth-child(even) { background: #f6f6f6; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.unit { color: var(--muted); padding-left: 2px; }
code { font-size: 10px; color: var(--muted); }
.info th { color: var(--muted); font-weight: normal; padding-left: 0; white-space: nowrap; }
.info { margin-bottom: 4px; }
.grid { display: flex; flex-wrap: wrap; gap: 10px 24px; align-items: flex-start; }
figure { margin: 4px 0; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 11px; }
.notes { margin: 6px 0; padding: 6px 10px; background: #fff8e5; border-left: 3px solid #e69f00; }
.notes ul { margin: 0; padding-left: 18px; }
.headline { display: flex; gap: 12px; margin: 4px 0 8px; }
.card { border: 1px solid var(--rule); border-radius: 4px; padding: 4px 12px; min-width: 110px; }
.card .v { font-size: 20px; font-weight: 600; }
.card .k { color: var(--muted); font-size: 11px; }
table.confusion td { text-align: center; min-width: 54px; border: 1px solid #fff; }
table.confusion td small { display: block; font-size: 10px; }
table.confusion td.diag { font-weight: 700; }
footer { color: var(--muted); font-size: 10px; margin-top: 14px; border-top: 1px solid var(--rule); }
@page { size: A4; margin: 9mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10px; }
  h1 { font-size: 16px; } h2 { font-size: 12px; margin-top: 8px; }
  table { font-size: 9.5px; }
  td code { display: none; }
  section, figure, table { break-inside: avoid; page-break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _e(value: Any) -> str:
    """HTML-escaped ``str(value)``."""
    return html.escape(str(value), quote=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _unit(name: str) -> str:
    """Unit implied by a metric name's suffix (``_min`` → min, ``_pct`` → %, …); empty if none."""
    for suffix, unit in _UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def format_metric_value(name: str, value: Any) -> str:
    """Format one metric for display.

    Parameters
    ----------
    name : str
        Metric name; a ``_min``, ``_pct``/``_percent`` or ``_h`` suffix means one decimal.
    value : Any
        A number, ``None``, a bool or a string.

    Returns
    -------
    str
        ``"–"`` for ``None``, NaN and infinities; integers as they are; minutes, percentages and hours
        with one decimal; other floats with about three significant digits; anything else as ``str``.
    """
    if value is None:
        return _DASH
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):d}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            return _DASH
        if _unit(name) in {"min", "%", "h"}:
            return f"{v:.1f}"
        if v.is_integer() and abs(v) < 1e9:
            return f"{v:.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3f}"
    return str(value)


def _signed(name: str, value: float) -> str:
    """A difference with its sign (``+1.5``, ``−2``); one that rounds to zero gets none."""
    text = format_metric_value(name, abs(value))
    if text == _DASH or not text.strip("0."):
        return text
    return ("+" if value > 0 else "−") + text


def _pretty_name(name: str) -> str:
    """``"sleep_latency_min"`` → ``"Sleep latency"``, ``"tst_min"`` → ``"TST"``, ``"n1_pct"`` → ``"N1"``."""
    stem = name
    for suffix, _ in _UNITS:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    words = [w.upper() if w.lower() in _ACRONYMS else w for w in stem.split("_") if w]
    if not words:
        return name
    first = words[0]
    words[0] = first if first.isupper() else first[:1].upper() + first[1:]
    return " ".join(words)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_html(fig: Figure, alt: str, caption: str = "", dpi: int = 110, width: str = "100%") -> str:
    img = f'<img src="{_data_uri(figure_png(fig, dpi=dpi))}" alt="{_e(alt)}" style="width:{width}">'
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f"<figure>{img}{cap}</figure>"


def _chunks(rows: list[str], size: int) -> list[list[str]]:
    if len(rows) <= size:
        return [rows]
    half = math.ceil(len(rows) / 2)
    return [rows[:half], rows[half:]]


def _label(name: str) -> str:
    """A metric's name as the terminal prints it (:data:`METRIC_LABELS`), else one made from its key."""
    return METRIC_LABELS.get(name) or _pretty_name(name)


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    rows = [
        f'<tr><td title="{_e(name)}">{_e(_label(name))}</td>'
        f'<td class="num">{_e(format_metric_value(name, value))}</td>'
        f'<td class="unit">{_e(_unit(name))}</td></tr>'
        for name, value in metrics.items()
    ]
    if not rows:
        return '<p class="sub">No metrics given.</p>'
    head = '<thead><tr><th>Metric</th><th class="num">Value</th><th></th></tr></thead>'
    tables = [
        f'<table class="metrics">{head}<tbody>{"".join(c)}</tbody></table>'
        for c in _chunks(rows, _COMPACT_ROWS)
    ]
    return '<div class="grid">' + "".join(tables) + "</div>"


def _comparison_table(scored: Mapping[str, Any], estimated: Mapping[str, Any]) -> str:
    names = list(estimated) + [name for name in scored if name not in estimated]
    rows = []
    for name in names:
        s, m = scored.get(name), estimated.get(name)
        diff = _DASH
        if _is_number(s) and _is_number(m) and math.isfinite(float(s)) and math.isfinite(float(m)):
            d = float(m) - float(s)
            diff = _signed(
                name, int(d) if isinstance(s, numbers.Integral) and isinstance(m, numbers.Integral) else d
            )
        rows.append(
            f'<tr><td title="{_e(name)}">{_e(_label(name))}</td>'
            f'<td class="num">{_e(format_metric_value(name, s))}</td>'
            f'<td class="num">{_e(format_metric_value(name, m))}</td>'
            f'<td class="num">{_e(diff)}</td><td class="unit">{_e(_unit(name))}</td></tr>'
        )
    head = (
        '<thead><tr><th>Metric</th><th class="num">Scored</th><th class="num">Estimated</th>'
        '<th class="num">Difference</th><th></th></tr></thead>'
    )
    tables = [
        f'<table class="comparison">{head}<tbody>{"".join(c)}</tbody></table>'
        for c in _chunks(rows, _COMPACT_ROWS)
    ]
    return '<div class="grid">' + "".join(tables) + "</div>"


def _duration(seconds: float) -> str:
    minutes = seconds / 60.0
    return f"{int(minutes // 60)} h {minutes % 60:04.1f} min ({minutes:.1f} min)"


def _info_rows(hypnogram: Hypnogram, info: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    label_set = hypnogram.label_set
    unscored = int(np.sum(hypnogram.stages == UNSCORED))
    epochs = f"{len(hypnogram)} × {hypnogram.epoch_s:g} s"
    if unscored:
        epochs += f" ({unscored} without a stage)"
    rows = [
        ("File", Path(hypnogram.source).name if hypnogram.source is not None else _DASH),
        ("Start", f"{hypnogram.start:%Y-%m-%d %H:%M:%S}" if hypnogram.start is not None else "unknown"),
        ("Duration", _duration(hypnogram.duration_s)),
        ("Epochs", epochs),
        ("Label set", f"{label_set.name} ({', '.join(label_set.labels)})"),
    ]
    tib = hypnogram.info.get("time_in_bed")
    if tib:
        rows.append(("Time in bed", tib["description"]))
    else:
        lights = [
            f"{name} at {seconds / 60.0:.1f} min"
            for name, seconds in (
                ("lights off", hypnogram.lights_off_s),
                ("lights on", hypnogram.lights_on_s),
            )
            if seconds is not None
        ]
        rows.append(("Time in bed", ", ".join(lights) if lights else "the whole recording (no lights given)"))
    extra = dict(info or {})
    rows.append(("Model", str(extra.pop("model", _DASH))))
    rows.extend((str(key), _DASH if value is None else str(value)) for key, value in extra.items())
    return rows


def _percent(value: Any) -> str:
    return _DASH if value is None else f"{100.0 * float(value):.1f} %"


def _ratio(value: Any) -> str:
    return _DASH if value is None else f"{float(value):.3f}"


def _confusion_table(confusion: Sequence[Sequence[float]], labels: Sequence[str]) -> str:
    counts = np.asarray(confusion, dtype=float)
    totals = counts.sum(axis=1)
    head = "".join(f'<th class="num">{_e(label)}</th>' for label in labels)
    rows = []
    for i, label in enumerate(labels):
        cells = []
        for j in range(len(labels)):
            share = counts[i, j] / totals[i] if totals[i] > 0 else None
            alpha = 0.0 if share is None else 0.08 + 0.87 * share
            ink = "#fff" if alpha > 0.55 else "#1d1d1f"
            pct = _DASH if share is None else f"{100 * share:.1f} %"
            cls = ' class="diag"' if i == j else ""
            cells.append(
                f'<td{cls} style="background: rgba(0, 114, 178, {alpha:.2f}); color: {ink}">'
                f"{int(counts[i, j])}<small>{_e(pct)}</small></td>"
            )
        rows.append(f'<tr><th>{_e(label)}</th><td class="num">{int(totals[i])}</td>{"".join(cells)}</tr>')
    return (
        '<table class="confusion"><thead><tr><th>Scored ↓ / estimated →</th><th class="num">n</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="sub">Epoch counts; small print: % of the scored row (diagonal = recall).</p>'
    )


def _per_class_table(per_class: Mapping[str, Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{_e(label)}</td><td class='num'>{_ratio(v.get('precision'))}</td>"
        f"<td class='num'>{_ratio(v.get('recall'))}</td><td class='num'>{_ratio(v.get('f1'))}</td>"
        f"<td class='num'>{_e(v.get('support', _DASH))}</td></tr>"
        for label, v in per_class.items()
    )
    head = (
        '<thead><tr><th>Stage</th><th class="num">Precision</th><th class="num">Recall</th>'
        '<th class="num">F1</th><th class="num">Support</th></tr></thead>'
    )
    return f'<table class="per-class">{head}<tbody>{rows}</tbody></table>'


def _agreement_for(hypnogram: Hypnogram, reference: Hypnogram) -> dict[str, Any]:
    from somna.evaluation.agreement import epoch_agreement

    scored = reference if reference.label_set == hypnogram.label_set else reference.to(hypnogram.label_set)
    if len(scored) != len(hypnogram):
        raise ValueError(
            f"the reference has {len(scored)} epochs but the hypnogram has {len(hypnogram)}; "
            "align them or pass `agreement` computed on the aligned epochs"
        )
    return epoch_agreement(scored.stages, hypnogram.stages, hypnogram.label_set)


def _agreement_section(
    agreement: Mapping[str, Any], scored_metrics: Mapping[str, Any] | None, estimated: Mapping[str, Any]
) -> str:
    cards = [
        ("Accuracy", _percent(agreement.get("accuracy"))),
        ("Macro-F1", _ratio(agreement.get("macro_f1"))),
        ("Cohen's κ", _ratio(agreement.get("cohen_kappa"))),
        ("Epochs compared", _e(agreement.get("n_epochs", _DASH))),
    ]
    headline = "".join(
        f'<div class="card"><div class="v">{v}</div><div class="k">{_e(k)}</div></div>' for k, v in cards
    )
    parts = [
        '<section id="agreement"><h2>Agreement with the scored hypnogram</h2>',
        f'<div class="headline">{headline}</div>',
    ]
    if agreement.get("n_unscored"):
        parts.append(
            f'<p class="sub">{_e(agreement["n_unscored"])} epochs without a scored stage are excluded.</p>'
        )
    blocks = []
    if agreement.get("per_class"):
        blocks.append(f"<div><h3>Per stage</h3>{_per_class_table(agreement['per_class'])}</div>")
    if agreement.get("confusion") is not None and agreement.get("labels"):
        matrix = _confusion_table(agreement["confusion"], agreement["labels"])
        blocks.append(f"<div><h3>Confusion matrix</h3>{matrix}</div>")
    parts.append(f'<div class="grid">{"".join(blocks)}</div>')
    if scored_metrics is not None:
        parts.append(
            f"<h3>Sleep metrics, scored vs estimated</h3>{_comparison_table(scored_metrics, estimated)}"
        )
    parts.append("</section>")
    return "".join(parts)


def write_night_report(
    path: str | Path,
    hypnogram: Hypnogram,
    probs: np.ndarray | None,
    metrics: Mapping[str, Any],
    title: str,
    *,
    reference: Hypnogram | None = None,
    agreement: Mapping[str, Any] | None = None,
    reference_metrics: Mapping[str, Any] | None = None,
    notes: Iterable[str] | str | None = None,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write the report of one night as a single self-contained HTML file (atomically).

    The page holds the title and recording information, the step hypnogram (with the scored one
    above it when given), the hypnodensity, the stage percentages and the metrics table. With a
    ``reference`` (or an ``agreement``) an agreement section follows: accuracy, macro-F1 and κ,
    per-stage precision/recall/F1, the confusion matrix (as an HTML table) and, when
    ``reference_metrics`` is given, a scored-vs-estimated metrics table.

    Parameters
    ----------
    path : str | Path
        Output ``.html`` file.
    hypnogram : Hypnogram
        The estimated hypnogram.
    probs : np.ndarray | None
        Stage probabilities, shape (n_epochs, n_classes) in the code order of
        ``hypnogram.label_set``; ``None`` leaves the hypnodensity out.
    metrics : Mapping[str, Any]
        Sleep metrics of ``hypnogram``, name → number, ``None`` or string, shown in the given order
        (see :func:`format_metric_value` for the formatting).
    title : str
        Page title.
    reference : Hypnogram | None
        The scored hypnogram of the same night. It is drawn above the estimate; agreement is computed
        from it (converted to ``hypnogram``'s label set when finer) unless ``agreement`` is given.
    agreement : Mapping[str, Any] | None
        Result of :func:`somna.evaluation.epoch_agreement` (reference as ``y_true``); shown as given.
    reference_metrics : Mapping[str, Any] | None
        Sleep metrics of the reference, for the scored-vs-estimated table (estimate − scored).
    notes : iterable of str | str | None
        Free-text lines shown under the recording information (a single string is one line).
    info : Mapping[str, Any] | None
        Extra recording-information rows; the key ``"model"`` fills the "Model" row.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If ``probs`` does not match the label set, or the reference and the hypnogram differ in length
        (and no ``agreement`` is given).
    """
    path = Path(path)
    if agreement is None and reference is not None:
        agreement = _agreement_for(hypnogram, reference)
    note_lines = [notes] if isinstance(notes, str) else list(notes or [])

    info_table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _info_rows(hypnogram, info))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>",
        f'<div class="sub">somna {_e(__version__)} night report, '
        f"generated {datetime.now():%Y-%m-%d %H:%M}</div>",
        f'<table class="info"><tbody>{info_table}</tbody></table></header>',
    ]
    if note_lines:
        items = "".join(f"<li>{_e(line)}</li>" for line in note_lines)
        parts.append(f'<div class="notes"><strong>Notes</strong><ul>{items}</ul></div>')

    parts.append('<section id="hypnogram"><h2>Hypnogram</h2>')
    parts.append(
        _figure_html(
            plot_hypnogram(hypnogram, reference),
            "Step hypnogram",
            "REM as a thick red bar; grey bands: epochs without a stage; shaded: outside time in bed, "
            "between lights off and lights on (dashed; marked 'estimated' when no source gave them).",
        )
    )
    if probs is not None:
        parts.append(
            _figure_html(
                plot_hypnodensity(probs, hypnogram.label_set, hypnogram.epoch_s, hypnogram.start),
                "Hypnodensity",
                "Estimated probability of each stage per epoch.",
            )
        )
    parts.append("</section>")
    parts.append('<section id="metrics"><h2>Sleep architecture</h2><div class="grid">')
    parts.append(
        _figure_html(
            plot_stage_percentages(hypnogram, reference), "Stage percentages", dpi=110, width="460px"
        )
    )
    parts.append(f"<div>{_metrics_table(metrics)}</div></div></section>")
    if agreement is not None:
        parts.append(_agreement_section(agreement, reference_metrics, metrics))
    parts.append(
        "<footer>Self-contained page: figures are embedded; nothing is loaded from elsewhere.</footer>"
    )
    parts.append("</body></html>\n")
    text = "".join(parts)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
