"""From raw samples to model-ready epochs, one code path for offline preparation, scoring and live staging.

Each modality runs through a :class:`ModalityStream`, which carries its state across calls, so that
pushing a recording in chunks of any size gives the same epochs as pushing it whole (which is what
offline preprocessing does):

1. EEG/EOG: resampling to ``sfreq`` (100 Hz) by a causal polyphase resampler (any rational ratio:
   128, 200, 250, 256, 512 … Hz; nothing at 100 Hz), then the zero-phase FIR band-pass
   (:class:`~somna.preprocess.filters.LinearPhaseFilter`, MNE's design) with its look-ahead;
2. EMG: raw EMG (sampled at 4 × ``emg_highpass`` or faster) is band-passed from ``emg_highpass`` and
   reduced to its RMS per output sample (the 1 Hz envelope Sleep-EDF SC stores); a stored envelope is
   resampled to ``emg_sfreq``; either ends as ``log(envelope + 1e-3)``, which makes changes of tone
   (REM atonia) additive;
3. epochs of ``epoch_s``, normalised by :class:`~somna.preprocess.normalise.RunningRobustScaler`;
   a flat EEG or EOG epoch (a loose lead) comes out as zeros, as a missing channel does in training.

Live, an epoch is ready once the band-pass has its look-ahead past the epoch's end (5.5 s for EEG at
the 0.3 Hz edge); :meth:`Preprocessor.flush` ends a finite stream (the last look-ahead comes from the
odd reflection MNE's filters use at a signal's end).
"""

from __future__ import annotations

import numpy as np

from somna.config import PreprocessConfig
from somna.errors import SignalQualityError, SomnaError
from somna.preprocess.filters import LinearPhaseFilter, StatefulResampler, firwin_bandpass
from somna.preprocess.normalise import RunningRobustScaler

__all__ = ["ModalityStream", "Preprocessor"]

_ENVELOPE_FLOOR = 1e-3  # µV added before the log of the EMG envelope


