"""Peer side of ``vs_braindecode.py``: train and test a braindecode model under a wall-clock budget.

Runs INSIDE the peer virtual environment (torch 2.9.1 + torchaudio 2.9 + braindecode), never the
project's. Reads the nights of a prepared somna cohort (through ``somna.data.sequences.load_night`` when
somna imports there, else the cached ``.npy`` files directly: same arrays), trains on the ``train``
recordings of ``--splits``, picks the pass with the best validation accuracy (macro-F1 breaks ties, as
somna does) and writes the test predictions with its timings to ``--out``.

- ``AttnSleep``: single 30-s epochs, EEG Fpz-Cz + Pz-Oz + EOG at 100 Hz (3 x 3000 samples), scored
  epochs only.
- ``USleep``: windows of ``--window`` consecutive epochs of the same three channels, one output per
  epoch; test nights are staged window by window (the last window aligned to the night's end).

Both: AdamW, cross-entropy with somna's "sqrt" class weights (square root of inverse class frequency on
the training targets, divided by its mean), constant learning rate, torch threads ``--threads``. Training
goes on in passes over shuffled training data until ``--budget`` seconds (counted from before the
training data are loaded, validation included) are spent; the last pass may be cut short so that its
validation still fits.

Run by ``vs_braindecode.py``; by hand::

    /tmp/somna-bench/braindecode-venv/bin/python benchmarks/_braindecode_peer.py --model AttnSleep \
        --cache /tmp/demo2/cache --splits splits.json --budget 240 --threads 2 --out attnsleep.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

N_CLASSES = 5  # AASM: W, N1, N2, N3, REM
DEVICE = torch.device("cpu")  # --device
UNSCORED = -1


CHANNELS = {
    "eeg+eog": ["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal"],
    "fpz": ["EEG Fpz-Cz"],  # AttnSleep's original input
}


def load_nights(cache: Path, records: list[str], n_chans: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per night, (signals (n_epochs, n_chans, 3000) float32, AASM labels with UNSCORED).

    Channels in the cache's order: EEG Fpz-Cz, EEG Pz-Oz, EOG; ``n_chans`` keeps the first ones.
    """
    try:
        from somna.data.cohort import Cohort
        from somna.data.sequences import load_night
        from somna.stages import AASM

        cohort = Cohort.open(cache, verify=False)
        out = []
        for record in records:
            night = load_night(cohort, record, AASM, ("eeg", "eog"))
            x = np.concatenate([night.signals["eeg"], night.signals["eog"]], axis=1)[:, :n_chans]
            out.append((np.ascontiguousarray(x, dtype=np.float32), night.labels.astype(np.int64)))
        return out
    except ImportError as err:  # somna's data code needs packages the peer may lack: read the cache
        print(f"somna does not import here ({err}); reading the cached .npy files directly")
    out = []
    for record in records:
        rows = np.load(cache / "recordings" / f"{record}.npy", mmap_mode="r")
        x = np.concatenate([rows["eeg"], rows["eog"]], axis=1)[:, :n_chans].astype(np.float32)
        labels = np.asarray(rows["stage"]).astype(np.int64)
        labels[(labels < 0) | (labels >= N_CLASSES)] = UNSCORED
        out.append((x, labels))
    return out


