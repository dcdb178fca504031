"""Sequences of consecutive epochs for the causal sequence model.

Every epoch is predicted from a window of ``seq_len`` epochs ending at it. A night is padded at its
start with ``seq_len - 1`` copies of its first epoch, so the first epochs get a padded context — the same in
training, offline scoring and streaming. Training reads long chunks of consecutive epochs and takes the
loss at every position whose window lies inside the chunk; chunks overlap by ``seq_len - 1`` epochs so
that each scored epoch is a target exactly once per pass, while being encoded about once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from somna.data.cohort import Cohort
from somna.stages import AASM, RK, UNSCORED, LabelSet, convert

__all__ = ["CachedField", "ChunkSampler", "NightArrays", "load_night", "read_padded"]


@dataclass
class NightArrays:
    """One night ready for a model: signals per modality and targets in a label set.

    Parameters
    ----------
    record, subject_id : str
        Recording and subject ids.
    signals : dict of str to np.ndarray
        Per modality, (n_epochs, n_chans, n_times) float32: an array, or a :class:`CachedField`.
    labels : np.ndarray of int64, shape (n_epochs,)
        Targets in the label set; UNSCORED where there is none.
    """

    record: str
    subject_id: str
    signals: dict[str, np.ndarray]
    labels: np.ndarray

    @property
    def n_epochs(self) -> int:
        """Epochs in the night."""
        return int(self.labels.size)


class CachedField:
    """One field (a modality) of a cached night, read on demand.

    Each read maps the file, copies the rows asked for and unmaps it again, so a process's memory holds
    only what a batch needs; a long-lived memory map would keep every page a training pass touched
    resident, and memory would grow with the cohort.

    Parameters
    ----------
    path : Path
        The night's ``.npy`` file (structured rows, see :func:`somna.data.cohort.epoch_dtype`).
    field : str
        The field to read (``"eeg"``, ``"eog"``, ``"emg"``).
    shape : tuple of int
        (n_epochs, n_chans, n_times) of the field.
    """

    def __init__(self, path: Path, field: str, shape: tuple[int, ...]):
        self.path, self.field, self.shape = path, field, shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: int | slice) -> np.ndarray:
        rows = np.load(self.path, mmap_mode="r", allow_pickle=False)
        out = np.array(rows[key][self.field], dtype=np.float32)
        del rows  # unmap now rather than when the garbage collector gets to it
        return out


def load_night(cohort: Cohort, record: str, label_set: LabelSet, modalities: Sequence[str]) -> NightArrays:
    """A cached night: targets in ``label_set``, signals read on demand (:class:`CachedField`).

    R&K targets come from the cache's ``rk_stage`` field (unscored for AASM-scored sources); every other
    label set is mapped from the AASM ``stage`` field by :func:`somna.stages.convert`.
    """
    cohort.night(record)  # checks the night exists and, on first use, its checksum
    entry = next(e for e in cohort.entries if e.record == record)
    path = cohort.root / "recordings" / f"{record}.npy"
    rows = np.load(path, mmap_mode="r", allow_pickle=False)
    field = "rk_stage" if label_set is RK else "stage"
    stages = np.array(rows[field])
    labels = stages if label_set is RK else convert(stages, AASM, label_set)
    signals = {m: CachedField(path, m, rows[m].shape) for m in modalities}
    del rows
    return NightArrays(record, entry.subject_id, signals, labels.astype(np.int64))


def read_padded(night: NightArrays, first: int, stop: int, modality: str) -> np.ndarray:
    """Epochs ``first`` … ``stop - 1`` of a modality, padded outside the night.

    Before the night's start the first epoch is repeated (the context a live recording has at its start:
    the state it begins in); after its end, zeros (only causal outputs of earlier epochs are used, so
    they never matter).
    """
    data = night.signals[modality]
    out = np.zeros((stop - first, *data.shape[1:]), dtype=np.float32)
    lo, hi = max(first, 0), min(stop, night.n_epochs)
    if hi > lo:
        out[lo - first : hi - first] = data[lo:hi]
    if first < 0 and night.n_epochs:
        out[: min(-first, stop - first)] = data[0]
    return out


class ChunkSampler:
    """Batches of chunks of consecutive epochs, each with per-position targets.

    Parameters
    ----------
    nights : sequence of NightArrays
        Nights to draw from.
    seq_len : int
        Epochs each prediction sees.
    chunk_len : int
        Epochs per chunk (≥ ``seq_len``); the first ``seq_len - 1`` positions of a chunk are context only.
    batch_size : int
        Chunks per batch.
    seed : int
        Shuffling seed; the order of pass ``k`` depends only on ``(seed, k)``, so a resumed run replays it.
    shuffle : bool
        Shuffle chunks (training) or keep night order (evaluation).
    """

    def __init__(
        self,
        nights: Sequence[NightArrays],
        seq_len: int,
        chunk_len: int = 64,
        batch_size: int = 16,
        seed: int = 0,
        shuffle: bool = True,
    ):
        if chunk_len < seq_len:
            raise ValueError(f"chunk_len ({chunk_len}) must be at least seq_len ({seq_len})")
        self.nights, self.seq_len, self.chunk_len = list(nights), seq_len, chunk_len
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        context = seq_len - 1
        step = chunk_len - context
        # Chunk starts in epochs of the night (negative: padding first); targets are t ≥ start + context.
        # A chunk without any scored target (a stretch of wake for the REM-vs-NREM stage of hierarchical
        # staging) would add nothing to the loss: it is left out.
        self.chunks = [
            (i, start)
            for i, night in enumerate(self.nights)
            for start in range(-context, night.n_epochs - context, step)
            if np.any(night.labels[max(start + context, 0) : start + chunk_len] != UNSCORED)
        ]

    @property
    def n_targets(self) -> int:
        """Scored epochs per pass (each is a target once)."""
        return int(sum(np.sum(n.labels != UNSCORED) for n in self.nights))

    def __len__(self) -> int:
        return -(-len(self.chunks) // self.batch_size)

    def plan(self, pass_index: int = 0) -> list[list[tuple[int, int]]]:
        """The chunks ``(night index, start)`` of each batch of pass ``pass_index``, in order.

        Depends only on ``(seed, pass_index)``, so every rank of a distributed run builds the same plan.
        """
        order = np.arange(len(self.chunks))
        if self.shuffle:
            order = np.random.default_rng([self.seed, pass_index]).permutation(order)
        return [
            [self.chunks[k] for k in order[b : b + self.batch_size]]
            for b in range(0, len(order), self.batch_size)
        ]

    @staticmethod
    def shard(picked: Sequence[tuple[int, int]], rank: int, world_size: int) -> list[tuple[int, int]]:
        """Rank ``rank``'s contiguous share of one global batch (``np.array_split`` sizes).

        Concatenated in rank order the shares give the global batch back, in its order; the first
        ``len(picked) % world_size`` ranks take one chunk more, and a rank's share of a short last batch
        may be empty.
        """
        size, extra = divmod(len(picked), world_size)
        first = rank * size + min(rank, extra)
        return list(picked[first : first + size + (rank < extra)])

    def targets(self, picked: Sequence[tuple[int, int]]) -> np.ndarray:
        """Targets (len(picked), chunk_len) int64 of these chunks: UNSCORED at context-only, padded and
        unscored positions (labels only; no signal is read)."""
        context = self.seq_len - 1
        targets = np.full((len(picked), self.chunk_len), UNSCORED, dtype=np.int64)
        for row, (i, s) in enumerate(picked):
            labels = self.nights[i].labels
            lo, hi = max(s + context, 0), min(s + self.chunk_len, labels.size)
            targets[row, lo - s : hi - s] = labels[lo:hi]
        return targets

    def read(self, picked: Sequence[tuple[int, int]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``(signals, targets)`` of these chunks, as yielded by :meth:`batches`."""
        modalities = list(self.nights[0].signals) if self.nights else []
        signals = {
            m: torch.from_numpy(
                np.stack([read_padded(self.nights[i], s, s + self.chunk_len, m) for i, s in picked])
                if picked
                else np.zeros((0, self.chunk_len, *self.nights[0].signals[m].shape[1:]), dtype=np.float32)
            )
            for m in modalities
        }
        return signals, torch.from_numpy(self.targets(picked))

    def batches(
        self, pass_index: int = 0, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """Yield ``(signals, targets)``: signals per modality (batch, chunk_len, chans, times), targets
        (batch, chunk_len) int64 with UNSCORED at context-only, padded and unscored positions.

        With ``world_size > 1``, rank ``rank``'s share (:meth:`shard`) of each batch of the plan; every
        batch of the plan yields, even where the share is empty, so that ranks stay in step.
        """
        for picked in self.plan(pass_index):
            yield self.read(self.shard(picked, rank, world_size) if world_size > 1 else picked)
