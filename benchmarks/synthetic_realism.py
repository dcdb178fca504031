"""Realism benchmark of the synthetic cohort: does YASA's pretrained stager recognise its stages?

Synthesises 5 SC nights (seed 2024, a different seed from the tests), reads each PSG with MNE, crops it
to the sleep period ± 30 min, runs ``yasa.SleepStaging`` (EEG Fpz-Cz + EOG horizontal; the chin EMG is
left out because Sleep-EDF SC stores it as a 1-Hz envelope, not the raw EMG YASA's EMG features
expect) and compares its stages with the generator's hypnogram in AASM.

Run::

    .venv/bin/python benchmarks/synthetic_realism.py [--out benchmarks/results]

Writes ``synthetic_realism.json`` and three figures into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEED = 2024
N_NIGHTS = 5
TARGET = {"accuracy": 0.70, "kappa": 0.60}


def _atomic_json(path: Path, payload: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are shared files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_rk_hypnogram(path: Path, n_epochs: int) -> np.ndarray:
    """R&K codes per epoch from a Sleep-EDF hypnogram EDF+ (read with MNE, no somna reader needed)."""
    import mne

    from somna.stages import RK, UNSCORED, stage_codes_from_strings

    annotations = mne.read_annotations(path)
    out = np.full(n_epochs, UNSCORED, dtype=np.int8)
    for onset, duration, text in zip(
        annotations.onset, annotations.duration, annotations.description, strict=True
    ):
        if not text.startswith("Sleep stage"):
            continue
        label_set, codes = stage_codes_from_strings([text])
        code = int(codes[0]) if label_set is RK or codes[0] in (UNSCORED, 0) else RK.code("REM")
        first, stop = round(onset / 30.0), round((onset + duration) / 30.0)
        out[first : min(stop, n_epochs)] = code
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--work", type=Path, default=None, help="folder for the synthetic EDFs (temporary)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mne
    import yasa
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score, recall_score

    from somna.hypnogram import Hypnogram, sleep_period_bounds
    from somna.stages import AASM, RK, UNSCORED, convert, stage_codes_from_strings
    from somna.synth import (
        GENERATOR_VERSION,
        SHARED_DATA_DIR,
        load_reference_hypnograms,
        plot_stage_spectra,
        write_synthetic_cohort,
    )

    mne.set_log_level("ERROR")
    args.out.mkdir(parents=True, exist_ok=True)
    work_ctx = tempfile.TemporaryDirectory() if args.work is None else None
    work = Path(work_ctx.name) if work_ctx else args.work
    t0 = time.perf_counter()
    # One night per subject: five subjects, so the numbers span five physiology profiles.
    paths = write_synthetic_cohort(work, n_subjects=N_NIGHTS, layout="sc", seed=SEED, nights=1, progress=True)
    t_gen = (time.perf_counter() - t0) / N_NIGHTS

    y_true_all, y_pred_all, per_night = [], [], []
    example = None
    for psg, hyp_path in zip(paths[0::2], paths[1::2], strict=True):
        raw = mne.io.read_raw_edf(psg, include=["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal"], preload=True)
        n_epochs = int(raw.n_times // (30 * raw.info["sfreq"]))
        rk = _read_rk_hypnogram(hyp_path, n_epochs)
        first, stop = sleep_period_bounds(Hypnogram(rk, RK), wake_margin_min=30)
        raw.crop(tmin=first * 30.0, tmax=stop * 30.0, include_tmax=False)
        truth = convert(rk[first:stop], RK, AASM)
        staging = yasa.SleepStaging(raw, eeg_name="EEG Fpz-Cz", eog_name="EOG horizontal")
        predicted_text = staging.predict().hypno.astype(str).tolist()
        _, pred = stage_codes_from_strings(predicted_text)
        n = min(pred.size, truth.size)
        truth, pred = truth[:n], pred[:n]
        keep = truth != UNSCORED
        y_true_all.append(truth[keep])
        y_pred_all.append(pred[keep])
        per_night.append(
            {
                "psg": psg.name,
                "epochs": int(keep.sum()),
                "accuracy": float(accuracy_score(truth[keep], pred[keep])),
                "kappa": float(cohen_kappa_score(truth[keep], pred[keep])),
            }
        )
        print(f"{psg.name}: acc={per_night[-1]['accuracy']:.3f} kappa={per_night[-1]['kappa']:.3f}")
        if example is None:
            data = raw.get_data(units="uV")
            example = (data, truth, raw.info["sfreq"])

    y_true, y_pred = np.concatenate(y_true_all), np.concatenate(y_pred_all)
    labels = list(range(AASM.n_classes))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    accuracy = float(accuracy_score(y_true, y_pred))
    kappa = float(cohen_kappa_score(y_true, y_pred))
    chance = 1.0 / AASM.n_classes
    recognised = {AASM.labels[c]: bool(recall[c] > 2 * chance) for c in labels}
    met = (
        accuracy >= TARGET["accuracy"]
        and kappa >= TARGET["kappa"]
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
        "stager": f"yasa {yasa.__version__} SleepStaging, eeg_name='EEG Fpz-Cz', eog_name='EOG horizontal'",
        "epochs": int(y_true.size),
        "accuracy": accuracy,
        "kappa": kappa,
        "macro_f1": float(np.mean(f1)),
        "recall": {AASM.labels[c]: float(recall[c]) for c in labels},
        "f1": {AASM.labels[c]: float(f1[c]) for c in labels},
        "confusion_matrix": {
            "labels": list(AASM.labels),
            "rows_true_cols_pred": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
        "per_night": per_night,
        "target": {**TARGET, "recall_above": 2 * chance, "stages_recognised": ["W", "N2", "N3", "REM"]},
        "target_met": bool(met),
        "generation_s_per_night_incl_edf_write": round(t_gen, 2),
    }
    _atomic_json(args.out / "synthetic_realism.json", result)
    print(json.dumps({k: result[k] for k in ("accuracy", "kappa", "recall", "target_met")}, indent=1))

    data, truth, sfreq = example
    fig = plot_stage_spectra(
        {"EEG Fpz-Cz": data[0], "EEG Pz-Oz": data[1]},
        truth,
        AASM,
        sfreq,
        title=f"Synthetic SC night (seed {SEED})",
    )
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
