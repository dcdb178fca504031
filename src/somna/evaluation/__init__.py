"""Evaluation of sleep staging: epoch-by-epoch agreement, reports and figures.

Typical use::

    pooled = epoch_agreement(y_true, y_pred, AASM)
    per_subject = per_subject_agreement(y_true, y_pred, subject_ids, AASM)
    print(format_agreement_table(pooled))
    write_evaluation_report("runs/eval", pooled, per_subject, extra={"config": config})
"""

from somna.evaluation.agreement import epoch_agreement, mean_sd, per_subject_agreement
from somna.evaluation.figures import plot_confusion_matrix
from somna.evaluation.report import format_agreement_table, format_comparison_table, write_evaluation_report

__all__ = [
    "epoch_agreement",
    "format_agreement_table",
    "format_comparison_table",
    "mean_sd",
    "per_subject_agreement",
    "plot_confusion_matrix",
    "write_evaluation_report",
]
