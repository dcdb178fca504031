"""The :class:`Stager`: trained model(s) that turn a recording into a :class:`~somna.hypnogram.Hypnogram`.

Get one with :func:`somna.load_stager` (a run folder of ``somna train``/``cv``, a checkpoint, or an ONNX
export), then call :meth:`Stager.predict` on an EDF file, an MNE Raw, or numpy arrays::

    stager = somna.load_stager("runs/demo/model")
    hypnogram = stager.predict("night.edf", eeg=["C4-M1", "O2-M1"], eog="E1-M2", emg="Chin1-Chin2")

Every model streams: offline scoring runs the very preprocessing a live stream runs (filters and running
normalisation carried from one epoch to the next). Training nights start 30 minutes before sleep onset,
as a recording started at bedtime does; a recording of 3 hours or more that holds more wake than that
before its night (Sleep-EDF SC's run 20+ hours from the afternoon) is therefore staged as two streams,
the second starting 30 minutes before the night most likely begins
(:func:`~somna.preprocess.sleep_window.likely_sleep_window`), so that hours of evening or daytime wake
do not set the scale of the night's signals, and a recording cropped to its night is staged as the
whole one was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from somna.config import PreprocessConfig
from somna.errors import ChannelError, SomnaError
from somna.hypnogram import Hypnogram
from somna.io.channels import ChannelSpec, copy_spec, override_channels
from somna.io.recording import Recording
from somna.models.predict import StageModel, predict_members
from somna.stages import AASM, UNSCORED, LabelSet, task_label_sets

__all__ = ["Stager"]

ChannelNames = str | Sequence[str] | None


@dataclass
class Stager:
    """Trained model(s) that stage recordings.

    Parameters
    ----------
    members : list of dict of str to StageModel
        One entry per trained fold; each maps a role (``"model"``, or ``"stage1"`` and ``"stage2"``
        for hierarchical staging) to its model. Probabilities are averaged over members.
    task : str
        Label-set name of the output (``"aasm"``, ``"rk"``, ``"3class"``, ``"2class"``, ``"hierarchical"``).
    modalities : tuple of str
        Modalities the models read.
    preprocess : PreprocessConfig
        Preprocessing the models were trained with; new recordings get the same.
    channels : ChannelSpec
        Channel names of the training cohort: the default mapping for recordings to score.
    name : str
        What the model is called in outputs (its folder or file).
    backend : str
        What runs the models (``"torch"``, ``"onnx"``, ``"onnx-int8"``).
    info : dict
        Provenance stored with the models (what they were trained on).

    Examples
    --------
    >>> stager = load_stager(model_folder)
    >>> stager.label_set.labels
    ('W', 'N1', 'N2', 'N3', 'REM')
    >>> hypnogram = stager.predict(psg_file)
    >>> hypnogram.proba.shape == (len(hypnogram), 5)
    True
    """

    members: list[dict[str, StageModel]]
    task: str
    modalities: tuple[str, ...]
    preprocess: PreprocessConfig
    channels: ChannelSpec = field(default_factory=copy_spec)
    name: str = ""
    backend: str = "torch"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def label_set(self) -> LabelSet:
        """Stages the stager outputs."""
        return task_label_sets(self.task)[0]

    @property
    def seq_len(self) -> int:
        """Epochs each prediction depends on (the longest of the members)."""
        return max(m.seq_len for member in self.members for m in member.values())

    @property
    def n_chans(self) -> dict[str, int]:
        """Channels the models read per modality."""
        first = next(iter(self.members[0].values()))
        return dict(first.config.n_chans)

    def describe_inputs(self) -> str:
        """What the model reads, role by role: ``"EEG ×2 (EEG Fpz-Cz, EEG Pz-Oz), EOG ×1 (...)"``."""
        return ", ".join(
            f"{m.upper()} ×{self.n_chans[m]} ({', '.join(slot[0] for slot in self.channels.get(m, []))})"
            for m in self.modalities
        )

    def channel_mapping(
        self, eeg: ChannelNames = None, eog: ChannelNames = None, emg: ChannelNames = None
    ) -> ChannelSpec:
        """The channels to read: names given here, the training cohort's names for the others."""
        return override_channels(self.channels, eeg, eog, emg)

    def recording(
        self,
        source: Any = None,
        *,
        eeg: Any = None,
        eog: Any = None,
        emg: Any = None,
        sfreq: float | Mapping[str, float] | None = None,
        start: datetime | None = None,
    ) -> Recording:
        """Read the channels this stager needs from any source :meth:`predict` takes.

        Raises
        ------
        SomnaError
            For an unreadable source, missing channels, or channel counts other than the models'.
        """
        if isinstance(source, Recording):
            recording = source
        elif source is None or isinstance(source, Mapping):
            arrays = dict(source or {}) | {
                m: v for m, v in (("eeg", eeg), ("eog", eog), ("emg", emg)) if v is not None
            }
            if sfreq is None:
                raise SomnaError(
                    "numpy signals need their sampling rate: sfreq=100 or sfreq={'eeg': 100, ...}"
                )
            missing = [m for m in self.modalities if m not in arrays]
            if missing:
                raise ChannelError(
                    f"the model reads {list(self.modalities)}; no {missing} signals were given"
                )
            recording = Recording.from_arrays({m: arrays[m] for m in self.modalities}, sfreq, start=start)
        elif isinstance(source, (str, Path)):
            from somna.io.edf import read_psg

            recording = read_psg(source, self.channel_mapping(eeg, eog, emg), self.modalities)
        elif hasattr(source, "ch_names") and hasattr(source, "get_data"):  # an MNE Raw
            from somna.io.raw import recording_from_raw

            recording = recording_from_raw(source, self.channel_mapping(eeg, eog, emg), self.modalities)
        else:
            raise SomnaError(
                f"cannot stage a {type(source).__name__}: give an EDF path, an MNE Raw, a Recording, or "
                "numpy signals (eeg=..., eog=..., emg=..., sfreq=...)"
            )
        self._check_channels(recording)
        return recording

    def _check_channels(self, recording: Recording) -> None:
        wanted = self.n_chans
        for modality in self.modalities:
            if modality not in recording.signals:
                raise ChannelError(
                    f"the model reads {modality.upper()}, which the recording lacks", recording.path
                )
            have = recording.signals[modality].shape[0]
            if have != wanted[modality]:
                names = ", ".join(recording.channel_names.get(modality, []))
                hint = (
                    "; for a recording with one EEG derivation, use a one-EEG model (train one with the "
                    "packaged synthetic-one-eeg config)"
                    if modality == "eeg" and have == 1
                    else ""
                )
                raise ChannelError(
                    f"the model reads {wanted[modality]} {modality.upper()} channel(s) but {have} were given "
                    f"({names}); name {wanted[modality]} {modality.upper()} channel(s){hint}",
                    recording.path,
                )

    def predict(
        self,
        source: Any = None,
        *,
        eeg: Any = None,
        eog: Any = None,
        emg: Any = None,
        sfreq: float | Mapping[str, float] | None = None,
        start: datetime | None = None,
    ) -> Hypnogram:
        """Stage every 30-s epoch of a recording.

        Parameters
        ----------
        source : str | Path | mne.io.BaseRaw | Recording | None
            An EDF/EDF+ file, an MNE Raw, a :class:`~somna.io.recording.Recording`, or ``None`` when
            the signals are numpy arrays given as ``eeg``/``eog``/``emg``.
        eeg, eog, emg : str | list of str | np.ndarray | None
            With a file or a Raw: the channel names of each modality (a list, or comma-separated text;
            ``"A|B"`` accepts either name); the training cohort's names where not given. With numpy
            input: the samples in µV, shape (n_samples,) or (n_channels, n_samples).
        sfreq : float | dict of str to float | None
            Sampling rate(s) of numpy input, Hz (EEG and EOG from 50 Hz; EMG may be an envelope of
            1 Hz or more).
        start : datetime | None
            Clock time of the first sample of numpy input.

        Returns
        -------
        Hypnogram
            One stage per whole 30-s epoch from the start of the recording, in :attr:`label_set`, with
            ``proba`` (epochs × stages), lights off/on (the recording's ``Lights off``/``Lights on``
            annotations, else estimated from the night's likely sleep window; ``info["time_in_bed"]``
            says which: :mod:`somna.io.lights`) and ``info``: model, backend, the epochs that most
            likely hold the night, the model's mean confidence on them, and ``out_of_distribution``,
            the reasons this night lies outside what the model was trained on (empty when it does
            not; :mod:`somna.data.profile`).

        Raises
        ------
        SomnaError
            For an unreadable file, missing or miscounted channels, unusable sampling rates, or signals
            that cannot be staged (flat, NaN, shorter than one epoch).
        """
        recording = self.recording(source, eeg=eeg, eog=eog, emg=emg, sfreq=sfreq, start=start)
        return self.predict_recording(recording)

    def predict_recording(self, recording: Recording) -> Hypnogram:
        """:meth:`predict` for a recording already read (its channel counts checked)."""
        from somna.data.profile import night_profile, out_of_distribution
        from somna.io.lights import resolve_time_in_bed
        from somna.preprocess.pipeline import preprocess_night
        from somna.preprocess.signal_quality import assess_signal_quality, length_warnings
        from somna.preprocess.sleep_window import likely_sleep_window

        config = replace(self.preprocess, trim_wake_min=None)
        n_epochs = recording.n_epochs(config.epoch_s)
        quality = assess_signal_quality(recording, config.epoch_s)
        unscored = Hypnogram(np.full(n_epochs, UNSCORED, dtype=np.int8), AASM, config.epoch_s)
        span = likely_sleep_window(
            recording, config.epoch_s, margin_min=self.preprocess.trim_wake_min or 30.0
        )
        # Filters and normalisation start where the night most likely begins, as a live recording
        # started at bedtime would; the hours before it (if any) are a stream of their own.
        night = preprocess_night(recording, unscored, config, self.modalities, stream_starts=(span[0],))
        probs, stages = predict_members(self.members, self.task, night.signals)
        gap_warnings = _unscore_gaps(stages, recording.extra.get("gaps_s") or [], config.epoch_s)
        window = {m: x[span[0] : span[1]] for m, x in night.signals.items()}
        confidence = float(probs[span[0] : span[1]].max(axis=1).mean()) if span[1] > span[0] else None
        unlike = out_of_distribution(
            self.info.get("profile"), night_profile(window, config.epoch_s), confidence
        )
        known_start = recording.extra.get("start_known", True)
        tib = resolve_time_in_bed(
            n_epochs * config.epoch_s,
            recording.start if known_start else None,
            (span[0] * config.epoch_s, span[1] * config.epoch_s),
            annotations=[((recording.lights_off_s, recording.lights_on_s), "the recording's annotations")],
        )
        return Hypnogram(
            stages.astype(np.int8),
            self.label_set,
            config.epoch_s,
            start=recording.start if known_start else None,
            source=recording.path,
            lights_off_s=tib.lights_off_s,
            lights_on_s=tib.lights_on_s,
            proba=probs,
            info={
                "model": self.name,
                "backend": self.backend,
                "seq_len": self.seq_len,
                "night_window_epochs": [int(span[0]), int(span[1])],
                "channels": {m: list(recording.channel_names[m]) for m in self.modalities},
                "mean_confidence": confidence,
                "out_of_distribution": unlike,
                "time_in_bed": tib.to_dict(),
                "signal_quality": quality.to_dict(),
                "warnings": _channel_warnings(self.channels, recording.channel_names)
                + quality.warnings()
                + length_warnings(n_epochs, config.epoch_s, self.seq_len, tib)
                + gap_warnings,
                **({"trained_on": self.info["trained_on"]} if "trained_on" in self.info else {}),
            },
            signal_notes=quality.epoch_problems(),
        )

    def stream(self, sfreq: Mapping[str, float]) -> Any:
        """A live session: push raw samples, get each epoch's stage as soon as it is complete.

        Parameters
        ----------
        sfreq : dict of str to float
            Rate of each modality of the incoming samples, Hz.

        Returns
        -------
        somna.inference.streaming.LiveSession

        Raises
        ------
        SomnaError
            If a rate cannot be handled.
        """
        from somna.inference.streaming import LiveSession

        return LiveSession(self, sfreq)


