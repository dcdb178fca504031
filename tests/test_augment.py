"""Training augmentation: reproducible per chunk, whatever the batch it lands in."""

from __future__ import annotations

import numpy as np
import torch

from somna.training.augment import Augmenter

RATES = {"eeg": 100.0, "eog": 100.0, "emg": 1.0}


def _batch(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "eeg": torch.randn(n, 6, 2, 3000, generator=gen),
        "eog": torch.randn(n, 6, 1, 3000, generator=gen),
        "emg": torch.randn(n, 6, 1, 30, generator=gen),
    }


def test_each_chunk_is_augmented_the_same_whichever_batch_it_is_in() -> None:
    augment = Augmenter(seed=3, signal_augmentation=True, modality_dropout=0.2, samples_per_s=RATES)
    batch = _batch(4)
    chunks = [(0, -5), (1, 20), (2, 7), (0, 50)]
    whole = augment(batch, pass_index=2, chunks=chunks)
    halves = [augment({m: x[i : i + 2] for m, x in batch.items()}, 2, chunks[i : i + 2]) for i in (0, 2)]
    for m in batch:
        assert torch.equal(whole[m], torch.cat([h[m] for h in halves]))
        assert whole[m].shape == batch[m].shape
        assert not torch.equal(whole[m], batch[m])  # augmented copies; the input is left alone
    again = augment(batch, pass_index=2, chunks=chunks)
    assert all(torch.equal(whole[m], again[m]) for m in batch)
    other_pass = augment(batch, pass_index=3, chunks=chunks)
    assert not torch.equal(other_pass["eeg"], whole["eeg"])


def test_modality_dropout_zeroes_eog_and_emg_in_about_its_share_of_chunks() -> None:
    augment = Augmenter(seed=0, signal_augmentation=False, modality_dropout=0.25, samples_per_s=RATES)
    batch = _batch(400, seed=1)
    out = augment(batch, 0, [(k, 0) for k in range(400)])
    for modality in ("eog", "emg"):
        zeroed = (out[modality].abs().flatten(1).sum(1) == 0).float().mean().item()
        assert 0.17 < zeroed < 0.33, (modality, zeroed)
    eeg_dropped = (out["eeg"].abs().sum(dim=(1, 3)) == 0).any(dim=1).float().mean().item()
    assert 0.06 < eeg_dropped < 0.2
    assert (out["eeg"].abs().sum(dim=(1, 3)) == 0).all(dim=1).sum() == 0  # never all of the EEG
    kept = out["eeg"].abs().sum(dim=(1, 3)) != 0
    assert torch.equal(out["eeg"].permute(0, 2, 1, 3)[kept], batch["eeg"].permute(0, 2, 1, 3)[kept])


def test_signal_augmentation_keeps_the_stage_information_in_range() -> None:
    augment = Augmenter(seed=1, signal_augmentation=True, modality_dropout=0.0, samples_per_s=RATES)
    batch = _batch(200, seed=2)
    out = augment(batch, 0, [(k, 0) for k in range(200)])
    ratio = out["eeg"].std(dim=(1, 3)) / batch["eeg"].std(dim=(1, 3))
    assert np.quantile(ratio.numpy(), 0.05) > 0.6 and np.median(ratio.numpy()) < 1.6  # gains, noise, bursts
    flipped = (out["eog"] * batch["eog"]).sum(dim=(1, 2, 3)) < 0
    assert 0.3 < flipped.float().mean().item() < 0.7  # EOG polarity in about half the chunks


def test_inactive_augmenter_returns_the_batch_itself() -> None:
    augment = Augmenter(seed=0, signal_augmentation=False, modality_dropout=0.0, samples_per_s=RATES)
    batch = _batch(2)
    assert augment(batch, 0, [(0, 0), (1, 0)]) is batch


def test_slow_drift_reaches_eeg_and_eog_in_about_a_fifth_of_the_chunks() -> None:
    augment = Augmenter(seed=2, signal_augmentation=True, modality_dropout=0.0, samples_per_s=RATES)
    batch = _batch(300, seed=3)
    out = augment(batch, 0, [(k, 0) for k in range(300)])

    def slow_power(x: torch.Tensor) -> np.ndarray:  # below 0.5 Hz, per chunk, first channel
        flat = x[:, :, 0].flatten(1).numpy()
        spectrum = np.abs(np.fft.rfft(flat, axis=1)) ** 2
        freqs = np.fft.rfftfreq(flat.shape[1], 1 / 100)
        return spectrum[:, (freqs > 0.03) & (freqs < 0.5)].sum(1) / (spectrum.sum(1) + 1e-12)

    for modality in ("eeg", "eog"):
        drifted = slow_power(out[modality]) > 20 * slow_power(batch[modality])
        assert 0.1 < drifted.mean() < 0.3, (modality, drifted.mean())
    from somna.training.augment import _drift

    drift = _drift(2, 100 * 180, 100.0, np.random.default_rng(0))  # 3 min at 100 Hz
    moving = drift[:, np.abs(drift).sum(0) > 0]
    assert moving.shape[1] >= 100 * 45 and 0.5 < moving.std(axis=1).max() < 6  # 1-5 SD over a part


def test_noise_reaches_about_half_the_chunks_at_levels_an_order_of_magnitude_apart() -> None:
    augment = Augmenter(seed=4, signal_augmentation=True, modality_dropout=0.0, samples_per_s=RATES)
    batch = {m: torch.zeros_like(x) for m, x in _batch(400, seed=5).items()}
    out = augment(batch, 0, [(k, 0) for k in range(400)])
    # zeros in: what comes out is noise, bursts and drift; the median level per chunk is the noise
    level = out["eeg"][:, :, 0].flatten(1).abs().median(dim=1).values.numpy() / 0.674
    noisy = level > 0.01
    assert 0.4 < noisy.mean() < 0.6
    assert np.quantile(level[noisy], 0.9) > 8 * np.quantile(level[noisy], 0.1)
