"""Stage sequences of synthetic nights, resampled from real Sleep-EDF hypnograms.

Each synthetic night starts from one of the 16 real Sleep-EDF SC hypnograms in
``../shared/data/sleep-edf-hypnograms`` and perturbs it (run lengths jittered and stretched, sleep
onset shifted, middle sleep cycles swapped), then splits the merged N3 back into R&K S3 and S4. When
the folder is absent, a first-order Markov chain fitted to the same hypnograms takes over (its
fitted numbers are shipped below), so the generator works everywhere.
"""

from __future__ import annotations

import csv
import functools
import itertools
import os
from pathlib import Path

import numpy as np

from somna.errors import HypnogramError
from somna.stages import AASM, RK, UNSCORED, convert, stage_codes_from_strings

__all__ = [
    "HYPNOGRAM_DIR",
    "MARKOV_TRANSITIONS",
    "SHARED_DATA_DIR",
    "fit_stage_transitions",
    "load_reference_hypnograms",
    "sample_night_stages",
]

EPOCHS_PER_HOUR = 120


def _default_shared_data() -> Path:
    env = os.environ.get("SOMNA_SHARED_DATA")
    if env:
        return Path(env)
    # src/somna/synth/hypnograms.py -> repository root is parents[3]; the data lie beside the checkout.
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


SHARED_DATA_DIR: Path = _default_shared_data()
"""The real-data folder: ``$SOMNA_SHARED_DATA`` when set, else ``<repo>/../shared/data``."""
HYPNOGRAM_DIR: Path = SHARED_DATA_DIR / "sleep-edf-hypnograms"
"""Real Sleep-EDF SC hypnograms (``SC40xxE0.csv``); the Markov fallback is used when absent."""

# First-order AASM transition matrices (rows: from W, N1, N2, N3, REM; columns: to the same order),
# one for the first and one for the second half of the sleep period, so that N3 stays early and REM
# late. Obtained with ``fit_stage_transitions(load_reference_hypnograms())`` on the 15 complete
# Sleep-EDF SC nights of ../shared/data/sleep-edf-hypnograms (SC4011E0 is truncated and skipped),
# counting transitions between the first and the last sleep epoch, rounded to 3 decimals.
MARKOV_TRANSITIONS: dict[str, np.ndarray] = {
    "early": np.array(
        [[0.858, 0.126, 0.010, 0.002, 0.004],
         [0.038, 0.713, 0.224, 0.002, 0.022],
         [0.010, 0.019, 0.893, 0.062, 0.016],
         [0.004, 0.008, 0.113, 0.874, 0.001],
         [0.012, 0.032, 0.024, 0.000, 0.932]]
    ),
    "late": np.array(
        [[0.722, 0.245, 0.005, 0.000, 0.028],
         [0.053, 0.599, 0.247, 0.000, 0.101],
         [0.011, 0.030, 0.920, 0.025, 0.014],
         [0.004, 0.006, 0.172, 0.817, 0.000],
         [0.023, 0.052, 0.007, 0.000, 0.918]]
    ),
}  # fmt: skip
# Lengths (epochs) of the wake before sleep onset, of the sleep period and of the wake after it in the
# same 15 nights: mean and standard deviation, from the same fit.
MARKOV_DURATIONS: dict[str, tuple[float, float]] = {
    "pre_wake": (894.8, 168.7),
    "sleep_period": (914.1, 169.9),
    "post_wake": (957.8, 185.8),
}

_MIN_FLANK_WAKE = 60  # epochs (30 min) of wake required at both ends of a usable reference night


def _read_stage_csv(path: Path) -> np.ndarray:
    """Read one ``epoch,stage`` CSV into AASM codes on a contiguous epoch axis (gaps unscored)."""
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        epochs = np.array([int(r["epoch"]) for r in rows], dtype=np.int64)
        label_set, codes = stage_codes_from_strings([r["stage"] for r in rows])
    except (OSError, KeyError, ValueError) as err:
        raise HypnogramError(f"cannot read stage table: {err}", path) from None
    if label_set is RK:
        codes = convert(codes, RK, AASM)
    out = np.full(int(epochs.max()) + 1 if epochs.size else 0, UNSCORED, dtype=np.int8)
    out[epochs] = codes
    return out


def _fill_gaps(codes: np.ndarray) -> np.ndarray:
    """Replace unscored epochs by the previous scored stage (the source removed ``?``/movement rows)."""
    idx = np.where(codes != UNSCORED, np.arange(codes.size), 0)
    np.maximum.accumulate(idx, out=idx)
    filled = codes[idx]
    filled[filled == UNSCORED] = AASM.code("W")
    return filled


@functools.cache
def _load_cached(folder: str) -> tuple[np.ndarray, ...]:
    nights = []
    for path in sorted(Path(folder).glob("SC4*E0.csv")):
        codes = _fill_gaps(_read_stage_csv(path))
        sleep = np.flatnonzero(codes != AASM.code("W"))
        # Truncated recordings (SC4011E0 stops mid-sleep) would teach the sampler nights without wake
        # at the end; Sleep-EDF's SC nights have hours of it.
        if sleep.size and sleep[0] >= _MIN_FLANK_WAKE and codes.size - 1 - sleep[-1] >= _MIN_FLANK_WAKE:
            codes.setflags(write=False)
            nights.append(codes)
    return tuple(nights)


