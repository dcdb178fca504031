"""Models: per-epoch encoders, causal TCN, causal local attention and the sequence stager."""

from somna.models.stager import ModelConfig, SequenceStager

__all__ = ["ModelConfig", "SequenceStager"]
