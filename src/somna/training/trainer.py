"""Training one model on one subject-wise split, with early stopping, checkpoints and resume."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from somna.config import ModelConfig, TrainConfig
from somna.data.cohort import Cohort
from somna.data.profile import night_profile, training_profile
from somna.data.sequences import ChunkSampler, NightArrays, load_night
from somna.data.splits import Fold, check_no_leakage
from somna.errors import CheckpointError, SomnaError
from somna.models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from somna.models.network import StagingNetwork
from somna.models.predict import predict_night
from somna.models.torch_model import TorchStageModel
from somna.stages import UNSCORED, LabelSet
from somna.storage import atomic_write, write_json_atomic
from somna.training import distributed
from somna.training.augment import Augmenter
from somna.training.distributed import DistContext

__all__ = [
    "TrainResult",
    "class_weights",
    "distributed_validation_scores",
    "records_of",
    "train_model",
    "training_device",
]


@dataclass
class TrainResult:
    """What training one split produced."""

    best_checkpoint: Path
    best_pass: int
    best_validation: dict[str, float]
    history: list[dict[str, float]]
    labelled_epochs_per_s: float
    stopped_early: bool


def records_of(cohort: Cohort, subjects: tuple[str, ...] | list[str]) -> list[str]:
    """Recording ids of the given subjects (all their nights), sorted."""
    wanted = set(subjects)
    return sorted(e.record for e in cohort.entries if e.subject_id in wanted)


def class_weights(nights: list[NightArrays], n_classes: int, mode: str) -> torch.Tensor | None:
    """Cross-entropy class weights from the training targets: ``"none"``, ``"balanced"`` or ``"sqrt"``."""
    if mode == "none":
        return None
    labels = np.concatenate([n.labels[n.labels != UNSCORED] for n in nights])
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = counts.sum() / (n_classes * np.maximum(counts, 1.0))
    if mode == "sqrt":
        weights = np.sqrt(weights)
    elif mode != "balanced":
        raise SomnaError(f"class_weights must be 'none', 'balanced' or 'sqrt', not {mode!r}")
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def _night_predictions(model: StagingNetwork, night: NightArrays) -> tuple[np.ndarray, np.ndarray]:
    probs = predict_night(TorchStageModel(model), night.signals)
    scored = night.labels != UNSCORED
    return night.labels[scored], probs[scored].argmax(axis=1)


def _scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    t, p = np.concatenate([y for y, _ in pairs]), np.concatenate([y for _, y in pairs])
    return {"accuracy": float(accuracy_score(t, p)), "macro_f1": float(f1_score(t, p, average="macro"))}


def validation_scores(model: StagingNetwork, nights: list[NightArrays]) -> dict[str, float]:
    """Accuracy and macro-F1 of the model on scored epochs of these nights (pooled)."""
    return _scores([_night_predictions(model, night) for night in nights])


def distributed_validation_scores(
    model: StagingNetwork, nights: list[NightArrays], ctx: DistContext
) -> dict[str, float]:
    """:func:`validation_scores` with the nights shared among ranks; every rank returns the same scores.

    Rank ``r`` predicts nights ``r, r + N, …``; the predictions are gathered and pooled in night order,
    so the scores are those :func:`validation_scores` gives for the same weights, on every rank — and so
    every rank takes the same best-checkpoint and early-stopping decisions.
    """
    mine = {k: _night_predictions(model, nights[k]) for k in range(ctx.rank, len(nights), ctx.world_size)}
    pooled = {k: v for part in distributed.all_gather_objects(mine) for k, v in part.items()}
    return _scores([pooled[k] for k in range(len(nights))])


def training_device(name: str, ctx: DistContext) -> torch.device:
    """The device a run trains on: ``ctx``'s under ``torchrun``, else ``name`` (see ``TrainConfig.device``).

    Raises
    ------
    SomnaError
        If ``name`` asks for a GPU that torch does not see (:class:`~somna.config.TrainConfig` checks
        that it is ``"auto"``, ``"cpu"`` or ``"cuda"``).
    """
    if ctx.active:
        return ctx.device
    if name == "cuda" and not torch.cuda.is_available():
        raise SomnaError(
            "training device 'cuda' was asked for, but torch sees no GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use 'auto' or 'cpu'"
        )
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    # cuDNN's autotuner and non-deterministic kernels would break "same seed, same weights" on a GPU
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return torch.device("cuda", torch.cuda.current_device())


def _rank_seed(seed: int, rank: int, pass_index: int) -> int:
    """Seed of rank ``rank``'s own dropout stream from pass ``pass_index`` on (rank 0 keeps ``seed``'s)."""
    return int(np.random.SeedSequence([seed, rank, pass_index]).generate_state(1)[0])


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rank_rng(state: dict[str, Any], ctx: DistContext, seed: int) -> None:
    """Each rank's RNG as saved, when the checkpoint comes from a run with as many ranks; else rank 0
    takes the saved (rank-0 / single-process) state and the others a fresh stream of their own."""
    saved = state.get("rank_rng")
    if saved is not None and len(saved) == ctx.world_size:
        torch.set_rng_state(saved[ctx.rank]["cpu"])
        if "cuda" in saved[ctx.rank] and ctx.device.type == "cuda":
            torch.cuda.set_rng_state(saved[ctx.rank]["cuda"], ctx.device)
    elif ctx.rank == 0:
        torch.set_rng_state(state["torch_rng"])
    else:
        torch.manual_seed(_rank_seed(int(state["train_config"]["seed"]), ctx.rank, int(state["next_pass"])))


def _is_better(scores: dict[str, float], best: dict[str, float] | None) -> bool:
    if best is None:
        return True
    return (scores["accuracy"], scores["macro_f1"]) > (best["accuracy"], best["macro_f1"])


def _schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, total_steps // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class _Progress:
    """What training has reached: saved in ``last.pt`` after every pass, restored when resuming."""

    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] | None = None
    best_pass: int = -1
    since_best: int = 0
    next_pass: int = 0


class _FoldTraining:
    """One fold's model, optimiser, schedule, loss and data, and the steps of training it."""

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        label_set: LabelSet,
        train_nights: list[NightArrays],
        splits: dict[str, list[str]],
        ctx: DistContext,
        epoch_s: float,
    ):
        self.ctx, self.config, self.label_set = ctx, train_config, label_set
        self.device = training_device(train_config.device, ctx)
        torch.manual_seed(train_config.seed)
        model = StagingNetwork(model_config)
        self.sampler = ChunkSampler(
            train_nights,
            model.seq_len,
            train_config.chunk_len,
            train_config.batch_size,
            seed=train_config.seed,
        )
        if ctx.active:
            # Every rank must draw its shares from the same global plan over the same training nights.
            distributed.check_same(
                (splits, self.sampler.chunks, self.sampler.n_targets), "the training chunks"
            )
            model = distributed.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay
        )
        self.scheduler = _schedule(self.optimizer, train_config.max_epochs * len(self.sampler))
        weights = class_weights(train_nights, label_set.n_classes, train_config.class_weights)
        self.loss_fn = nn.CrossEntropyLoss(
            weight=None if weights is None else weights.to(self.device), ignore_index=UNSCORED
        )
        self.augment = Augmenter(
            train_config.seed,
            train_config.augment,
            train_config.modality_dropout,
            {
                m: (model_config.emg_n_times if m == "emg" else model_config.n_times) / epoch_s
                for m in model_config.modalities
            },
        )
        self.net: nn.Module = self.model
        if ctx.active:
            # SyncBatchNorm1d keeps running statistics identical on every rank: no buffer broadcast needed.
            cuda = ctx.device.type == "cuda"
            self.net = DistributedDataParallel(
                self.model, device_ids=[ctx.device.index] if cuda else None, broadcast_buffers=False
            )
            self.sum_loss_fn = nn.CrossEntropyLoss(
                weight=None if weights is None else weights.to(ctx.device),
                ignore_index=UNSCORED,
                reduction="sum",
            )
            self.target_weights = (
                np.ones(label_set.n_classes) if weights is None else weights.double().numpy()
            )

    def resume(self, state: dict[str, Any]) -> _Progress:
        """Weights, optimiser, schedule and RNG from ``last.pt``; the progress it records."""
        self.model.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        self.scheduler.load_state_dict(state["scheduler_state"])
        if self.ctx.active:
            _restore_rank_rng(state, self.ctx, self.config.seed)
        else:
            torch.set_rng_state(state["torch_rng"])
            if "cuda_rng" in state and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        return _Progress(
            state["history"],
            state["best_validation"],
            state["best_pass"],
            state["since_best"],
            state["next_pass"],
        )

    def train_pass(self, pass_index: int, progress: bool, run_dir: Path) -> tuple[float, float]:
        """One pass over the training chunks; the mean batch loss and the seconds it took."""
        ctx = self.ctx
        self.net.train()
        t0, loss_sum, n_batches = time.perf_counter(), 0.0, 0
        batches = (
            _rank_batches(self.sampler, pass_index, ctx, self.target_weights, self.augment)
            if ctx.active
            else self._batches(pass_index)
        )
        bar = tqdm(
            batches,
            total=len(self.sampler),
            disable=None if progress else True,
            leave=False,
            desc=f"pass {pass_index + 1}/{self.config.max_epochs}",
            unit="batch",
        )
        for batch in bar:
            if ctx.active:
                signals, targets, scale, empty = batch
                with distributed.empty_shard(self.model) if empty else nullcontext():
                    logits = self.net(signals)
                    # Σ over this rank's valid targets / Σ over the global batch's, × N: DDP's gradient mean
                    # over ranks is then exactly the gradient of the global batch's weighted-mean loss.
                    loss = self.sum_loss_fn(logits.flatten(0, 1), targets.flatten()) * scale
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                batch_loss = loss.item() / ctx.world_size  # this rank's part of the global batch loss
            else:
                signals, targets = batch
                signals = {m: x.to(self.device, non_blocking=True) for m, x in signals.items()}
                targets = targets.to(self.device, non_blocking=True)
                logits = self.model(signals)
                loss = self.loss_fn(logits.flatten(0, 1), targets.flatten())
                if not torch.isfinite(loss):
                    # Stop before the step: one non-finite update would silently ruin every weight.
                    raise SomnaError(
                        f"training diverged: the loss of a batch of pass {pass_index + 1} is {loss.item()} "
                        "(lower the learning rate; the last good checkpoint is kept)",
                        run_dir,
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                batch_loss = loss.item()
            nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
            self.optimizer.step()
            self.scheduler.step()
            loss_sum += batch_loss
            n_batches += 1
            bar.set_postfix(loss=f"{loss_sum * ctx.world_size / n_batches:.3f}")
        train_s = time.perf_counter() - t0
        if ctx.active:
            loss_sum = distributed.sum_across(loss_sum)
        return loss_sum / max(n_batches, 1), train_s

    def _batches(self, pass_index: int) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """The pass's batches, augmented: ``(signals, targets)``."""
        for picked in self.sampler.plan(pass_index):
            signals, targets = self.sampler.read(picked)
            yield self.augment(signals, pass_index, picked), targets

    def validate(self, nights: list[NightArrays]) -> dict[str, float]:
        """Accuracy and macro-F1 on the validation nights (the same on every rank)."""
        if self.ctx.active:
            return distributed_validation_scores(self.model, nights, self.ctx)
        return validation_scores(self.model, nights)

    def resumable_state(self) -> dict[str, Any]:
        """Optimiser, schedule and RNG state of every rank, for ``last.pt``."""
        if self.ctx.active:
            rank_rng = {"rank_rng": distributed.all_gather_objects(_rng_state(self.device))}
        else:  # a GPU's dropout draws from its own generator: save it too, for an exact resume
            rank_rng = {"cuda_rng": _rng_state(self.device)["cuda"]} if self.device.type == "cuda" else {}
        return {
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            **rank_rng,
        }


def train_model(
    cohort: Cohort,
    fold: Fold,
    model_config: ModelConfig,
    train_config: TrainConfig,
    label_set: LabelSet,
    run_dir: str | Path,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Train on a fold's training subjects, choosing the checkpoint on its validation subjects.

    The fold's test subjects are never read here. ``run_dir/last.pt`` is written after every pass
    (weights, optimiser, schedule, RNG state, history) so an interrupted run resumes where it stopped;
    ``run_dir/best.pt`` holds the weights with the best validation accuracy (macro-F1 breaks ties).

    Parameters
    ----------
    cohort : Cohort
        Prepared cohort.
    fold : Fold
        Subjects of train / validation / test; checked for subject leakage first.
    model_config : ModelConfig
        Model sizes and modalities.
    train_config : TrainConfig
        Optimisation settings and seed.
    label_set : LabelSet
        Target stages.
    run_dir : str | Path
        Folder for checkpoints and ``history.json``.
    progress : bool
        Show a progress bar per pass with the running loss and validation scores.
    extra : dict | None
        Stored in the checkpoints (e.g. the experiment config).

    Returns
    -------
    TrainResult

    Raises
    ------
    LeakageError
        If a subject appears in two of train / validation / test.
    """
    ctx = distributed.context()
    progress = progress and ctx.main  # other ranks train quietly
    run_dir = Path(run_dir)
    if ctx.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    subject_of = {e.record: e.subject_id for e in cohort.entries}
    splits = {name: records_of(cohort, getattr(fold, name)) for name in ("train", "validation", "test")}
    check_no_leakage(splits, subject_of)  # on every rank, before any data is read
    if not splits["train"] or not splits["validation"]:
        raise SomnaError(f"fold {fold.index} has no training or no validation recordings", cohort.root)

    torch.set_num_threads(train_config.threads)
    modalities = model_config.modalities
    # Nights stay memory-mapped: batches copy their chunks out, so memory does not grow with the cohort.
    train_nights = [load_night(cohort, r, label_set, modalities) for r in splits["train"]]
    val_nights = [load_night(cohort, r, label_set, modalities) for r in splits["validation"]]
    preprocess = cohort.manifest["config"]["preprocess"]
    training = _FoldTraining(
        model_config, train_config, label_set, train_nights, splits, ctx, preprocess["epoch_s"]
    )
    meta = {
        "train_config": asdict(train_config),
        "fold": fold.to_dict(),
        "channels": cohort.manifest["config"]["channels"],
        "trained_on": cohort.manifest.get("source") or {"kind": "unknown"},
        **(extra or {}),
    }

    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    state = _Progress()
    if last_path.is_file():  # in a distributed run every rank reads it (the run folder is shared)
        saved = load_checkpoint(last_path)
        if saved.get("train_config") != asdict(train_config) or saved.get("fold") != fold.to_dict():
            raise CheckpointError("exists from a different config or fold; use a new run folder", last_path)
        state = training.resume(saved)
        if progress:
            print(f"resuming {run_dir} at pass {state.next_pass + 1}/{train_config.max_epochs}")
    elif ctx.rank > 0:
        torch.manual_seed(_rank_seed(train_config.seed, ctx.rank, 0))  # its own dropout masks
    if ctx.active:
        distributed.check_same(state.next_pass, "the pass to resume from (is the run folder shared?)")

    for pass_index in range(state.next_pass, train_config.max_epochs):
        if state.since_best >= train_config.patience:
            break
        t0 = time.perf_counter()
        loss, train_s = training.train_pass(pass_index, progress, run_dir)
        scores = training.validate(val_nights)
        record = {
            "pass": pass_index + 1,
            "loss": loss,
            "train_s": train_s,
            "validation_s": time.perf_counter() - t0 - train_s,
            "labelled_epochs_per_s": training.sampler.n_targets / train_s,
            "val_accuracy": scores["accuracy"],
            "val_macro_f1": scores["macro_f1"],
        }
        state.history.append(record)
        if _is_better(scores, state.best):
            state.best, state.best_pass, state.since_best = scores, pass_index + 1, 0
            if ctx.main:
                save_checkpoint(
                    best_path, training.model, label_set, preprocess, **meta, best_validation=scores,
                    best_pass=state.best_pass,
                )  # fmt: skip
        else:
            state.since_best += 1
        state.next_pass = pass_index + 1
        resumable = training.resumable_state()
        if ctx.main:
            save_checkpoint(
                last_path,
                training.model,
                label_set,
                preprocess,
                **meta,
                **resumable,
                history=state.history,
                best_validation=state.best,
                best_pass=state.best_pass,
                since_best=state.since_best,
                next_pass=state.next_pass,
            )
        if progress:
            mark = " *" if state.best_pass == pass_index + 1 else ""
            tqdm.write(
                f"  pass {pass_index + 1:>2}/{train_config.max_epochs}  loss {loss:.3f}  "
                f"val acc {scores['accuracy']:.3f}  val macro-F1 {scores['macro_f1']:.3f}  "
                f"{record['labelled_epochs_per_s']:.0f} epochs/s{mark}"
            )
    if ctx.main:
        write_json_atomic(run_dir / "history.json", state.history)
        _store_profile(best_path, train_nights, val_nights, preprocess["epoch_s"])
    distributed.barrier()  # the checkpoints exist for every rank once train_model returns
    speeds = [h["labelled_epochs_per_s"] for h in state.history]
    if state.best is None:
        raise SomnaError("training ran no pass (max_epochs is 0?)", run_dir)
    return TrainResult(
        best_path,
        state.best_pass,
        state.best,
        state.history,
        float(np.median(speeds)) if speeds else 0.0,
        state.since_best >= train_config.patience,
    )


def _store_profile(
    best_path: Path, train_nights: list[NightArrays], val_nights: list[NightArrays], epoch_s: float
) -> None:
    """Add to the best checkpoint what its training nights looked like and how sure it is on its
    validation nights (:mod:`somna.data.profile`): what scoring checks a new night against."""
    state = load_checkpoint(best_path)
    network, _ = model_from_checkpoint(best_path)
    model = TorchStageModel(network.for_inference())
    confidences = [float(predict_night(model, n.signals).max(axis=1).mean()) for n in val_nights]
    state["profile"] = training_profile(
        [night_profile(n.signals, epoch_s) for n in train_nights], confidences
    )
    atomic_write(best_path, lambda tmp: torch.save(state, tmp))


def _rank_batches(
    sampler: ChunkSampler, pass_index: int, ctx: DistContext, target_weights: np.ndarray, augment: Augmenter
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, float, bool]]:
    """This rank's share of each global batch of the pass: ``(signals, targets, loss scale, empty)``.

    The loss scale is ``N / W``, with ``W`` the summed class weights of the valid targets of the whole
    global batch — what ``CrossEntropyLoss(weight, ignore_index)`` divides by in a single process; every
    rank knows it from the labels of the plan, without communicating. A rank whose share of a short last
    batch is empty gets a placeholder chunk without targets (``empty``: see
    :func:`somna.training.distributed.empty_shard`).
    """
    for picked in sampler.plan(pass_index):
        every = sampler.targets(picked)
        total = float(target_weights[every[every != UNSCORED]].sum())
        share = sampler.shard(picked, ctx.rank, ctx.world_size)
        signals, targets = sampler.read(share or picked[:1])
        signals = augment(signals, pass_index, share or picked[:1])
        if not share:
            targets.fill_(UNSCORED)
        scale = ctx.world_size / total if total > 0 else 0.0  # no valid target anywhere: no gradient
        yield (
            {m: x.to(ctx.device) for m, x in signals.items()},
            targets.to(ctx.device),
            scale,
            not share,
        )
