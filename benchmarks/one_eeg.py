"""A model for any single EEG derivation, against the two-EEG model, on nights in the AASM montage.

Both models train on the same synthetic cohort (the demo's: 8 subjects × 2 day-long nights, each in
Sleep-EDF's montage or the AASM montage), with the demo's experiment settings and holdout split:

* **two-EEG**: the demo's model (`synthetic` cohort config: Fpz-Cz and Pz-Oz, or F4-M1 and O2-M1);
* **one-EEG**: the `synthetic-one-eeg` cohort config, one EEG derivation drawn per night among those its
  file has (Fpz-Cz, Pz-Oz, F4-M1, C4-M1, O2-M1).

They are tested on unseen nights that are all in the AASM montage (`somna synth --shift montage`, other
subjects: seed 100), where the one-EEG model is given each single derivation in turn (F4-M1, C4-M1,
O2-M1), and the two-EEG model its usual F4-M1 + O2-M1 and, as a user would try, C4-M1 + O2-M1 (a
derivation its first slot never saw, which it warns about). Cohen's κ against the scored hypnogram over
each night's sleep period ± 30 min, pooled.

Run::

    .venv/bin/python benchmarks/one_eeg.py --work runs/one-eeg-bench

Writes ``benchmarks/results/one_eeg.json``. Synthetic nights only: it says whether the one-EEG model
reads any single derivation as well as the two-EEG model reads two, not how either does on real ones.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result

from somna import load_stager
from somna.config import load_cohort_config, load_experiment
from somna.data import prepare_cohort
from somna.evaluation.agreement import epoch_agreement
from somna.hypnogram import sleep_period_bounds
from somna.io import align_hypnogram, read_hypnogram, read_psg
from somna.io.channels import channel_spec
from somna.stages import AASM
from somna.synth import write_synthetic_cohort
from somna.training.experiment import run_experiment

CONDITIONS: dict[str, tuple[str, str | None]] = {
    "two-EEG, F4-M1 + O2-M1": ("two", "F4-M1,O2-M1"),
    "two-EEG, C4-M1 + O2-M1": ("two", "C4-M1,O2-M1"),
    "one-EEG, F4-M1": ("one", "F4-M1"),
    "one-EEG, C4-M1": ("one", "C4-M1"),
    "one-EEG, O2-M1": ("one", "O2-M1"),
}


def _train(work: Path, name: str, cohort_config: str, edf: Path) -> Path:
    run = work / "runs" / name
    if (run / "evaluation.json").is_file():
        return run
    cohort = prepare_cohort(edf, work / f"cache-{name}", config=load_cohort_config(cohort_config), workers=2)
    demo = load_experiment("demo")
    experiment = replace(
        demo, name=name, data=replace(demo.data, cache=str(cohort.root), cohort_config=cohort_config)
    )
    run_experiment(experiment, run, mode="holdout")
    return run


def _night(psg: Path, hypnogram: Path) -> tuple[np.ndarray, int, int]:
    recording = read_psg(psg, channel_spec(eeg="F4-M1", eog="E1-M2", emg="Chin1-Chin2"))
    truth = align_hypnogram(read_hypnogram(hypnogram), recording).to(AASM)
    first, stop = sleep_period_bounds(truth, 30.0)
    return truth.stages, first, stop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("runs/one-eeg-bench"))
    parser.add_argument("--test-subjects", type=int, default=3)
    parser.add_argument("--hours", type=float, default=9.0)
    parser.add_argument(
        "--train-edf", type=Path, default=None, help="the demo's nights (runs/demo/edf) instead of new ones"
    )
    parser.add_argument(
        "--two-eeg", type=Path, default=None, help="the demo's model (runs/demo/model) instead of training it"
    )
    args = parser.parse_args()
    edf = args.train_edf or args.work / "train-edf"
    if not any(edf.glob("*-PSG.edf")):
        write_synthetic_cohort(edf, n_subjects=8, seed=0, nights=2, progress=True)
    runs = {
        "two": args.two_eeg or _train(args.work, "two-eeg", "synthetic", edf),
        "one": _train(args.work, "one-eeg", "synthetic-one-eeg", edf),
    }
    test = args.work / "test-aasm"
    if not any(test.glob("*-PSG.edf")):
        write_synthetic_cohort(
            test,
            args.test_subjects,
            seed=100,
            nights=2,
            hours=args.hours,
            variation="montage",
            progress=False,
        )
    nights = [(p, next(test.glob(p.name[:7] + "*-Hypnogram.edf"))) for p in sorted(test.glob("*-PSG.edf"))]
    stagers = {k: load_stager(v) for k, v in runs.items()}
    truth_all, predicted = [], {c: [] for c in CONDITIONS}
    per_night: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    warned: dict[str, int] = dict.fromkeys(CONDITIONS, 0)
    for psg, hyp in nights:
        truth, first, stop = _night(psg, hyp)
        truth_all.append(truth[first:stop])
        for condition, (model, eeg) in CONDITIONS.items():
            hypnogram = stagers[model].predict(psg, eeg=eeg, eog="E1-M2", emg="Chin1-Chin2")
            stages = hypnogram.stages[first:stop]
            predicted[condition].append(stages)
            per_night[condition].append(epoch_agreement(truth[first:stop], stages, AASM)["cohen_kappa"])
            warned[condition] += any("slot" in w for w in hypnogram.info["warnings"])
        print(f"{psg.name}: " + ", ".join(f"{c} κ {per_night[c][-1]:.3f}" for c in CONDITIONS))
    y_true = np.concatenate(truth_all)
    results: dict[str, Any] = {}
    for condition in CONDITIONS:
        agreement = epoch_agreement(y_true, np.concatenate(predicted[condition]), AASM)
        results[condition] = {
            "cohen_kappa": agreement["cohen_kappa"],
            "accuracy": agreement["accuracy"],
            "macro_f1": agreement["macro_f1"],
            "per_night_kappa": per_night[condition],
            "nights_with_slot_warning": warned[condition],
        }
        print(
            f"{condition}: κ {agreement['cohen_kappa']:.3f}, accuracy {agreement['accuracy']:.3f}, "
            f"macro-F1 {agreement['macro_f1']:.3f}; slot warning on {warned[condition]} of {len(nights)} "
            "nights"
        )
    write_result(
        "one_eeg",
        {
            "command": "python " + " ".join(sys.argv),
            "data": "trained on 8 synthetic subjects x 2 day-long nights (both montages, somna.synth, "
            f"seed 0, demo holdout split); tested on {len(nights)} unseen synthetic nights of "
            f"{args.hours:g} h, all in the AASM montage (seed 100, --shift montage)",
            "test_epochs": int(np.sum(y_true >= 0)),
            "results": results,
            "runs": {k: str(v) for k, v in runs.items()},
        },
    )


if __name__ == "__main__":
    main()
