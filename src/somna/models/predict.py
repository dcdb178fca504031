"""Stage probabilities of whole nights from trained networks, whatever runs them (torch or ONNX).

A backend wraps a trained network in a :class:`StageModel`: two numpy functions, one that encodes epochs
one at a time (CNN and EMG encoder) and one that turns consecutive epoch embeddings into logits (TCN,
attention, classifier). Everything here is numpy, so scoring with an ONNX export never loads torch.
Training (validation), offline scoring and streaming all predict through these functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from somna.config import ModelConfig
from somna.stages import HIERARCHICAL, merge_hierarchical

__all__ = ["StageModel", "predict_members", "predict_night", "softmax"]


class StageModel(Protocol):
    """A trained staging network as numpy functions (see :mod:`somna.models.torch_model` and
    :mod:`somna.inference.onnx`)."""

    config: ModelConfig

    @property
    def seq_len(self) -> int:
        """Epochs each prediction depends on."""
        ...

    def embed_epochs(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per modality (n_epochs, n_chans, n_times) float32 → embeddings (n_epochs, embed_dim)."""
        ...

    def sequence_logits(self, embeddings: np.ndarray) -> np.ndarray:
        """Consecutive embeddings (n_epochs, embed_dim) → logits (n_epochs, n_classes); causal."""
        ...


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32."""
    shifted = np.asarray(logits, dtype=np.float32) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def predict_night(
    model: StageModel,
    signals: Mapping[str, np.ndarray],
    chunk_epochs: int = 1024,
    encode_epochs: int = 256,
) -> np.ndarray:
    """Stage probabilities of every epoch of a night.

    Each epoch is encoded once (``encode_epochs`` epochs per batch, a size whose activations stay in
    cache); the context of the night's first epochs is padded with ``seq_len - 1`` copies of the first
    epoch's embedding (the same as padding the signals: the encoders see one epoch at a time), as in
    training and streaming. The sequence part then runs over the embeddings in chunks of
    ``chunk_epochs`` that overlap by ``seq_len - 1`` epochs.

    Parameters
    ----------
    model : StageModel
        A trained network and the backend that runs it.
    signals : mapping of str to np.ndarray
        Per modality, (n_epochs, n_chans, n_times) normalised epochs (arrays or memory maps); the
        model's modalities must be among them.
    chunk_epochs : int
        Epochs per pass of the sequence part.
    encode_epochs : int
        Epochs per batch of the per-epoch encoders (memory bound).

    Returns
    -------
    np.ndarray of float32, shape (n_epochs, n_classes)
        Softmax probabilities.
    """
    modalities = model.config.modalities
    n = len(signals[modalities[0]])
    out = np.empty((n, model.config.n_classes), dtype=np.float32)
    if n == 0:
        return out
    parts = []
    for first in range(0, n, max(encode_epochs, 1)):
        stop = min(first + encode_epochs, n)
        batch = {m: np.ascontiguousarray(signals[m][first:stop], dtype=np.float32) for m in modalities}
        parts.append(model.embed_epochs(batch))
    context = model.seq_len - 1
    embeddings = np.concatenate([np.repeat(parts[0][:1], context, axis=0), *parts])  # first epoch repeated
    step = max(chunk_epochs - context, 1)
    for first in range(0, n, step):
        stop = min(first + step, n)
        out[first:stop] = softmax(model.sequence_logits(embeddings[first : stop + context])[context:])
    return out


def predict_members(
    members: Sequence[Mapping[str, StageModel]], task: str, signals: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and stages of a night from one or more trained models (an ensemble of folds).

    Parameters
    ----------
    members : sequence of mapping of str to StageModel
        One entry per trained fold; each maps a role (``"model"``, or ``"stage1"`` and ``"stage2"``
        for hierarchical staging) to its model. Probabilities are averaged over members.
    task : str
        Label-set name of the output (``"hierarchical"`` merges the two stages,
        :func:`somna.stages.merge_hierarchical`).
    signals : mapping of str to np.ndarray
        As for :func:`predict_night`.

    Returns
    -------
    probs : np.ndarray of float32, shape (n_epochs, n_classes)
    stages : np.ndarray of int64, shape (n_epochs,)
        Argmax, or the cascade for hierarchical staging.
    """
    if task == HIERARCHICAL:
        sleep = np.mean([predict_night(m["stage1"], signals) for m in members], axis=0)
        rem = np.mean([predict_night(m["stage2"], signals) for m in members], axis=0)
        return merge_hierarchical(sleep, rem)
    probs = np.mean([predict_night(m["model"], signals) for m in members], axis=0).astype(np.float32)
    return probs, probs.argmax(axis=1).astype(np.int64)
