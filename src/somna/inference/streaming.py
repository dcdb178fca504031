"""Live staging: raw PSG samples in, each epoch's stage out as soon as the epoch can be staged.

:class:`LiveSession` chains :class:`~somna.preprocess.stream.Preprocessor` (the same preprocessing as
offline, carried across chunks) and the causal models. Each completed epoch is encoded once and its
embedding appended to a ring buffer holding the last ``seq_len`` embeddings; the sequence part then runs
over that fixed-size buffer and its last position is the epoch's prediction. Work per epoch is constant,
and the stages equal offline scoring of the same samples as one stream (offline pads a night with
``seq_len - 1`` copies of its first epoch; the ring buffer is filled with the first epoch's embedding
when it arrives).

An epoch is staged once the EEG band-pass has its look-ahead past the epoch's end: 5.5 s of signal
after it (0.3 Hz edge at 100 Hz), plus the computing time (a few milliseconds).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from somna.data.profile import epoch_features, out_of_distribution, summarise
from somna.errors import SomnaError
from somna.models.predict import StageModel, softmax
from somna.preprocess.stream import Preprocessor
from somna.stages import HIERARCHICAL, merge_hierarchical

if TYPE_CHECKING:
    from somna.inference.stager import Stager
    from somna.io.recording import Recording

__all__ = ["EpochResult", "LiveSession", "replay", "replay_psg"]


@dataclass(frozen=True)
class EpochResult:
    """The model's output for one epoch.

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
        Computing time: from the start of the call whose samples completed this epoch to this result.
    end_s : float
        Stream time at which the epoch ends, s.
    """

    index: int
    stage: int
    label: str
    probs: np.ndarray
    latency_s: float
    end_s: float


class _Ring:
    """One model with its ring buffer of the last ``seq_len`` epoch embeddings."""

    def __init__(self, model: StageModel):
        self.model = model
        self.buffer: np.ndarray | None = None  # filled by the first epoch, as offline padding is

    def step(self, epoch: Mapping[str, np.ndarray]) -> np.ndarray:
        """Encode one epoch, shift it into the buffer, return its probabilities (n_classes,)."""
        embedding = self.model.embed_epochs({m: epoch[m][None] for m in self.model.config.modalities})
        if self.buffer is None:
            self.buffer = np.repeat(embedding, self.model.seq_len, axis=0)
        else:
            self.buffer = np.concatenate([self.buffer[1:], embedding])
        return softmax(self.model.sequence_logits(self.buffer)[-1])


class LiveSession:
    """Stage a live recording epoch by epoch (:meth:`somna.inference.Stager.stream` makes one).

    Parameters
    ----------
    stager : Stager
        Trained model(s); probabilities are averaged over members as offline.
    sfreq : mapping of str to float
        Sampling rate of each modality of the incoming samples, Hz (EEG/EOG from 50 Hz at any rational
        ratio to 100 Hz; EMG raw or an envelope of 1 Hz or more).

    Raises
    ------
    SomnaError
        If a rate is missing or cannot be handled.

    Examples
    --------
    >>> session = load_stager(model_folder).stream({"eeg": 100, "eog": 100, "emg": 1})
    >>> results = session.push(thirty_seconds)  # samples per modality, (n_channels, n_samples) µV
    >>> results  # the first epoch waits for the band-pass's 5.5 s look-ahead
    []
    """

    def __init__(self, stager: Stager, sfreq: Mapping[str, float]):
        self.stager = stager
        self.label_set = stager.label_set
        self.epoch_s = stager.preprocess.epoch_s
        missing = [m for m in stager.modalities if m not in sfreq]
        if missing:
            raise SomnaError(f"no sampling rate given for {missing}")
        self.preprocessor = Preprocessor(
            {m: float(sfreq[m]) for m in stager.modalities}, stager.n_chans, stager.preprocess
        )
        self.rings = [{role: _Ring(model) for role, model in member.items()} for member in stager.members]
        self.n_epochs = 0
        self._features: dict[str, list[float]] = {}
        self._confidence: list[float] = []

    def push(self, samples: Mapping[str, np.ndarray]) -> list[EpochResult]:
        """Feed raw samples (per modality, (n_chans, n_samples) µV, any amount); return staged epochs.

        Returns
        -------
        list of EpochResult
            One per epoch these samples made ready (often none, sometimes several), in order.
        """
        start = time.perf_counter()
        return [self._stage(epoch, start) for epoch in self.preprocessor.push(dict(samples))]

    def finish(self) -> list[EpochResult]:
        """End of the recording: stage the epochs still waiting for their look-ahead."""
        start = time.perf_counter()
        return [self._stage(epoch, start) for epoch in self.preprocessor.flush()]

    def out_of_distribution(self) -> list[str]:
        """Why the epochs so far lie outside what the model was trained on (:mod:`somna.data.profile`);
        empty when they do not."""
        night = summarise({name: np.asarray(values) for name, values in self._features.items()})
        confidence = float(np.mean(self._confidence)) if self._confidence else None
        return out_of_distribution(self.stager.info.get("profile"), night, confidence)

    def _stage(self, epoch: Mapping[str, np.ndarray], start: float) -> EpochResult:
        for name, value in epoch_features({m: x[None] for m, x in epoch.items()}, self.epoch_s).items():
            self._features.setdefault(name, []).append(float(value[0]))
        outputs = [{role: ring.step(epoch) for role, ring in member.items()} for member in self.rings]
        if self.stager.task == HIERARCHICAL:
            sleep = np.mean([o["stage1"] for o in outputs], axis=0)
            rem = np.mean([o["stage2"] for o in outputs], axis=0)
            probs, stages = merge_hierarchical(sleep[None], rem[None])
            probs, stage = probs[0], int(stages[0])
        else:
            probs = np.mean([o["model"] for o in outputs], axis=0).astype(np.float32)
            stage = int(probs.argmax())
        self._confidence.append(float(probs.max()))
        index = self.n_epochs
        self.n_epochs += 1
        return EpochResult(
            index=index,
            stage=stage,
            label=self.label_set.label(stage),
            probs=probs,
            latency_s=time.perf_counter() - start,
            end_s=(index + 1) * self.epoch_s,
        )


def replay(
    recording: Recording, session: LiveSession, chunk_s: float = 1.0, speed: float | None = None
) -> Iterator[EpochResult]:
    """Push a recording into a live session chunk by chunk and yield each epoch's result as it is staged.

    Parameters
    ----------
    recording : Recording
        The signals (their rates must be the session's).
    session : LiveSession
        A new session (:meth:`somna.inference.Stager.stream`); after the replay it still holds what it
        saw (:meth:`LiveSession.out_of_distribution`).
    chunk_s : float
        Seconds of signal per push (each modality is cut at the same instants); at least one sample of
        the slowest modality.
    speed : float | None
        Pace the replay at ``speed`` × real time (1.0: real time); ``None``: as fast as possible.

    Yields
    ------
    EpochResult
        One per whole epoch of the recording (the last ones when the recording ends); a trailing
        partial epoch is dropped, as offline. The stages equal offline scoring's for recordings that
        start within 30 minutes of sleep onset (or are shorter than 3 h); one with more wake before its
        night is scored offline as two streams (see :mod:`somna.inference.stager`) but replayed as
        one, as a live session would run.

    Raises
    ------
    SomnaError
        For a chunk shorter than one sample or a speed that is not positive.
    """
    modalities = session.stager.modalities
    slowest = min(recording.sfreq[m] for m in modalities)
    if not chunk_s * slowest >= 1:
        raise SomnaError(f"chunks of {chunk_s:g} s hold less than one sample at {slowest:g} Hz")
    if speed is not None and not speed > 0:
        raise SomnaError(f"the replay speed must be positive, not {speed:g}")
    duration = recording.n_epochs(session.epoch_s) * session.epoch_s
    n_chunks = int(np.ceil(duration / chunk_s - 1e-9))
    t0 = time.perf_counter()
    for i in range(n_chunks):
        if speed:
            # A chunk exists only once its last sample has been "recorded".
            wait = t0 + (i + 1) * chunk_s / speed - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        chunk = {}
        for m in modalities:
            fs = recording.sfreq[m]
            stop = min(round((i + 1) * chunk_s * fs), round(duration * fs))
            chunk[m] = recording.signals[m][:, round(i * chunk_s * fs) : stop]
        yield from session.push(chunk)
    yield from session.finish()


def replay_psg(
    psg: str | Path,
    stager: Stager,
    chunk_s: float = 1.0,
    speed: float | None = None,
    *,
    eeg: str | list[str] | None = None,
    eog: str | list[str] | None = None,
    emg: str | list[str] | None = None,
) -> Iterator[EpochResult]:
    """Replay a PSG file as a live stream (:func:`replay` on a new session).

    ``eeg``, ``eog``, ``emg`` name the channels (:meth:`somna.inference.Stager.predict`); the stager's
    training channels by default.

    Raises
    ------
    SomnaError
        For an unreadable file, missing channels, or a chunk shorter than one sample.
    """
    recording = stager.recording(psg, eeg=eeg, eog=eog, emg=emg)
    return replay(recording, stager.stream(recording.sfreq), chunk_s, speed)
