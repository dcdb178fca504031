"""Experiments: a config, subject-wise folds, one model per fold, predictions on test subjects, evaluation.

A run folder holds ``experiment.json`` (config and folds), one ``fold_XX/`` per fold (checkpoints,
history, ``predictions.npz`` on that fold's test subjects) and the evaluation report. A fold with
predictions is done and is skipped when the command is rerun, so an interrupted cross-validation
resumes where it stopped (and an interrupted fold resumes from its last checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from somna.config import load_config
from somna.data.cohort import Cohort, prepare_cohort
from somna.data.sequences import load_night
from somna.data.splits import Fold, holdout_split, subject_folds
from somna.errors import SomnaError
from somna.evaluation import (
    epoch_agreement,
    format_agreement_table,
    format_comparison_table,
    per_subject_agreement,
    write_evaluation_report,
)
from somna.inference import predict_night
from somna.stages import get_label_set
from somna.storage import atomic_write, write_json_atomic
from somna.training.checkpoint import model_from_checkpoint
from somna.training.config import ExperimentConfig
from somna.training.trainer import records_of, train_model

__all__ = ["ABLATIONS", "evaluate_run", "open_cohort", "run_ablation", "run_experiment"]

ABLATIONS: dict[str, tuple[str, ...]] = {
    "EEG": ("eeg",),
    "EEG+EOG": ("eeg", "eog"),
    "EEG+EOG+EMG": ("eeg", "eog", "emg"),
}
"""Modality sets compared by :func:`run_ablation`."""


def open_cohort(experiment: ExperimentConfig) -> Cohort:
    """Open the experiment's cohort cache, preparing it from ``edf_folder`` first if it does not exist."""
    cache = Path(experiment.data.cache)
    if (cache / "manifest.json").is_file():
        return Cohort.open(cache)
    if experiment.data.edf_folder is None:
        raise SomnaError("no prepared cohort here and no [data] edf_folder to prepare it from", cache)
    config = load_config(experiment.data.cohort_config) if experiment.data.cohort_config else None
    return prepare_cohort(experiment.data.edf_folder, cache, config=config)


def _folds(experiment: ExperimentConfig, cohort: Cohort, mode: str) -> list[Fold]:
    cv = experiment.cv
    if mode == "holdout":
        return [holdout_split(cohort.subjects, cv.test_fraction, cv.validation_fraction, cv.seed)]
    return subject_folds(cohort.subjects, cv.n_folds, cv.validation_fraction, cv.seed)


def _check_run_folder(run_dir: Path, payload: dict[str, Any]) -> None:
    path = run_dir / "experiment.json"
    payload = json.loads(json.dumps(payload))  # tuples become lists, as in the file
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != payload:
            raise SomnaError(
                "holds a run of a different config, cohort or folds; choose another --out", run_dir
            )
    else:
        write_json_atomic(path, payload)


def _save_predictions(
    path: Path, records: list[str], subjects: list[str], labels: list[np.ndarray], probs: list[np.ndarray]
) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                record=np.repeat(np.array(records), [lab.size for lab in labels]),
                subject=np.repeat(np.array(subjects), [lab.size for lab in labels]),
                y_true=np.concatenate(labels).astype(np.int8),
                probs=np.concatenate(probs).astype(np.float32),
            )

    atomic_write(path, write)


