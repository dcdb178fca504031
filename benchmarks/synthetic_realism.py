"""Realism benchmark of the synthetic cohort: does YASA's pretrained stager recognise its stages?

Synthesises 5 SC nights (seed 2024, a different seed from the tests) twice: textbook (every factor of
``somna.synth.variation`` at its textbook value: the physiology alone, which the target applies to) and
broad (each factor drawn from its broad range, as the demo cohort is: montages, rates, artefacts);
reads each hypnogram with
``somna.io.read_hypnogram`` placed on its PSG's epochs, crops to the sleep period ± 30 min, runs
``yasa.SleepStaging`` through ``benchmarks/_common.yasa_stages`` (EEG Fpz-Cz or C4-M1 + EOG horizontal
or E1-M2; the
chin EMG is left out because Sleep-EDF SC stores it as a 1-Hz envelope, not the raw EMG YASA's EMG
features expect) and compares its stages with the generator's hypnogram in AASM.

Run::

    .venv/bin/python benchmarks/synthetic_realism.py [--out benchmarks/results]

Writes ``synthetic_realism.json`` and three figures into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import yasa_stages

from somna.storage import write_json_atomic

SEED = 2024
N_NIGHTS = 5
TARGET = {"accuracy": 0.70, "kappa": 0.60}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--work", type=Path, default=None, help="folder for the synthetic EDFs (temporary)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yasa
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score, recall_score

    from somna.config import load_cohort_config
    from somna.hypnogram import sleep_period_bounds
    from somna.io import align_hypnogram, read_hypnogram, read_psg
    from somna.report.spectra import plot_stage_spectra, stage_spectra
    from somna.stages import AASM, UNSCORED
    from somna.synth import (
        GENERATOR_VERSION,
        SHARED_DATA_DIR,
        load_reference_hypnograms,
        write_synthetic_cohort,
    )

    args.out.mkdir(parents=True, exist_ok=True)
    work_ctx = tempfile.TemporaryDirectory() if args.work is None else None
    work = Path(work_ctx.name) if work_ctx else args.work
    channels = load_cohort_config("synthetic").channels
    labels = list(range(AASM.n_classes))
    chance = 1.0 / AASM.n_classes
    by_variation, example, t_gen = {}, None, 0.0
    for variation in ("textbook", "broad"):
        t0 = time.perf_counter()
        # One night per subject: five subjects, so the numbers span five physiology profiles.
        paths = write_synthetic_cohort(
            work / variation, n_subjects=N_NIGHTS, layout="sc", seed=SEED, nights=1, variation=variation
        )
        t_gen = (time.perf_counter() - t0) / N_NIGHTS
        y_true_all, y_pred_all, per_night = [], [], []
        for psg, hyp_path in zip(paths[0::2], paths[1::2], strict=True):
            recording = read_psg(psg, channels, modalities=("eeg", "eog"))
            hypnogram = align_hypnogram(read_hypnogram(hyp_path), recording)  # R&K, one stage per epoch
            first, stop = sleep_period_bounds(hypnogram, wake_margin_min=30)
            truth = hypnogram.to(AASM).stages[first:stop]
            pred = yasa_stages(psg, first, stop - first)
            keep = truth != UNSCORED
            y_true_all.append(truth[keep])
            y_pred_all.append(pred[keep])
            per_night.append(
                {
                    "psg": psg.name,
                    "montage_and_rate": f"{recording.channel_names['eeg'][0]}, {recording.sfreq['eeg']:g} Hz",
                    "epochs": int(keep.sum()),
                    "accuracy": float(accuracy_score(truth[keep], pred[keep])),
                    "kappa": float(cohen_kappa_score(truth[keep], pred[keep])),
                }
            )
            print(
                f"{variation} {psg.name}: "
                f"acc={per_night[-1]['accuracy']:.3f} kappa={per_night[-1]['kappa']:.3f}"
            )
            if example is None:
                # EEG and EOG of the first textbook night's cropped span, for the figures.
                rate = recording.sfreq["eeg"]
                span = slice(round(first * 30 * rate), round(stop * 30 * rate))
                data = np.vstack([recording.signals["eeg"][:, span], recording.signals["eog"][:1, span]])
                example = (data, truth, rate)
                names = recording.channel_names["eeg"]
        y_true, y_pred = np.concatenate(y_true_all), np.concatenate(y_pred_all)
        recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
        f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
        by_variation[variation] = {
            "epochs": int(y_true.size),
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "kappa": float(cohen_kappa_score(y_true, y_pred)),
            "macro_f1": float(np.mean(f1)),
            "recall": {AASM.labels[c]: float(recall[c]) for c in labels},
            "f1": {AASM.labels[c]: float(f1[c]) for c in labels},
            "confusion_matrix": {
                "labels": list(AASM.labels),
                "rows_true_cols_pred": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
            },
            "per_night": per_night,
        }
    textbook = by_variation["textbook"]
    recognised = {AASM.labels[c]: textbook["recall"][AASM.labels[c]] > 2 * chance for c in labels}
    met = (
        textbook["accuracy"] >= TARGET["accuracy"]
        and textbook["kappa"] >= TARGET["kappa"]
        and all(recognised[s] for s in ("W", "N2", "N3", "REM"))
    )
    result = {
        "command": ".venv/bin/python benchmarks/synthetic_realism.py",
        "generator_version": GENERATOR_VERSION,
        "seed": SEED,
        "layout": "sc",
        "nights": N_NIGHTS,
        "stage_source": "sleep-edf-hypnograms" if load_reference_hypnograms() else "markov",
        "crop": "sleep period ± 30 min (somna.hypnogram.sleep_period_bounds)",
        "stager": "yasa "
        f"{yasa.__version__} SleepStaging: EEG Fpz-Cz or C4-M1, EOG horizontal or E1-M2 (no EMG)",
        "target_applies_to": "textbook nights (the physiology; broad nights add recording artefacts and "
        "montages by design, and are reported beside them)",
        "textbook": textbook,
        "broad": by_variation["broad"],
        "target": {**TARGET, "recall_above": 2 * chance, "stages_recognised": ["W", "N2", "N3", "REM"]},
        "target_met": bool(met),
        "generation_s_per_night_incl_edf_write": round(t_gen, 2),
    }
    write_json_atomic(args.out / "synthetic_realism.json", result)
    print(
        json.dumps(
            {v: {k: by_variation[v][k] for k in ("accuracy", "kappa", "recall")} for v in by_variation},
            indent=1,
        )
    )
    print("target met (textbook):", met)

    data, truth, sfreq = example
    spectra = stage_spectra(dict(zip(names, data[:2], strict=True)), truth, AASM, sfreq)
    fig = plot_stage_spectra(spectra, title=f"Synthetic SC night (seed {SEED})")
    fig.savefig(args.out / "synthetic_spectra.png", dpi=110)
    plt.close(fig)
    _plot_epochs(plt, data, truth, sfreq, args.out / "synthetic_epochs.png")
    _plot_rem_eog(
        plt,
        data[2],
        truth,
        sfreq,
        SHARED_DATA_DIR / "yasa-rem-eog" / "data_EOGs_REM_256Hz.npz",
        args.out / "synthetic_rem_eog.png",
    )
    if work_ctx:
        work_ctx.cleanup()
    return 0 if met else 1


def _plot_epochs(plt, data: np.ndarray, truth: np.ndarray, sfreq: float, path: Path) -> None:
    """One 30-s epoch per AASM stage (the middle of a long run), EEG and EOG."""
    from somna.stages import AASM

    n = int(30 * sfreq)
    t = np.arange(n) / sfreq
    fig, axes = plt.subplots(AASM.n_classes, 1, figsize=(12, 2.3 * AASM.n_classes), sharex=True)
    names = ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal")
    for code, ax in enumerate(axes):
        hits = np.flatnonzero(truth == code)
        if hits.size == 0:
            ax.set_title(f"{AASM.labels[code]}: none")
            continue
        ep = int(hits[hits.size // 2])
        for k, (name, offset) in enumerate(zip(names, (0, -150, -300), strict=True)):
            ax.plot(t, data[k, ep * n : (ep + 1) * n] + offset, lw=0.6, label=name if code == 0 else None)
        ax.set_title(f"{AASM.labels[code]} (epoch {ep})", loc="left", fontsize=9)
        ax.set_yticks([0, -150, -300], ["Fpz-Cz", "Pz-Oz", "EOG"])
    axes[-1].set_xlabel("Time (s); traces offset by 150 µV")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_rem_eog(plt, eog: np.ndarray, truth: np.ndarray, sfreq: float, real_path: Path, path: Path) -> None:
    """60 s of synthetic REM horizontal EOG beside 60 s of real REM EOG (LOC − ROC), same scales."""
    from somna.stages import AASM

    span = 60.0
    rem = np.flatnonzero(truth == AASM.code("REM"))
    fig, axes = plt.subplots(2, 1, figsize=(12, 5), sharex=True, sharey=True)
    if rem.size:
        # Start at the REM epoch with the most eye-movement activity, as one would pick a real example.
        n = int(30 * sfreq)
        power = [np.std(eog[e * n : (e + 2) * n]) for e in rem]
        ep = int(rem[int(np.argmax(power))])
        seg = eog[ep * n : ep * n + int(span * sfreq)]
        axes[0].plot(np.arange(seg.size) / sfreq, seg, lw=0.6)
    axes[0].set_title("Synthetic REM, EOG horizontal (100 Hz)", loc="left", fontsize=9)
    if real_path.is_file():
        npz = np.load(real_path)
        sf_real = float(npz["sf"])
        loc, roc = npz["data"][0], npz["data"][1]
        horizontal = loc - roc  # a horizontal derivation, as Sleep-EDF's EOG is
        start = int(120 * sf_real)
        seg = horizontal[start : start + int(span * sf_real)]
        axes[1].plot(np.arange(seg.size) / sf_real, seg - np.median(seg), lw=0.6, color="k")
        axes[1].set_title("Real REM, LOC − ROC (yasa-rem-eog, 256 Hz)", loc="left", fontsize=9)
    else:
        axes[1].set_title(f"real REM EOG not found at {real_path}", loc="left", fontsize=9)
    for ax in axes:
        ax.set_ylabel("µV")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("Time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
