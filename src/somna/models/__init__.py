"""Models: per-epoch encoders, causal TCN, causal local attention and the staging network.

``somna.models.predict`` (numpy) is importable without torch; the network itself needs torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from somna.config import ModelConfig

if TYPE_CHECKING:
    from somna.models.network import StagingNetwork

__all__ = ["ModelConfig", "StagingNetwork"]


def __getattr__(name: str) -> Any:
    if name == "StagingNetwork":  # imported on first use: it loads torch
        from somna.models.network import StagingNetwork

        return StagingNetwork
    raise AttributeError(f"module 'somna.models' has no attribute {name!r}")
