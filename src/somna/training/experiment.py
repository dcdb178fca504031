"""Experiments: a config, subject-wise folds, one model per fold, predictions on test subjects, evaluation.

A run folder holds ``experiment.json`` (config and folds), one ``fold_XX/`` per fold (checkpoints,
history, ``predictions.npz`` on that fold's test subjects) and the evaluation report. A fold with
predictions is done and is skipped when the command is rerun, so an interrupted cross-validation
resumes where it stopped (and an interrupted fold resumes from its last checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from somna.config import ExperimentConfig, ModelConfig, load_cohort_config
from somna.data.cohort import Cohort, prepare_cohort
from somna.data.sequences import NightArrays, load_night
from somna.data.splits import Fold, holdout_split, subject_folds
from somna.errors import SomnaError
from somna.evaluation.agreement import epoch_agreement, per_subject_agreement
from somna.evaluation.human_ceiling import dreem_inter_scorer_agreement, format_human_ceiling
from somna.evaluation.metric_agreement import metric_agreement
from somna.evaluation.sleep_metrics import METRIC_LABELS, sleep_metrics
from somna.hypnogram import EPOCH_SECONDS, Hypnogram
from somna.models.checkpoint import load_run
from somna.models.predict import predict_members
from somna.models.torch_model import TorchStageModel
from somna.provenance import SYNTHETIC
from somna.report.figures import plot_bland_altman, save_figure
from somna.report.run import format_agreement_table, format_comparison_table, write_evaluation_report
from somna.stages import AASM, HIERARCHICAL, THREE_CLASS, LabelSet, convert, task_label_sets
from somna.storage import atomic_write, writable_folder, write_json_atomic
from somna.training import distributed
from somna.training.trainer import records_of, train_model

__all__ = [
    "ABLATIONS",
    "RunPredictions",
    "evaluate_run",
    "load_run_predictions",
    "open_cohort",
    "run_ablation",
    "run_experiment",
    "run_three_class_comparison",
]

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
    return prepare_cohort(
        experiment.data.edf_folder, cache, config=load_cohort_config(experiment.data.cohort_config)
    )


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


def _model_config(experiment: ExperimentConfig, cohort: Cohort, label_set: LabelSet) -> ModelConfig:
    pre = cohort.manifest["config"]["preprocess"]
    channels = cohort.manifest["config"]["channels"]
    return experiment.model_config(
        {m: len(channels[m]) for m in experiment.data.modalities},
        n_times=round(pre["sfreq"] * pre["epoch_s"]),
        emg_n_times=round(pre["emg_sfreq"] * pre["epoch_s"]),
        n_classes=label_set.n_classes,
    )


def _save_predictions(
    path: Path, nights: list[NightArrays], outputs: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    sizes = [n.n_epochs for n in nights]

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                record=np.repeat(np.array([n.record for n in nights]), sizes),
                subject=np.repeat(np.array([n.subject_id for n in nights]), sizes),
                y_true=np.concatenate([n.labels for n in nights]).astype(np.int8),
                y_pred=np.concatenate([o[1] for o in outputs]).astype(np.int8),
                probs=np.concatenate([o[0] for o in outputs]).astype(np.float32),
            )

    atomic_write(path, write)


def run_experiment(
    experiment: ExperimentConfig,
    run_dir: str | Path,
    mode: str = "cv",
    progress: bool = True,
    export: bool = True,
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
    export : bool
        Export the run's models to ONNX (``run_dir/onnx``) at the end, which :func:`somna.load_stager`
        then runs without torch.

    Returns
    -------
    dict
        The pooled agreement (see :func:`somna.evaluation.agreement.epoch_agreement`).
    """
    run_dir = Path(run_dir)
    # Under torchrun rank 0 alone writes files (cohort cache, run folder, predictions, report); every
    # rank trains, and decisions taken from files on rank 0 are broadcast so that the ranks stay in step.
    progress = progress and distributed.is_main()
    if distributed.context().active:  # rank 0 prepares the cache if needed, then every rank opens it
        distributed.from_main(lambda: open_cohort(experiment).root)
    cohort = open_cohort(experiment)
    label_set, stage_models = task_label_sets(experiment.data.label_set)
    folds = _folds(experiment, cohort, mode)
    missing = [m for m in experiment.data.modalities if m not in cohort.manifest["config"]["channels"]]
    if missing:
        raise SomnaError(f"the cohort has no {missing} channels; prepare it with them", cohort.root)
    payload = {
        "experiment": experiment.to_dict(),
        "mode": mode,
        "cohort": str(cohort.root.resolve()),
        "records": cohort.records,
        "folds": [f.to_dict() for f in folds],
    }

    def check_run_folder() -> None:
        writable_folder(run_dir)  # an unusable output folder fails here, before any training
        _check_run_folder(run_dir, payload)

    distributed.from_main(check_run_folder)
    for fold in folds:
        fold_dir = run_dir / f"fold_{fold.index:02d}"
        predictions = fold_dir / "predictions.npz"
        header = (
            f"fold {fold.index + 1}/{len(folds)}: train {len(fold.train)} subjects, "
            f"validation {len(fold.validation)}, test {len(fold.test)} ({', '.join(fold.test)})"
        )
        if distributed.from_main(predictions.is_file):
            if progress:
                print(f"{header} — done, skipped")
            continue
        if progress:
            print(header)
        summaries = {}
        for role, model_labels in stage_models:
            if progress and role:
                print(f"  {role}: {' vs '.join(model_labels.labels)}")
            result = train_model(
                cohort,
                fold,
                _model_config(experiment, cohort, model_labels),
                experiment.training,
                model_labels,
                fold_dir / role if role else fold_dir,
                progress,
                extra={"experiment": experiment.to_dict()},
            )
            summaries[role or "model"] = {
                "best_pass": result.best_pass,
                "best_validation": result.best_validation,
                "passes": len(result.history),
                "stopped_early": result.stopped_early,
                "labelled_epochs_per_s": result.labelled_epochs_per_s,
            }
        if not distributed.is_main():
            continue
        write_json_atomic(fold_dir / "train_summary.json", summaries)
        networks, _, _ = load_run(fold_dir)
        members = [{role: TorchStageModel(net.for_inference()) for role, net in networks[0].items()}]
        nights = [
            load_night(cohort, r, label_set, experiment.data.modalities)
            for r in records_of(cohort, fold.test)
        ]
        outputs = [predict_members(members, experiment.data.label_set, n.signals) for n in nights]
        _save_predictions(predictions, nights, outputs)
        if progress:
            fold_eval = epoch_agreement(
                np.concatenate([n.labels for n in nights]), np.concatenate([o[1] for o in outputs]), label_set
            )
            print(
                f"  fold {fold.index + 1} test: accuracy {fold_eval['accuracy']:.3f}, "
                f"macro-F1 {fold_eval['macro_f1']:.3f}, kappa {fold_eval['cohen_kappa']:.3f}"
            )

    def finish() -> dict[str, Any]:
        pooled = evaluate_run(run_dir, progress=progress)
        if export:
            from somna.models.onnx import export_run

            export_run(run_dir)  # scoring with `somna score` / `load_stager` then needs no torch
            if progress:
                print(f"ONNX export of the run's models: {run_dir / 'onnx'}")
        return pooled

    return distributed.from_main(finish)


