"""Per-epoch latency of live staging with the default-size model, for each inference backend.

A synthetic night (Sleep-EDF ST layout: EEG, EOG and raw EMG at 100 Hz, or resampled to ``--sfreq``) is
pushed in 1-s chunks through a live session (``somna.inference.load_stager(...).stream(sfreq)``, then
``session.push`` per chunk and ``session.finish`` at the end), as ``somna stream`` does. Without
``--model`` the model has the packaged ``demo`` experiment's sizes (seq_len 20, embed 64, CNN width 16)
and random weights (they take the same time as trained ones), saved as a run folder and exported to ONNX
(fp32 and int8, ``somna.models.onnx.export_run``) as training does.

Backends (``--backends``): ``auto`` (the default one: the run's ONNX export, run by onnxruntime, when
current), ``torch`` (batch norms folded, as a loaded run has them) and ``onnx-int8``; each is measured
once, under the name of what actually ran it. Per-epoch latency is the computing time from the push of
the chunk that completes an epoch (preprocessing included) to that epoch's result. Target: median
< 10 ms on 2 CPU threads. The other chunks' push time (preprocessing only) is reported too, and the
signal delay: every model streams through the offline preprocessing (one path), so an epoch is staged
once the EEG band-pass has 5.5 s of look-ahead past its end (6 s with 1-s chunks). Epochs staged by
``session.finish()`` at the end of the night are counted apart, not in the latencies.

Run: ``.venv/bin/python benchmarks/streaming_latency.py [--hours 8] [--threads 2 1] [--sfreq 100]
[--backends auto torch onnx-int8] [--model RUN]``
Writes ``benchmarks/results/streaming_latency.json`` (one entry per backend and thread count measured).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result

from somna.config import PreprocessConfig, load_experiment
from somna.inference import BACKENDS, Stager, load_stager
from somna.io import read_psg
from somna.io.channels import SLEEP_EDF_CHANNELS
from somna.models.checkpoint import save_checkpoint
from somna.models.network import StagingNetwork
from somna.models.onnx import export_run
from somna.stages import AASM
from somna.synth import write_synthetic_cohort


def _random_run(folder: Path) -> Path:
    """A fold folder holding the demo-size model with random weights, exported to ONNX (fp32 + int8)."""
    config = load_experiment("demo").model_config({"eeg": 2, "eog": 1, "emg": 1}, 3000, 30, AASM.n_classes)
    torch.manual_seed(0)
    save_checkpoint(
        folder / "best.pt",
        StagingNetwork(config).eval(),
        AASM,
        vars(PreprocessConfig()),
        channels=SLEEP_EDF_CHANNELS,
    )
    export_run(folder, int8=True)  # folder/onnx, where load_stager's "auto" looks
    return folder


def _measure(stager: Stager, signals: dict, sfreq: dict, chunk_s: float) -> dict[str, float]:
    session = stager.stream(sfreq)
    duration = min(x.shape[-1] / sfreq[m] for m, x in signals.items())
    epoch_latency, other_push, delay = [], [], []
    t0 = time.perf_counter()
    for i in range(int(duration // chunk_s)):
        chunk = {
            m: x[:, round(i * chunk_s * sfreq[m]) : round((i + 1) * chunk_s * sfreq[m])]
            for m, x in signals.items()
        }
        start = time.perf_counter()
        results = session.push(chunk)
        if results:
            epoch_latency += [r.latency_s for r in results]
            delay += [(i + 1) * chunk_s - r.end_s for r in results]  # signal after the epoch's end
        else:
            other_push.append(time.perf_counter() - start)
    flushed = session.finish()
    wall = time.perf_counter() - t0
    ms = np.asarray(epoch_latency) * 1e3
    return {
        "n_epochs": len(epoch_latency),
        "n_epochs_at_finish": len(flushed),
        "epoch_latency_ms_median": round(float(np.median(ms)), 3),
        "epoch_latency_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "epoch_latency_ms_max": round(float(ms.max()), 3),
        "other_chunk_push_ms_median": round(float(np.median(other_push)) * 1e3, 4),
        "epoch_delay_s_median": round(float(np.median(delay)), 3),
        "night_wall_s": round(wall, 2),
        "realtime_factor": round(duration / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0, help="length of the synthetic night")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="CPU threads to try (torch or onnxruntime)"
    )
    parser.add_argument("--sfreq", type=float, default=100.0, help="input rate (resampled from 100 Hz)")
    parser.add_argument("--chunk-s", type=float, default=1.0, help="seconds per push")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=BACKENDS,
        default=["auto", "torch", "onnx-int8"],
        help="backends to measure (auto: the default, ONNX when the run has a current export)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="run folder, checkpoint or ONNX export (default: random weights)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_synthetic_cohort(
            tmp, n_subjects=1, nights=1, hours=args.hours, layout="st", progress=False, variation="textbook"
        )
        recording = read_psg(paths[0])
    signals, sfreq = recording.signals, dict(recording.sfreq)
    if args.sfreq != 100.0:
        up = round(args.sfreq)  # test input only: 100 Hz brought to an integer rate
        signals = {m: resample_poly(x, up, 100, axis=-1) for m, x in signals.items()}
        sfreq = dict.fromkeys(signals, float(up))

    onnxruntime = find_spec("onnxruntime") is not None
    runs, resolved, model_info = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or _random_run(Path(tmp) / "random-run")
        for backend in args.backends:
            if backend.startswith("onnx") and not onnxruntime:
                print(f"onnxruntime is not installed: backend {backend} not measured")
                continue
            for threads in args.threads:
                torch.set_num_threads(threads)
                stager = load_stager(model, backend, threads=threads)
                resolved[backend] = stager.backend
                key = f"{stager.backend.replace('-', '_')}_threads_{threads}"
                if key in runs:  # "auto" ran the same backend as another one asked for
                    continue
                runs[key] = _measure(stager, signals, sfreq, args.chunk_s)
                # Other jobs on shared cores make multi-threaded runs wait on each other: record the load.
                runs[key]["load_average_1min_after"] = round(os.getloadavg()[0], 2)
                print(f"{backend} ({stager.backend}), {threads} thread(s): {json.dumps(runs[key])}")
                config = next(iter(stager.members[0].values())).config
                model_info = {
                    "seq_len": config.seq_len,
                    "embed_dim": config.embed_dim,
                    "cnn_width": config.cnn_width,
                }
    write_result(
        "streaming_latency",
        {
            "model": {**model_info, "weights": str(args.model) if args.model else "random"},
            "backends": resolved,
            "input_sfreq_hz": sfreq,
            "chunk_s": args.chunk_s,
            "night_hours": args.hours,
            "target": "median per-epoch latency < 10 ms on 2 CPU threads",
            "runs": runs,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
