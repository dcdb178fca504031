"""Data-parallel training over several processes (``torchrun --nproc_per_node=N -m somna train …``).

``torchrun`` starts N copies of ``python -m somna`` with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set;
:func:`session` (entered by ``somna/__main__.py``) joins them into one process group — NCCL when CUDA
is available, gloo otherwise. Without those variables, or with ``WORLD_SIZE=1``, nothing changes: the
single-process code paths run exactly as before.

In a distributed run every rank builds the same global batch plan (same seed, same training nights) and
trains on its contiguous share of each global batch; the trainer scales the loss so that DDP's gradient
mean equals the single-process gradient of the batch's mean loss, and BatchNorm layers are replaced by
:class:`SyncBatchNorm1d`, which normalises with the statistics of the whole global batch (torch's own
``nn.SyncBatchNorm`` refuses CPU tensors, so gloo could not use it). Only rank 0 writes files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from somna.errors import SomnaError

__all__ = [
    "DistContext",
    "SyncBatchNorm1d",
    "all_gather_objects",
    "barrier",
    "check_same",
    "context",
    "convert_sync_batchnorm",
    "empty_shard",
    "from_main",
    "is_main",
    "session",
    "sum_across",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a run.

    Parameters
    ----------
    rank, world_size, local_rank : int
        Global rank, number of processes, rank on this machine (0, 1, 0 outside ``torchrun``).
    device : torch.device
        ``cuda:LOCAL_RANK`` under NCCL, else the CPU.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def active(self) -> bool:
        """Several processes train together."""
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """This process writes files and prints."""
        return self.rank == 0


_SINGLE = DistContext()
_BN_GROUP: Any = None  # a group of its own, so BatchNorm's collectives never interleave with DDP's buckets


def context() -> DistContext:
    """The context of this process (single-process when no process group of several ranks exists)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return _SINGLE
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = dist.get_backend() == "nccl"
    return DistContext(
        dist.get_rank(),
        dist.get_world_size(),
        local,
        torch.device("cuda", local) if cuda else torch.device("cpu"),
    )


def is_main() -> bool:
    """True on rank 0 and in single-process runs."""
    return context().main


@contextmanager
def session() -> Iterator[DistContext]:
    """Join the ``torchrun`` process group for the duration of the block (a no-op outside ``torchrun``).

    Rank 0 keeps its output; the others run quietly (callers check :func:`is_main` before printing).
    """
    global _BN_GROUP
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2 or not dist.is_available() or dist.is_initialized():
        yield context()
        return
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        _BN_GROUP = dist.new_group(backend="nccl" if cuda else "gloo")
        yield context()
    finally:
        _BN_GROUP = None
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in single-process runs)."""
    if context().active:
        dist.barrier()


def all_gather_objects(value: T) -> list[T]:
    """Every rank's ``value``, in rank order (``[value]`` in single-process runs)."""
    ctx = context()
    if not ctx.active:
        return [value]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, value)
    return out


def sum_across(value: float) -> float:
    """Sum of ``value`` over ranks, in float64 (the value itself in single-process runs)."""
    ctx = context()
    if not ctx.active:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(total)
    return float(total.item())


def check_same(value: Any, what: str) -> None:
    """Raise on every rank if ranks disagree on ``value`` (e.g. they see different training data).

    Raises
    ------
    SomnaError
        Naming ``what`` and the ranks that differ from rank 0.
    """
    values = all_gather_objects(value)
    differ = [r for r, v in enumerate(values) if v != values[0]]
    if differ:
        raise SomnaError(f"ranks {differ} disagree with rank 0 on {what}; every rank must see the same data")


def from_main(compute: Callable[[], T]) -> T:
    """Run ``compute`` on rank 0 only and return its result on every rank.

    A :class:`SomnaError` raised on rank 0 is raised on every rank, so that no rank waits forever in a
    collective its peers will never reach.
    """
    ctx = context()
    if not ctx.active:
        return compute()
    box: list[Any] = [None]
    if ctx.main:
        try:
            box[0] = ("ok", compute())
        except SomnaError as err:
            box[0] = ("error", err)
    dist.broadcast_object_list(box, src=0, device=ctx.device)
    status, payload = box[0]
    if status == "error":
        raise payload
    return payload


# --- BatchNorm over the global batch --------------------------------------------------------------------


