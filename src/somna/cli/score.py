"""``somna score``: stage PSG files with a trained model; outputs per night."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from somna.cli._options import (
    add_backend_argument,
    add_channel_arguments,
    add_lights_arguments,
    positive_int,
    score_options,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="stage a PSG file with a trained model: hypnogram, probabilities, sleep metrics, report",
        description="Stage every 30-s epoch of an EDF file and write hypnogram.csv, probabilities.csv, "
        "hypnogram.edf (EDF+), metrics.json and a one-page report.html. Channels default to the model's "
        "training channels (Sleep-EDF's names); map others with --eeg/--eog/--emg (any rate from 50 Hz). "
        "With --hypnogram the report adds agreement, the confusion matrix and scored-vs-estimated sleep "
        "metrics. Several files, folders or patterns are scored in parallel, one folder per night; "
        "metrics.json is written last, and a night whose folder has it is skipped, so rerunning an "
        "interrupted batch finishes the rest. A night that fails is listed with its reason and the others "
        "go on (exit status 2).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "psgs",
        nargs="+",
        metavar="PSG",
        help="PSG EDF/EDF+ file(s), folder(s) (every *.edf inside that is not a hypnogram) or glob "
        "pattern(s) such as 'data/*-PSG.edf' (quoted; '**' recurses)",
    )
    p.add_argument(
        "--model",
        type=Path,
        required=True,
        help="run folder of `somna train`/`cv`, a .pt file, or an ONNX export",
    )
    add_channel_arguments(p)
    p.add_argument(
        "--hypnogram", type=Path, default=None, help="scored hypnogram of the recording (one PSG only)"
    )
    p.add_argument(
        "--hypnogram-dir",
        type=Path,
        default=None,
        help="folder of scored hypnograms: each PSG is compared with its night's (Sleep-EDF records, or the "
        "same name with a hypnogram word: patient01.edf with patient01_hypnogram.xml)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder: with one PSG file, that night's folder (default: scores/<PSG name>); "
        "otherwise one sub-folder per night, OUT/<PSG name>/ (default: scores)",
    )
    p.add_argument(
        "--workers", type=positive_int, default=2, help="parallel worker processes (1: in this process)"
    )
    p.add_argument(
        "--force", action="store_true", help="score again nights whose output folder holds a complete result"
    )
    p.add_argument(
        "--no-report", action="store_true", help="skip report.html (its figures take most of the time)"
    )
    add_lights_arguments(p)
    p.add_argument(
        "--edf-stages",
        choices=["aasm", "sleep-edf"],
        default=None,
        help="stage strings of hypnogram.edf: aasm ('Sleep stage N1', as HMC and NSRR exports) or "
        "sleep-edf ('Sleep stage 1', R&K as Sleep-EDF; N3 written as 'Sleep stage 3'); default: the "
        "model's own stages, aasm for a 5-class model",
    )
    p.add_argument(
        "--export",
        default="",
        metavar="FORMATS",
        help="more hypnogram files, comma-separated: bids (hypnogram_events.tsv, BIDS events) and nsrr "
        "(hypnogram_nsrr.xml, NSRR PSG annotation XML)",
    )
    add_backend_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from somna.errors import SomnaError
    from somna.inference.batch import (
        SCORED,
        SKIPPED,
        expand_psgs,
        night_folder,
        pair_hypnograms,
        score_many,
    )

    items = [str(p) for p in args.psgs]
    single = len(items) == 1 and Path(items[0]).is_file()
    if args.hypnogram is not None and not single:
        raise SomnaError("--hypnogram needs a single PSG file; use --hypnogram-dir to score several")
    if args.hypnogram is not None and args.hypnogram_dir is not None:
        raise SomnaError("give --hypnogram or --hypnogram-dir, not both")
    psgs = expand_psgs(items)
    exports = tuple(dict.fromkeys(f.strip().lower() for f in args.export.split(",") if f.strip()))
    unknown = [f for f in exports if f not in ("bids", "nsrr")]
    if unknown:
        raise SomnaError(f"--export: unknown format(s) {', '.join(unknown)}; choose from bids, nsrr")
    options = replace(score_options(args), exports=exports)
    references = pair_hypnograms(psgs, args.hypnogram_dir) if args.hypnogram_dir is not None else {}
    if single:
        _score_one(args, psgs[0], args.hypnogram or references.get(psgs[0]), options)
        return
    from somna.io.channels import channel_spec

    out = Path(args.out) if args.out else Path("scores")
    if args.hypnogram_dir is not None:
        print(f"{len(references)} of {len(psgs)} night(s) have a reference hypnogram in {args.hypnogram_dir}")
    channels = channel_spec(args.eeg, args.eog, args.emg) if (args.eeg or args.eog or args.emg) else None
    status = score_many(
        psgs,
        args.model,
        out,
        channels,
        workers=args.workers,
        force=args.force,
        references=references,
        backend=args.backend,
        report=not args.no_report,
        options=options,
    )
    failed = {psg: text for psg, text in status.items() if text not in (SCORED, SKIPPED)}
    for psg, text in failed.items():
        print(f"failed: {text}" if str(psg) in text else f"failed: {psg}: {text}", file=sys.stderr)
    counts = {s: sum(v == s for v in status.values()) for s in (SCORED, SKIPPED)}
    _print_caveat([night_folder(out, psg) for psg, text in status.items() if text == SCORED])
    print(
        f"{len(status)} night(s): {counts[SCORED]} scored, {counts[SKIPPED]} skipped (already scored), "
        f"{len(failed)} failed; outputs in {out}/<PSG name>/"
    )
    if failed:
        raise SomnaError(
            f"{len(failed)} of {len(status)} night(s) failed (listed above); the others are scored, and "
            "rerunning the same command retries only the failed ones"
        )


def _score_one(args: argparse.Namespace, psg: Path, reference: Path | None, options: Any) -> None:
    from somna.evaluation.sleep_metrics import format_metrics_table
    from somna.inference import load_stager
    from somna.inference.batch import night_folder, score_to_folder
    from somna.provenance import synthetic_caveat
    from somna.storage import writable_folder

    out = Path(args.out) if args.out else night_folder("scores", psg)
    stager = load_stager(args.model, args.backend)
    writable_folder(out)
    channels = stager.channel_mapping(args.eeg, args.eog, args.emg)
    scored = score_to_folder(
        psg, stager, out, channels, reference, args.force, report=not args.no_report, options=options
    )
    if scored is None:
        print(f"{psg}: already scored in {out}, skipped (--force scores it again)")
        return
    print(f"{psg}: {len(scored.hypnogram)} epochs staged ({stager.label_set.name}, {stager.backend} backend)")
    print(f"  the model reads {stager.describe_inputs()}; read: {_read_channels(scored.hypnogram)}")
    caveat = synthetic_caveat(stager.info.get("trained_on"))
    if caveat:
        print(f"WARNING: {caveat}")
    unlike = scored.hypnogram.info.get("out_of_distribution")
    if unlike:
        print(f"WARNING: this night lies outside what the model was trained on: {'; '.join(unlike)}")
    for warning in scored.hypnogram.info.get("warnings", []):
        print(f"WARNING: {warning}")
    print(format_metrics_table(scored.metrics))
    for night in scored.metrics.get("nights", []):
        print(
            f"  night from {night['start'] or 'epoch ' + str(night['epochs'][0])}: total sleep time "
            f"{night['tst_min']:.1f} min, sleep efficiency {night['sleep_efficiency_pct']:.1f} % "
            f"(time in bed estimated)"
        )
    if scored.agreement is not None:
        a = scored.agreement
        print(
            f"agreement with {reference}: accuracy {a['accuracy']:.3f}, macro-F1 {a['macro_f1']:.3f}, "
            f"kappa {a['cohen_kappa']:.3f}"
        )
    from somna.inference.run_record import OUTPUT_NAMES

    for name in OUTPUT_NAMES:
        if (out / name).is_file():
            print(f"  {out / name}")


def _print_caveat(folders: list[Path]) -> None:
    """The synthetic-training caveat of a batch, from the first scored night's metrics.json."""
    import json

    from somna.provenance import synthetic_caveat

    for folder in folders[:1]:
        try:
            trained_on = json.loads((folder / "metrics.json").read_text()).get("trained_on")
        except (OSError, ValueError):
            return
        caveat = synthetic_caveat(trained_on)
        if caveat:
            print(f"WARNING: {caveat}")


def _read_channels(hypnogram: Any) -> str:
    """The channels a night was read from, role by role."""
    channels = hypnogram.info.get("channels", {})
    return "; ".join(f"{m.upper()} {', '.join(names)}" for m, names in channels.items())