def run_experiment(
    experiment: ExperimentConfig, run_dir: str | Path, mode: str = "cv", progress: bool = True
) -> dict[str, Any]:
    """Train and test one model per fold, then evaluate the pooled test predictions.

    Parameters
    ----------
    experiment : ExperimentConfig
        Data, model, training and protocol.
    run_dir : str | Path
        Run folder (created; resumed if it holds the same experiment).
    mode : {"cv", "holdout"}
        ``"cv"``: ``experiment.cv.n_folds`` subject-wise folds; ``"holdout"``: one train/validation/test
        split of subjects.
    progress : bool
        Per-fold lines and per-pass progress bars.

    Returns
    -------
    dict
        The pooled agreement (see :func:`somna.evaluation.epoch_agreement`).
    """
    run_dir = Path(run_dir)
    cohort = open_cohort(experiment)
    label_set = get_label_set(experiment.data.label_set)
    folds = _folds(experiment, cohort, mode)
    missing = [m for m in experiment.data.modalities if m not in cohort.manifest["config"]["channels"]]
    if missing:
        raise SomnaError(f"the cohort has no {missing} channels; prepare it with them", cohort.root)
    pre = cohort.manifest["config"]["preprocess"]
    channels = cohort.manifest["config"]["channels"]
    model_config = experiment.model_config(
        {m: len(channels[m]) for m in experiment.data.modalities},
        n_times=round(pre["sfreq"] * pre["epoch_s"]),
        emg_n_times=round(pre["emg_sfreq"] * pre["epoch_s"]),
        n_classes=label_set.n_classes,
    )
    payload = {
        "experiment": experiment.to_dict(),
        "mode": mode,
        "cohort": str(cohort.root.resolve()),
        "records": cohort.records,
        "folds": [f.to_dict() for f in folds],
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_run_folder(run_dir, payload)
    for fold in folds:
        fold_dir = run_dir / f"fold_{fold.index:02d}"
        predictions = fold_dir / "predictions.npz"
        header = (
            f"fold {fold.index + 1}/{len(folds)}: train {len(fold.train)} subjects, "
            f"validation {len(fold.validation)}, test {len(fold.test)} ({', '.join(fold.test)})"
        )
        if predictions.is_file():
            if progress:
                print(f"{header} — done, skipped")
            continue
        if progress:
            print(header)
        result = train_model(
            cohort,
            fold,
            model_config,
            experiment.training,
            label_set,
            fold_dir,
            progress,
            extra={"experiment": experiment.to_dict()},
        )
        model, _ = model_from_checkpoint(result.best_checkpoint)
        test_records = records_of(cohort, fold.test)
        nights = [load_night(cohort, r, label_set, experiment.data.modalities) for r in test_records]
        probs = [predict_night(model, n) for n in nights]
        write_json_atomic(
            fold_dir / "train_summary.json",
            {
                "best_pass": result.best_pass,
                "best_validation": result.best_validation,
                "passes": len(result.history),
                "stopped_early": result.stopped_early,
                "labelled_epochs_per_s": result.labelled_epochs_per_s,
            },
        )
        _save_predictions(
            predictions, test_records, [n.subject_id for n in nights], [n.labels for n in nights], probs
        )
        if progress:
            fold_eval = epoch_agreement(
                np.concatenate([n.labels for n in nights]),
                np.concatenate([p.argmax(1) for p in probs]),
                label_set,
            )
            print(
                f"  fold {fold.index + 1} test: accuracy {fold_eval['accuracy']:.3f}, "
                f"macro-F1 {fold_eval['macro_f1']:.3f}, kappa {fold_eval['cohen_kappa']:.3f} "
                f"(best pass {result.best_pass})"
            )
    return evaluate_run(run_dir, progress=progress)


def evaluate_run(run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Pool the test predictions of every fold of a run and write its evaluation report.

    Writes ``evaluation.json``, ``evaluation.md`` and ``confusion_matrix.png`` in ``run_dir``; pooled
    over all test epochs, and per subject (mean ± sd).

    Raises
    ------
    SomnaError
        If the folder is not a run or a fold has no predictions yet.
    """
    run_dir = Path(run_dir)
    try:
        payload = json.loads((run_dir / "experiment.json").read_text())
    except FileNotFoundError:
        raise SomnaError("not a run folder (no experiment.json)", run_dir) from None
    label_set = get_label_set(payload["experiment"]["data"]["label_set"])
    y_true, y_pred, subjects, summaries = [], [], [], []
    for fold in payload["folds"]:
        fold_dir = run_dir / f"fold_{fold['index']:02d}"
        path = fold_dir / "predictions.npz"
        if not path.is_file():
            raise SomnaError(
                f"fold {fold['index'] + 1} has no test predictions yet; rerun the training command", run_dir
            )
        with np.load(path, allow_pickle=False) as data:
            y_true.append(data["y_true"].astype(np.int64))
            y_pred.append(data["probs"].argmax(axis=1))
            subjects.append(data["subject"])
        summary_path = fold_dir / "train_summary.json"
        if summary_path.is_file():
            summaries.append({"fold": fold["index"], **json.loads(summary_path.read_text())})
    t, p, s = np.concatenate(y_true), np.concatenate(y_pred), np.concatenate(subjects)
    pooled = epoch_agreement(t, p, label_set)
    per_subject = per_subject_agreement(t, p, s, label_set)
    name = payload["experiment"].get("name", "experiment")
    title = f"{name}: {payload['mode']} over {len(payload['folds'])} fold(s), {label_set.name} stages"
    write_evaluation_report(
        run_dir,
        pooled,
        per_subject,
        title=title,
        extra={"experiment": payload["experiment"], "folds": payload["folds"], "training": summaries},
    )
    if progress:
        print(f"\n{title}")
        print(format_agreement_table(pooled))
        summary = per_subject["summary"]
        print(
            f"per subject (n={summary['n_subjects']}): accuracy {summary['accuracy']['mean']:.3f} ± "
            f"{summary['accuracy']['sd']:.3f}, macro-F1 {summary['macro_f1']['mean']:.3f} ± "
            f"{summary['macro_f1']['sd']:.3f}"
        )
        print(f"report: {run_dir / 'evaluation.md'}, figure: {run_dir / 'confusion_matrix.png'}")
    return pooled


def run_ablation(
    experiment: ExperimentConfig, run_dir: str | Path, mode: str = "cv", progress: bool = True
) -> dict[str, dict[str, Any]]:
    """Train EEG, EEG+EOG and EEG+EOG+EMG models on the same folds and compare them.

    Each variant runs as :func:`run_experiment` in ``run_dir/<variant>``; the table is printed and written
    to ``run_dir/ablation.md`` and ``ablation.json``.
    """
    run_dir = Path(run_dir)
    results = {}
    for name, modalities in ABLATIONS.items():
        if progress:
            print(f"\n=== {name} ===")
        variant = replace(
            experiment,
            data=replace(experiment.data, modalities=modalities),
            name=f"{experiment.name} [{name}]",
        )
        results[name] = run_experiment(variant, run_dir / name.replace("+", "_").lower(), mode, progress)
    table = format_comparison_table(results)
    write_json_atomic(run_dir / "ablation.json", results)
    atomic_write(
        run_dir / "ablation.md", lambda tmp: tmp.write_text(f"# Modality ablation\n\n```\n{table}\n```\n")
    )
    if progress:
        print(f"\nModality ablation ({mode}, same folds):\n{table}")
    return results
