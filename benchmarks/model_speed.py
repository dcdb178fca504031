"""Training throughput, inference time and peak memory of the default model on 2 CPU threads.

The model has the packaged ``demo`` experiment's sizes (``somna.config.load_experiment("demo")``) and
trains on a synthetic cohort (4 subjects x 2 nights) with the demo's optimiser settings; inference is
``somna.models.predict.predict_night`` through the torch backend (``TorchStageModel``, batch norms
folded as a loaded run has them).

Targets (issue: the multimodal sequence model): ≥ 1,000 labelled epochs per second of training with
EEG+EOG+EMG; a 1,000-epoch night through the model in < 0.5 s; peak RSS while training < 1.5 GB.

Run: ``.venv/bin/python benchmarks/model_speed.py [--work /tmp/somna-bench/speed] [--passes 2]``
Writes ``benchmarks/results/model_speed.json``.
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import synthetic_cohort, write_result

from somna.config import load_experiment
from somna.data.sequences import ChunkSampler, NightArrays, load_night
from somna.models.network import StagingNetwork
from somna.models.predict import predict_night
from somna.models.torch_model import TorchStageModel
from somna.stages import AASM, UNSCORED


def _train_throughput(nights: list[NightArrays], passes: int, device: torch.device) -> dict[str, float]:
    experiment = load_experiment("demo")
    config = experiment.model_config({"eeg": 2, "eog": 1, "emg": 1}, 3000, 30, AASM.n_classes)
    torch.manual_seed(0)
    model = StagingNetwork(config).to(device)
    train = experiment.training
    sampler = ChunkSampler(nights, model.seq_len, train.chunk_len, train.batch_size, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=UNSCORED)
    speeds = []
    for pass_index in range(passes):
        model.train()
        t0 = time.perf_counter()
        for signals, targets in sampler.batches(pass_index):
            signals = {m: x.to(device, non_blocking=True) for m, x in signals.items()}
            targets = targets.to(device, non_blocking=True)
            loss = loss_fn(model(signals).flatten(0, 1), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        speeds.append(sampler.n_targets / (time.perf_counter() - t0))
    return {
        "labelled_epochs": sampler.n_targets,
        "epochs_per_s_per_pass": speeds,
        "labelled_epochs_per_s": statistics.median(speeds),
        "model": model,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/somna-bench/speed"))
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="cuda writes model_speed_cuda.json"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    # Synthesise and prepare in child processes, so that peak RSS below is the training's alone.
    cohort = synthetic_cohort(args.work, n_subjects=4, seed=101, in_subprocess=True)
    nights = [load_night(cohort, r, AASM, ("eeg", "eog", "emg")) for r in cohort.records]
    train = _train_throughput(nights, args.passes, device)
    model = train.pop("model")

    # A 1,000-epoch night (the longest here, cut to 1,000 epochs), whole-night inference through the
    # torch backend as scoring runs it (batch norms folded: ``load_stager(run, "torch")``).
    night = max(nights, key=lambda n: n.n_epochs)
    thousand = NightArrays(
        night.record, night.subject_id, {m: a[:1000] for m, a in night.signals.items()}, night.labels[:1000]
    )
    stage_model = TorchStageModel(copy.deepcopy(model).for_inference())
    predict_night(stage_model, thousand.signals)  # warm-up
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        predict_night(stage_model, thousand.signals)
        times.append(time.perf_counter() - t0)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "training": {
            **train,
            "target_epochs_per_s": 1000,
            "meets_target": train["labelled_epochs_per_s"] >= 1000,
        },
        "inference_1000_epochs_s": {
            "median": statistics.median(times),
            "min": min(times),
            "target": 0.5,
            "meets_target": statistics.median(times) < 0.5,
        },
        "peak_rss_mb": {
            "value": peak_rss_mb,
            "target": 1536,
            "meets_target": peak_rss_mb < 1536,
            "note": "this process: 8 memory-mapped nights, 2 training passes and inference "
            "(data synthesised and prepared in child processes)",
        },
        "model_parameters": int(sum(p.numel() for p in model.parameters())),
        "threads": args.threads,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "n_nights": len(nights),
        "n_epochs_per_night_mean": float(np.mean([n.n_epochs for n in nights])),
    }
    print(f"training: {train['labelled_epochs_per_s']:.0f} labelled epochs/s (target ≥ 1000)")
    print(f"inference: 1000 epochs in {statistics.median(times):.3f} s (target < 0.5 s)")
    print(f"peak RSS: {peak_rss_mb:.0f} MB (target < 1536 MB)")
    write_result("model_speed" if device.type == "cpu" else "model_speed_cuda", result)


if __name__ == "__main__":
    main()
