"""Per-epoch latency of live staging with the default-size model.

A synthetic night (Sleep-EDF ST layout: EEG, EOG and raw EMG at 100 Hz, or resampled to ``--sfreq``) is
pushed in 1-s chunks through :class:`somna.streaming.StreamingStager` with the demo model sizes (seq_len
20, embed 64, CNN width 16, batch norms folded as when a run is loaded; untrained weights take the same
time as trained ones). Per-epoch latency is the time from the push of the chunk that completes an epoch
to that epoch's result. Target: median < 10 ms on 2 CPU threads. The other chunks' push time
(preprocessing only) is reported too. With onnxruntime installed the same model is also exported
(``somna.export.export_onnx``, fp32 and int8) and streamed through each graph pair (``somna stream
--backend onnx|onnx-int8``), as an edge device would run it.

Run: ``.venv/bin/python benchmarks/streaming_latency.py [--hours 8] [--threads 2] [--sfreq 100]``
Writes ``benchmarks/results/streaming_latency.json`` (one entry per thread count measured).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result

from somna.config import PreprocessConfig
from somna.demo import DEMO_EXPERIMENT
from somna.io import read_psg
from somna.models import StagingNetwork
from somna.stages import AASM
from somna.staging import SleepStager, load_stager
from somna.streaming import StreamingStager
from somna.synth import write_synthetic_cohort
from somna.models.checkpoint import save_checkpoint


def _measure(stager: SleepStager, signals: dict, sfreq: dict, chunk_s: float) -> dict[str, float]:
    streamer = StreamingStager(stager, sfreq)
    duration = min(x.shape[-1] / sfreq[m] for m, x in signals.items())
    epoch_latency, other_push = [], []
    t0 = time.perf_counter()
    for i in range(int(duration // chunk_s)):
        chunk = {
            m: x[:, round(i * chunk_s * sfreq[m]) : round((i + 1) * chunk_s * sfreq[m])]
            for m, x in signals.items()
        }
        start = time.perf_counter()
        results = streamer.push(chunk)
        if results:
            epoch_latency += [r.latency_s for r in results]
        else:
            other_push.append(time.perf_counter() - start)
    wall = time.perf_counter() - t0
    ms = np.asarray(epoch_latency) * 1e3
    return {
        "n_epochs": len(epoch_latency),
        "epoch_latency_ms_median": round(float(np.median(ms)), 3),
        "epoch_latency_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "epoch_latency_ms_max": round(float(ms.max()), 3),
        "other_chunk_push_ms_median": round(float(np.median(other_push)) * 1e3, 4),
        "night_wall_s": round(wall, 2),
        "realtime_factor": round(duration / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0, help="length of the synthetic night")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="torch CPU threads to try")
    parser.add_argument("--sfreq", type=float, default=100.0, help="input rate (resampled from 100 Hz)")
    parser.add_argument("--chunk-s", type=float, default=1.0, help="seconds per push")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_synthetic_cohort(
            tmp, n_subjects=1, nights=1, hours=args.hours, layout="st", progress=False
        )
        recording = read_psg(paths[0])
    signals, sfreq = recording.signals, dict(recording.sfreq)
    if args.sfreq != 100.0:
        up = round(args.sfreq)  # test input only: 100 Hz brought to an integer rate
        signals = {m: resample_poly(x, up, 100, axis=-1) for m, x in signals.items()}
        sfreq = dict.fromkeys(signals, float(up))

    config = DEMO_EXPERIMENT.model_config({"eeg": 2, "eog": 1, "emg": 1}, 3000, 30, AASM.n_classes)
    torch.manual_seed(0)
    trained_form = StagingNetwork(config)  # as a checkpoint holds it, for the ONNX export below
    model = copy.deepcopy(trained_form).for_inference()
    preprocess = asdict(PreprocessConfig(filter="causal", normalise="running", trim_wake_min=None))
    stager = SleepStager([{"model": model}], "aasm", config.modalities, preprocess)

    runs = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        runs[f"threads_{threads}"] = _measure(stager, signals, sfreq, args.chunk_s)
        # Other jobs on shared cores make multi-threaded torch wait on each other: record the load.
        runs[f"threads_{threads}"]["load_average_1min_after"] = round(os.getloadavg()[0], 2)
        print(f"{threads} thread(s): {json.dumps(runs[f'threads_{threads}'])}")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed: ONNX backends not measured")
    else:
        from somna.export import export_onnx

        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = save_checkpoint(Path(tmp) / "model.pt", trained_form.eval(), AASM, preprocess)
            export_onnx(checkpoint, Path(tmp) / "onnx", int8=True)
            for backend in ("onnx", "onnx-int8"):
                for threads in args.threads:
                    onnx_stager = load_stager(Path(tmp) / "onnx", backend, threads=threads)
                    key = f"{backend.replace('-', '_')}_threads_{threads}"
                    runs[key] = _measure(onnx_stager, signals, sfreq, args.chunk_s)
                    runs[key]["load_average_1min_after"] = round(os.getloadavg()[0], 2)
                    print(f"{backend}, {threads} thread(s): {json.dumps(runs[key])}")
    write_result(
        "streaming_latency",
        {
            "model": {
                "seq_len": config.seq_len,
                "embed_dim": config.embed_dim,
                "cnn_width": config.cnn_width,
            },
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