@dataclass
class RunPredictions:
    """Pooled test predictions of every fold of a run."""

    payload: dict[str, Any]
    label_set: LabelSet
    y_true: np.ndarray
    y_pred: np.ndarray
    subjects: np.ndarray
    records: np.ndarray
    training: list[dict[str, Any]]


def load_run_predictions(run_dir: str | Path) -> RunPredictions:
    """Read ``experiment.json`` and every fold's ``predictions.npz`` of a run.

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
    y_true, y_pred, subjects, records, training = [], [], [], [], []
    for fold in payload["folds"]:
        fold_dir = run_dir / f"fold_{fold['index']:02d}"
        path = fold_dir / "predictions.npz"
        if not path.is_file():
            raise SomnaError(
                f"fold {fold['index'] + 1} has no test predictions yet; rerun the training command", run_dir
            )
        with np.load(path, allow_pickle=False) as data:
            y_true.append(data["y_true"].astype(np.int64))
            y_pred.append(data["y_pred"].astype(np.int64))
            subjects.append(data["subject"])
            records.append(data["record"])
        summary_path = fold_dir / "train_summary.json"
        if summary_path.is_file():
            training.append({"fold": fold["index"], **json.loads(summary_path.read_text())})
    label_set = task_label_sets(payload["experiment"]["data"]["label_set"])[0]
    return RunPredictions(
        payload,
        label_set,
        np.concatenate(y_true),
        np.concatenate(y_pred),
        np.concatenate(subjects),
        np.concatenate(records),
        training,
    )


AGREEMENT_METRICS = ("tst_min", "sleep_efficiency_pct", "sleep_latency_min", "rem_latency_min", "waso_min")
"""Sleep metrics whose scored and estimated values are compared per test night."""


def _cached_lights(run: RunPredictions) -> dict[str, tuple[float | None, float | None]]:
    """Per record, lights off/on in seconds from the first cached epoch, where the cohort knows them."""
    try:
        manifest = json.loads((Path(run.payload["cohort"]) / "manifest.json").read_text())
    except (OSError, ValueError, KeyError):
        return {}
    lights = {}
    for entry in manifest.get("recordings", []):
        if entry.get("lights_off_s") is None and entry.get("lights_on_s") is None:
            continue
        shift = entry["first_epoch"] * EPOCH_SECONDS
        lights[entry["record"]] = tuple(
            None if entry.get(key) is None else entry[key] - shift for key in ("lights_off_s", "lights_on_s")
        )
    return lights


def night_metric_agreement(run: RunPredictions, figure: Path | None = None) -> dict[str, Any] | None:
    """Scored vs estimated sleep metrics over the test nights of a run (bias, MAE, limits of agreement).

    Each test night's metrics are computed on the span the model staged (the sleep period ± the wake
    margin kept by preprocessing), from the scored and from the predicted hypnogram alike, and within
    it between the night's lights off and on where the cohort records them (``prepare --lights``).
    ``None`` for label sets without wake (NREM/REM).
    """
    if "W" not in run.label_set.labels:
        return None
    lights = _cached_lights(run)
    scored, estimated = [], []
    for record in np.unique(run.records):
        rows = run.records == record
        off, on = lights.get(str(record), (None, None))
        n = int(rows.sum())
        # lights outside the cached span leave that end of it as it is
        off = None if off is None or off <= 0 or off >= n * EPOCH_SECONDS else off
        on = None if on is None or on >= n * EPOCH_SECONDS or (off is not None and on <= off) else on
        scored.append(sleep_metrics(Hypnogram(run.y_true[rows], run.label_set), off, on))
        estimated.append(sleep_metrics(Hypnogram(run.y_pred[rows], run.label_set), off, on))
    metrics = [m for m in AGREEMENT_METRICS if any(s.get(m) is not None for s in scored)]
    if figure is not None:
        save_figure(plot_bland_altman(scored, estimated, metrics), figure, dpi=110)
    return metric_agreement(scored, estimated, metrics)


def _metric_agreement_markdown(agreement: dict[str, Any], figure_name: str) -> str:
    header = (
        "| Metric | Nights | Scored (mean) | Estimated (mean) | Bias | MAE | 95 % limits of agreement | r |"
    )
    lines = [
        "Per test night, the sleep metrics of the predicted hypnogram against those of the scored one "
        "(bias = estimated − scored).",
        "",
        header,
        "|" + "---|" * 8,
    ]

    def f(value: float | None) -> str:
        return "–" if value is None else f"{value:.1f}"

    for name, a in agreement.items():
        r = "–" if a["pearson_r"] is None else f"{a['pearson_r']:.2f}"
        lines.append(
            f"| {METRIC_LABELS.get(name, name)} ({a['unit']}) | {a['n']} | {f(a['mean_scored'])} | "
            f"{f(a['mean_estimated'])} | {f(a['bias'])} | {f(a['mae'])} | {f(a['loa_lower'])} to "
            f"{f(a['loa_upper'])} | {r} |"
        )
    return "\n".join([*lines, "", f"![Bland–Altman]({figure_name})"])


@lru_cache(maxsize=1)
def _human_ceiling() -> dict[str, Any] | None:
    try:
        return dreem_inter_scorer_agreement()
    except (SomnaError, OSError, ValueError):
        return None  # the DOD-O scorings are not beside this checkout


def evaluate_run(run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Pool the test predictions of every fold of a run and write its evaluation report.

    Writes ``evaluation.json``, ``evaluation.md`` and ``confusion_matrix.png`` in ``run_dir``: epoch
    agreement pooled over all test epochs and per subject (mean ± sd), scored-vs-estimated sleep
    metrics per test night with a Bland–Altman figure (``metric_agreement.png``), and the human ceiling
    (five experts of the Dreem DOD-O dataset, each against the other four) when those scorings are found.

    Raises
    ------
    SomnaError
        If the folder is not a run or a fold has no predictions yet.
    """
    run_dir = Path(run_dir)
    run = load_run_predictions(run_dir)
    payload = run.payload
    pooled = epoch_agreement(run.y_true, run.y_pred, run.label_set)
    per_subject = per_subject_agreement(run.y_true, run.y_pred, run.subjects, run.label_set)
    name = payload["experiment"].get("name", "experiment")
    task = payload["experiment"]["data"]["label_set"]
    title = f"{name}: {payload['mode']} over {len(payload['folds'])} fold(s), {task} stages"
    sections: dict[str, str] = {}
    figure = run_dir / "metric_agreement.png"
    metrics = night_metric_agreement(run, figure)
    if metrics is not None:
        sections["Sleep metrics: estimated vs scored"] = _metric_agreement_markdown(metrics, figure.name)
    ceiling = _human_ceiling()
    try:
        source = json.loads((Path(payload["cohort"]) / "manifest.json").read_text()).get("source") or {}
    except (OSError, ValueError):
        source = {}
    synthetic = source.get("kind") == SYNTHETIC
    if ceiling is not None:
        caveat = (
            "**This model was trained and tested on synthetic nights (somna's own generator); the ceiling "
            "below was measured on real nights scored by people. The two are not comparable: the ceiling is "
            "shown for scale, not as a bar this model has met.**\n\n"
            if synthetic
            else ""
        )
        sections["Human ceiling"] = (
            f"{caveat}This model: accuracy {pooled['accuracy']:.3f}, κ {_or_dash(pooled['cohen_kappa'])}, "
            f"macro-F1 {pooled['macro_f1']:.3f} ({run.label_set.name} stages; experts scored AASM)."
            f"\n\n```text\n{format_human_ceiling(ceiling)}\n```"
        )
    write_evaluation_report(
        run_dir,
        pooled,
        per_subject,
        title=title,
        extra={
            "experiment": payload["experiment"],
            "folds": payload["folds"],
            "training": run.training,
            "sleep_metric_agreement": metrics,
            "human_ceiling": None if ceiling is None else ceiling["summary"],
        },
        sections=sections,
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
        if ceiling is not None:
            span = ceiling["summary"]
            print(
                f"human ceiling{CEILING_CAVEAT if synthetic else ''} (DOD-O, 5 experts vs the other 4): "
                f"accuracy {span['accuracy']['min']:.3f}–"
                f"{span['accuracy']['max']:.3f}, kappa {span['cohen_kappa']['min']:.3f}–"
                f"{span['cohen_kappa']['max']:.3f}, macro-F1 {span['macro_f1']['min']:.3f}–"
                f"{span['macro_f1']['max']:.3f}"
            )
        print(f"report: {run_dir / 'evaluation.md'}, figure: {run_dir / 'confusion_matrix.png'}")
    return pooled


CEILING_CAVEAT = ", measured on real nights, not comparable with these synthetic ones"


def _or_dash(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _write_comparison(run_dir: Path, title: str, results: dict[str, dict[str, Any]], progress: bool) -> None:
    table = format_comparison_table(results)
    stem = title.lower().replace(" ", "_")
    write_json_atomic(run_dir / f"{stem}.json", results)
    atomic_write(run_dir / f"{stem}.md", lambda tmp: tmp.write_text(f"# {title}\n\n```\n{table}\n```\n"))
    if progress:
        print(f"\n{title} (same folds):\n{table}")


def run_ablation(
    experiment: ExperimentConfig, run_dir: str | Path, mode: str = "cv", progress: bool = True
) -> dict[str, dict[str, Any]]:
    """Train EEG, EEG+EOG and EEG+EOG+EMG models on the same folds and compare them.

    Each variant runs as :func:`run_experiment` in ``run_dir/<variant>``; the table is printed and written
    to ``run_dir/modality_ablation.md`` and ``.json``.
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
        results[name] = run_experiment(
            variant, run_dir / name.replace("+", "_").lower(), mode, progress, export=False
        )
    _write_comparison(run_dir, "Modality ablation", results, progress)
    return results


def run_three_class_comparison(
    experiment: ExperimentConfig, run_dir: str | Path, mode: str = "cv", progress: bool = True
) -> dict[str, dict[str, Any]]:
    """Wake / NREM / REM three ways on the same folds: hierarchical, direct 3-class, 5-class collapsed.

    The hierarchical model (Wake vs Sleep, then REM vs NREM on sleep epochs), a model trained directly on
    3 classes, and the 5-class (AASM) model whose stages are collapsed to 3 (N1, N2, N3 → NREM) after
    prediction. Each runs as :func:`run_experiment` in ``run_dir/<variant>``; the table is printed and
    written to ``run_dir/three-class_comparison.md`` and ``.json``.
    """
    run_dir = Path(run_dir)
    results = {}
    for name, label_set in (
        ("hierarchical", HIERARCHICAL),
        ("direct 3-class", "3class"),
        ("5-class", "aasm"),
    ):
        if progress:
            print(f"\n=== {name} ===")
        variant = replace(
            experiment, data=replace(experiment.data, label_set=label_set), name=f"{experiment.name} [{name}]"
        )
        folder = run_dir / name.split()[-1]
        results[name] = run_experiment(variant, folder, mode, progress, export=False)
        if label_set == "aasm":
            run = load_run_predictions(folder)
            results["5-class collapsed to 3"] = epoch_agreement(
                convert(run.y_true, AASM, THREE_CLASS), convert(run.y_pred, AASM, THREE_CLASS), THREE_CLASS
            )
            del results[name]
    _write_comparison(run_dir, "Three-class comparison", results, progress)
    return results
