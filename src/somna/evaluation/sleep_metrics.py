"""Standard sleep metrics of one night (TIB, TST, SPT, WASO, SE, latencies …) from a hypnogram.

The definitions follow the AASM Scoring Manual ("Parameters to be reported for polysomnography") and,
where the manual leaves a choice, YASA's :func:`yasa.sleep_statistics` so that both give the same
numbers (``tests/test_sleep_metrics.py`` checks this on real nights). Every duration is in minutes,
every percentage in %, and every time is counted in whole scoring epochs.

Definitions (``epoch`` = one scoring epoch, 30 s):

* **Time in bed (TIB, = AASM total recording time, TRT)**: the epochs from lights off to lights on —
  an epoch belongs to TIB when its midpoint lies in ``[lights_off, lights_on)``. Without lights
  off/on, the whole hypnogram (callers that stage recordings always give them, from the best source
  available: :mod:`somna.io.lights`). Unscored epochs inside it count (TIB is clock time). Epochs
  outside TIB are ignored by every metric, so a sleep onset is always inside TIB.
* **Sleep** is every scored stage other than W (N1, N2, N3, REM; S1–S4 and REM for R&K; NREM and
  REM for 3-class input). **Sleep onset** is the first sleep epoch in TIB (AASM: the first epoch of
  any stage other than W, N1 included); the **end of the sleep period** is the end of the last
  sleep epoch in TIB.
* **Sleep period time (SPT)**: sleep onset → end of the last sleep epoch (wake and unscored
  epochs in between included).
* **Total sleep time (TST)**: sleep epochs in TIB (all of them lie in SPT).
* **WASO**: W epochs within SPT (``waso_min``, YASA's definition; it stops at the final
  awakening). ``waso_aasm_min`` is the AASM manual's "stage W during TRT minus sleep latency": W from
  sleep onset to lights on, i.e. WASO plus the wake after the final awakening.
* **Wake time**: every W epoch in TIB (before sleep onset, within SPT and after the last sleep).
* **Stage times** N1, N2, N3 (S3, S4 for R&K input), NREM, REM: epochs of that stage in TIB; each
  also as % of TST.
* **Sleep efficiency (SE)**: 100 · TST / TIB. **Sleep maintenance efficiency**: 100 · TST / SPT.
* **Sleep latency (SOL)**: start of TIB (lights off) → sleep onset.
* **Latency to persistent sleep (LPS)**: start of TIB → first epoch of the first run of
  :data:`PERSISTENT_SLEEP_MIN` (10) minutes (20 epochs) of uninterrupted sleep (any sleep stages;
  a W *or an unscored* epoch breaks the run).
* **REM latency** (``rem_latency_min``): sleep onset → first epoch of the first REM episode of at
  least ``rem_min_epochs`` consecutive epochs (default :data:`REM_MIN_EPOCHS`, 1: the AASM's first REM
  epoch; a model's hypnogram is measured with :data:`STAGED_REM_MIN_EPOCHS`, 3, which passes over
  isolated REM epochs, in a predicted hypnogram more often errors than REM periods).
  ``rem_latency_from_lights_off_min`` counts from the start of TIB, as YASA's ``Lat_REM`` does; it
  equals ``sleep_latency_min + rem_latency_min``. **Sleep-onset REM**
  (``sleep_onset_rem``): that REM episode begins within :data:`SOREM_MIN` (15) minutes of sleep onset
  (``None`` without REM). **N1/N2/N3 latencies**: sleep onset → first epoch of that stage (0 for the
  stage that starts sleep).
* **Awakenings**: runs of W of at least :data:`AWAKENING_MIN_EPOCHS` (1) epoch within SPT — the wake
  after the final awakening is not one. Unscored epochs are skipped when runs are formed (W ? W is one
  awakening, N2 ? N2 none).
* **Stage transitions**: changes of stage between consecutive scored epochs within SPT (unscored
  epochs skipped), counted in AASM stages for R&K and AASM input (S3↔S4 is no transition), in the
  input's own stages otherwise. **Stage shifts**: those transitions towards lighter sleep, with
  depth W 0 < N1 1 < N2 = REM 2 < N3 3 (into W or N1 from anything deeper, N3 → N2, N3 → REM);
  ``None`` for input without N1/N2/N3 (3-class, 2-class).

Unscored epochs (:data:`~somna.stages.UNSCORED`) are neither sleep nor wake: they enter no stage time,
TST, WASO or wake time and are reported as ``unscored_min``; they do count in TIB and SPT (clock time),
so they lower SE, and time spent in them before sleep onset counts in the latencies. Hence
``tib_min = wake_min + tst_min + unscored_min``.

Without sleep (an all-wake night): TST, SPT, WASO, SE and the awakening/transition counts are 0, the
latencies and the stage percentages ``None``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from somna.hypnogram import Hypnogram
from somna.stages import AASM, THREE_CLASS, TWO_CLASS, UNSCORED, LabelSet, convert

__all__ = [
    "AWAKENING_MIN_EPOCHS",
    "METRIC_LABELS",
    "PERSISTENT_SLEEP_MIN",
    "REM_MIN_EPOCHS",
    "SOREM_MIN",
    "STAGED_REM_MIN_EPOCHS",
    "format_metrics_table",
    "metric_unit",
    "sleep_metrics",
]

PERSISTENT_SLEEP_MIN: float = 10.0
"""Length of the uninterrupted sleep run that defines persistent sleep, in minutes (20 epochs of 30 s)."""
AWAKENING_MIN_EPOCHS: int = 1
"""Shortest run of W epochs within the sleep period counted as an awakening."""
REM_MIN_EPOCHS: int = 1
"""Shortest run of REM epochs that ends the REM latency by default (1: the AASM's first REM epoch)."""
STAGED_REM_MIN_EPOCHS: int = 3
"""The rule for a model's hypnogram (``somna score``, ``somna stream``, a staged :class:`Hypnogram`): the
first REM episode of at least 3 epochs (1.5 min). Models call single N1 epochs around sleep onset REM;
on 16 held-out synthetic nights (``benchmarks/sleep_metrics_agreement.py``, cross-validation) the median
REM-latency error was 68 min with the AASM's first REM epoch and 4 min with this rule, applied to the
scored and the estimated hypnogram alike."""
SOREM_MIN: float = 15.0
"""A REM episode beginning within this many minutes of sleep onset is a sleep-onset REM period."""

# Depth of each AASM stage for stage shifts (a shift is a transition to a lower depth).
_DEPTH = {"W": 0, "N1": 1, "N2": 2, "REM": 2, "N3": 3}

METRIC_LABELS: dict[str, str] = {
    "tib_min": "Time in bed (TIB)",
    "tst_min": "Total sleep time (TST)",
    "spt_min": "Sleep period time (SPT)",
    "waso_min": "Wake after sleep onset (WASO, within SPT)",
    "waso_aasm_min": "WASO to the end of TIB (AASM)",
    "wake_min": "Wake time (all W in TIB)",
    "unscored_min": "Unscored",
    "sleep_efficiency_pct": "Sleep efficiency (TST/TIB)",
    "sleep_maintenance_efficiency_pct": "Sleep maintenance efficiency (TST/SPT)",
    "sleep_latency_min": "Sleep latency (SOL, start of TIB → onset)",
    "persistent_sleep_latency_min": "Latency to persistent sleep (10 min)",
    "rem_latency_min": "REM latency (from sleep onset)",
    "rem_latency_from_lights_off_min": "REM latency (from the start of TIB)",
    "n1_latency_min": "N1 latency (from sleep onset)",
    "n2_latency_min": "N2 latency (from sleep onset)",
    "n3_latency_min": "N3 latency (from sleep onset)",
    "n1_min": "N1",
    "n2_min": "N2",
    "n3_min": "N3",
    "s3_min": "S3 (R&K)",
    "s4_min": "S4 (R&K)",
    "nrem_min": "NREM",
    "rem_min": "REM",
    "n1_pct": "N1 % of TST",
    "n2_pct": "N2 % of TST",
    "n3_pct": "N3 % of TST",
    "s3_pct": "S3 % of TST",
    "s4_pct": "S4 % of TST",
    "nrem_pct": "NREM % of TST",
    "rem_pct": "REM % of TST",
    "awakenings": "Awakenings (W runs ≥ 1 epoch in SPT)",
    "stage_transitions": "Stage transitions (in SPT)",
    "stage_shifts": "Stage shifts to lighter sleep (in SPT)",
    "sleep_onset_rem": "Sleep-onset REM (REM within 15 min of onset)",
}
"""Human-readable name of each metric of :func:`sleep_metrics`, in report order."""


def metric_unit(key: str) -> str:
    """Unit of a :func:`sleep_metrics` key: ``"min"`` (``*_min``), ``"%"`` (``*_pct``), ``"yes/no"``
    (``sleep_onset_rem``), else ``"count"``."""
    if key == "sleep_onset_rem":
        return "yes/no"
    if key.endswith("_min"):
        return "min"
    if key.endswith("_pct"):
        return "%"
    return "count"


def _tib_epochs(
    n: int, epoch_s: float, lights_off_s: float | None, lights_on_s: float | None
) -> tuple[int, int]:
    """Slice bounds of the epochs whose midpoint lies in ``[lights_off_s, lights_on_s)``."""
    off = -math.inf if lights_off_s is None else float(lights_off_s)
    on = math.inf if lights_on_s is None else float(lights_on_s)
    if not on > off:
        raise ValueError(f"lights on ({lights_on_s} s) must come after lights off ({lights_off_s} s)")
    mid = (np.arange(n) + 0.5) * epoch_s
    inside = np.flatnonzero((mid >= off) & (mid < on))
    if inside.size == 0:
        raise ValueError(
            f"no epoch lies between lights off ({lights_off_s} s) and lights on ({lights_on_s} s) "
            f"in a hypnogram of {n} epochs"
        )
    return int(inside[0]), int(inside[-1]) + 1


def _try_convert(stages: np.ndarray, source: LabelSet, target: LabelSet) -> np.ndarray | None:
    try:
        return convert(stages, source, target)
    except ValueError:
        return None


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of True in a boolean array."""
    padded = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, stops = edges[0::2], edges[1::2]
    return starts, stops - starts


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def sleep_metrics(
    hypnogram: Hypnogram,
    lights_off_s: float | None = None,
    lights_on_s: float | None = None,
    rem_min_epochs: int = REM_MIN_EPOCHS,
) -> dict[str, Any]:
    """Standard sleep metrics of one night.

    Parameters
    ----------
    hypnogram : Hypnogram
        R&K, AASM, 3-class (W/NREM/REM) or 2-class (W/Sleep) stages. With 3-class input the N1/N2/N3
        metrics are ``None``; with 2-class input the NREM/REM metrics too. NREM/REM input has no
        wake and is refused.
    lights_off_s, lights_on_s : float | None
        Lights off / on in seconds from the first epoch's start. ``None`` takes the hypnogram's own
        ``lights_off_s``/``lights_on_s``; where that is ``None`` too, TIB starts at the first epoch /
        ends with the last one.
    rem_min_epochs : int
        Shortest REM episode that ends the REM latency (see the module docstring).

    Returns
    -------
    dict
        JSON-ready (plain ``int``/``float``/``str``/``None``). Durations in minutes, percentages in %.

        Context: ``label_set``, ``epoch_s``, ``lights_off_s``/``lights_on_s`` (used; ``None`` when
        unknown), ``tib_first_epoch``/``tib_stop_epoch`` (slice of the hypnogram's epochs in TIB),
        ``n_epochs`` (in TIB), ``sleep_onset_s``/``sleep_end_s`` (start of the first and end of the
        last sleep epoch, seconds from the hypnogram's first epoch; ``None`` without sleep),
        ``persistent_sleep_run_min``, ``awakening_min_epochs`` and ``rem_min_epochs`` (the thresholds
        used).

        Metrics (see :data:`METRIC_LABELS`): ``tib_min``, ``tst_min``, ``spt_min``, ``waso_min``,
        ``waso_aasm_min``, ``wake_min``, ``unscored_min``, ``sleep_efficiency_pct``,
        ``sleep_maintenance_efficiency_pct``, ``sleep_latency_min``, ``persistent_sleep_latency_min``,
        ``rem_latency_min``, ``rem_latency_from_lights_off_min``, ``n1_latency_min``,
        ``n2_latency_min``, ``n3_latency_min``, ``n1_min``, ``n2_min``, ``n3_min``, ``s3_min``,
        ``s4_min`` (R&K input only, else ``None``), ``nrem_min``, ``rem_min``, the same stages as
        ``*_pct`` of TST, ``awakenings``, ``stage_transitions``, ``stage_shifts``,
        ``sleep_onset_rem``.

    Raises
    ------
    ValueError
        If the label set has no wake (NREM/REM), lights on is not after lights off, or no epoch lies
        between them.

    Notes
    -----
    Exact definitions (``E`` = epoch length; all counts over the epochs in TIB):

    * TIB = epochs in TIB × E, unscored included; an epoch is in TIB when its midpoint lies in
      ``[lights_off, lights_on)``.
    * sleep onset = first epoch of a stage other than W; SOL = (onset − first TIB epoch) × E.
    * SPT = (last sleep epoch + 1 − onset) × E; TST = sleep epochs × E.
    * WASO = W epochs between onset and last sleep epoch × E; ``waso_aasm_min`` = W epochs from onset
      to the end of TIB × E; wake time = all W epochs × E.
    * stage minutes = epochs of the stage × E; stage % = 100 × stage minutes / TST (``None`` if TST 0).
    * SE = 100 × TST / TIB (0 without sleep); sleep maintenance efficiency = 100 × TST / SPT.
    * LPS = (first epoch of the first run of ≥ 20 sleep epochs, no W or unscored inside) − first TIB
      epoch, × E; ``None`` when no such run exists.
    * REM latency = (first epoch of the first run of ≥ ``rem_min_epochs`` REM epochs − onset) × E
      (AASM with 1); ``rem_latency_from_lights_off_min`` = (that epoch − first TIB epoch) × E (YASA's
      ``Lat_REM``); sleep-onset REM = REM latency ≤ :data:`SOREM_MIN`; N1/N2/N3 latency = (first epoch
      of the stage − onset) × E. ``None`` when the stage (or sleep) is absent.
    * awakenings = runs of ≥ 1 W epoch between onset and the last sleep epoch, unscored epochs
      removed before the runs are formed.
    * stage transitions = changes between consecutive scored epochs from onset to the last sleep
      epoch (unscored epochs removed), in AASM stages for R&K/AASM input; stage shifts = those to a
      lower depth, W 0 < N1 1 < N2 = REM 2 < N3 3.

    Unscored epochs count in TIB and SPT and in the time before onset, never in a stage time.
    """
    if isinstance(rem_min_epochs, bool) or not isinstance(rem_min_epochs, int) or rem_min_epochs < 1:
        raise ValueError(f"rem_min_epochs must be a whole number of at least 1, not {rem_min_epochs!r}")
    source = hypnogram.label_set
    two_all = _try_convert(hypnogram.stages, source, TWO_CLASS)
    if two_all is None:
        raise ValueError(f"sleep metrics need wake epochs; the {source.name} label set has no W stage")
    off = hypnogram.lights_off_s if lights_off_s is None else lights_off_s
    on = hypnogram.lights_on_s if lights_on_s is None else lights_on_s
    epoch_s = float(hypnogram.epoch_s)
    first_epoch, stop_epoch = _tib_epochs(len(hypnogram), epoch_s, off, on)

    stages = hypnogram.stages[first_epoch:stop_epoch]
    two = two_all[first_epoch:stop_epoch]
    aasm = _try_convert(stages, source, AASM)
    three = _try_convert(stages, source, THREE_CLASS)
    finest = aasm if aasm is not None else three if three is not None else two

    def minutes(n_epochs: int | np.integer) -> float:
        # count × E / 60: exact for 30-s epochs (multiples of 0.5), hence equal to YASA's count / (60 sf).
        return float(n_epochs) * epoch_s / 60.0

    wake = two == TWO_CLASS.code("W")
    sleep = two == TWO_CLASS.code("Sleep")
    n = int(stages.size)
    sleep_idx = np.flatnonzero(sleep)
    has_sleep = sleep_idx.size > 0
    onset = int(sleep_idx[0]) if has_sleep else None
    last = int(sleep_idx[-1]) if has_sleep else None
    spt = slice(onset, last + 1) if has_sleep else slice(0, 0)

    tib_min = minutes(n)
    tst_min = minutes(sleep.sum())
    spt_min = minutes(last + 1 - onset) if has_sleep else 0.0

    def since_onset(mask: np.ndarray | None) -> float | None:
        if mask is None or onset is None:
            return None
        idx = _first(mask)
        return None if idx is None else minutes(idx - onset)

    def stage_mask(codes: np.ndarray | None, label_set: LabelSet, label: str) -> np.ndarray | None:
        return None if codes is None else codes == label_set.code(label)

    def stage_min(mask: np.ndarray | None) -> float | None:
        return None if mask is None else minutes(mask.sum())

    def pct(value: float | None) -> float | None:
        return None if value is None or tst_min == 0 else 100 * value / tst_min

    n1 = stage_mask(aasm, AASM, "N1")
    n2 = stage_mask(aasm, AASM, "N2")
    n3 = stage_mask(aasm, AASM, "N3")
    rem = stage_mask(three, THREE_CLASS, "REM")
    nrem = stage_mask(three, THREE_CLASS, "NREM")
    is_rk = "S3" in source.labels and "S4" in source.labels
    s3 = stage_mask(stages, source, "S3") if is_rk else None
    s4 = stage_mask(stages, source, "S4") if is_rk else None

    # Persistent sleep: first run of PERSISTENT_SLEEP_MIN of sleep (W and unscored both break it).
    run_epochs = round(PERSISTENT_SLEEP_MIN * 60.0 / epoch_s)
    starts, lengths = _runs(sleep)
    long_runs = starts[lengths >= run_epochs]
    lps = minutes(long_runs[0]) if long_runs.size else None

    rem_first = None
    if rem is not None:
        rem_starts, rem_lengths = _runs(rem)
        episodes = rem_starts[rem_lengths >= rem_min_epochs]
        rem_first = int(episodes[0]) if episodes.size else None
    rem_latency = None if rem_first is None or onset is None else minutes(rem_first - onset)

    # Awakenings and transitions within SPT, unscored epochs removed.
    spt_two = two[spt]
    spt_two = spt_two[spt_two != UNSCORED]
    _, w_lengths = _runs(spt_two == TWO_CLASS.code("W"))
    awakenings = int(np.sum(w_lengths >= AWAKENING_MIN_EPOCHS))
    seq = finest[spt]
    seq = seq[seq != UNSCORED]
    transitions = int(np.count_nonzero(seq[1:] != seq[:-1]))
    shifts: int | None = None
    if aasm is not None:
        depth = np.array([_DEPTH[label] for label in AASM.labels])[seq.astype(np.intp)]
        shifts = int(np.count_nonzero(depth[1:] < depth[:-1]))

    stage_values = {
        "n1": stage_min(n1),
        "n2": stage_min(n2),
        "n3": stage_min(n3),
        "s3": stage_min(s3),
        "s4": stage_min(s4),
        "nrem": stage_min(nrem),
        "rem": stage_min(rem),
    }
    result: dict[str, Any] = {
        "label_set": source.name,
        "epoch_s": epoch_s,
        "lights_off_s": None if off is None else float(off),
        "lights_on_s": None if on is None else float(on),
        "tib_first_epoch": first_epoch,
        "tib_stop_epoch": stop_epoch,
        "n_epochs": n,
        "sleep_onset_s": None if onset is None else (first_epoch + onset) * epoch_s,
        "sleep_end_s": None if last is None else (first_epoch + last + 1) * epoch_s,
        "persistent_sleep_run_min": PERSISTENT_SLEEP_MIN,
        "awakening_min_epochs": AWAKENING_MIN_EPOCHS,
        "rem_min_epochs": rem_min_epochs,
        "tib_min": tib_min,
        "tst_min": tst_min,
        "spt_min": spt_min,
        "waso_min": minutes(wake[spt].sum()),
        "waso_aasm_min": minutes(wake[onset:].sum()) if has_sleep else 0.0,
        "wake_min": minutes(wake.sum()),
        "unscored_min": minutes(np.sum(stages == UNSCORED)),
        "sleep_efficiency_pct": 100 * tst_min / tib_min,
        "sleep_maintenance_efficiency_pct": 100 * tst_min / spt_min if has_sleep else None,
        "sleep_latency_min": None if onset is None else minutes(onset),
        "persistent_sleep_latency_min": lps,
        "rem_latency_min": rem_latency,
        "rem_latency_from_lights_off_min": None if rem_first is None else minutes(rem_first),
        "n1_latency_min": since_onset(n1),
        "n2_latency_min": since_onset(n2),
        "n3_latency_min": since_onset(n3),
    }
    for name, value in stage_values.items():
        result[f"{name}_min"] = value
    for name, value in stage_values.items():
        result[f"{name}_pct"] = pct(value)
    result["awakenings"] = awakenings
    result["stage_transitions"] = transitions
    result["stage_shifts"] = shifts
    result["sleep_onset_rem"] = None if rem_latency is None else bool(rem_latency <= SOREM_MIN)
    return result


def _format_value(value: Any, unit: str) -> tuple[str, str]:
    if value is None:
        return "–", ""
    if isinstance(value, bool):
        return ("yes" if value else "no"), ""
    if unit == "count":
        return f"{int(value)}", ""
    return f"{float(value):.1f}", unit


def format_metrics_table(metrics: dict[str, Any]) -> str:
    """Format the result of :func:`sleep_metrics` as an aligned text table (name, value, unit).

    Metrics absent from ``metrics`` are left out; ``None`` values (undefined: no REM, no sleep, a
    stage the label set does not have) print as ``–``. R&K S3/S4 rows appear only for R&K input. The
    second line says where time in bed came from (``metrics["time_in_bed"]``, see
    :mod:`somna.io.lights`), or that it is the whole hypnogram.
    """
    header = f"Sleep metrics ({metrics.get('label_set', '?')} stages"
    if metrics.get("epoch_s") is not None:
        header += f", {float(metrics['epoch_s']):g}-s epochs"
    header += ")"
    tib = metrics.get("time_in_bed")
    if tib:
        header += f"\n  Time in bed: {tib['description']}"
        if "estimated" in (tib.get("lights_off_source"), tib.get("lights_on_source")):
            header += "\n  (estimated lights: latencies and efficiency are not the clinical ones)"
    elif metrics.get("lights_off_s") is None and metrics.get("lights_on_s") is None:
        header += "\n  Time in bed: the whole hypnogram (no lights off/on given)"
    rows: list[tuple[str, str, str]] = []
    rule = metrics.get("rem_min_epochs") or 1
    for key, label in METRIC_LABELS.items():
        if key not in metrics:
            continue
        if key.startswith("rem_latency") and rule > 1:
            label = f"{label[:-1]}, first REM ≥ {rule} epochs)"
        if key.startswith(("s3_", "s4_")) and metrics[key] is None:
            continue
        rows.append((label, *_format_value(metrics[key], metric_unit(key))))
    width = max((len(label) for label, _, _ in rows), default=0)
    lines = [header] + [f"  {label:<{width}}  {value:>7} {unit}".rstrip() for label, value, unit in rows]
    if metrics.get("unscored_min"):
        lines.append("  (unscored epochs count in TIB and SPT, so they lower SE; they are in no stage time)")
    return "\n".join(lines)