def load_reference_hypnograms(hypnogram_dir: Path | None = None) -> list[np.ndarray]:
    """Load the complete real Sleep-EDF SC hypnograms as AASM codes.

    Parameters
    ----------
    hypnogram_dir : Path | None
        Folder of ``SC4xxxE0.csv`` tables; :data:`HYPNOGRAM_DIR` when None.

    Returns
    -------
    list of np.ndarray of int8
        One AASM code per 30-s epoch from the PSG start; removed (unscored) rows are filled with the
        preceding stage. Nights without 30 min of wake at both ends (truncated) are left out. Empty
        when the folder does not exist.
    """
    folder = Path(hypnogram_dir) if hypnogram_dir is not None else HYPNOGRAM_DIR
    if not folder.is_dir():
        return []
    return [np.array(n) for n in _load_cached(str(folder.resolve()))]


def fit_stage_transitions(
    hypnograms: list[np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, tuple[float, float]]]:
    """Fit the Markov fallback: AASM transition matrices per half of the sleep period, and durations.

    Parameters
    ----------
    hypnograms : list of np.ndarray
        AASM codes per epoch, as :func:`load_reference_hypnograms` returns them.

    Returns
    -------
    transitions : dict
        ``"early"`` and ``"late"`` row-stochastic 5 × 5 matrices.
    durations : dict
        ``"pre_wake"``, ``"sleep_period"``, ``"post_wake"``: (mean, sd) in epochs.
    """
    n = AASM.n_classes
    counts = {"early": np.zeros((n, n)), "late": np.zeros((n, n))}
    lengths: dict[str, list[int]] = {"pre_wake": [], "sleep_period": [], "post_wake": []}
    for codes in hypnograms:
        sleep = np.flatnonzero(codes != AASM.code("W"))
        first, last = int(sleep[0]), int(sleep[-1])
        period = codes[first : last + 1].astype(np.int64)
        half = period.size // 2
        for name, seg in (("early", period[: half + 1]), ("late", period[half:])):
            np.add.at(counts[name], (seg[:-1], seg[1:]), 1.0)
        lengths["pre_wake"].append(first)
        lengths["sleep_period"].append(period.size)
        lengths["post_wake"].append(codes.size - 1 - last)
    transitions = {}
    for name, c in counts.items():
        c = c + 0.5 * np.eye(n)  # keeps rows of unseen stages stochastic
        transitions[name] = np.round(c / c.sum(axis=1, keepdims=True), 3)
    durations = {k: (float(np.mean(v)), float(np.std(v))) for k, v in lengths.items()}
    return transitions, durations


