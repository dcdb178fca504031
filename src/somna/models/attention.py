"""Causal local attention: each epoch attends to itself and the previous ``span - 1`` epochs."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["CausalLocalAttention"]


class CausalLocalAttention(nn.Module):
    """Multi-head attention of each position over a causal window of ``span`` positions, with a residual.

    Each query sees the ``span`` most recent positions (itself included) as keys, each key tagged with a
    learned embedding of its distance to the query, so order within the window matters. Positions before
    the start of the sequence are masked out.

    Parameters
    ----------
    channels : int
        Embedding size.
    span : int
        Positions attended to, the current one included.
    n_heads : int
        Attention heads (must divide ``channels``).
    dropout : float
        Dropout on the attention output.
    """

    def __init__(self, channels: int, span: int, n_heads: int = 4, dropout: float = 0.1):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be a multiple of n_heads ({n_heads})")
        self.span, self.n_heads = span, n_heads
        self.norm = nn.LayerNorm(channels)
        self.query = nn.Linear(channels, channels)
        self.key_value = nn.Linear(channels, 2 * channels)
        self.distance = nn.Parameter(torch.randn(span, channels) * 0.02)  # index 0 = the query itself
        self.out = nn.Linear(channels, channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_epochs, channels) → same shape; output t depends on inputs t-span+1 … t only."""
        batch, n, channels = x.shape
        h = self.norm(x)
        # windows[:, t, j] = h[:, t - j] (distance j), zero before the sequence start
        padded = F.pad(h, (0, 0, self.span - 1, 0))
        last = self.span - 1
        # (batch, n, span, channels); shifted slices rather than unfold, which ONNX exporters cannot size
        windows = torch.stack([padded[:, last - j : last - j + n] for j in range(self.span)], dim=2)
        windows = windows + self.distance
        key, value = self.key_value(windows).chunk(2, dim=-1)
        query = self.query(h)
        head = channels // self.n_heads
        q = query.view(batch, n, self.n_heads, head)
        k = key.view(batch, n, self.span, self.n_heads, head)
        v = value.view(batch, n, self.span, self.n_heads, head)
        scores = torch.einsum("bthd,btjhd->bthj", q, k) / math.sqrt(head)
        valid = torch.arange(n, device=x.device)[:, None] >= torch.arange(self.span, device=x.device)[None, :]
        scores = scores.masked_fill(~valid[None, :, None, :], float("-inf"))
        weights = scores.softmax(dim=-1)
        attended = torch.einsum("bthj,btjhd->bthd", weights, v).reshape(batch, n, channels)
        return x + self.drop(self.out(attended))
