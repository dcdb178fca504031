"""Causal temporal convolution network over the sequence of epoch embeddings."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["CausalTCN"]


class _CausalResidualBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.left_pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        # LayerNorm over channels per position: GroupNorm would pool over time and break causality.
        self.norm = nn.LayerNorm(channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x, (self.left_pad, 0)))
        y = self.norm(y.transpose(1, 2)).transpose(1, 2)
        return x + self.drop(F.gelu(y))


class CausalTCN(nn.Module):
    """Dilated causal residual convolutions: position t sees only positions ≤ t.

    Parameters
    ----------
    channels : int
        Embedding size (kept through the blocks).
    kernel : int
        Kernel size of every block.
    dilations : tuple of int
        One residual block per dilation.
    dropout : float
        Dropout inside the blocks.
    """

    def __init__(
        self, channels: int, kernel: int = 3, dilations: tuple[int, ...] = (1, 2, 4), dropout: float = 0.1
    ):
        super().__init__()
        self.blocks = nn.Sequential(*[_CausalResidualBlock(channels, kernel, d, dropout) for d in dilations])
        self.receptive_field = 1 + (kernel - 1) * sum(dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, n_epochs) → same shape."""
        return self.blocks(x)
