"""Training: experiment configs, the training loop, checkpoints and subject-wise experiments."""