class ModalityStream:
    """One modality from raw samples at its native rate to normalised epochs.

    Parameters
    ----------
    modality : str
        ``"eeg"``, ``"eog"`` or ``"emg"``.
    sfreq : float
        Input rate, Hz.
    n_chans : int
        Channels.
    config : PreprocessConfig
        Rates, bands, clip, epoch length.

    Raises
    ------
    SomnaError
        If the rate cannot be resampled exactly, or raw EMG's rate is not a multiple of ``emg_sfreq``.
    """

    def __init__(self, modality: str, sfreq: float, n_chans: int, config: PreprocessConfig):
        self.modality, self.sfreq, self.n_chans = modality, float(sfreq), n_chans
        self.window = 0  # raw-EMG samples per envelope sample; 0 when not raw EMG
        self.resampler: StatefulResampler | None = None
        self.filter: LinearPhaseFilter | None = None
        if modality == "emg":
            out_sfreq = config.emg_sfreq
            if sfreq < 4 * config.emg_highpass:  # a stored envelope
                self.resampler = StatefulResampler(sfreq, out_sfreq, n_chans)
            else:
                window = sfreq / out_sfreq
                if not np.isclose(window, round(window)):
                    raise SomnaError(
                        f"EMG rate {sfreq:g} Hz is not a whole multiple of the envelope rate {out_sfreq:g} Hz"
                    )
                self.window = round(window)
                taps = firwin_bandpass(sfreq, config.emg_highpass, min(0.45 * sfreq, 100.0))
                self.filter = LinearPhaseFilter(taps, n_chans)
                self._rms_rest = np.empty((n_chans, 0), dtype=np.float32)
        else:
            out_sfreq = config.sfreq
            band = config.eeg_band if modality == "eeg" else config.eog_band
            h_freq = min(band[1], 0.45 * min(sfreq, out_sfreq))
            self.resampler = StatefulResampler(sfreq, out_sfreq, n_chans)
            self.filter = LinearPhaseFilter(firwin_bandpass(out_sfreq, band[0], h_freq), n_chans)
        self.per_epoch = round(config.epoch_s * out_sfreq)
        self.scaler = RunningRobustScaler(n_chans, config.clip, mask_flat=modality != "emg")
        self._pending = np.empty((n_chans, 0), dtype=np.float32)

    def _envelope(self, filtered: np.ndarray) -> np.ndarray:
        if self.window:
            x = np.concatenate([self._rms_rest, filtered], axis=1) if self._rms_rest.size else filtered
            n_out = x.shape[1] // self.window
            self._rms_rest = x[:, n_out * self.window :].copy()
            windows = x[:, : n_out * self.window].reshape(self.n_chans, n_out, self.window).astype(np.float64)
            envelope = np.sqrt(np.mean(windows**2, axis=-1))
        else:
            envelope = np.abs(filtered)
        return np.log(envelope + _ENVELOPE_FLOOR).astype(np.float32)

    def _after_filters(self, x: np.ndarray | None, whole: bool = False) -> np.ndarray:
        """The filter chain for new samples (``None``: the stream ended, flush what is held; ``whole``:
        ``x`` is a whole recording, filtered in one go)."""
        if x is not None and self.resampler is not None:
            x = self.resampler.push(x)
        if self.filter is not None:
            if x is None:
                x = self.filter.flush()
            else:
                x = self.filter.run(x) if whole else self.filter.push(x)
        elif x is None:
            return np.empty((self.n_chans, 0), dtype=np.float32)
        return self._envelope(x) if self.modality == "emg" else np.asarray(x, dtype=np.float32)

    def _epochs(self, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        pending = np.concatenate([self._pending, y], axis=1) if self._pending.size else y
        n_epochs = pending.shape[1] // self.per_epoch
        if out is not None:
            n_epochs = min(n_epochs, len(out))
            out = out[:n_epochs]
        whole = pending[:, : n_epochs * self.per_epoch].reshape(self.n_chans, n_epochs, self.per_epoch)
        self._pending = pending[:, n_epochs * self.per_epoch :].copy()
        return self.scaler.scale(whole, out)

    def push(self, x: np.ndarray) -> np.ndarray:
        """Process the next samples (n_chans, n_samples) in µV; return the epochs they complete.

        Returns
        -------
        np.ndarray of float32, shape (n_new_epochs, n_chans, samples_per_epoch)
            In robust standard deviations, in order.
        """
        return self._epochs(self._after_filters(np.asarray(x)))

    def flush(self) -> np.ndarray:
        """End of the stream: return the epochs the filters' held-back samples complete."""
        return self._epochs(self._after_filters(None))

    def run(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """A whole recording at once, on a new stream: the epochs :meth:`push` then :meth:`flush` give.

        ``out`` (n_epochs, n_chans, samples_per_epoch), float32, receives them when given (at most as many
        as it holds); the return value is the part of it written.
        """
        return self._epochs(self._after_filters(np.asarray(x), whole=True), out)


class Preprocessor:
    """Raw PSG samples of several modalities in chunks of any size → model-ready epochs.

    Parameters
    ----------
    sfreq : dict of str to float
        Input rate of each modality, Hz.
    n_chans : dict of str to int
        Channels of each modality (its keys are the modalities).
    config : PreprocessConfig

    Raises
    ------
    SomnaError
        If a rate is missing or cannot be handled.
    """

    def __init__(self, sfreq: dict[str, float], n_chans: dict[str, int], config: PreprocessConfig):
        self.config = config
        self.modalities = tuple(n_chans)
        missing = [m for m in self.modalities if m not in sfreq]
        if missing:
            raise SomnaError(f"no sampling rate given for {missing}")
        self.streams = {m: ModalityStream(m, sfreq[m], n_chans[m], config) for m in self.modalities}
        self._ready: dict[str, list[np.ndarray]] = {m: [] for m in self.modalities}
        self.n_epochs = 0

    def _collect(self, new: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        for modality, epochs in new.items():
            self._ready[modality].extend(epochs)
        n_new = min(len(v) for v in self._ready.values())
        out = [{m: self._ready[m][i] for m in self.modalities} for i in range(n_new)]
        for m in self.modalities:
            del self._ready[m][:n_new]
        self.n_epochs += n_new
        return out

    def push(self, samples: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Feed the next samples of any modalities; return the epochs now complete in every modality.

        Parameters
        ----------
        samples : dict of str to np.ndarray
            Per modality, (n_chans, n_samples) in µV, continuing where the previous call stopped.
            Modalities may be given in unequal amounts; an epoch is returned once all of them cover it.

        Returns
        -------
        list of dict of str to np.ndarray
            One dict per completed epoch, in order: per modality float32 (n_chans, samples_per_epoch).

        Raises
        ------
        SignalQualityError
            If samples are non-finite (they would corrupt the filter state for the rest of the stream).
        ValueError
            For an unknown modality or a wrong channel count.
        """
        new = {}
        for modality, x in samples.items():
            if modality not in self.streams:
                raise ValueError(f"unknown modality {modality!r}; this stream has {list(self.modalities)}")
            x = np.asarray(x, dtype=np.float32)
            stream = self.streams[modality]
            if x.ndim != 2 or x.shape[0] != stream.n_chans:
                raise ValueError(f"{modality} samples must be ({stream.n_chans}, n_samples), got {x.shape}")
            if not np.isfinite(x).all():
                raise SignalQualityError(f"{modality} samples contain NaN or infinite values")
            new[modality] = stream.push(x)
        return self._collect(new)

    def flush(self) -> list[dict[str, np.ndarray]]:
        """End of the stream: the epochs completed by what the filters held back."""
        return self._collect({m: stream.flush() for m, stream in self.streams.items()})