def _channel_warnings(spec: ChannelSpec, names: Mapping[str, Sequence[str]]) -> list[str]:
    """One warning for channels put in slots the model learnt from other derivations (empty if none)."""
    from somna.io.channels import unfamiliar_channels

    found = unfamiliar_channels(spec, names)
    if not found:
        return []
    return [
        "; ".join(found) + ": a derivation the model was not trained on stages less reliably (train a model "
        "for this montage, or one for any single EEG derivation: the packaged synthetic-one-eeg config)"
    ]


def _unscore_gaps(stages: np.ndarray, gaps: Sequence[tuple[float, float]], epoch_s: float) -> list[str]:
    """Mark unscored (in place) the epochs lying mostly in the gaps of a discontinuous (EDF+D)
    recording, and say so; no warning for a continuous one."""
    if not len(gaps):
        return []
    starts = np.arange(len(stages)) * epoch_s
    inside = np.zeros(len(stages))
    for a, b in gaps:
        inside += np.clip(np.minimum(starts + epoch_s, b) - np.maximum(starts, a), 0, None)
    unscored = inside > epoch_s / 2
    stages[unscored] = UNSCORED
    total_min = sum(b - a for a, b in gaps) / 60
    return [
        f"the recording is discontinuous (EDF+D): {len(gaps)} gap(s), {total_min:.1f} min in all, the first "
        f"at {gaps[0][0] / 60:.1f} min; the {int(unscored.sum())} epochs inside them are unscored"
    ]
