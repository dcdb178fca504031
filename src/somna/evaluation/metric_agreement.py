"""Agreement of sleep metrics estimated from predicted hypnograms with those of the scored ones.

Night-level agreement (Bland & Altman 1986): for each metric, the differences ``estimated − scored``
over a cohort of nights give the bias, the SD of the differences, the 95 % limits of agreement and the
mean absolute error; Pearson's r adds how well the estimate follows the night-to-night variation.
The inputs are lists of :func:`somna.evaluation.sleep_metrics` dicts, one per night, paired by position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from somna.evaluation.sleep_metrics import metric_unit

__all__ = ["DEFAULT_AGREEMENT_METRICS", "METRIC_ALIASES", "metric_agreement", "paired_values"]

DEFAULT_AGREEMENT_METRICS: tuple[str, ...] = (
    "tst_min",
    "sleep_efficiency_pct",
    "sleep_latency_min",
    "rem_latency_min",
    "waso_min",
)
"""TST, SE, SOL, REM latency (from sleep onset) and WASO: the metrics clinicians compare first."""

METRIC_ALIASES: dict[str, str] = {
    "TIB": "tib_min",
    "TST": "tst_min",
    "SPT": "spt_min",
    "WASO": "waso_min",
    "SE": "sleep_efficiency_pct",
    "SME": "sleep_maintenance_efficiency_pct",
    "SOL": "sleep_latency_min",
    "LPS": "persistent_sleep_latency_min",
    "REM_latency": "rem_latency_min",
    "N1": "n1_min",
    "N2": "n2_min",
    "N3": "n3_min",
    "REM": "rem_min",
    "NREM": "nrem_min",
}
"""Short names accepted in ``metrics`` for :func:`sleep_metrics` keys."""

_LOA_Z = 1.96


def _key(metric: str) -> str:
    return METRIC_ALIASES.get(metric, metric)


def paired_values(
    scored: Sequence[dict[str, Any]], estimated: Sequence[dict[str, Any]], metric: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Paired finite values of one metric and the number of nights skipped (``None``/NaN on either side)."""
    key = _key(metric)
    xs: list[float] = []
    ys: list[float] = []
    skipped = 0
    for i, (s, e) in enumerate(zip(scored, estimated, strict=True)):
        if key not in s or key not in e:
            side = "scored" if key not in s else "estimated"
            raise ValueError(f"night {i}: the {side} metrics have no {key!r} (metric {metric!r})")
        a, b = s[key], e[key]
        if a is None or b is None or not math.isfinite(float(a)) or not math.isfinite(float(b)):
            skipped += 1
            continue
        xs.append(float(a))
        ys.append(float(b))
    return np.array(xs, dtype=float), np.array(ys, dtype=float), skipped


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 3:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(np.sum(dx * dx)) * float(np.sum(dy * dy)))
    if denom == 0.0:
        return None
    return float(np.clip(np.sum(dx * dy) / denom, -1.0, 1.0))


def _agreement(x: np.ndarray, y: np.ndarray, skipped: int) -> dict[str, Any]:
    n = int(x.size)
    entry: dict[str, Any] = {
        "n": n,
        "n_skipped": skipped,
        "bias": None,
        "sd_diff": None,
        "mae": None,
        "loa_lower": None,
        "loa_upper": None,
        "pearson_r": None,
        "mean_scored": None,
        "mean_estimated": None,
    }
    if n == 0:
        return entry
    diff = y - x
    bias = float(diff.mean())
    entry.update(
        bias=bias,
        mae=float(np.abs(diff).mean()),
        mean_scored=float(x.mean()),
        mean_estimated=float(y.mean()),
        pearson_r=_pearson(x, y),
    )
    if n >= 2:
        sd = float(diff.std(ddof=1))
        entry.update(sd_diff=sd, loa_lower=bias - _LOA_Z * sd, loa_upper=bias + _LOA_Z * sd)
    return entry


def metric_agreement(
    scored: list[dict],
    estimated: list[dict],
    metrics: Sequence[str] = DEFAULT_AGREEMENT_METRICS,
) -> dict[str, Any]:
    """Bias, limits of agreement, MAE and Pearson r of estimated against scored night-level metrics.

    Parameters
    ----------
    scored, estimated : list of dict
        One :func:`~somna.evaluation.sleep_metrics` result per night, from the scored and from the
        predicted hypnogram, paired by position.
    metrics : sequence of str
        Keys of those dicts (``"tst_min"``, ``"sleep_efficiency_pct"``, …) or the short names of
        :data:`METRIC_ALIASES` (``"TST"``, ``"SE"``, ``"SOL"``, ``"REM_latency"``, ``"WASO"`` …).

    Returns
    -------
    dict
        JSON-ready ``{metric (as given): entry}``; each entry has ``key`` (the sleep-metrics key),
        ``unit`` (``"min"``, ``"%"`` or ``"count"``), ``n`` (nights compared), ``n_skipped`` (nights
        where the metric is ``None``/NaN on either side, e.g. REM latency of a night without REM),
        ``bias``, ``sd_diff``, ``mae``, ``loa_lower``, ``loa_upper``, ``pearson_r``, ``mean_scored``
        and ``mean_estimated``. Undefined values are ``None`` (see Notes).

    Raises
    ------
    ValueError
        If the lists differ in length or a night lacks a requested metric.

    Notes
    -----
    With ``d_i = estimated_i − scored_i`` over the ``n`` nights kept:

    * bias = mean(d); ``sd_diff`` = sample SD of d (``ddof=1``); MAE = mean(|d|);
    * 95 % limits of agreement = bias ± 1.96 · ``sd_diff`` (Bland & Altman);
    * ``pearson_r`` = Pearson correlation of scored and estimated values.

    ``n == 0`` leaves everything ``None``; ``n == 1`` gives bias and MAE but no SD or limits; ``r`` needs
    ``n >= 3`` and non-zero variance on both sides.
    """
    if len(scored) != len(estimated):
        raise ValueError(f"{len(scored)} scored nights but {len(estimated)} estimated ones")
    result: dict[str, Any] = {}
    for metric in metrics:
        x, y, skipped = paired_values(scored, estimated, metric)
        key = _key(metric)
        result[metric] = {"key": key, "unit": metric_unit(key), **_agreement(x, y, skipped)}
    return result
