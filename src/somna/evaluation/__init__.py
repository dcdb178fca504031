"""Evaluation of sleep staging: epoch-by-epoch agreement, reports and figures.

Typical use::

    pooled = epoch_agreement(y_true, y_pred, AASM)
    per_subject = per_subject_agreement(y_true, y_pred, subject_ids, AASM)
    print(format_agreement_table(pooled))
    write_evaluation_report("runs/eval", pooled, per_subject, extra={"config": config})
"""

from somna.evaluation.agreement import epoch_agreement, mean_sd, per_subject_agreement
from somna.evaluation.figures import plot_confusion_matrix
from somna.evaluation.human_ceiling import dreem_inter_scorer_agreement, format_human_ceiling
from somna.evaluation.metric_agreement import metric_agreement, plot_bland_altman
from somna.evaluation.report import format_agreement_table, format_comparison_table, write_evaluation_report
from somna.evaluation.sleep_metrics import format_metrics_table, sleep_metrics

__all__ = [
    "dreem_inter_scorer_agreement",
    "epoch_agreement",
    "format_agreement_table",
    "format_comparison_table",
    "format_human_ceiling",
    "format_metrics_table",
    "mean_sd",
    "metric_agreement",
    "per_subject_agreement",
    "plot_bland_altman",
    "plot_confusion_matrix",
    "sleep_metrics",
    "write_evaluation_report",
]
