"""The staging network: epoch encoders → causal TCN → causal local attention → classifier."""

from __future__ import annotations

import torch
from torch import nn

from somna.config import ModelConfig
from somna.models.attention import CausalLocalAttention
from somna.models.encoders import EmgEnvelopeEncoder, EpochCNN
from somna.models.tcn import CausalTCN

__all__ = ["StagingNetwork"]


class StagingNetwork(nn.Module):
    """Stages every epoch of a sequence from its own and the previous ``seq_len - 1`` epochs.

    Input is a dict of tensors per modality, shape (batch, n_epochs, n_chans, n_times); output is
    logits of shape (batch, n_epochs, n_classes). Output t depends only on epochs t - seq_len + 1 … t
    (the model is causal, so it can run live). Run on a whole chunk, it gives at every position whose
    window is full exactly what it gives on that explicit window's last epoch, so each epoch is encoded
    once per pass instead of ``seq_len`` times.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        chans = dict(config.n_chans)
        dense = [m for m in config.modalities if m in ("eeg", "eog")]
        if "eeg" not in config.modalities:
            raise ValueError("the EEG modality is required")
        self.dense_modalities = dense
        self.cnn = EpochCNN(
            sum(chans[m] for m in dense),
            config.n_times,
            config.embed_dim,
            config.cnn_width,
            config.dropout,
            config.cnn_stride,
        )
        fused = config.embed_dim
        self.emg = None
        if "emg" in config.modalities:
            self.emg = EmgEnvelopeEncoder(chans["emg"], config.emg_n_times, n_features=16)
            fused += 16
        self.fuse = nn.Sequential(nn.Linear(fused, config.embed_dim), nn.GELU())
        self.tcn = CausalTCN(config.embed_dim, config.tcn_kernel, config.tcn_dilations, config.dropout)
        self.attention = CausalLocalAttention(
            config.embed_dim, config.attention_span, config.n_heads, config.dropout
        )
        self.classifier = nn.Sequential(
            nn.LayerNorm(config.embed_dim), nn.Linear(config.embed_dim, config.n_classes)
        )

    @property
    def seq_len(self) -> int:
        """Epochs each prediction depends on."""
        return self.tcn.receptive_field + self.attention.span - 1

    def embed_epochs(self, signals: dict[str, torch.Tensor]) -> torch.Tensor:
        """Encode each epoch alone: dict of (batch, n_epochs, chans, times) → (batch, n_epochs, embed)."""
        dense = torch.cat([signals[m] for m in self.dense_modalities], dim=2)
        batch, n_epochs = dense.shape[:2]
        features = [self.cnn(dense.flatten(0, 1))]
        if self.emg is not None:
            features.append(self.emg(signals["emg"].flatten(0, 1)))
        return self.fuse(torch.cat(features, dim=-1)).view(batch, n_epochs, -1)

    def sequence_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Causal TCN → attention → classifier on epoch embeddings (batch, n_epochs, embed)."""
        context = self.tcn(embeddings.transpose(1, 2)).transpose(1, 2)
        return self.classifier(self.attention(context))

    def forward(self, signals: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits for every epoch: (batch, n_epochs, n_classes)."""
        return self.sequence_logits(self.embed_epochs(signals))

    def for_inference(self) -> StagingNetwork:
        """Switch to eval mode with batch norms folded into the CNN's convolutions (see
        :meth:`EpochCNN.fold_batch_norm`); returns ``self``. Scoring uses this; training must not."""
        self.cnn.fold_batch_norm()
        return self.eval()
