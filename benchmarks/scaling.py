"""Cost of preparing, training and scoring as the cohort grows: 20, 40 and 78 synthetic subjects.

Sleep-EDF-78 has 153 nights (about 195,000 scored epochs after trimming). This benchmark synthesises a
cohort of that size once (78 subjects × 2 nights, Sleep-EDF SC layout), then for the first 20, 40 and all
78 subjects measures, each step in its own process: ``somna prepare`` (2 workers), one training pass of
the default model (the packaged ``demo`` experiment's sizes and settings) over the subjects' nights
(memory-mapped, validation included) followed by its ONNX export as training writes it, and scoring one
night with ``somna score`` (report included) through the default backend (``auto``: the ONNX export,
no torch) and through ``--backend torch``. Peak RSS is each process's own maximum (and, for prepare, its
workers' maximum).

Target (issue: scale and faults): peak RSS under 3 GB at 78 subjects.

Run: ``.venv/bin/python benchmarks/scaling.py [--work /tmp/somna-bench/scaling] [--sizes 20 40 78]``
Writes ``benchmarks/results/scaling.json`` (``--out`` another folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result

# Run in a child process: prints JSON with this process's (and its children's) peak RSS in MB. The run
# folder holds best.pt and its ONNX export (RUN/onnx), which `somna score --model RUN` then runs.
_TRAIN_PASS = """
import json, resource, sys, time
import torch
from somna.config import load_experiment
from somna.data import Cohort
from somna.data.splits import holdout_split
from somna.models.onnx import export_run
from somna.stages import AASM
from somna.training.trainer import train_model
from dataclasses import replace
torch.set_num_threads(2)
cohort = Cohort.open(sys.argv[1], verify=False)
fold = holdout_split(cohort.subjects, 0.1, 0.1, seed=0)
experiment = load_experiment("demo")
config = experiment.model_config({"eeg": 2, "eog": 1, "emg": 1}, 3000, 30, AASM.n_classes)
t0 = time.perf_counter()
one_pass = replace(experiment.training, max_epochs=1)
result = train_model(cohort, fold, config, one_pass, AASM, sys.argv[2], progress=False)
export_run(sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t0, "labelled_epochs_per_s": result.labelled_epochs_per_s,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _timed(cmd: list[str]) -> dict[str, float]:
    """Run a command under GNU time; wall seconds and peak RSS (largest process) in MB."""
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    peak_kb = next(int(line.split()[-1]) for line in out.stderr.splitlines() if "Maximum resident" in line)
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024, "stdout": out.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/somna-bench/scaling"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 40, 78])
    parser.add_argument("--seed", type=int, default=78)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON result")
    args = parser.parse_args()
    somna = [sys.executable, "-m", "somna"]
    edf_all = args.work / "edf"
    n_max = max(args.sizes)
    if len(list(edf_all.glob("*-PSG.edf"))) < 2 * n_max:
        print(f"synthesising {n_max} subjects x 2 nights into {edf_all}")
        subprocess.run(
            [*somna, "synth", "--subjects", str(n_max), "--seed", str(args.seed), "--out", str(edf_all)],
            check=True,
        )
    rows = []
    for n in sorted(args.sizes):
        # The first n subjects: link their files into a folder of their own.
        edf = args.work / f"edf_{n}"
        edf.mkdir(exist_ok=True)
        for path in sorted(edf_all.glob("SC4*.edf")):
            if int(path.name[3:5]) < n and not (edf / path.name).exists():
                (edf / path.name).symlink_to(path)
        cache = args.work / f"cache_{n}"
        run, scores = args.work / f"run_{n}", args.work / f"score_{n}"
        for stale in (cache, run, scores):  # measure from scratch
            shutil.rmtree(stale, ignore_errors=True)
        prepare = _timed([*somna, "prepare", str(edf), str(cache), "--workers", "2"])
        manifest = json.loads((cache / "manifest.json").read_text())
        n_epochs = sum(r["n_epochs"] for r in manifest["recordings"])
        train = _timed([sys.executable, "-c", _TRAIN_PASS, str(cache), str(run)])
        train_json = json.loads(train["stdout"].strip().splitlines()[-1])
        psg = sorted(edf.glob("*-PSG.edf"))[0]
        score = {
            backend: _timed(
                [
                    *somna,
                    "score",
                    str(psg),
                    "--model",
                    str(run),
                    "--backend",
                    backend,
                    "--out",
                    str(scores / backend),
                ]
            )
            for backend in ("auto", "torch")
        }
        row = {
            "subjects": n,
            "nights": len(manifest["recordings"]),
            "epochs": n_epochs,
            "cache_gb": sum(p.stat().st_size for p in (cache / "recordings").glob("*.npy")) / 1e9,
            "prepare": {"seconds": prepare["seconds"], "peak_rss_mb": prepare["peak_rss_mb"]},
            "train_one_pass": {
                "seconds": train["seconds"],
                "peak_rss_mb": train["peak_rss_mb"],
                "labelled_epochs_per_s": train_json["labelled_epochs_per_s"],
            },
            "score_one_night": {
                "seconds": score["auto"]["seconds"],
                "peak_rss_mb": score["auto"]["peak_rss_mb"],
            },
            "score_one_night_torch": {
                "seconds": score["torch"]["seconds"],
                "peak_rss_mb": score["torch"]["peak_rss_mb"],
            },
        }
        rows.append(row)
        print(json.dumps(row))
    steps = ("prepare", "train_one_pass", "score_one_night", "score_one_night_torch")
    peak = max(max(r[k]["peak_rss_mb"] for k in steps) for r in rows)
    write_result(
        "scaling",
        {"rows": rows, "peak_rss_mb": peak, "target_peak_rss_mb": 3072, "meets_target": peak < 3072},
        args.out,
    )
    print(
        f"{'subjects':>8} {'nights':>6} {'epochs':>8} {'prepare s/MB':>14} "
        f"{'train pass s/MB':>16} {'score s/MB':>12} {'torch s/MB':>12}"
    )
    for r in rows:
        print(
            f"{r['subjects']:>8} {r['nights']:>6} {r['epochs']:>8} "
            f"{r['prepare']['seconds']:>7.0f}/{r['prepare']['peak_rss_mb']:<6.0f} "
            f"{r['train_one_pass']['seconds']:>8.0f}/{r['train_one_pass']['peak_rss_mb']:<7.0f} "
            f"{r['score_one_night']['seconds']:>5.0f}/{r['score_one_night']['peak_rss_mb']:<6.0f} "
            f"{r['score_one_night_torch']['seconds']:>5.0f}/{r['score_one_night_torch']['peak_rss_mb']:<6.0f}"
        )


if __name__ == "__main__":
    main()
