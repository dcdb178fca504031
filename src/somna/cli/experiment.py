"""``somna train``, ``cv``, ``ablate`` and ``compare-3class``: experiments from a config file."""

from __future__ import annotations

import argparse
from pathlib import Path

COMMANDS = {
    "train": (
        "train one model on a subject-wise train/validation/test split and evaluate it",
        "Train the sequence model on the training subjects, choose the checkpoint on validation subjects "
        "(drawn from the training side, never the test subjects), then score and evaluate the test "
        "subjects and export the model to ONNX (RUN/onnx). Rerunning the same command resumes an "
        "interrupted run.",
    ),
    "cv": (
        "subject-wise cross-validation (both nights of a subject in the same fold)",
        "Train one model per fold of subjects and evaluate the pooled test predictions (and per subject, "
        "mean ± sd). Finished folds are skipped when rerun; an interrupted fold resumes. The folds' models "
        "together are an ensemble that `somna score --model RUN` uses.",
    ),
    "ablate": (
        "compare EEG, EEG+EOG and EEG+EOG+EMG models on the same folds",
        "Run the experiment three times with different modalities on identical folds and print one table "
        "(accuracy, macro-F1, kappa, per-class F1).",
    ),
    "compare-3class": (
        "Wake/NREM/REM three ways on the same folds: hierarchical, direct, 5-class collapsed",
        "Train the hierarchical model (stage 1 Wake vs Sleep; stage 2 REM vs NREM on sleep epochs), a "
        "direct 3-class model and the 5-class model, and print one table of their 3-class agreement "
        "(the 5-class stages collapsed: N1, N2, N3 -> NREM).",
    ),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    for name, (help_text, description) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=description,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        p.add_argument(
            "--config",
            required=True,
            help="experiment config: a TOML file, or a packaged name (demo, sleep-edf-20, sleep-edf-78)",
        )
        p.add_argument("--out", default=None, help="run folder (default: runs/<config name>-<mode>)")
        p.add_argument(
            "--device",
            choices=["auto", "cpu", "cuda"],
            default=None,
            help="override the config's training device (default auto: the GPU when torch sees one)",
        )
        if name in ("ablate", "compare-3class"):
            p.add_argument("--mode", choices=["cv", "holdout"], default="cv", help="protocol of each variant")
        if name != "compare-3class":
            p.add_argument(
                "--label-set",
                choices=["aasm", "rk", "3class", "2class", "hierarchical"],
                default=None,
                help="override the config's stages: aasm (W/N1/N2/N3/REM), rk (6-class, S3 and S4 apart), "
                "3class, 2class, or hierarchical (3-class from Wake/Sleep then NREM/REM)",
            )
        p.set_defaults(func=run)


def _run_dir(args: argparse.Namespace, experiment_name: str, mode: str) -> Path:
    return Path(args.out) if args.out else Path("runs") / f"{experiment_name}-{mode}"


def run(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from somna.config import load_experiment
    from somna.training.experiment import run_ablation, run_experiment, run_three_class_comparison

    experiment = load_experiment(args.config)
    if getattr(args, "label_set", None):  # compare-3class sets the stages itself
        experiment = replace(experiment, data=replace(experiment.data, label_set=args.label_set))
    if args.device:
        experiment = replace(experiment, training=replace(experiment.training, device=args.device))
    if args.command == "ablate":
        run_ablation(experiment, _run_dir(args, experiment.name, "ablation"), args.mode)
    elif args.command == "compare-3class":
        run_three_class_comparison(experiment, _run_dir(args, experiment.name, "3class"), args.mode)
    else:
        mode = "holdout" if args.command == "train" else "cv"
        suffix = mode if experiment.data.label_set == "aasm" else f"{mode}-{experiment.data.label_set}"
        run_experiment(experiment, _run_dir(args, experiment.name, suffix), mode)
