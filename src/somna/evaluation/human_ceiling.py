"""The human ceiling: how well each of five sleep experts agrees with the consensus of the other four.

On the Dreem Open Dataset DOD-O (55 nights, 5 independent expert scorings each; Guillot et al. 2020,
"Dreem Open Datasets: multi-scored sleep data sets and benchmark of automated sleep staging", IEEE
TNSRE 28(9)) every expert is compared with a consensus built without them. An automatic stager is
judged the same way; its accuracy/κ/F1 against the consensus are read beside the experts' range.

Consensus (after the Dreem evaluation code, ``dreem-learning-evaluation/evaluation.py``):

1. Each night is cropped to the epochs between the latest first scored epoch and the earliest last
   scored epoch of the five scorers (their stand-in for lights off/on).
2. The other four experts vote per epoch, "not scored" (-1) counting as a vote like a stage. The stage
   with the most votes wins.
3. Ties (2–2, 1–1–1–1) go to the vote of the most reliable of the four on that night: the one with the
   highest *soft agreement* with the other three — the mean over epochs of (votes of the other three
   for that expert's stage) / (votes of the other three for their most voted stage).

Deviation from the Dreem code: Dreem ranks reliability with all five experts (so the scored expert's
own hypnogram influences the tie-break among the other four); here the ranking uses the four others
only, so the consensus is fully independent of the expert scored. Metrics also differ from the paper's:
we pool all epochs of the 55 nights per expert, unweighted (the paper averages per night and weights
each epoch by the consensus' vote share) and report macro-F1 (the paper's F1 is support-weighted).

Epochs where the expert or the consensus is not scored are excluded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from somna.evaluation.agreement import epoch_agreement
from somna.io.hypnogram_files import read_hypnogram
from somna.stages import AASM, UNSCORED, LabelSet

__all__ = [
    "consensus_hypnogram",
    "default_dreem_folder",
    "dreem_inter_scorer_agreement",
    "format_human_ceiling",
    "soft_agreement",
]

_SUMMARY_METRICS = ("accuracy", "macro_f1", "cohen_kappa")


def default_dreem_folder() -> Path:
    """The default DOD-O folder: ``SHARED_DATA_DIR / "dreem-dod-o"``.

    ``SHARED_DATA_DIR`` is :data:`somna.synth.hypnograms.SHARED_DATA_DIR`: ``$SOMNA_SHARED_DATA`` when
    set (read when ``somna.synth.hypnograms`` is first imported), else ``<repo>/../shared/data``. It is
    imported lazily, so that importing ``somna.evaluation`` does not load the synthetic-data generator.
    """
    from somna.synth.hypnograms import SHARED_DATA_DIR

    return SHARED_DATA_DIR / "dreem-dod-o"


def _vote_index(hypnograms: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """Stage codes as vote columns: codes of the set unchanged, UNSCORED as one extra class."""
    return np.where(hypnograms == UNSCORED, label_set.n_classes, hypnograms).astype(np.intp)


def _vote_counts(votes: np.ndarray, n_columns: int) -> np.ndarray:
    """``counts[c, t]`` = number of rows of ``votes`` (scorers × epochs) voting ``c`` at epoch ``t``."""
    counts = np.zeros((n_columns, votes.shape[1]), dtype=np.int64)
    epochs = np.arange(votes.shape[1])
    for row in votes:
        np.add.at(counts, (row, epochs), 1)
    return counts


def soft_agreement(hypnogram: np.ndarray, others: Sequence[np.ndarray], label_set: LabelSet = AASM) -> float:
    """Soft agreement of one hypnogram with others (the Dreem evaluation's reliability score).

    Per epoch: (number of ``others`` that chose this hypnogram's stage) / (number that chose their most
    chosen stage), "not scored" counting as a stage; the mean over epochs. 1 means the hypnogram always
    sides with a plurality of the others.
    """
    votes = _vote_index(np.asarray(others), label_set)
    counts = _vote_counts(votes, label_set.n_classes + 1)
    own = _vote_index(np.asarray(hypnogram), label_set)
    return float(np.mean(counts[own, np.arange(own.size)] / counts.max(axis=0)))


def _ranked(hypnograms: Sequence[np.ndarray], label_set: LabelSet) -> list[int]:
    """Indices of the hypnograms, most reliable (highest soft agreement with the rest) first."""
    scores = [
        soft_agreement(h, [o for j, o in enumerate(hypnograms) if j != i], label_set)
        for i, h in enumerate(hypnograms)
    ]
    return sorted(range(len(hypnograms)), key=lambda i: -scores[i])  # stable: ties keep input order


def consensus_hypnogram(
    hypnograms: Sequence[np.ndarray], label_set: LabelSet = AASM, ranking: Sequence[int] | None = None
) -> np.ndarray:
    """Majority-vote consensus of several scorings of one night, ties broken by the most reliable scorer.

    Parameters
    ----------
    hypnograms : sequence of array of int
        Equal-length stage codes of ``label_set`` (``UNSCORED`` allowed, and voted for like a stage).
    label_set : LabelSet
        Their vocabulary.
    ranking : sequence of int | None
        Indices into ``hypnograms``, most reliable first; the first one's stage wins every tie. ``None``
        ranks them by :func:`soft_agreement` with the others.

    Returns
    -------
    np.ndarray of int8
        The consensus; ``UNSCORED`` where "not scored" won the vote.
    """
    stack = np.asarray(hypnograms)
    if stack.ndim != 2 or stack.shape[0] == 0:
        raise ValueError("consensus_hypnogram needs a non-empty list of equal-length hypnograms")
    order = list(ranking) if ranking is not None else _ranked(list(stack), label_set)
    votes = _vote_index(stack, label_set)
    counts = _vote_counts(votes, label_set.n_classes + 1)
    winner = counts.argmax(axis=0)
    tied = (counts == counts.max(axis=0)).sum(axis=0) > 1
    winner[tied] = votes[order[0]][tied]
    return np.where(winner == label_set.n_classes, UNSCORED, winner).astype(np.int8)


def _load_nights(folder: Path) -> tuple[list[str], list[str], list[np.ndarray]]:
    """Scorer names, night ids and per night a (scorers × epochs) array of AASM codes."""
    scorer_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("scorer"))
    if len(scorer_dirs) < 3:
        raise FileNotFoundError(f"{folder} should hold at least three scorer_* folders of JSON hypnograms")
    names = [sorted(p.stem for p in d.glob("*.json")) for d in scorer_dirs]
    nights = sorted(set.intersection(*(set(n) for n in names)))
    if not nights:
        raise FileNotFoundError(f"no night is scored by every scorer in {folder}")
    stacks = []
    for night in nights:
        rows = [read_hypnogram(d / f"{night}.json", int_codes=AASM).stages for d in scorer_dirs]
        if len({r.size for r in rows}) != 1:
            raise ValueError(f"night {night}: the scorers' hypnograms differ in length")
        stacks.append(np.stack(rows))
    return [d.name for d in scorer_dirs], nights, stacks


def _crop_to_scored(stack: np.ndarray) -> np.ndarray:
    """Keep the epochs from the latest first scored epoch to the earliest last scored one (Dreem's crop)."""
    scored = stack != UNSCORED
    if not scored.any(axis=1).all():
        return stack[:, :0]
    first = max(int(np.argmax(row)) for row in scored)
    stop = min(row.size - int(np.argmax(row[::-1])) for row in scored)
    return stack[:, first:stop]


def dreem_inter_scorer_agreement(folder: str | Path | None = None) -> dict[str, Any]:
    """Each DOD-O expert against the consensus of the other four, pooled over all nights: the human ceiling.

    Parameters
    ----------
    folder : str | Path | None
        The DOD-O folder with ``scorer_1`` … ``scorer_5`` of per-night JSON hypnograms (-1 not scored,
        0 W … 4 REM). ``None``: :func:`default_dreem_folder`.

    Returns
    -------
    dict
        JSON-ready: ``folder``, ``n_nights``, ``n_scorers``, ``label_set`` (``"aasm"``),
        ``consensus`` (the rule, in words), ``scorers``: ``{name: {"accuracy", "macro_f1",
        "cohen_kappa", "weighted_f1", "n_epochs", "n_excluded", "per_class_f1", "soft_agreement"}}``
        (``soft_agreement`` = mean over nights of the expert's soft agreement with the other four), and
        ``summary``: ``{metric: {"min", "max", "mean"}}`` over experts for accuracy, macro-F1 and κ.

    Notes
    -----
    See the module docstring for the consensus (Dreem's majority vote; ties to the most reliable
    of the other four, ranked without the expert scored) and for how the metrics differ from the
    Dreem paper's. Each expert's numbers come from :func:`somna.evaluation.epoch_agreement` on the
    concatenated nights, consensus as reference, AASM label set; epochs where the expert or the
    consensus is not scored are excluded (``n_excluded``).
    """
    folder = Path(folder) if folder is not None else default_dreem_folder()
    if not folder.is_dir():
        raise FileNotFoundError(f"DOD-O folder {folder} does not exist")
    scorers, nights, stacks = _load_nights(folder)
    n_scorers = len(scorers)
    refs: list[list[np.ndarray]] = [[] for _ in scorers]
    preds: list[list[np.ndarray]] = [[] for _ in scorers]
    excluded = [0] * n_scorers
    soft: list[list[float]] = [[] for _ in scorers]
    for stack in stacks:
        night = _crop_to_scored(stack)
        if night.shape[1] == 0:
            continue
        for s in range(n_scorers):
            others = [night[j] for j in range(n_scorers) if j != s]
            soft[s].append(soft_agreement(night[s], others, AASM))
            consensus = consensus_hypnogram(others, AASM)
            keep = (consensus != UNSCORED) & (night[s] != UNSCORED)
            excluded[s] += int((~keep).sum())
            refs[s].append(consensus[keep])
            preds[s].append(night[s][keep])

    per_scorer: dict[str, dict[str, Any]] = {}
    for s, name in enumerate(scorers):
        agreement = epoch_agreement(np.concatenate(refs[s]), np.concatenate(preds[s]), AASM)
        per_scorer[name] = {
            "accuracy": agreement["accuracy"],
            "macro_f1": agreement["macro_f1"],
            "cohen_kappa": agreement["cohen_kappa"],
            "weighted_f1": agreement["weighted_f1"],
            "n_epochs": agreement["n_epochs"],
            "n_excluded": excluded[s],
            "per_class_f1": {label: v["f1"] for label, v in agreement["per_class"].items()},
            "soft_agreement": float(np.mean(soft[s])),
        }
    summary = {}
    for metric in _SUMMARY_METRICS:
        values = [r[metric] for r in per_scorer.values() if r[metric] is not None]
        summary[metric] = {"min": min(values), "max": max(values), "mean": float(np.mean(values))}
    return {
        "dataset": "DOD-O",
        "folder": str(folder),
        "n_nights": len(nights),
        "n_scorers": n_scorers,
        "label_set": AASM.name,
        "consensus": (
            "majority vote of the other experts (not-scored counts as a vote); ties go to the other "
            "expert with the highest soft agreement with the rest on that night"
        ),
        "scorers": per_scorer,
        "summary": summary,
    }


def format_human_ceiling(result: dict[str, Any]) -> str:
    """One line per expert and the range/mean: the human ceiling printed beside a model's numbers."""
    summary = result["summary"]

    def span(metric: str) -> str:
        s = summary[metric]
        return f"{s['min']:.3f}–{s['max']:.3f} (mean {s['mean']:.3f})"

    lines = [
        f"Human ceiling ({result.get('dataset', '?')}, {result['n_nights']} nights): each of "
        f"{result['n_scorers']} experts against the consensus of the other {result['n_scorers'] - 1}",
        f"  accuracy {span('accuracy')}; Cohen's κ {span('cohen_kappa')}; macro-F1 {span('macro_f1')}",
        f"  {'expert':<10} {'accuracy':>9} {'κ':>7} {'macro-F1':>9} {'epochs':>8}",
    ]
    for name, r in result["scorers"].items():
        kappa = "–" if r["cohen_kappa"] is None else f"{r['cohen_kappa']:.3f}"
        lines.append(
            f"  {name:<10} {r['accuracy']:>9.3f} {kappa:>7} {r['macro_f1']:>9.3f} {r['n_epochs']:>8d}"
        )
    return "\n".join(lines)
