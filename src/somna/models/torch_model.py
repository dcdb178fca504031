"""A torch :class:`~somna.models.network.StagingNetwork` behind the numpy :class:`StageModel` interface."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from somna.models.network import StagingNetwork

__all__ = ["TorchStageModel"]


class TorchStageModel:
    """Run a staging network on numpy epochs, on whatever device its weights are on.

    Parameters
    ----------
    network : StagingNetwork
        Switched to eval mode here (training switches it back itself).
    """

    def __init__(self, network: StagingNetwork):
        self.network = network.eval()
        self.config = network.config
        self.device = next(network.parameters()).device

    @property
    def seq_len(self) -> int:
        """Epochs each prediction depends on."""
        return self.network.seq_len

    @torch.inference_mode()
    def embed_epochs(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per modality (n_epochs, n_chans, n_times) → (n_epochs, embed_dim)."""
        tensors = {
            m: torch.from_numpy(np.ascontiguousarray(signals[m], dtype=np.float32))[None].to(self.device)
            for m in self.config.modalities
        }
        return self.network.embed_epochs(tensors)[0].cpu().numpy()

    @torch.inference_mode()
    def sequence_logits(self, embeddings: np.ndarray) -> np.ndarray:
        """(n_epochs, embed_dim) → (n_epochs, n_classes)."""
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))[None].to(self.device)
        return self.network.sequence_logits(x)[0].cpu().numpy()
