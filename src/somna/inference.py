"""Stage probabilities for whole nights with a trained sequence model."""

from __future__ import annotations

import numpy as np
import torch

from somna.data.sequences import NightArrays, read_padded
from somna.models import SequenceStager

__all__ = ["predict_night"]


@torch.no_grad()
def predict_night(model: SequenceStager, night: NightArrays, chunk_epochs: int = 1024) -> np.ndarray:
    """Stage probabilities of every epoch of a night.

    The night is padded at its start with ``seq_len - 1`` copies of its first epoch (so epoch 0 has a
    padded context, as in training and streaming) and processed in chunks that overlap by
    ``seq_len - 1`` epochs; each epoch is encoded once per chunk.

    Parameters
    ----------
    model : SequenceStager
        Trained model (switched to eval mode here).
    night : NightArrays
        The night's signals (its modalities must include the model's).
    chunk_epochs : int
        Epochs per forward pass (memory bound).

    Returns
    -------
    np.ndarray of float32, shape (n_epochs, n_classes)
        Softmax probabilities.
    """
    model.eval()
    context = model.seq_len - 1
    step = max(chunk_epochs - context, 1)
    out = np.empty((night.n_epochs, model.config.n_classes), dtype=np.float32)
    for first in range(0, night.n_epochs, step):
        stop = min(first + step, night.n_epochs)
        signals = {
            m: torch.from_numpy(read_padded(night, first - context, stop, m))[None]
            for m in model.config.modalities
        }
        logits = model(signals)[0, context:]
        out[first:stop] = torch.softmax(logits, dim=-1).numpy()
    return out
