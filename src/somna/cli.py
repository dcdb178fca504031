"""The ``somna`` command: sub-commands that parse arguments and call the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from somna import __version__
from somna.errors import SomnaError

if TYPE_CHECKING:  # imported lazily at run time so that `somna --help` stays fast
    from somna.config import CohortConfig

__all__ = ["main"]


def _cmd_synth(args: argparse.Namespace) -> None:
    from somna.synth import write_synthetic_cohort

    paths = write_synthetic_cohort(
        args.out,
        n_subjects=args.subjects,
        layout=args.layout,
        seed=args.seed,
        nights=args.nights,
        hours=args.hours,
    )
    print(f"wrote {len(paths)} files to {args.out}")


def _cmd_download(args: argparse.Namespace) -> None:
    from somna.io.sleepedf import download_sleep_edf, parse_subject_range

    pairs = download_sleep_edf(parse_subject_range(args.subjects), study=args.study, path=args.path)
    for pair in pairs:
        print(f"{pair.psg}\t{pair.hypnogram}")
    print(f"{len(pairs)} night(s) ready")


def _load_cohort_config(path: str | None) -> CohortConfig:
    from somna.config import CohortConfig, load_config

    return load_config(path) if path else CohortConfig()


def _cmd_prepare(args: argparse.Namespace) -> None:
    from somna.data import prepare_cohort

    config = _load_cohort_config(args.config)
    if args.keep_wake is not None:
        from dataclasses import replace

        trim = None if args.keep_wake < 0 else args.keep_wake
        config = replace(config, preprocess=replace(config.preprocess, trim_wake_min=trim))
    cohort = prepare_cohort(args.edf_folder, args.cache, config=config, workers=args.workers)
    print(f"{cohort!r}")
    print(cohort.format_stage_table())


def _cmd_info(args: argparse.Namespace) -> None:
    from somna.data import Cohort

    cohort = Cohort.open(args.cache, verify=args.verify)
    if args.verify:
        for record in cohort.records:
            cohort.night(record)
    print(f"{cohort!r}")
    print(cohort.format_stage_table())


def _run_dir(args: argparse.Namespace, experiment_name: str, mode: str) -> Path:
    return Path(args.out) if args.out else Path("runs") / f"{experiment_name}-{mode}"


def _cmd_experiment(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from somna.training.config import load_experiment
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


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from somna.training.experiment import evaluate_run

    evaluate_run(args.run)


def _cmd_score(args: argparse.Namespace) -> None:
    from somna.evaluation.sleep_metrics import format_metrics_table
    from somna.scoring import (
        SCORED,
        SKIPPED,
        channel_spec,
        expand_psgs,
        night_folder,
        pair_hypnograms,
        score_many,
        score_to_folder,
    )
    from somna.staging import load_stager
    from somna.storage import writable_folder

    items = [str(p) for p in args.psgs]
    single = len(items) == 1 and Path(items[0]).is_file()
    if args.hypnogram is not None and not single:
        raise SomnaError("--hypnogram needs a single PSG file; use --hypnogram-dir to score several")
    if args.hypnogram is not None and args.hypnogram_dir is not None:
        raise SomnaError("give --hypnogram or --hypnogram-dir, not both")
    psgs = expand_psgs(items)
    channels = channel_spec(args.eeg, args.eog, args.emg)
    references = pair_hypnograms(psgs, args.hypnogram_dir) if args.hypnogram_dir is not None else {}
    if single:  # one file: --out is the night's folder itself
        psg = psgs[0]
        out = Path(args.out) if args.out else night_folder("scores", psg)
        stager = load_stager(args.model, args.backend)
        writable_folder(out)
        reference = args.hypnogram or references.get(psg)
        scored = score_to_folder(psg, stager, out, channels, reference, str(args.model), args.force)
        if scored is None:
            print(f"{psg}: already scored in {out}, skipped (--force scores it again)")
            return
        print(f"{psg}: {len(scored.hypnogram)} epochs staged ({stager.label_set.name})")
        print(format_metrics_table(scored.metrics))
        if scored.agreement is not None:
            a = scored.agreement
            print(
                f"agreement with {reference}: accuracy {a['accuracy']:.3f}, macro-F1 {a['macro_f1']:.3f}, "
                f"kappa {a['cohen_kappa']:.3f}"
            )
        for name in ("hypnogram.csv", "hypnogram.edf", "probabilities.csv", "report.html", "metrics.json"):
            if (out / name).is_file():
                print(f"  {out / name}")
        return
    out = Path(args.out) if args.out else Path("scores")
    if args.hypnogram_dir is not None:
        print(f"{len(references)} of {len(psgs)} night(s) have a reference hypnogram in {args.hypnogram_dir}")
    status = score_many(
        psgs,
        args.model,
        out,
        channels,
        workers=args.workers,
        force=args.force,
        references=references,
        backend=args.backend,
    )
    failed = {psg: text for psg, text in status.items() if text not in (SCORED, SKIPPED)}
    for text in failed.values():
        print(f"failed: {text}", file=sys.stderr)
    counts = {s: sum(v == s for v in status.values()) for s in (SCORED, SKIPPED)}
    print(
        f"{len(status)} night(s): {counts[SCORED]} scored, {counts[SKIPPED]} skipped (already scored), "
        f"{len(failed)} failed; outputs in {out}/<PSG name>/"
    )
    if failed:
        raise SomnaError(
            f"{len(failed)} of {len(status)} night(s) failed (listed above); the others are scored, and "
            "rerunning the same command retries only the failed ones"
        )


def _cmd_stream(args: argparse.Namespace) -> None:
    import statistics

    import torch

    from somna.scoring import channel_spec
    from somna.staging import load_stager
    from somna.storage import atomic_write
    from somna.streaming import score_stream

    torch.set_num_threads(args.threads)
    stager = load_stager(args.model, args.backend, threads=args.threads)
    labels = stager.label_set.labels
    print(
        f"{'epoch':>6} {'time':>9}  {'stage':<5} " + " ".join(f"{'p_' + s:>6}" for s in labels) + "  latency"
    )
    rows, latencies = [], []
    results = score_stream(
        args.psg,
        stager,
        chunk_s=args.chunk_s,
        speed=args.speed,
        realtime=args.realtime,
        channels=channel_spec(args.eeg, args.eog, args.emg),
    )
    for r in results:
        latencies.append(r.latency_s * 1000)
        rows.append(f"{r.index},{r.end_s:.0f},{r.label}," + ",".join(f"{p:.4f}" for p in r.probs))
        hours, rest = divmod(int(r.end_s), 3600)
        clock = f"{hours:>3}:{rest // 60:02d}:{rest % 60:02d}"
        probs = " ".join(f"{p:>6.3f}" for p in r.probs)
        print(f"{r.index:>6} {clock}  {r.label:<5} {probs}  {latencies[-1]:6.1f} ms")
    if not latencies:
        raise SomnaError("the recording is shorter than one 30-s epoch", args.psg)
    print(
        f"{len(latencies)} epochs; latency per epoch: median {statistics.median(latencies):.1f} ms, "
        f"max {max(latencies):.1f} ms"
    )
    if args.out:
        text = "epoch,end_s,stage," + ",".join(f"p_{s}" for s in labels) + "\n" + "\n".join(rows) + "\n"
        atomic_write(args.out, lambda tmp: tmp.write_text(text))
        print(f"hypnogram written to {args.out}")


def _cmd_export(args: argparse.Namespace) -> None:
    from somna.export import export_onnx

    out = Path(args.out) if args.out else Path(args.run) / "onnx"
    manifest = export_onnx(args.run, out, int8=args.int8)
    for name, size in manifest["file_bytes"].items():
        print(f"  {out / name}  {size / 1024:.0f} KiB")
    backend = "onnx-int8" if args.int8 else "onnx"
    print(f"score with: somna score PSG.edf --model {out} --backend {backend}")
    if manifest["preprocess"].get("filter") == "causal":  # trained on streamable preprocessing
        print(f"stream with: somna stream PSG.edf --model {out} --backend {backend}")


def _cmd_metrics(args: argparse.Namespace) -> None:
    import json

    from somna.evaluation.sleep_metrics import format_metrics_table, sleep_metrics
    from somna.io import read_hypnogram

    hypnogram = read_hypnogram(args.hypnogram)
    metrics = sleep_metrics(hypnogram, lights_off_s=args.lights_off, lights_on_s=args.lights_on)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics_table(metrics))


def _cmd_demo(args: argparse.Namespace) -> None:
    from somna.demo import run_demo

    run_demo(Path(args.out), n_subjects=args.subjects, seed=args.seed, workers=args.workers)


def _add_backend_argument(p: argparse.ArgumentParser) -> None:
    """--backend of `score` and `stream` (somna.staging.BACKENDS; not imported here: it loads torch)."""
    p.add_argument(
        "--backend",
        choices=["torch", "onnx", "onnx-int8"],
        default="torch",
        help="torch: --model is a run folder or checkpoint; onnx/onnx-int8: a folder from `somna export`",
    )


def _add_channel_arguments(p: argparse.ArgumentParser) -> None:
    """--eeg/--eog/--emg, the channel mapping of `score` and `stream` (somna.scoring.channel_spec)."""
    p.add_argument(
        "--eeg",
        default=None,
        help="EEG channel names, comma-separated; aliases with '|' "
        "(default: 'EEG Fpz-Cz|Fpz-Cz,EEG Pz-Oz|Pz-Oz')",
    )
    p.add_argument("--eog", default=None, help="EOG channel name(s) (default: 'EOG horizontal')")
    p.add_argument("--emg", default=None, help="chin EMG channel name (default: 'EMG submental')")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="somna",
        description="Automatic sleep staging from polysomnography (EEG + EOG + EMG).",
        epilog="Run `somna COMMAND --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"somna {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser(
        "synth",
        help="write a synthetic PSG cohort as EDF files in Sleep-EDF's layout",
        description="Synthesise nights of PSG (EEG Fpz-Cz, Pz-Oz, EOG, EMG, ...) and their R&K hypnograms as "
        "EDF/EDF+ files named and laid out exactly like Sleep-EDF Expanded. Stage sequences follow real "
        "Sleep-EDF hypnograms; the physiology follows what an AASM scorer looks for.",
        formatter_class=fmt,
    )
    p.add_argument("--subjects", type=int, default=4, help="number of synthetic subjects")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--layout",
        choices=["sc", "st"],
        default="sc",
        help="Sleep Cassette (1 Hz EMG envelope) or Sleep Telemetry (100 Hz EMG) layout",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.add_argument("--nights", type=int, choices=[1, 2], default=2, help="nights per subject")
    p.add_argument(
        "--hours",
        type=float,
        default=None,
        help="cap each night at this many hours around the "
        "sleep period (default: full Sleep-EDF-like recordings)",
    )
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser(
        "download",
        help="download Sleep-EDF Expanded recordings from PhysioNet (checksums verified)",
        description="Fetch Sleep-EDF Expanded PSG and hypnogram files through MNE's fetcher, which verifies "
        "each file's checksum. Recordings missing from PhysioNet are skipped with a warning.",
        formatter_class=fmt,
    )
    p.add_argument("--subjects", default="0-19", help="subject numbers, e.g. '0-19' or '0-4,7'")
    p.add_argument("--study", choices=["sc", "st"], default="sc", help="Sleep Cassette or Sleep Telemetry")
    p.add_argument("--path", type=Path, default=None, help="download folder (default: MNE's data folder)")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser(
        "prepare",
        help="preprocess a folder of PSG/hypnogram pairs into a cached cohort",
        description="Read every Sleep-EDF PSG/hypnogram pair in EDF_FOLDER, band-pass and resample EEG/EOG "
        "to 100 Hz, turn EMG into a 1 Hz envelope, trim long wake, normalise each recording and cache it "
        "as one memory-mappable file per night plus a manifest. Resumable: cached nights are skipped.",
        formatter_class=fmt,
    )
    p.add_argument("edf_folder", type=Path, help="folder with *-PSG.edf and *-Hypnogram.edf files")
    p.add_argument("cache", type=Path, help="cache folder to create or resume")
    p.add_argument("--config", default=None, help="TOML config with [channels] and [preprocess] tables")
    p.add_argument("--workers", type=int, default=2, help="parallel worker processes")
    p.add_argument(
        "--keep-wake",
        type=float,
        default=None,
        help="minutes of wake kept around the sleep "
        "period (overrides the config; negative keeps whole recordings)",
    )
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser(
        "info",
        help="summarise a prepared cohort (per-subject stage counts)",
        description="Print the nights, subjects and per-subject stage counts of a cohort cache.",
        formatter_class=fmt,
    )
    p.add_argument("cache", type=Path, help="cache folder written by `somna prepare`")
    p.add_argument("--verify", action="store_true", help="verify every night's checksum")
    p.set_defaults(func=_cmd_info)

    for name, help_text, description in (
        (
            "train",
            "train one model on a subject-wise train/validation/test split and evaluate it",
            "Train the sequence model on the training subjects, choose the checkpoint on validation subjects "
            "(drawn from the training side, never the test subjects), then score and evaluate the test "
            "subjects. Rerunning the same command resumes an interrupted run.",
        ),
        (
            "cv",
            "subject-wise cross-validation (both nights of a subject in the same fold)",
            "Train one model per fold of subjects and evaluate the pooled test predictions (and per subject, "
            "mean ± sd). Finished folds are skipped when rerun; an interrupted fold resumes.",
        ),
        (
            "ablate",
            "compare EEG, EEG+EOG and EEG+EOG+EMG models on the same folds",
            "Run the experiment three times with different modalities on identical folds and print one table "
            "(accuracy, macro-F1, kappa, per-class F1).",
        ),
        (
            "compare-3class",
            "Wake/NREM/REM three ways on the same folds: hierarchical, direct, 5-class collapsed",
            "Train the hierarchical model (stage 1 Wake vs Sleep; stage 2 REM vs NREM on sleep epochs), a "
            "direct 3-class model and the 5-class model, and print one table of their 3-class agreement "
            "(the 5-class stages collapsed: N1, N2, N3 -> NREM).",
        ),
    ):
        p = sub.add_parser(name, help=help_text, description=description, formatter_class=fmt)
        p.add_argument("--config", required=True, help="experiment TOML (see configs/)")
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
        p.set_defaults(func=_cmd_experiment)

    p = sub.add_parser(
        "evaluate",
        help="(re)write the evaluation report of a run folder",
        description="Pool the test predictions of every fold of a run and write evaluation.json, "
        "evaluation.md and confusion_matrix.png (counts and row-normalised) into the run folder.",
        formatter_class=fmt,
    )
    p.add_argument("run", type=Path, help="run folder written by `somna train`, `cv` or `ablate`")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "score",
        help="stage a PSG file with a trained model: hypnogram, probabilities, sleep metrics, report",
        description="Stage every 30-s epoch of an EDF file and write hypnogram.csv, hypnogram.edf (EDF+), "
        "probabilities.csv, metrics.json and a one-page report.html. Channels default to Sleep-EDF's names; "
        "map others with --eeg/--eog/--emg (any rate from 50 Hz). With --hypnogram the report adds "
        "agreement, the confusion matrix and scored-vs-estimated sleep metrics. Several files, folders or "
        "patterns are scored in parallel, one folder per night; metrics.json is written last, and a night "
        "whose folder has it is skipped, so rerunning an interrupted batch finishes the rest. A night that "
        "fails is listed with its reason and the others go on (exit status 2).",
        formatter_class=fmt,
    )
    p.add_argument(
        "psgs",
        nargs="+",
        metavar="PSG",
        help="PSG EDF/EDF+ file(s), folder(s) (every *.edf inside that is not a hypnogram) or glob "
        "pattern(s) such as 'data/*-PSG.edf' (quoted; '**' recurses)",
    )
    p.add_argument(
        "--model", type=Path, required=True, help="run folder of `somna train`/`cv`, or a .pt file"
    )
    _add_channel_arguments(p)
    p.add_argument(
        "--hypnogram", type=Path, default=None, help="scored hypnogram of the recording (one PSG file only)"
    )
    p.add_argument(
        "--hypnogram-dir",
        type=Path,
        default=None,
        help="folder of Sleep-EDF *-Hypnogram.edf files: each PSG is compared with its night's hypnogram",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder: with one PSG file, that night's folder (default: scores/<PSG name>); "
        "otherwise one sub-folder per night, OUT/<PSG name>/ (default: scores)",
    )
    p.add_argument("--workers", type=int, default=2, help="parallel worker processes (1: in this process)")
    p.add_argument(
        "--force", action="store_true", help="score again nights whose output folder holds a complete result"
    )
    _add_backend_argument(p)
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser(
        "stream",
        help="replay a PSG file as a live stream and print each epoch's stage as it completes",
        description="Stage a recording epoch by epoch as its samples arrive, as a bedside or wearable device "
        "would: causal filters, running normalisation, cached epoch embeddings (O(1) work per epoch). The "
        "model must be trained on streamable preprocessing (configs/streaming.toml). The first seq_len - 1 "
        "epochs have a context padded with the first epoch, as offline scoring, which streaming reproduces.",
        formatter_class=fmt,
    )
    p.add_argument("psg", type=Path, help="PSG EDF/EDF+ file to replay")
    p.add_argument(
        "--model",
        type=Path,
        required=True,
        help="run folder or checkpoint of a streamable model (--backend onnx: its `somna export` folder)",
    )
    _add_backend_argument(p)
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="replay at real time (30 s per epoch)")
    pace.add_argument("--speed", type=float, default=None, help="replay at this many times real time")
    p.add_argument("--chunk-s", type=float, default=1.0, help="seconds of signal per pushed chunk")
    _add_channel_arguments(p)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 gives the lowest latency)")
    p.add_argument("--out", type=Path, default=None, help="also write the stages and probabilities as CSV")
    p.set_defaults(func=_cmd_stream)

    p = sub.add_parser(
        "export",
        help="export a trained stager to ONNX (fp32, and int8) for edge devices",
        description="Write one ONNX graph per model of a run (plus somna-onnx.json with the label set, "
        "modalities and preprocessing) for onnxruntime on edge devices; --int8 adds dynamically quantised "
        "int8 graphs. `somna score --backend onnx|onnx-int8 --model DIR` scores with them.",
        formatter_class=fmt,
    )
    p.add_argument("run", type=Path, help="run folder of `somna train`/`cv`, or a .pt checkpoint")
    p.add_argument("--onnx", action="store_true", required=True, help="export to ONNX (the only format)")
    p.add_argument("--int8", action="store_true", help="also write int8 graphs")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/onnx)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "metrics",
        help="print the sleep metrics of a hypnogram file",
        description="Read a hypnogram (EDF+ annotations, CSV/TSV stage table or Dreem JSON) and print its "
        "sleep metrics (TIB, TST, SPT, WASO, SE, latencies, time and percent per stage, awakenings).",
        formatter_class=fmt,
    )
    p.add_argument("hypnogram", type=Path, help="hypnogram file")
    p.add_argument("--lights-off", type=float, default=None, help="lights off, seconds from the first epoch")
    p.add_argument("--lights-on", type=float, default=None, help="lights on, seconds from the first epoch")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_metrics)

    p = sub.add_parser(
        "demo",
        help="the main job on built-in synthetic data (no download needed)",
        description="Synthesise a small Sleep-EDF-like cohort (8 subjects x 2 nights), prepare it, print "
        "per-subject stage counts and the per-stage spectra figure, then train the 5-class model on a "
        "subject-wise train/validation/test split and print its evaluation with the confusion matrix. "
        "Everything lands in the run folder, ready for the next commands.",
        formatter_class=fmt,
    )
    p.add_argument("--out", default="runs/demo", help="run folder")
    p.add_argument("--subjects", type=int, default=8, help="synthetic subjects (2 nights each)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--workers", type=int, default=2, help="parallel worker processes")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``somna`` console command.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a somna error (printed as one line), 130 when interrupted.
    """
    args = _build_parser().parse_args(argv)
    try:
        args.func(args)
    except SomnaError as err:
        print(f"somna: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("somna: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
