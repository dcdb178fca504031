"""Stage probabilities for whole nights with a trained sequence model."""

from __future__ import annotations

import numpy as np
import torch

from somna.data.sequences import NightArrays, read_padded
from somna.models import SequenceStager

__all__ = ["predict_night"]


def _epochs_tensor(night: NightArrays, first: int, stop: int, modality: str) -> torch.Tensor:
    """Epochs ``first`` … ``stop - 1`` (within the night) as a tensor, sharing memory with the night's
    array where it is writable float32 (the encoders copy it into their own layout anyway)."""
    data = night.signals[modality][first:stop]
    if data.dtype == np.float32 and data.flags.writeable:
        return torch.from_numpy(data)
    return torch.from_numpy(read_padded(night, first, stop, modality))


@torch.no_grad()
def predict_night(
    model: SequenceStager, night: NightArrays, chunk_epochs: int = 1024, encode_epochs: int = 256
) -> np.ndarray:
    """Stage probabilities of every epoch of a night.

    Each epoch is encoded once (CNN and EMG encoder, ``encode_epochs`` epochs per batch, a size whose
    activations stay in cache); the context of the night's first epochs is padded with ``seq_len - 1``
    copies of the first epoch's embedding (the same as padding the signals: the encoders see one epoch
    at a time), as in training and streaming. The TCN, attention and classifier then run over the
    embeddings in chunks of ``chunk_epochs`` that overlap by ``seq_len - 1`` epochs.

    Parameters
    ----------
    model : SequenceStager
        Trained model (switched to eval mode here), on the CPU or a GPU, or an exported one
        (:class:`somna.export.OnnxSequenceModel`).
    night : NightArrays
        The night's signals (its modalities must include the model's).
    chunk_epochs : int
        Epochs per pass of the sequence part.
    encode_epochs : int
        Epochs per batch of the per-epoch encoders (memory bound).

    Returns
    -------
    np.ndarray of float32, shape (n_epochs, n_classes)
        Softmax probabilities.
    """
    model.eval()
    # a model on a GPU stages there; an ONNX model (somna.export.OnnxSequenceModel) takes CPU tensors
    device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    context = model.seq_len - 1
    n = night.n_epochs
    out = np.empty((n, model.config.n_classes), dtype=np.float32)
    if n == 0:
        return out
    parts = []
    for first in range(0, n, max(encode_epochs, 1)):
        stop = min(first + encode_epochs, n)
        signals = {m: _epochs_tensor(night, first, stop, m)[None].to(device) for m in model.config.modalities}
        parts.append(model.embed_epochs(signals)[0])
    embeddings = torch.cat([parts[0][:1].expand(context, -1), *parts])  # padded: first epoch repeated
    step = max(chunk_epochs - context, 1)
    for first in range(0, n, step):
        stop = min(first + step, n)
        logits = model.sequence_logits(embeddings[None, first : stop + context])[0, context:]
        out[first:stop] = torch.softmax(logits, dim=-1).cpu().numpy()
    return out
