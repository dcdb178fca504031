"""Quality and training cost of somna against braindecode's AttnSleep (and optionally USleep).

Both models are trained on the same prepared synthetic cohort, on the same subject-wise holdout fold
(``somna.data.splits.holdout_split(cohort.subjects, 0.25, 0.2, seed=0)``), for the same wall-clock budget
``--budget`` seconds with the same number of torch threads, and are tested on the same test subjects:

- somna: ``somna.training.trainer.train_model`` with the packaged ``demo`` experiment's settings
  (``somna.config.load_experiment("demo")``: EEG + EOG + EMG, 5 AASM classes, "sqrt" class weights).
  ``train_model`` has no time limit, so a two-pass timing run comes first (not counted; its second pass
  is the measure, as the first also pays for start-up) and ``max_epochs = floor(budget / seconds per
  pass)`` passes are then trained from scratch (the one-cycle schedule spans exactly those passes).
  Like the peers, somna trains through the budget without early stopping and the best-validation pass
  (accuracy) stages the test nights (the prepared cache, as the peers read it) through
  ``somna.inference.load_stager(checkpoint, "torch")`` and ``somna.models.predict.predict_members``.
- braindecode (run by ``_braindecode_peer.py`` inside its own virtual environment, torch 2.9.1 +
  torchaudio 2.9 + braindecode, created here on first use): ``AttnSleep`` on single 30-s epochs of
  EEG Fpz-Cz + Pz-Oz + EOG at 100 Hz, AdamW + cross-entropy with the same "sqrt" class weights, trained
  until the budget is spent, the best pass on the validation subjects (accuracy) tests the test nights.
  braindecode's AttnSleep reads one channel; its two first convolutions are widened to 3 input channels
  here (``--peers attnsleep``), ``--peers attnsleep-fpz`` trains it unchanged on Fpz-Cz alone, and
  ``--peers usleep`` adds braindecode's ``USleep`` (sequence model, windows of 35 epochs) the same way.

Reported per model: accuracy, macro-F1, Cohen's κ, per-class F1 (``somna.evaluation.epoch_agreement`` on
the pooled test epochs), labelled epochs per second of training (median over passes of labelled training
epochs / seconds of the pass's training loop, as ``train_model`` reports it) and the seconds used.

Run (from the repository root, with the project's virtual environment)::

    .venv/bin/python benchmarks/vs_braindecode.py [--budget 240] [--cache /tmp/demo2/cache] \\
        [--peers attnsleep usleep attnsleep-fpz] [--device cuda --peer-python python3]

``benchmarks/gpu_session.sh`` is what ran on a lent GPU machine (``--device cuda``, the machine's own
python for the peers, results in ``vs_braindecode_cuda.json`` with the card's name).

Writes ``benchmarks/results/vs_braindecode.json`` (``--out`` another folder). The peer environment (default
``/tmp/somna-bench/braindecode-venv``) is a multi-GB download the first time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result

from somna.config import load_experiment
from somna.data import Cohort
from somna.data.sequences import load_night
from somna.data.splits import Fold, holdout_split
from somna.evaluation.agreement import epoch_agreement
from somna.inference import load_stager
from somna.models.predict import predict_members
from somna.report.run import format_comparison_table
from somna.stages import AASM
from somna.training.trainer import TrainResult, records_of, train_model

REPO = Path(__file__).resolve().parents[1]
PEER_SCRIPT = Path(__file__).resolve().parent / "_braindecode_peer.py"
PEERS = {  # name -> (row name, braindecode model, channels)
    "attnsleep": ("AttnSleep (EEG+EOG)", "AttnSleep", "eeg+eog"),
    "attnsleep-fpz": ("AttnSleep (Fpz-Cz)", "AttnSleep", "fpz"),
    "usleep": ("USleep (EEG+EOG)", "USleep", "eeg+eog"),
}
PEER_INSTALL = [
    ["torch==2.9.1", "torchvision==0.24.1"],
    ["torch==2.9.1", "torchaudio==2.9.*", "braindecode"],
]


def _run(cmd: list[str], log: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    log.append(" ".join(cmd))
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kwargs)


def ensure_peer_venv(venv: Path, log: list[str]) -> Path:
    """Create the braindecode environment at ``venv`` unless it already imports braindecode."""
    python = venv / "bin" / "python"
    # somna's data code needs edfio, absent there (--no-deps): only check that somna is installed
    probe = [
        str(python),
        "-c",
        "import importlib.util, torch, torchaudio, braindecode; assert importlib.util.find_spec('somna')",
    ]
    if python.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        print(f"peer environment {venv} is ready")
        return python
    if not python.is_file():
        _run(["python3", "-m", "venv", str(venv)], log)
    pip = [str(python), "-m", "pip", "install"]
    _run([*pip, "--upgrade", "pip"], log)
    for packages in PEER_INSTALL:
        _run([*pip, *packages], log)
    _run([*pip, "--no-deps", "-e", str(REPO)], log)
    _run(probe, log)
    return python


def peer_versions(python: Path) -> dict[str, str]:
    """Versions of torch, torchaudio and braindecode in the peer environment."""
    code = (
        "import json, torch, torchaudio, braindecode; print(json.dumps({'torch': torch.__version__, "
        "'torchaudio': torchaudio.__version__, 'braindecode': braindecode.__version__}))"
    )
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ensure_cohort(cache: Path, log: list[str]) -> Cohort:
    """The prepared cohort at ``cache``, synthesised (8 subjects x 2 nights) and prepared if missing."""
    if not (cache / "manifest.json").is_file():
        edf = cache.parent / "edf"
        somna = [sys.executable, "-m", "somna"]
        _run([*somna, "synth", "--subjects", "8", "--seed", "0", "--out", str(edf)], log)
        _run([*somna, "prepare", str(edf), str(cache)], log)
    return Cohort.open(cache, verify=False)


def load_avg() -> str:
    """``uptime``'s load averages (the machine is shared)."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def train_somna(
    cohort: Cohort, fold: Fold, budget: float, threads: int, work: Path, device: str = "cpu"
) -> dict[str, Any]:
    """Time one pass, train ``floor(budget / pass seconds)`` passes, test the best-validation checkpoint."""
    demo = load_experiment("demo")
    experiment = replace(demo, data=replace(demo.data, cache=str(cohort.root)))
    pre, channels = cohort.manifest["config"]["preprocess"], cohort.manifest["config"]["channels"]
    model_config = experiment.model_config(
        {m: len(channels[m]) for m in experiment.data.modalities},
        n_times=round(pre["sfreq"] * pre["epoch_s"]),
        emg_n_times=round(pre["emg_sfreq"] * pre["epoch_s"]),
        n_classes=AASM.n_classes,
    )
    for folder in ("somna-timing", "somna"):
        shutil.rmtree(work / folder, ignore_errors=True)  # train_model would resume from last.pt
    timing_config = replace(experiment.training, max_epochs=2, threads=threads, device=device)
    timing = train_model(
        cohort, fold, model_config, timing_config, AASM, work / "somna-timing", progress=False
    )
    # the second pass: the first also pays for start-up (a GPU's context and kernel selection)
    pass_s = timing.history[-1]["train_s"] + timing.history[-1]["validation_s"]
    max_epochs = max(1, math.floor(budget / pass_s))
    print(f"somna: one pass (training + validation) takes {pass_s:.2f} s -> max_epochs = {max_epochs}")
    # Like the peers: train through the budget, test the best validation pass (no early stopping).
    train_config = replace(
        experiment.training, max_epochs=max_epochs, patience=max_epochs, threads=threads, device=device
    )
    t0 = time.perf_counter()
    result: TrainResult = train_model(cohort, fold, model_config, train_config, AASM, work / "somna")
    seconds = time.perf_counter() - t0
    stager = load_stager(result.best_checkpoint, "torch")
    y_true, y_pred = [], []
    for record in records_of(cohort, fold.test):
        night = load_night(cohort, record, AASM, stager.modalities)
        y_true.append(night.labels)
        y_pred.append(predict_members(stager.members, stager.task, night.signals)[1])
    return {
        "y_true": np.concatenate(y_true),
        "y_pred": np.concatenate(y_pred),
        "seconds_used": seconds,
        "timing_pass_s": pass_s,
        "max_epochs": max_epochs,
        "passes_run": len(result.history),
        "best_pass": result.best_pass,
        "stopped_early": result.stopped_early,
        "best_validation": result.best_validation,
        "labelled_epochs_per_s": result.labelled_epochs_per_s,
        "labelled_epochs_trained": int(
            sum(h["labelled_epochs_per_s"] * h["train_s"] for h in result.history)
        ),
        "history": result.history,
        "model": {"name": "somna StagingNetwork (demo experiment)", **experiment.to_dict()["model"]},
        "inputs": list(experiment.data.modalities),
        "n_parameters": sum(
            p.numel() for member in stager.members for m in member.values() for p in m.network.parameters()
        ),
        "training": asdict(train_config),
    }