class _SyncBatchNormFunction(torch.autograd.Function):
    """Batch normalisation with the statistics of the whole global batch, and its exact gradient.

    Forward: every rank's (count, mean, biased variance) per channel are gathered and merged in float64
    (Chan's parallel formula, no E[x²] − E[x]² cancellation). Backward: the per-channel sums of ``dy`` and
    ``dy·x̂`` are summed over ranks, so each rank's input gradient is that of the global batch; the weight
    and bias gradients stay local because DDP averages them with the other parameters.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        eps: float,
        empty: bool,
        group: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dims = [0, *range(2, x.dim())]
        channels = x.shape[1]
        shape = [1, channels] + [1] * (x.dim() - 2)
        if empty:  # this rank's input is a placeholder: it adds nothing to the statistics
            local = torch.zeros(2 * channels + 1, dtype=torch.float64, device=x.device)
        else:
            # Sums accumulate in float64 as torch's CPU BatchNorm does: float32 sums of ~10⁵ terms that
            # nearly cancel would differ from the single-process run by far more than rounding.
            count = x.numel() // channels
            mean = torch.sum(x, dims, dtype=torch.float64) / count
            shift = mean.to(x.dtype)  # centre in float32, correct the variance for the rounding of the centre
            var = torch.sum((x - shift.view(shape)).square(), dims, dtype=torch.float64) / count
            var = var - (mean - shift.double()) ** 2
            local = torch.cat([mean.new_tensor([count]), mean, var])
        gathered = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
        dist.all_gather(gathered, local, group=group)
        stats = torch.stack(gathered)
        counts, means, variances = stats[:, :1], stats[:, 1 : channels + 1], stats[:, channels + 1 :]
        n = counts.sum()
        g_mean = (counts * means).sum(0) / n
        g_var = (counts * (variances + (means - g_mean) ** 2)).sum(0) / n
        mean32, invstd = g_mean.to(x.dtype), torch.rsqrt(g_var + eps).to(x.dtype)
        xhat = (x - mean32.view(shape)) * invstd.view(shape)
        ctx.save_for_backward(xhat, weight, invstd)
        ctx.empty, ctx.group, ctx.n, ctx.dims, ctx.shape = empty, group, float(n), dims, shape
        unbiased = (g_var * (n / (n - 1)) if n > 1 else g_var).to(x.dtype)
        ctx.mark_non_differentiable(mean32, unbiased)
        return xhat * weight.view(shape) + bias.view(shape), mean32, unbiased

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, dy: torch.Tensor, *_: Any
    ) -> tuple[torch.Tensor | None, ...]:
        xhat, weight, invstd = ctx.saved_tensors
        dims, shape = ctx.dims, ctx.shape
        channels = invstd.numel()
        if ctx.empty:
            local = torch.zeros(2 * channels, dtype=torch.float64, device=dy.device)
        else:
            local = torch.cat(
                [torch.sum(dy, dims, dtype=torch.float64), torch.sum(dy * xhat, dims, dtype=torch.float64)]
            )
        sums = local.clone()
        dist.all_reduce(sums, group=ctx.group)
        mean_dy = (sums[:channels] / ctx.n).to(dy.dtype).view(shape)
        mean_dy_xhat = (sums[channels:] / ctx.n).to(dy.dtype).view(shape)
        if ctx.empty:  # the placeholder must not pull the weights anywhere
            dx = torch.zeros_like(dy)
        else:
            dx = (weight * invstd).view(shape) * (dy - mean_dy - xhat * mean_dy_xhat)
        return dx, local[channels:].to(weight.dtype), local[:channels].to(weight.dtype), None, None, None


class SyncBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` that, while training in a distributed run, normalises over the global batch.

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm1d`` (checkpoints load into the plain
    model), and the same behaviour in eval mode or outside a distributed run. Running statistics are
    updated with the global mean and unbiased variance, identically on every rank.
    """

    empty: bool = False  # set by :func:`empty_shard`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (batch, channels[, length])."""
        if not (self.training and context().active and self.affine and self.track_running_stats):
            return super().forward(x)
        self._check_input_dim(x)
        y, mean, unbiased = _SyncBatchNormFunction.apply(
            x, self.weight, self.bias, self.eps, self.empty, _BN_GROUP
        )
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.lerp_(mean, factor)
            self.running_var.lerp_(unbiased, factor)
        return y


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm1d`` in ``module`` by a :class:`SyncBatchNorm1d` with the same state."""
    if type(module) is nn.BatchNorm1d:
        sync = SyncBatchNorm1d(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        sync.load_state_dict(module.state_dict())
        sync.train(module.training)
        return sync
    for name, child in module.named_children():
        setattr(module, name, convert_sync_batchnorm(child))
    return module


@contextmanager
def empty_shard(modules: Sequence[nn.Module] | nn.Module) -> Iterator[None]:
    """Within the block, this rank's input is a placeholder (its share of a short last batch is empty).

    The rank still runs forward and backward so that every collective is matched, but its
    :class:`SyncBatchNorm1d` layers add nothing to the batch statistics and pass no gradient back.
    """
    roots = [modules] if isinstance(modules, nn.Module) else list(modules)
    layers = [m for root in roots for m in root.modules() if isinstance(m, SyncBatchNorm1d)]
    for layer in layers:
        layer.empty = True
    try:
        yield
    finally:
        for layer in layers:
            layer.empty = False
