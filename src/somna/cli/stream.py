"""``somna stream``: replay a recording as a live stream, each epoch staged as soon as it can be."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from somna.cli._options import (
    add_backend_argument,
    add_channel_arguments,
    add_lights_arguments,
    positive_float,
    positive_int,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stream",
        help="replay a PSG file as a live stream and print each epoch's stage as it completes",
        description="Stage a recording epoch by epoch as its samples arrive, as a bedside or wearable device "
        "would: the same filters and running normalisation as offline scoring, carried from chunk to chunk, "
        "and cached epoch embeddings (constant work per epoch). Every trained model streams. An epoch is "
        "staged once the EEG band-pass has 5.5 s of signal after it (its zero-phase look-ahead).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("psg", type=Path, help="PSG EDF/EDF+ file to replay")
    p.add_argument(
        "--model", type=Path, required=True, help="run folder, checkpoint or ONNX export of a trained model"
    )
    add_backend_argument(p)
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="replay at real time (30 s per epoch)")
    pace.add_argument(
        "--speed", type=positive_float, default=None, help="replay at this many times real time"
    )
    p.add_argument("--chunk-s", type=positive_float, default=1.0, help="seconds of signal per pushed chunk")
    add_channel_arguments(p)
    p.add_argument("--threads", type=positive_int, default=1, help="threads (1 gives the lowest latency)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the stages and probabilities to this CSV file, one line per epoch as it is staged",
    )
    add_lights_arguments(p, table=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from somna.errors import SomnaError
    from somna.inference import load_stager
    from somna.inference.streaming import replay
    from somna.preprocess.filters import set_filter_threads
    from somna.preprocess.signal_quality import assess_signal_quality
    from somna.provenance import synthetic_caveat

    if args.out is not None and args.out.is_dir():
        raise SomnaError("is a folder; --out takes a CSV file name", args.out)
    set_filter_threads(args.threads)
    stager = load_stager(args.model, args.backend, threads=args.threads)
    if stager.backend == "torch":
        import torch

        torch.set_num_threads(args.threads)
    caveat = synthetic_caveat(stager.info.get("trained_on"))
    if caveat:
        print(f"WARNING: {caveat}")
    labels = stager.label_set.labels
    print(
        f"{'epoch':>6} {'time':>9}  {'stage':<5} " + " ".join(f"{'p_' + s:>6}" for s in labels) + "  latency"
    )
    speed = 1.0 if args.realtime else args.speed
    recording = stager.recording(args.psg, eeg=args.eeg, eog=args.eog, emg=args.emg)
    session = stager.stream(recording.sfreq)
    # The replayed file's signal quality, epoch by epoch (a bedside device would check each as it comes).
    quality = assess_signal_quality(recording, stager.preprocess.epoch_s)
    notes = quality.epoch_problems()
    results = replay(recording, session, chunk_s=args.chunk_s, speed=speed)
    latencies: list[float] = []
    stages: list[int] = []
    with _live_csv(args.out, labels) as write_row:
        try:
            for r in results:
                latencies.append(r.latency_s * 1000)
                stages.append(r.stage)
                note = notes[r.index] if r.index < len(notes) else ""
                write_row(
                    f"{r.index},{r.end_s:.0f},{r.label}," + ",".join(f"{p:.4f}" for p in r.probs) + f",{note}"
                )
                hours, rest = divmod(int(r.end_s), 3600)
                clock = f"{hours:>3}:{rest // 60:02d}:{rest % 60:02d}"
                probs = " ".join(f"{p:>6.3f}" for p in r.probs)
                flag = f"  ({note})" if note else ""
                _say(f"{r.index:>6} {clock}  {r.label:<5} {probs}  {latencies[-1]:6.1f} ms{flag}")
        except KeyboardInterrupt:
            print(f"stopped by Ctrl-C after {len(stages)} staged epochs (a stream cannot be resumed)")
    if args.out is not None:
        print(f"{len(stages)} epochs written to {args.out}")
    if not latencies:
        raise SomnaError("the recording is shorter than one 30-s epoch", args.psg)
    for warning in quality.warnings():
        print(f"WARNING: {warning}")
    unlike = session.out_of_distribution()
    if unlike:
        print(f"WARNING: this recording lies outside what the model was trained on: {'; '.join(unlike)}")
    print(
        f"{len(latencies)} epochs; computing time per epoch: median {statistics.median(latencies):.1f} ms, "
        f"max {max(latencies):.1f} ms"
    )
    print(_stream_metrics(args, stager, recording, stages))


def _say(line: str) -> None:
    """Print a line; when the reader has gone (``somna stream ... | head``), go on without printing, so
    that the stream and its CSV still run to the end."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@contextlib.contextmanager
def _live_csv(path: Path | None, labels: tuple[str, ...]) -> Iterator[Callable[[str], None]]:
    """A CSV written as the stream goes (each staged epoch a flushed line), so that Ctrl-C, a closed
    pipe or a crash loses nothing already staged; without a path, rows go nowhere."""
    if path is None:
        yield lambda row: None
        return
    from somna.errors import SomnaError

    try:
        out = open(path, "w", encoding="utf-8", buffering=1)
    except OSError as err:
        raise SomnaError(f"cannot write the CSV: {err.strerror or err}", path) from None
    with out:
        out.write("epoch,end_s,stage," + ",".join(f"p_{s}" for s in labels) + ",signal_problem\n")
        yield lambda row: out.write(row + "\n")


def _stream_metrics(args: argparse.Namespace, stager: Any, recording: Any, stages: list[int]) -> str:
    """Sleep metrics of the streamed stages; time in bed from the options, the recording's annotations,
    else the stream's own start and end (a live session runs from lights off to lights on)."""
    from somna.evaluation.sleep_metrics import format_metrics_table
    from somna.hypnogram import Hypnogram
    from somna.io.lights import resolve_time_in_bed

    hypnogram = Hypnogram(stages, stager.label_set, start=recording.start)
    tib = resolve_time_in_bed(
        hypnogram.duration_s,
        hypnogram.start,
        (0.0, hypnogram.duration_s),
        options=(args.lights_off, args.lights_on),
        annotations=[((recording.lights_off_s, recording.lights_on_s), "the recording's annotations")],
    )
    hypnogram.lights_off_s, hypnogram.lights_on_s = tib.lights_off_s, tib.lights_on_s
    metrics = hypnogram.sleep_metrics(rem_min_epochs=args.rem_min_epochs)
    return format_metrics_table({**metrics, "time_in_bed": tib.to_dict()})
