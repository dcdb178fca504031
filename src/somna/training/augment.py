"""Training augmentation: what recordings do to signals that a model must not lean on.

Applied to each training batch (normalised signals, per modality (batch, epochs, channels, samples)),
independently per chunk, with a generator seeded by the seed, the pass and the chunk itself, so that a
resumed run replays it and a distributed run draws what one process draws:

* **gain** of each channel (×0.67-1.5): a night's normalisation is never exact, and amplitude varies with
  age, montage and electrode impedance;
* **polarity** of the EOG (half the chunks): single-sided EOG derivations (E1-M2, E2-M2) see the eyes with
  opposite signs;
* **time shift** of the whole chunk by up to 2 s against its epochs: where the 30-s grid falls is arbitrary;
* **noise** (in half the chunks, σ 0.02-0.8 robust SD, log-uniform: electrode impedance and amplifier
  noise differ between nights by more than an order of magnitude), **slow drift** (in a fifth of the
  chunks, 1-5 SD of a random walk at 0.05-0.5 Hz on the EEG and EOG over part of the chunk: sweat),
  **artefact bursts** (1-10 s of 3-15 SD noise) and **flat stretches** (a lead that came loose: one
  channel at zero, as normalisation leaves a flat epoch, for 1-20 epochs);
* **modality dropout**: the EOG or the EMG (or one EEG channel) replaced by zeros in a share of the
  chunks, so that a model fused over modalities still stages from those that remain instead of collapsing
  when one of them is unlike anything it has seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["Augmenter"]

_GAIN = math.log(1.5)
_MAX_SHIFT_S = 2.0
_NOISE_P, _NOISE_RANGE = 0.5, (math.log(0.02), math.log(0.8))
_DRIFT_P, _DRIFT_SD, _DRIFT_HZ = 0.2, (1.0, 5.0), (0.05, 0.5)
_BURST_P, _FLAT_P = 0.3, 0.1
_START_OFFSET = 1 << 20  # chunk starts are negative for a night's padded beginning


def _drift(n_chans: int, samples: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Slow drift (sweat) over a random part of a chunk: a random walk sampled at four times its top
    frequency, with its trend over ``1 / low`` seconds removed, interpolated to ``rate``; 1-5 SD."""
    top, low = rng.uniform(0.2, _DRIFT_HZ[1]), _DRIFT_HZ[0]
    step_s = 1.0 / (4 * top)
    n_steps = int(samples / rate / step_s) + 2
    walk = np.cumsum(rng.standard_normal(n_steps))
    width = max(1, round(1.0 / low / step_s))
    walk -= np.convolve(np.pad(walk, width // 2, mode="edge"), np.ones(width) / width, "valid")[:n_steps]
    walk /= np.std(walk) or 1.0
    t = np.arange(samples) / rate / step_s
    drift = np.interp(t, np.arange(n_steps), walk)
    length = int(rng.integers(samples // 4, samples + 1))
    start = int(rng.integers(0, samples - length + 1))
    gate = np.zeros(samples)
    gate[start : start + length] = 1.0
    sizes = rng.uniform(*_DRIFT_SD) * rng.uniform(0.5, 1.0, n_chans)
    return (sizes[:, None] * (gate * drift)[None, :]).astype(np.float32)


class Augmenter:
    """Augment training batches reproducibly.

    Parameters
    ----------
    seed : int
        With the pass and the chunk, seeds each chunk's augmentation.
    signal_augmentation : bool
        Gain, polarity, time shift, noise, artefact bursts and flat stretches.
    modality_dropout : float
        Share of chunks in which each of EOG and EMG is zeroed (and, at half that share, one EEG channel
        of a multi-channel EEG); 0 turns it off.
    samples_per_s : dict of str to float
        Samples per second of each modality's epochs (100 for EEG/EOG, 1 for the EMG envelope).
    """

    def __init__(
        self, seed: int, signal_augmentation: bool, modality_dropout: float, samples_per_s: dict[str, float]
    ):
        self.seed, self.signal, self.dropout = seed, signal_augmentation, modality_dropout
        self.rates = dict(samples_per_s)

    @property
    def active(self) -> bool:
        """Whether this augmenter changes anything."""
        return self.signal or self.dropout > 0

    def __call__(
        self, signals: dict[str, torch.Tensor], pass_index: int, chunks: Sequence[tuple[int, int]]
    ) -> dict[str, torch.Tensor]:
        """Augmented copies of one batch's signals.

        Parameters
        ----------
        signals : dict of str to torch.Tensor
            Per modality, CPU tensors (batch, epochs, channels, samples).
        pass_index : int
            The training pass.
        chunks : sequence of (int, int)
            Each row's chunk, (night index, first epoch) as the sampler plans it.
        """
        if not self.active:
            return signals
        out = {m: x.clone() for m, x in signals.items()}
        for b, (night, start) in enumerate(chunks):
            rng = np.random.default_rng([self.seed, pass_index, night, start + _START_OFFSET, 17])
            if self.signal:
                self._signal(out, b, rng)
            if self.dropout > 0:
                self._drop(out, b, rng)
        return out

    def _signal(self, out: dict[str, torch.Tensor], b: int, rng: np.random.Generator) -> None:
        shift_s = rng.uniform(-_MAX_SHIFT_S, _MAX_SHIFT_S)
        for modality, x in out.items():
            chunk = x[b]  # (epochs, channels, samples)
            n_epochs, n_chans, per_epoch = chunk.shape
            flat = chunk.permute(1, 0, 2).reshape(n_chans, n_epochs * per_epoch)
            flat = torch.roll(flat, round(shift_s * self.rates[modality]), dims=1)
            gains = np.exp(rng.uniform(-_GAIN, _GAIN, n_chans))
            if modality == "eog" and rng.random() < 0.5:
                gains = -gains
            flat = flat * torch.from_numpy(gains.astype(np.float32))[:, None]
            if rng.random() < _NOISE_P:
                noise = math.exp(rng.uniform(*_NOISE_RANGE))
                flat = flat + noise * torch.from_numpy(rng.standard_normal(flat.shape).astype(np.float32))
            samples = flat.shape[1]
            if modality != "emg" and rng.random() < _DRIFT_P:
                flat = flat + torch.from_numpy(_drift(n_chans, samples, self.rates[modality], rng))
            if rng.random() < _BURST_P:
                length = min(samples, max(1, round(rng.uniform(1, 10) * self.rates[modality])))
                start = int(rng.integers(0, samples - length + 1))
                burst = rng.uniform(3, 15) * rng.standard_normal((n_chans, length))
                flat[:, start : start + length] += torch.from_numpy(burst.astype(np.float32))
            if rng.random() < _FLAT_P:
                length = int(rng.integers(1, min(20, n_epochs) + 1)) * per_epoch
                start = int(rng.integers(0, samples - length + 1))
                flat[int(rng.integers(n_chans)), start : start + length] = 0.0
            x[b] = flat.reshape(n_chans, n_epochs, per_epoch).permute(1, 0, 2)

    def _drop(self, out: dict[str, torch.Tensor], b: int, rng: np.random.Generator) -> None:
        for modality in ("eog", "emg"):
            if modality in out and rng.random() < self.dropout:
                out[modality][b] = 0.0
        eeg = out.get("eeg")
        if eeg is not None and eeg.shape[2] > 1 and rng.random() < self.dropout / 2:
            eeg[b, :, int(rng.integers(eeg.shape[2]))] = 0.0