def _runs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encode: (stage of each run, length of each run)."""
    if codes.size == 0:
        return codes[:0], np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [codes.size]]))
    return codes[starts], lengths


def _perturb_sleep_period(period: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Jitter run lengths, stretch the night and swap two middle sleep cycles (AASM codes)."""
    stages, lengths = _runs(period)
    stretch = rng.uniform(0.88, 1.12)
    jitter = rng.lognormal(0.0, 0.25, size=lengths.size)
    new_lengths = np.maximum(1, np.rint(lengths * stretch * jitter)).astype(np.int64)
    # Cycles end with a REM run; swapping two middle ones changes the night's architecture while
    # leaving the N3-rich first cycle and the REM-rich last one in place.
    rem_ends = np.flatnonzero(stages == AASM.code("REM")) + 1
    bounds = np.concatenate([[0], rem_ends[rem_ends < stages.size], [stages.size]])
    cycles = [np.arange(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    if len(cycles) >= 4 and rng.random() < 0.5:
        i = int(rng.integers(1, len(cycles) - 2))
        cycles[i], cycles[i + 1] = cycles[i + 1], cycles[i]
    order = np.concatenate(cycles)
    out = np.repeat(stages[order], new_lengths[order])
    # Sleep period starts and ends with sleep by definition.
    wake = AASM.code("W")
    keep = np.flatnonzero(out != wake)
    return out[keep[0] : keep[-1] + 1]


def _markov_sleep_period(rng: np.random.Generator, n_epochs: int) -> np.ndarray:
    """Sample a sleep period of ``n_epochs`` from the shipped Markov fallback (AASM codes)."""
    early = MARKOV_TRANSITIONS["early"] / MARKOV_TRANSITIONS["early"].sum(axis=1, keepdims=True)
    late = MARKOV_TRANSITIONS["late"] / MARKOV_TRANSITIONS["late"].sum(axis=1, keepdims=True)
    cum = {"early": np.cumsum(early, axis=1), "late": np.cumsum(late, axis=1)}
    u = rng.random(n_epochs)
    out = np.empty(n_epochs, dtype=np.int8)
    state = AASM.code("N1")
    for i in range(n_epochs):
        out[i] = state
        table = cum["early"] if i < n_epochs // 2 else cum["late"]
        state = min(int(np.searchsorted(table[state], u[i], side="right")), AASM.n_classes - 1)
    wake = AASM.code("W")
    if out[-1] == wake:
        out[-1] = AASM.code("N2")
    return out


def _split_n3(period: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turn AASM codes into R&K codes, splitting N3 runs into S3 edges and S4 cores.

    Scorers give S4 (> 50 % of the epoch in high slow waves) in the middle of long, early-night
    slow-wave runs and S3 as the runs deepen and lighten; the probability of an S4 core falls with
    time since sleep onset (slow-wave pressure dissipates), giving about 1.2 S3 epochs per S4 epoch,
    close to Sleep-EDF SC.
    """
    rk = np.empty(period.size, dtype=np.int8)
    lut = np.array([RK.code(s) for s in ("W", "S1", "S2", "S3", "REM")], dtype=np.int8)
    rk[:] = lut[period]
    n3 = AASM.code("N3")
    stages, lengths = _runs(period)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for stage, start, length in zip(stages, starts, lengths, strict=True):
        if stage != n3 or length < 3:
            continue
        hours_asleep = start / EPOCHS_PER_HOUR
        p_deep = min(1.0, 1.1 * np.exp(-hours_asleep / 2.5) * min(1.0, length / 8.0))
        if rng.random() < p_deep:
            edge = int(rng.integers(1, 3))
            if length > 2 * edge:
                rk[start + edge : start + length - edge] = RK.code("S4")
    return rk


def sample_night_stages(
    rng: np.random.Generator,
    *,
    layout: str = "sc",
    hours: float | None = None,
    hypnogram_dir: Path | None = None,
    unscored_tail: bool | None = None,
) -> np.ndarray:
    """Sample the R&K stage sequence of one synthetic night.

    Parameters
    ----------
    rng : np.random.Generator
        Source of randomness; the same generator state gives the same night.
    layout : {"sc", "st"}
        ``"sc"``: a full Sleep Cassette recording (about 20-24 h, hours of wake before and after the
        sleep period). ``"st"``: a Sleep Telemetry night (about 9 h, lights off to lights on).
    hours : float | None
        Optional cap on the length, in hours: keeps the sleep onset with up to 30 min of wake before
        it (at most a tenth of ``hours``) and as much of the night after it as fits.
    hypnogram_dir : Path | None
        Folder of real Sleep-EDF SC hypnograms (:data:`HYPNOGRAM_DIR` when None). When it holds none,
        a Markov chain with the shipped fitted transitions is used instead.
    unscored_tail : bool | None
        End the night with a few ``Sleep stage ?`` epochs as Sleep-EDF SC files do; by default on for
        ``"sc"`` about half the time, off for ``"st"``.

    Returns
    -------
    np.ndarray of int8
        One R&K code per 30-s epoch (:data:`somna.stages.RK`), :data:`somna.stages.UNSCORED` for the
        unscored tail.
    """
    if layout not in ("sc", "st"):
        raise ValueError(f"layout must be 'sc' or 'st', not {layout!r}")
    if hours is not None and hours <= 0:
        raise ValueError(f"hours must be positive, not {hours}")
    references = load_reference_hypnograms(hypnogram_dir)
    if references:
        night = references[int(rng.integers(len(references)))]
        sleep = np.flatnonzero(night != AASM.code("W"))
        pre, post = int(sleep[0]), int(night.size - 1 - sleep[-1])
        period = _perturb_sleep_period(night[sleep[0] : sleep[-1] + 1], rng)
    else:
        mean, sd = MARKOV_DURATIONS["sleep_period"]
        period = _markov_sleep_period(rng, int(np.clip(rng.normal(mean, sd), 500, 1300)))
        pre = int(rng.normal(*MARKOV_DURATIONS["pre_wake"]))
        post = int(rng.normal(*MARKOV_DURATIONS["post_wake"]))
    if layout == "sc":
        # Sleep onset shifts by up to an hour or so; the total stays Sleep-EDF-like (20-24 h).
        pre = int(np.clip(pre + rng.normal(0.0, 60.0), 360, 1500))
        post = int(np.clip(post + rng.normal(0.0, 60.0), 360, 1500))
    else:
        pre = int(rng.integers(10, 60))
        post = int(rng.integers(4, 40))
    wake = RK.code("W")
    stages = np.concatenate(
        [np.full(pre, wake, np.int8), _split_n3(period, rng), np.full(post, wake, np.int8)]
    )
    if unscored_tail is None:
        unscored_tail = layout == "sc" and rng.random() < 0.5
    if unscored_tail:
        stages[-int(rng.integers(1, 40)) :] = UNSCORED
    if hours is not None:
        n_keep = max(1, round(hours * EPOCHS_PER_HOUR))
        margin = min(60, round(0.1 * n_keep))
        first = max(0, pre - margin)
        stages = stages[first : first + n_keep]
    return stages
