"""Real-time staging: raw PSG samples in, each epoch's stage out as soon as the epoch is complete.

:class:`StreamingStager` chains :class:`~somna.preprocess.online.OnlinePreprocessor` (causal filters,
running normalisation) and the causal sequence model. Each completed epoch is encoded once by the
epoch encoders and its embedding appended to a ring buffer holding the last ``seq_len`` embeddings; the
TCN, attention and classifier then run over that fixed-size buffer and the last position is the epoch's
prediction. Work per epoch is constant (no past CNN work is redone), and the output equals offline
scoring of the same recording preprocessed with the same config (:func:`somna.inference.predict_night`
pads the night with ``seq_len - 1`` copies of its first epoch; the ring buffer is filled with the first
epoch's embedding when it arrives, so the first epochs see the same padded context).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from somna.config import PreprocessConfig
from somna.errors import SomnaError
from somna.io import read_psg
from somna.io.recording import SLEEP_EDF_CHANNELS, ChannelSpec
from somna.models import SequenceStager
from somna.preprocess.online import OnlinePreprocessor, check_streamable
from somna.stages import LabelSet
from somna.staging import HIERARCHICAL, SleepStager, merge_hierarchical

__all__ = ["EpochResult", "StreamingStager", "score_stream"]

# Label set of a bare model, from its number of classes.
_TASK_BY_CLASSES = {5: "aasm", 6: "rk", 3: "3class", 2: "2class"}


@dataclass(frozen=True)
class EpochResult:
    """The model's output for one completed epoch.

    Parameters
    ----------
    index : int
        Epoch index from the start of the stream (0-based).
    stage : int
        Stage code in the stager's label set.
    label : str
        Short stage name (``"N2"``).
    probs : np.ndarray of float32, shape (n_classes,)
        Stage probabilities in label-set order.
    latency_s : float
        Seconds from the start of the ``push`` call whose samples completed this epoch to this result.
    end_s : float
        Stream time at which the epoch ends, s.
    """

    index: int
    stage: int
    label: str
    probs: np.ndarray
    latency_s: float
    end_s: float


class _RingModel:
    """One model with its ring buffer of the last ``seq_len`` epoch embeddings."""

    def __init__(self, model: SequenceStager):
        self.model = model.eval()
        self.buffer: torch.Tensor | None = None  # filled by the first epoch, as offline padding is

    @torch.inference_mode()
    def step(self, epoch: dict[str, torch.Tensor]) -> np.ndarray:
        """Encode one epoch, shift it into the buffer, return its probabilities (n_classes,)."""
        embedding = self.model.embed_epochs({m: epoch[m] for m in self.model.config.modalities})
        if self.buffer is None:  # offline pads a night with copies of its first epoch
            self.buffer = embedding.expand(1, self.model.seq_len, embedding.shape[-1]).clone()
        self.buffer = torch.cat([self.buffer[:, 1:], embedding], dim=1)
        logits = self.model.sequence_logits(self.buffer)[0, -1]
        return torch.softmax(logits, dim=-1).numpy()


class StreamingStager:
    """Stage a live recording epoch by epoch.

    Parameters
    ----------
    stager : SleepStager | SequenceStager
        Trained model(s): one model, an ensemble, or hierarchical pairs (probabilities are averaged over
        members as :meth:`SleepStager.predict` does). Must have been trained on data preprocessed with
        ``filter="causal"`` and ``normalise="running"``.
    sfreq : dict of str to float
        Sampling rate of each modality of the incoming samples, Hz (any rate that
        :class:`~somna.preprocess.online.StatefulResampler` handles: 100 Hz, integer multiples,
        128, 250, 256 … Hz; EMG either raw or a ≤ 40 Hz envelope).
    preprocess : PreprocessConfig | dict | None
        Preprocessing; default: the stager's own (``SleepStager.preprocess``). Required for a bare model.
    task : str | None
        Label-set name for a bare :class:`SequenceStager` (default: from its number of classes).

    Raises
    ------
    SomnaError
        If the preprocessing is not streamable, or does not match the model's epoch shapes.
    """

    def __init__(
        self,
        stager: SleepStager | SequenceStager,
        sfreq: dict[str, float],
        preprocess: PreprocessConfig | dict[str, Any] | None = None,
        task: str | None = None,
    ):
        if isinstance(stager, SequenceStager):
            if preprocess is None:
                raise SomnaError("a bare model needs its preprocessing config (preprocess=...)")
            task = task or _TASK_BY_CLASSES[stager.config.n_classes]
            stager = SleepStager([{"model": stager}], task, stager.config.modalities, {})
        if preprocess is None:
            preprocess = stager.preprocess
        if isinstance(preprocess, dict):
            preprocess = PreprocessConfig(**preprocess)
        check_streamable(preprocess)
        self.stager, self.config = stager, preprocess
        first = next(iter(stager.members[0].values()))
        chans = dict(first.config.n_chans)
        if first.config.n_times != preprocess.samples_per_epoch or (
            "emg" in stager.modalities and first.config.emg_n_times != preprocess.emg_samples_per_epoch
        ):
            raise SomnaError("the model's epoch length does not match the preprocessing config")
        self.modalities = tuple(stager.modalities)
        self.preprocessor = OnlinePreprocessor(
            {m: sfreq[m] for m in self.modalities}, {m: chans[m] for m in self.modalities}, preprocess
        )
        self.rings = [
            {role: _RingModel(model) for role, model in member.items()} for member in stager.members
        ]
        self.label_set: LabelSet = stager.label_set
        self.n_epochs = 0

    def push(self, samples: dict[str, np.ndarray]) -> list[EpochResult]:
        """Feed raw samples (per modality, (n_chans, n_samples) µV, any amount); return completed epochs.

        Returns
        -------
        list of EpochResult
            One per epoch completed by these samples (often none, sometimes several), in order.
        """
        start = time.perf_counter()
        return [self._stage(epoch, start) for epoch in self.preprocessor.push(samples)]

    def push_epoch(self, epoch_signals: dict[str, np.ndarray]) -> list[EpochResult]:
        """Feed exactly one 30-s epoch of raw samples per modality.

        Returns the completed epochs: exactly one while every earlier push was whole epochs too.

        Raises
        ------
        ValueError
            If a modality does not hold exactly one epoch of samples at its rate.
        """
        for m, x in epoch_signals.items():
            want = round(self.config.epoch_s * self.preprocessor.streams[m].sfreq)
            if np.shape(x)[-1] != want:
                raise ValueError(f"{m}: one epoch is {want} samples, got {np.shape(x)[-1]}")
        return self.push(epoch_signals)

    def push_preprocessed(self, epoch: dict[str, np.ndarray]) -> EpochResult:
        """Stage one model-ready epoch (per modality float32 (n_chans, samples_per_epoch)), bypassing
        the preprocessor (for epochs normalised elsewhere by the same online code)."""
        return self._stage(epoch, time.perf_counter())

    def _stage(self, epoch: dict[str, np.ndarray], start: float) -> EpochResult:
        tensors = {
            m: torch.from_numpy(np.ascontiguousarray(epoch[m], dtype=np.float32))[None, None] for m in epoch
        }
        outputs = [{role: ring.step(tensors) for role, ring in member.items()} for member in self.rings]
        if self.stager.task == HIERARCHICAL:
            sleep = np.mean([o["stage1"] for o in outputs], axis=0)
            rem = np.mean([o["stage2"] for o in outputs], axis=0)
            probs, stages = merge_hierarchical(sleep[None], rem[None])
            probs, stage = probs[0], int(stages[0])
        else:
            probs = np.mean([o["model"] for o in outputs], axis=0).astype(np.float32)
            stage = int(probs.argmax())
        index = self.n_epochs
        self.n_epochs += 1
        return EpochResult(
            index=index,
            stage=stage,
            label=self.label_set.label(stage),
            probs=probs,
            latency_s=time.perf_counter() - start,
            end_s=(index + 1) * self.config.epoch_s,
        )


def score_stream(
    psg_path: str | Path,
    stager: SleepStager,
    chunk_s: float = 1.0,
    speed: float | None = None,
    realtime: bool = False,
    channels: ChannelSpec | None = None,
) -> Iterator[EpochResult]:
    """Replay a PSG file as a live stream and yield each epoch's result as it completes.

    Parameters
    ----------
    psg_path : str | Path
        EDF/EDF+ file (read whole with :func:`somna.io.read_psg`, then pushed chunk by chunk).
    stager : SleepStager
        Trained on causal, running-normalised preprocessing.
    chunk_s : float
        Seconds of signal per push (each modality is cut at the same instants).
    speed : float | None
        Pace the replay at ``speed`` × real time (2.0: twice as fast); ``None``: as fast as possible.
    realtime : bool
        Pace at real time (``speed=1``).
    channels : ChannelSpec | None
        Channel mapping; Sleep-EDF's names by default.

    Yields
    ------
    EpochResult
        One per whole epoch of the recording; a trailing partial epoch is dropped, as offline.
    """
    if chunk_s <= 0:
        raise ValueError(f"chunk_s must be positive, got {chunk_s}")
    if realtime:
        speed = 1.0
    recording = read_psg(psg_path, channels=channels or SLEEP_EDF_CHANNELS, modalities=stager.modalities)
    streamer = StreamingStager(stager, recording.sfreq)
    duration = max(recording.signals[m].shape[-1] / recording.sfreq[m] for m in stager.modalities)
    n_chunks = int(np.ceil(duration / chunk_s - 1e-9))
    t0 = time.perf_counter()
    for i in range(n_chunks):
        if speed:
            # A chunk exists only once its last sample has been "recorded".
            wait = t0 + (i + 1) * chunk_s / speed - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        chunk = {}
        for m in stager.modalities:
            fs = recording.sfreq[m]
            chunk[m] = recording.signals[m][:, round(i * chunk_s * fs) : round((i + 1) * chunk_s * fs)]
        yield from streamer.push(chunk)