def sqrt_class_weights(labels: np.ndarray) -> torch.Tensor:
    """somna's ``class_weights(..., "sqrt")``: sqrt of inverse frequency, divided by its mean."""
    counts = np.bincount(labels[labels != UNSCORED], minlength=N_CLASSES).astype(np.float64)
    weights = np.sqrt(counts.sum() / (N_CLASSES * np.maximum(counts, 1.0)))
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 (over classes present in either) of scored epochs."""
    keep = y_true != UNSCORED
    t, p = y_true[keep], y_pred[keep]
    f1s = []
    for c in sorted(set(t.tolist()) | set(p.tolist())):
        tp, fp, fn = np.sum((p == c) & (t == c)), np.sum((p == c) & (t != c)), np.sum((p != c) & (t == c))
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1))
    return {"accuracy": float(np.mean(t == p)), "macro_f1": float(np.mean(f1s))}


class EpochTask:
    """AttnSleep: one scored 30-s epoch in, one stage out."""

    def __init__(self, nights: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator) -> None:
        keep = [labels != UNSCORED for _, labels in nights]
        self.x = np.concatenate([x[k] for (x, _), k in zip(nights, keep, strict=True)])
        self.y = np.concatenate([y[k] for (_, y), k in zip(nights, keep, strict=True)])
        self.rng = rng

    @property
    def n_targets(self) -> int:
        return int(self.y.size)

    def batches(self, batch_size: int) -> Any:
        order = self.rng.permutation(self.y.size)
        for start in range(0, order.size, batch_size):
            idx = np.sort(order[start : start + batch_size])
            yield torch.from_numpy(self.x[idx]), torch.from_numpy(self.y[idx])

    @staticmethod
    @torch.inference_mode()
    def predict(model: nn.Module, x: np.ndarray, window: int) -> np.ndarray:
        model.eval()
        out = [model(torch.from_numpy(x[i : i + 512]).to(DEVICE)).argmax(1) for i in range(0, len(x), 512)]
        return torch.cat(out).cpu().numpy().astype(np.int64)


class WindowTask:
    """USleep: ``window`` consecutive epochs in, one stage per epoch out (unscored epochs ignored)."""

    def __init__(
        self, nights: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, window: int
    ) -> None:
        self.nights, self.rng, self.window = nights, rng, window

    @property
    def n_targets(self) -> int:
        return int(sum((y != UNSCORED).sum() for _, y in self.nights))

    def batches(self, batch_size: int) -> Any:
        starts = []  # non-overlapping windows, shifted by a random offset each pass
        for n, (_, y) in enumerate(self.nights):
            offset = int(self.rng.integers(self.window))
            last = y.size - self.window
            starts += [(n, s) for s in range(offset, last + 1, self.window)] + [(n, 0)] * (offset > 0)
        order = self.rng.permutation(len(starts))
        for start in range(0, order.size, batch_size):
            picked = [starts[i] for i in order[start : start + batch_size]]
            x = np.stack([self._flat(self.nights[n][0][s : s + self.window]) for n, s in picked])
            y = np.stack([self.nights[n][1][s : s + self.window] for n, s in picked])
            yield torch.from_numpy(x), torch.from_numpy(y)

    @staticmethod
    def _flat(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.transpose(1, 0, 2).reshape(x.shape[1], -1))

    @staticmethod
    @torch.inference_mode()
    def predict(model: nn.Module, x: np.ndarray, window: int) -> np.ndarray:
        model.eval()
        n = len(x)
        starts = list(range(0, max(n - window, 0) + 1, window))
        if starts[-1] + window < n:
            starts.append(n - window)
        out = np.zeros(n, dtype=np.int64)
        for i in range(0, len(starts), 16):
            chunk = starts[i : i + 16]
            batch = torch.from_numpy(np.stack([WindowTask._flat(x[s : s + window]) for s in chunk]))
            pred = model(batch.to(DEVICE)).argmax(1).cpu().numpy()  # (batch, window)
            for s, p in zip(chunk, pred, strict=True):
                out[s : s + window] = p
        return out


def predict_nights(task: Any, model: nn.Module, nights: list, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled (y_true, y_pred) over nights (every epoch, unscored ones included)."""
    y_pred = [task.predict(model, x, window) for x, _ in nights]
    return np.concatenate([y for _, y in nights]), np.concatenate(y_pred)


def estimate_validation_s(task: Any, model: nn.Module, nights: list, window: int) -> float:
    """Seconds one validation will take, from staging 512 epochs of the first validation night."""
    x = nights[0][0]
    part = x[: max(512, 2 * window)]
    task.predict(model, part[: 2 * window], window)  # warm-up
    t0 = time.perf_counter()
    task.predict(model, part, window)
    return (time.perf_counter() - t0) * sum(len(n[0]) for n in nights) / len(part)