def run_peer(
    python: Path,
    peer: str,
    cohort: Cohort,
    fold: Fold,
    budget: float,
    threads: int,
    work: Path,
    log: list,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train and test a braindecode model (a key of ``PEERS``) in the peer environment; its JSON output."""
    _, model, channels = PEERS[peer]
    out = work / f"{peer}.json"
    out.unlink(missing_ok=True)
    splits = {name: records_of(cohort, getattr(fold, name)) for name in ("train", "validation", "test")}
    (work / "splits.json").write_text(json.dumps(splits))
    cmd = [
        str(python),
        str(PEER_SCRIPT),
        "--model",
        model,
        "--channels",
        channels,
        "--cache",
        str(cohort.root),
        "--splits",
        str(work / "splits.json"),
        "--budget",
        str(budget),
        "--threads",
        str(threads),
        "--out",
        str(out),
        "--device",
        device,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    _run(cmd, log, env=env)
    result = json.loads(out.read_text())
    result["y_true"] = np.asarray(result["y_true"], dtype=np.int64)
    result["y_pred"] = np.asarray(result["y_pred"], dtype=np.int64)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--budget", type=float, default=240.0, help="wall-clock seconds of training per model"
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/demo2/cache"), help="prepared cohort")
    parser.add_argument("--peer-venv", type=Path, default=Path("/tmp/somna-bench/braindecode-venv"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/somna-bench/vs-braindecode"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--peers", nargs="+", choices=tuple(PEERS), default=["attnsleep"], help="braindecode models to train"
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="train every model here (cuda: results go to vs_braindecode_cuda.json with the card's name)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="folder of the JSON result (default: benchmarks/results)"
    )
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=None,
        help="an interpreter that already imports torch, torchaudio and braindecode (instead of --peer-venv; "
        "e.g. a GPU machine's own python, where nothing can be downloaded)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    log: list[str] = [" ".join([sys.executable, *sys.argv])]
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU here")
    card = torch.cuda.get_device_name() if args.device == "cuda" else None
    python = args.peer_python or ensure_peer_venv(args.peer_venv, log)
    versions = peer_versions(python)
    cohort = ensure_cohort(args.cache, log)
    fold = holdout_split(cohort.subjects, 0.25, 0.2, seed=0)
    print(f"{cohort!r}\nfold: {fold.to_dict()}")

    load_before = load_avg()
    print(f"load before: {load_before}")
    results: dict[str, dict[str, Any]] = {}
    results["somna (EEG+EOG+EMG)"] = train_somna(
        cohort, fold, args.budget, args.threads, args.work, args.device
    )
    for peer in args.peers:
        results[PEERS[peer][0]] = run_peer(
            python, peer, cohort, fold, args.budget, args.threads, args.work, log, args.device
        )
    load_after = load_avg()
    print(f"load after: {load_after}")

    ours_name = next(iter(results))
    reference = results[ours_name]["y_true"]
    agreements = {}
    for name, r in results.items():
        if not np.array_equal(r["y_true"], reference):
            raise SystemExit(f"{name} was tested on different epochs than somna")
        agreements[name] = epoch_agreement(r["y_true"], r["y_pred"], AASM)
    print(format_comparison_table(agreements))
    print(f"{'':24}{'train epochs/s':>15}{'seconds':>9}{'passes':>8}{'best':>6}")
    for name, r in results.items():
        print(
            f"{name:24}{r['labelled_epochs_per_s']:>15.1f}{r['seconds_used']:>9.0f}"
            f"{r['passes_run']:>8}{r['best_pass']:>6}"
        )
    ours = agreements[ours_name]
    target_met = {
        name: ours["macro_f1"] >= a["macro_f1"] and (ours["cohen_kappa"] or 0) >= (a["cohen_kappa"] or 0)
        for name, a in agreements.items()
        if name != ours_name
    }
    print(f"somna at least as good on macro-F1 and kappa: {target_met}")
    write_result(
        "vs_braindecode" if args.device == "cpu" else "vs_braindecode_cuda",
        {
            "device": card or "cpu",
            "somna_versions": {"torch": torch.__version__},
            "cohort": str(cohort.root),
            "fold": fold.to_dict(),
            "budget_s": args.budget,
            "threads": args.threads,
            "models": {
                name: {
                    "agreement": {k: v for k, v in agreements[name].items() if k != "report"},
                    **{k: v for k, v in r.items() if k not in ("y_true", "y_pred")},
                }
                for name, r in results.items()
            },
            "target": "somna's macro-F1 and kappa >= each braindecode model's",
            "target_met": target_met,
            "peer_versions": versions,
            "peer_venv": str(args.peer_python or args.peer_venv),
            "peer_install": [["pip", "install", *packages] for packages in PEER_INSTALL]
            + [["pip", "install", "--no-deps", "-e", str(REPO)]],
            "load_before": load_before,
            "load_after": load_after,
            "commands": log,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
