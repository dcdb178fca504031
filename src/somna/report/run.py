"""Evaluation reports: JSON for machines, Markdown for people, plain text for the terminal."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from somna.report.figures import plot_confusion_matrix, save_figure
from somna.storage import atomic_write, write_json_atomic

__all__ = ["format_agreement_table", "format_comparison_table", "write_evaluation_report"]

_NA = "–"


def _fmt(value: float | None, digits: int = 3) -> str:
    """A metric as text; ``None`` and NaN become an en dash."""
    if value is None or not math.isfinite(float(value)):
        return _NA
    return f"{float(value):.{digits}f}"


def _fmt_mean_sd(entry: Mapping[str, Any]) -> str:
    if entry.get("mean") is None:
        return _NA
    return f"{_fmt(entry['mean'])} ± {_fmt(entry['sd'])}"


def _to_json(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays to Python, non-finite floats to ``None``, paths to str."""
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_to_json(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]], first_left: bool = True) -> list[str]:
    """Fixed-width text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if (i == 0 and first_left) else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "l" + "r" * 50) -> list[str]:
    """Markdown pipe table; ``align`` gives one ``l``/``r`` per column."""

    def esc(cell: Any) -> str:
        return str(cell).replace("|", "\\|")

    rule = ["---:" if align[i] == "r" else ":---" for i in range(len(header))]
    return [
        "| " + " | ".join(esc(h) for h in header) + " |",
        "| " + " | ".join(rule) + " |",
        *("| " + " | ".join(esc(c) for c in row) + " |" for row in rows),
    ]


def _headline(pooled: Mapping[str, Any]) -> str:
    return (
        f"accuracy {_fmt(pooled['accuracy'])}, macro-F1 {_fmt(pooled['macro_f1'])}, "
        f"Cohen's κ {_fmt(pooled['cohen_kappa'])}"
    )


def _per_class_rows(pooled: Mapping[str, Any]) -> list[list[str]]:
    return [
        [label, _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]), str(m["support"])]
        for label, m in pooled["per_class"].items()
    ]


def _confusion_rows(pooled: Mapping[str, Any], normalised: bool) -> list[list[str]]:
    rows = []
    for label, counts, fractions in zip(
        pooled["labels"], pooled["confusion"], pooled["confusion_normalised"], strict=True
    ):
        if normalised:
            rows.append([label, *(f"{100.0 * v:.1f}" for v in fractions)])
        else:
            rows.append([label, *(str(v) for v in counts), str(sum(counts))])
    return rows


def format_agreement_table(pooled: Mapping[str, Any]) -> str:
    """The plain-text block a command line prints after an evaluation.

    Parameters
    ----------
    pooled : dict
        A result of :func:`~somna.evaluation.epoch_agreement`.

    Returns
    -------
    str
        Headline metrics, a per-class precision/recall/F1/support table and the confusion matrix
        (counts, rows = reference, columns = predicted, with row totals), without a trailing newline.
    """
    lines = [
        f"{pooled['n_epochs']} scored epochs ({pooled['n_unscored']} unscored excluded), "
        f"label set {pooled['label_set']}",
        _headline(pooled),
        "",
        *_text_table(["stage", "precision", "recall", "F1", "support"], _per_class_rows(pooled)),
        "",
        "confusion matrix (rows = reference, columns = predicted)",
        *_text_table(["ref \\ pred", *pooled["labels"], "total"], _confusion_rows(pooled, normalised=False)),
    ]
    return "\n".join(lines)


def format_comparison_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """Several results side by side, one line each (ablations, models, label sets).

    Parameters
    ----------
    rows : dict of str to dict
        Name → result of :func:`~somna.evaluation.epoch_agreement`, for example
        ``{"EEG": pooled_eeg, "EEG+EOG": pooled_eeg_eog}``; lines keep this order.

    Returns
    -------
    str
        Columns: name, accuracy, macro-F1, κ, the F1 of every class present in every row (in the
        first row's order; an en dash where a row has no reference epoch of that class) and the
        number of scored epochs, so that results on different epochs stand out.

    Raises
    ------
    ValueError
        If ``rows`` is empty.
    """
    if not rows:
        raise ValueError("format_comparison_table needs at least one result")
    results = list(rows.values())
    classes = [c for c in results[0]["per_class"] if all(c in r["per_class"] for r in results[1:])]
    header = ["", "accuracy", "macro-F1", "kappa", *(f"F1 {c}" for c in classes), "epochs"]
    body = []
    for name, r in rows.items():
        f1s = [_fmt(r["per_class"][c]["f1"]) if r["per_class"][c]["support"] > 0 else _NA for c in classes]
        body.append(
            [
                str(name),
                _fmt(r["accuracy"]),
                _fmt(r["macro_f1"]),
                _fmt(r["cohen_kappa"]),
                *f1s,
                str(r["n_epochs"]),
            ]
        )
    return "\n".join(_text_table(header, body))


def _markdown(
    pooled: Mapping[str, Any],
    per_subject: Mapping[str, Any] | None,
    title: str,
    extra: Mapping[str, Any] | None,
    figure_name: str,
    sections: Mapping[str, str] | None = None,
) -> str:
    labels = list(pooled["labels"])
    lines = [
        f"# {title}",
        "",
        "## Summary",
        "",
        f"- **Accuracy:** {_fmt(pooled['accuracy'])}",
        f"- **Macro-F1:** {_fmt(pooled['macro_f1'])}",
        f"- **Cohen's κ:** {_fmt(pooled['cohen_kappa'])}",
        f"- Weighted F1: {_fmt(pooled['weighted_f1'])}",
        f"- Epochs compared: {pooled['n_epochs']} (30 s each; {pooled['n_unscored']} epochs with an "
        f"unscored reference excluded)",
        f"- Label set: `{pooled['label_set']}` ({', '.join(labels)})",
        "",
        "Metrics are epoch by epoch and pooled over all epochs. Macro-F1 averages the stages that occur "
        "in the reference or the prediction.",
        "",
        "## Per-stage agreement",
        "",
        *_md_table(["Stage", "Precision", "Recall", "F1", "Support"], _per_class_rows(pooled)),
        "",
        "Support is the number of reference epochs of the stage; a stage with support 0 is absent from "
        "the reference and its recall and F1 are shown as 0.",
        "",
        "## Confusion matrix",
        "",
        "Rows are the reference stage, columns the predicted stage.",
        "",
        "**Epochs**",
        "",
        *_md_table(["Reference \\ Predicted", *labels, "Total"], _confusion_rows(pooled, normalised=False)),
        "",
        "**% of each reference row** (the diagonal is each stage's recall)",
        "",
        *_md_table(["Reference \\ Predicted", *labels], _confusion_rows(pooled, normalised=True)),
        "",
        f"![Confusion matrix]({figure_name})",
        "",
    ]
    if per_subject is not None:
        summary = per_subject["summary"]
        header = ["Subject", "Epochs", "Accuracy", "Macro-F1", "κ", *(f"F1 {c}" for c in labels)]
        rows = []
        for subject, r in per_subject["subjects"].items():
            f1s = [_fmt(m["f1"]) if m["support"] > 0 else _NA for m in r["per_class"].values()]
            rows.append(
                [
                    subject,
                    str(r["n_epochs"]),
                    _fmt(r["accuracy"]),
                    _fmt(r["macro_f1"]),
                    _fmt(r["cohen_kappa"]),
                    *f1s,
                ]
            )
        rows.append(
            [
                f"**mean ± sd (n={summary['n_subjects']})**",
                "",
                *(_fmt_mean_sd(summary[m]) for m in ("accuracy", "macro_f1", "cohen_kappa")),
                *(_fmt_mean_sd(summary["per_class_f1"][c]) for c in labels),
            ]
        )
        lines += [
            "## Per subject",
            "",
            f"Over {summary['n_subjects']} subjects (each subject's nights pooled): "
            f"accuracy {_fmt_mean_sd(summary['accuracy'])}, "
            f"macro-F1 {_fmt_mean_sd(summary['macro_f1'])}, "
            f"κ {_fmt_mean_sd(summary['cohen_kappa'])} (mean ± sd).",
            "",
            *_md_table(header, rows),
            "",
            "A dash marks a stage absent from that subject's reference; such subjects are left out of "
            "that stage's mean rather than counted as F1 = 0.",
            "",
        ]
        if per_subject.get("excluded_subjects"):
            lines += [
                "Excluded (no scored epoch): " + ", ".join(per_subject["excluded_subjects"]),
                "",
            ]
    for heading, body in (sections or {}).items():
        lines += [f"## {heading}", "", body.rstrip(), ""]
    lines += ["## Classification report", "", "```text", pooled["report"].rstrip(), "```", ""]
    if extra:
        lines += [
            "## Run configuration",
            "",
            "```json",
            json.dumps(_to_json(extra), indent=2, default=str),
            "```",
            "",
        ]
    return "\n".join(lines)


def write_evaluation_report(
    out_dir: str | Path,
    pooled: Mapping[str, Any],
    per_subject: Mapping[str, Any] | None = None,
    title: str = "Evaluation",
    extra: Mapping[str, Any] | None = None,
    sections: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write the JSON, Markdown and figure of an evaluation into one folder, each file atomically.

    Parameters
    ----------
    out_dir : str | Path
        Folder to write into (created if needed); existing report files are replaced.
    pooled : dict
        Result of :func:`~somna.evaluation.epoch_agreement` over all test epochs.
    per_subject : dict, optional
        Result of :func:`~somna.evaluation.per_subject_agreement`; adds a per-subject section.
    title : str
        Report and figure title.
    extra : dict, optional
        Anything else to keep with the results (run configuration, checkpoint, data split); stored
        in the JSON and shown at the end of the Markdown.
    sections : dict of str to str, optional
        More Markdown sections (heading → body), placed before the classification report.

    Returns
    -------
    dict of str to Path
        ``{"json": .../evaluation.json, "markdown": .../evaluation.md,
        "figure": .../confusion_matrix.png}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = save_figure(
        plot_confusion_matrix(pooled["confusion"], pooled["labels"], title=title),
        out_dir / "confusion_matrix.png",
    )
    document = {
        "title": title,
        "pooled": pooled,
        "per_subject": per_subject,
        "extra": extra if extra is not None else {},
    }
    json_path = write_json_atomic(out_dir / "evaluation.json", _to_json(document))
    text = _markdown(pooled, per_subject, title, extra, figure.name, sections)
    md_path = atomic_write(out_dir / "evaluation.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return {"json": json_path, "markdown": md_path, "figure": figure}