def build(name: str, n_chans: int) -> nn.Module:
    """The braindecode model for ``n_chans`` channels of 30-s epochs at 100 Hz.

    braindecode's AttnSleep (as in Eldele et al. 2021) reads ONE channel: the first convolution of both
    branches of its multi-resolution CNN has one input channel. With ``n_chans > 1`` those two
    ``Conv1d(1, 64, k, stride, padding)`` become ``Conv1d(n_chans, 64, k, stride, padding)`` (same
    kernels, strides and paddings; early fusion) and everything else is braindecode's.
    """
    from braindecode.models import AttnSleep, USleep

    if name == "USleep":  # n_times: samples of ONE epoch; input (B, C, S * n_times) -> (B, classes, S)
        return USleep(n_chans=n_chans, n_outputs=N_CLASSES, sfreq=100, n_times=3000)
    model = AttnSleep(n_chans=n_chans, n_outputs=N_CLASSES, n_times=3000, sfreq=100)
    if n_chans > 1:
        mrcnn = model.feature_extractor[0]
        for branch in (mrcnn.features1, mrcnn.features2):
            conv = branch[0]
            branch[0] = nn.Conv1d(
                n_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=False
            )
    return model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("AttnSleep", "USleep"), default="AttnSleep")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument(
        "--splits", type=Path, required=True, help="JSON {train, validation, test: [records]}"
    )
    parser.add_argument("--budget", type=float, default=240.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="AttnSleep 128, USleep 16 windows")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--window", type=int, default=35, help="USleep: epochs per window")
    parser.add_argument("--channels", choices=tuple(CHANNELS), default="eeg+eog")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    splits = json.loads(args.splits.read_text())
    sequence = args.model == "USleep"
    window = args.window if sequence else 1
    batch_size = args.batch_size or (16 if sequence else 128)
    n_chans = len(CHANNELS[args.channels])

    t0 = time.perf_counter()
    deadline = t0 + args.budget
    train_nights = load_nights(args.cache, splits["train"], n_chans)
    val_nights = load_nights(args.cache, splits["validation"], n_chans)
    task = WindowTask(train_nights, rng, window) if sequence else EpochTask(train_nights, rng)
    weights = sqrt_class_weights(np.concatenate([y for _, y in train_nights]))
    model = build(args.model, n_chans).to(DEVICE)
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(DEVICE), ignore_index=UNSCORED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    print(
        f"{args.model}: {sum(p.numel() for p in model.parameters())} parameters, "
        f"{task.n_targets} labelled training epochs, budget {args.budget:.0f} s",
        flush=True,
    )

    history: list[dict[str, Any]] = []
    best: dict[str, float] | None = None
    best_state, best_pass = None, 0
    val_s = estimate_validation_s(task, model, val_nights, window)  # reserved so the last pass fits
    print(f"validation estimated at {val_s:.1f} s; {time.perf_counter() - t0:.1f} s used so far", flush=True)
    while time.perf_counter() + val_s < deadline:
        model.train()
        tp, n_seen, loss_sum, n_batches, complete = time.perf_counter(), 0, 0.0, 0, True
        for x, y in task.batches(batch_size):
            if time.perf_counter() + val_s >= deadline:
                complete = False
                break
            x, y = x.to(DEVICE, non_blocking=True), y.to(DEVICE, non_blocking=True)
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n_seen += int((y != UNSCORED).sum())
            loss_sum, n_batches = loss_sum + loss.item(), n_batches + 1
        train_s = time.perf_counter() - tp
        if n_batches == 0:
            break
        tv = time.perf_counter()
        s = scores(*predict_nights(task, model, val_nights, window))
        val_s = time.perf_counter() - tv
        record = {
            "pass": len(history) + 1,
            "complete": complete,
            "loss": loss_sum / n_batches,
            "train_s": train_s,
            "labelled_epochs": n_seen,
            "labelled_epochs_per_s": n_seen / train_s,
            "val_accuracy": s["accuracy"],
            "val_macro_f1": s["macro_f1"],
            "val_s": val_s,
        }
        history.append(record)
        if best is None or (s["accuracy"], s["macro_f1"]) > (best["accuracy"], best["macro_f1"]):
            best, best_pass, best_state = s, record["pass"], copy.deepcopy(model.state_dict())
        print(
            f"  pass {record['pass']:>2}{'' if complete else ' (cut)'}  loss {record['loss']:.3f}  "
            f"val acc {s['accuracy']:.3f}  val macro-F1 {s['macro_f1']:.3f}  "
            f"{record['labelled_epochs_per_s']:.0f} epochs/s{' *' if best_pass == record['pass'] else ''}",
            flush=True,
        )
    seconds = time.perf_counter() - t0
    if best_state is None:
        raise SystemExit("the budget ended before one batch was trained")
    model.load_state_dict(best_state)
    y_true, y_pred = predict_nights(task, model, load_nights(args.cache, splits["test"], n_chans), window)
    full = [h["labelled_epochs_per_s"] for h in history if h["complete"]] or [
        h["labelled_epochs_per_s"] for h in history
    ]
    import braindecode
    import torchaudio

    result = {
        "y_true": y_true.tolist(),
        "y_pred": y_pred.tolist(),
        "seconds_used": seconds,
        "passes_run": len(history),
        "best_pass": best_pass,
        "best_validation": best,
        "labelled_epochs_per_s": float(np.median(full)),
        "labelled_epochs_trained": int(sum(h["labelled_epochs"] for h in history)),
        "history": history,
        "model": {
            "name": f"braindecode.models.{args.model}",
            "n_chans": n_chans,
            "sfreq": 100,
            "window_epochs": window,
            "first_convs_widened_to_n_chans": args.model == "AttnSleep" and n_chans > 1,
        },
        "inputs": CHANNELS[args.channels],
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "training": {
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": 1e-3,
            "batch_size": batch_size,
            "class_weights": "sqrt",
            "schedule": "constant",
            "seed": args.seed,
            "threads": args.threads,
            "device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu",
        },
        "versions": {
            "torch": torch.__version__,
            "torchaudio": torchaudio.__version__,
            "braindecode": braindecode.__version__,
        },
    }
    args.out.write_text(json.dumps(result))
    print(f"wrote {args.out} after {seconds:.0f} s of training", flush=True)


if __name__ == "__main__":
    main()
