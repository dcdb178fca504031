"""Evaluation of sleep staging: epoch-by-epoch agreement, sleep metrics, their agreement, the human ceiling.

* :mod:`~somna.evaluation.agreement`: accuracy, macro-F1, Cohen's kappa, per class, confusion
  (scikit-learn);
* :mod:`~somna.evaluation.sleep_metrics`: TIB, TST, SE, SOL, WASO, REM latency, ... of one night;
* :mod:`~somna.evaluation.metric_agreement`: estimated vs scored metrics over nights (Bland–Altman);
* :mod:`~somna.evaluation.human_ceiling`: experts against each other on the Dreem DOD-O nights.

Names are imported on first use: sleep metrics do not load scikit-learn.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "dreem_inter_scorer_agreement": "human_ceiling",
    "epoch_agreement": "agreement",
    "format_human_ceiling": "human_ceiling",
    "format_metrics_table": "sleep_metrics",
    "mean_sd": "agreement",
    "metric_agreement": "metric_agreement",
    "per_subject_agreement": "agreement",
    "sleep_metrics": "sleep_metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"somna.evaluation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'somna.evaluation' has no attribute {name!r}")
