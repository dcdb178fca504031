"""Causal, stateful preprocessing: the same code serves offline preparation and live streaming.

Offline preprocessing (:func:`somna.preprocess.signals.bandpass_resample`, :func:`robust_scale` over the
whole recording) looks at the future and cannot run live. With ``PreprocessConfig(filter="causal",
normalise="running")`` every step here is causal and carries its state across calls, so pushing a
recording in chunks of any size gives the same epochs as pushing it in one go (up to float rounding):

1. resampling to ``sfreq`` (100 Hz) by a stateful polyphase FIR (:class:`StatefulResampler`): exact
   across chunk boundaries for any rational rate ratio (200, 256, 250, 128, 50 Hz …);
2. a Butterworth band-pass (second-order sections, :func:`scipy.signal.sosfilt` with carried ``zi``);
   raw EMG: a causal band-pass then RMS per output sample (the 1 Hz envelope), then ``log(env + 1e-3)``;
3. running robust normalisation (:class:`RunningRobustScaler`): each epoch is scaled by the per-channel
   median and IQR of every sample seen up to the end of that epoch, from fixed-bin histograms (O(1) per
   epoch, deterministic, identical offline and online).

:func:`somna.preprocess.pipeline.preprocess_night` runs :class:`ModalityStream` over the kept span in one
call, so models trained on a cohort prepared this way see exactly what :class:`OnlinePreprocessor`
produces live. Filters start at steady state for the first sample (no start-up step), the stream's
first sample being the first sample of the kept span.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import butter, firwin, sosfilt, sosfilt_zi

from somna.config import PreprocessConfig
from somna.errors import SignalQualityError, SomnaError

__all__ = [
    "ModalityStream",
    "OnlinePreprocessor",
    "RunningRobustScaler",
    "StatefulResampler",
    "StatefulSOS",
    "check_streamable",
]

# IQR of a standard normal distribution, as in somna.preprocess.normalise.
_IQR_OF_UNIT_NORMAL = 1.349
# Outputs computed per block by the resampler: bounds memory when a whole night is pushed at once.
_RESAMPLE_BLOCK = 8192


def _rate_ratio(sfreq: float, target_sfreq: float) -> tuple[int, int]:
    ratio = Fraction(target_sfreq / sfreq).limit_denominator(1000)
    if not np.isclose(float(ratio), target_sfreq / sfreq, rtol=1e-9, atol=0.0):
        raise SomnaError(
            f"cannot resample {sfreq:g} Hz to {target_sfreq:g} Hz exactly: their ratio is not a fraction "
            "with a denominator of at most 1000"
        )
    return ratio.numerator, ratio.denominator


class StatefulResampler:
    """Causal rational resampler (upsample by ``up``, anti-alias FIR, keep every ``down``-th sample).

    Equivalent to zero-stuffing the input by ``up``, filtering with a Kaiser-windowed FIR (cutoff 90 % of
    the lower Nyquist frequency, 10 zero crossings each side as in :func:`scipy.signal.resample_poly`) and
    decimating by ``down``, but computed per output sample from the polyphase branches, and exact across
    chunk boundaries: output ``k`` is ``sum_m h[p + m up] x[i0 - m]`` with ``i0 = (k down) // up`` and
    ``p = (k down) % up``, and the last ``M - 1`` inputs are kept as history. Output ``k`` stands for time
    ``k / target_sfreq`` (the sample phase is kept across chunks); the FIR delays the signal by its group
    delay, ``10 / min(sfreq, target_sfreq)`` s (0.1 s for 100 Hz output).

    Before the first sample the input is taken as constant at its first value, so a DC offset causes no
    start-up transient.

    Parameters
    ----------
    sfreq, target_sfreq : float
        Input and output rates, Hz.
    n_chans : int
        Channels (rows of every pushed array).
    """

    def __init__(self, sfreq: float, target_sfreq: float, n_chans: int):
        self.up, self.down = _rate_ratio(sfreq, target_sfreq)
        self.n_chans = n_chans
        max_rate = max(self.up, self.down)
        half_len = 10 * max_rate
        h = firwin(2 * half_len + 1, 0.9 / max_rate, window=("kaiser", 5.0)) * self.up
        self.n_taps = -(-h.size // self.up)
        # branches[p, m] = h[p + m * up]: the taps that meet real (not zero-stuffed) input samples.
        padded = np.zeros(self.n_taps * self.up)
        padded[: h.size] = h
        self.branches = np.ascontiguousarray(padded.reshape(self.n_taps, self.up).T[:, ::-1])
        self.history: np.ndarray | None = None
        self.n_in = 0
        self.n_out = 0

    @property
    def identity(self) -> bool:
        """Whether input and output rates are equal (then :meth:`push` returns its input)."""
        return self.up == self.down

    def push(self, x: np.ndarray) -> np.ndarray:
        """Resample the next samples.

        Parameters
        ----------
        x : np.ndarray, shape (n_chans, n_samples)

        Returns
        -------
        np.ndarray of float64, shape (n_chans, n_new)
            Every output whose input samples are all available now: after ``n`` inputs in total,
            ``ceil(n up / down)`` outputs have been returned.
        """
        x = np.asarray(x, dtype=np.float64)
        if self.identity:
            self.n_in += x.shape[-1]
            self.n_out += x.shape[-1]
            return x
        if x.shape[-1] == 0:
            return np.empty((self.n_chans, 0))
        if self.history is None:
            self.history = np.repeat(x[:, :1], self.n_taps - 1, axis=1)
        buf = np.concatenate([self.history, x], axis=1)
        # buf[:, j] is input sample (n_in - (n_taps - 1) + j)
        origin = self.n_in - (self.n_taps - 1)
        n_total = self.n_in + x.shape[-1]
        stop = -(-(n_total * self.up) // self.down)
        windows = np.lib.stride_tricks.sliding_window_view(buf, self.n_taps, axis=1)
        out = np.empty((self.n_chans, stop - self.n_out))
        for b0 in range(self.n_out, stop, _RESAMPLE_BLOCK):
            b1 = min(b0 + _RESAMPLE_BLOCK, stop)
            # Outputs with the same phase share a branch: one matrix-vector product per phase.
            for first in range(b0, min(b0 + self.up, b1)):
                ks = np.arange(first, b1, self.up)
                i0 = (ks * self.down) // self.up
                phase = (first * self.down) % self.up
                # window j of buf covers inputs origin + j … origin + j + n_taps - 1, ending at i0
                rows = windows[:, i0 - origin - (self.n_taps - 1)]
                out[:, ks - self.n_out] = rows @ self.branches[phase]
        self.history = buf[:, buf.shape[1] - (self.n_taps - 1) :].copy()
        self.n_in, self.n_out = n_total, stop
        return out


class StatefulSOS:
    """A cascade of second-order sections applied causally, carrying its state across calls.

    The state is initialised at the steady state for a constant input equal to the first sample (a DC
    offset causes no start-up transient).

    Parameters
    ----------
    sos : np.ndarray, shape (n_sections, 6)
        From :func:`scipy.signal.butter` with ``output="sos"``.
    n_chans : int
        Channels.
    """

    def __init__(self, sos: np.ndarray, n_chans: int):
        self.sos = np.asarray(sos, dtype=np.float64)
        self.n_chans = n_chans
        self.zi: np.ndarray | None = None

    def push(self, x: np.ndarray) -> np.ndarray:
        """Filter the next samples, (n_chans, n_samples) → same shape, float64."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] == 0:
            return x
        if self.zi is None:
            self.zi = sosfilt_zi(self.sos)[:, None, :] * x[None, :, 0, None]
        y, self.zi = sosfilt(self.sos, x, axis=-1, zi=self.zi)
        return y


def butter_bandpass(sfreq: float, l_freq: float | None, h_freq: float | None) -> np.ndarray:
    """Butterworth band-pass as second-order sections: order-2 high-pass and order-4 low-pass.

    A gentle high-pass keeps the phase lag of slow waves small (the causal filter cannot be zero-phase);
    the low-pass is steeper. An edge of ``None`` (or a low-pass at or above Nyquist) is left out.

    Parameters
    ----------
    sfreq, l_freq, h_freq : float
        Rate and edges, Hz.

    Returns
    -------
    np.ndarray, shape (n_sections, 6)
    """
    sections = []
    if l_freq is not None and l_freq > 0:
        sections.append(butter(2, l_freq, btype="highpass", fs=sfreq, output="sos"))
    if h_freq is not None and h_freq < sfreq / 2:
        sections.append(butter(4, h_freq, btype="lowpass", fs=sfreq, output="sos"))
    if not sections:
        return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    return np.vstack(sections)


class RunningRobustScaler:
    """Median / IQR normalisation from everything seen so far, in O(1) per epoch.

    Each channel keeps a histogram of all its samples over fixed bins, uniform in ``asinh(x)``: 0.001
    wide (absolute resolution 0.001 near zero, relative 0.1 % for ``|x| > 1``), covering ``|x| <
    sinh(15) ≈ 1.6e6`` (beyond, samples count in the outermost bin). Quantiles are read from the
    cumulative histogram, interpolated linearly within a bin; the integer counts make the statistics
    exactly reproducible whatever the chunking. An epoch is added first, then scaled with the
    statistics that include it: ``(x - median) / (IQR / 1.349)``, clipped to ± ``clip``.

    Parameters
    ----------
    n_chans : int
        Channels.
    clip : float | None
        Clip level in robust standard deviations; ``None`` leaves the output unclipped.
    """

    _WIDTH = 0.001
    _LIMIT = 15.0

    def __init__(self, n_chans: int, clip: float | None = 20.0):
        self.n_chans, self.clip = n_chans, clip
        self.n_bins = round(2 * self._LIMIT / self._WIDTH)
        self.counts = np.zeros((n_chans, self.n_bins), dtype=np.int64)
        self.n_seen = 0
        self.median = np.zeros(n_chans)
        self.scale = np.ones(n_chans)

    def update(self, x: np.ndarray) -> None:
        """Add samples (n_chans, n_samples) to the histograms and refresh :attr:`median`, :attr:`scale`."""
        u = np.arcsinh(np.asarray(x, dtype=np.float64))
        idx = np.clip(((u + self._LIMIT) / self._WIDTH).astype(np.int64), 0, self.n_bins - 1)
        idx += np.arange(self.n_chans)[:, None] * self.n_bins
        self.counts += np.bincount(idx.ravel(), minlength=self.counts.size).reshape(self.counts.shape)
        self.n_seen += x.shape[-1]
        q25, q50, q75 = self._quantiles((0.25, 0.5, 0.75))
        self.median = q50
        # A floor instead of an error: a stream may start on a near-flat stretch; its epochs clip.
        self.scale = np.maximum((q75 - q25) / _IQR_OF_UNIT_NORMAL, 1e-9)

    def _quantiles(self, qs: tuple[float, ...]) -> list[np.ndarray]:
        cumulative = np.cumsum(self.counts, axis=1)
        chans = np.arange(self.n_chans)
        out = []
        for q in qs:
            rank = q * (self.n_seen - 1) + 0.5  # continuous rank in samples, centred as np.percentile's
            b = np.array([np.searchsorted(c, rank, side="right") for c in cumulative])
            b = np.minimum(b, self.n_bins - 1)
            before = np.where(b > 0, cumulative[chans, np.maximum(b - 1, 0)], 0)
            inside = self.counts[chans, b]
            frac = np.clip((rank - before) / np.maximum(inside, 1), 0.0, 1.0)
            out.append(np.sinh(-self._LIMIT + (b + frac) * self._WIDTH))
        return out

    def scale_epoch(self, epoch: np.ndarray) -> np.ndarray:
        """Add one epoch (n_chans, n_samples) to the statistics, then return it normalised as float32."""
        self.update(epoch)
        scaled = (epoch - self.median[:, None]) / self.scale[:, None]
        if self.clip is not None:
            np.clip(scaled, -self.clip, self.clip, out=scaled)
        return scaled.astype(np.float32)


class ModalityStream:
    """One modality from raw samples at its native rate to (optionally normalised) epochs.

    EEG/EOG: :class:`StatefulResampler` to ``config.sfreq``, then :func:`butter_bandpass` with the
    modality's band (upper edge capped at 45 % of the lower of the two rates). EMG sampled at 4 ×
    ``emg_highpass`` or faster is raw: band-pass ``emg_highpass`` … ``min(0.45 sfreq, 100)`` Hz, RMS over
    each ``sfreq / emg_sfreq`` samples; slower EMG is an envelope already and is resampled, then its
    absolute value taken. EMG ends as ``log(envelope + 1e-3)`` as offline.

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
    normalise : bool
        Apply :class:`RunningRobustScaler` to each epoch (else epochs are returned filtered only, float64).

    Raises
    ------
    SomnaError
        If the rate cannot be resampled exactly, or raw EMG's rate is not a multiple of ``emg_sfreq``.
    """

    def __init__(
        self, modality: str, sfreq: float, n_chans: int, config: PreprocessConfig, normalise: bool = True
    ):
        self.modality, self.sfreq, self.n_chans = modality, float(sfreq), n_chans
        self.window = 0  # raw-EMG samples per envelope sample; 0 when not raw EMG
        if modality == "emg":
            out_sfreq = config.emg_sfreq
            self.resampler = None
            if sfreq < 4 * config.emg_highpass:
                self.resampler = StatefulResampler(sfreq, out_sfreq, n_chans)
                self.filter = None
            else:
                window = sfreq / out_sfreq
                if not np.isclose(window, round(window)):
                    raise SomnaError(
                        f"EMG rate {sfreq:g} Hz is not a whole multiple of the envelope rate {out_sfreq:g} Hz"
                    )
                self.window = round(window)
                sos = butter_bandpass(sfreq, config.emg_highpass, min(0.45 * sfreq, 100.0))
                self.filter = StatefulSOS(sos, n_chans)
                self._rms_rest = np.empty((n_chans, 0))
        else:
            out_sfreq = config.sfreq
            band = config.eeg_band if modality == "eeg" else config.eog_band
            h_freq = min(band[1], 0.45 * min(sfreq, out_sfreq))
            self.resampler = StatefulResampler(sfreq, out_sfreq, n_chans)
            self.filter = StatefulSOS(butter_bandpass(out_sfreq, band[0], h_freq), n_chans)
        self.per_epoch = round(config.epoch_s * out_sfreq)
        self.scaler = RunningRobustScaler(n_chans, config.clip) if normalise else None
        self._pending = np.empty((n_chans, 0))

    def _envelope(self, x: np.ndarray) -> np.ndarray:
        if self.window:
            filtered = np.concatenate([self._rms_rest, self.filter.push(x)], axis=1)
            n_out = filtered.shape[1] // self.window
            self._rms_rest = filtered[:, n_out * self.window :]
            windows = filtered[:, : n_out * self.window].reshape(self.n_chans, n_out, self.window)
            env = np.sqrt(np.mean(windows**2, axis=-1))
        else:
            env = np.abs(self.resampler.push(x))
        # A log envelope makes tone changes (atonia in REM) additive and the distribution less skewed.
        return np.log(env + 1e-3)

    def push(self, x: np.ndarray) -> list[np.ndarray]:
        """Process the next samples (n_chans, n_samples) µV; return the epochs they complete, in order.

        Each epoch is (n_chans, samples_per_epoch): float32 in robust standard deviations when
        normalising, float64 in µV (log µV for EMG) otherwise.
        """
        if self.modality == "emg":
            y = self._envelope(x)
        else:
            y = self.filter.push(self.resampler.push(x))
        pending = np.concatenate([self._pending, y], axis=1) if self._pending.size else y
        n_epochs = pending.shape[1] // self.per_epoch
        epochs = [pending[:, i * self.per_epoch : (i + 1) * self.per_epoch] for i in range(n_epochs)]
        self._pending = pending[:, n_epochs * self.per_epoch :].copy()
        if self.scaler is not None:
            epochs = [self.scaler.scale_epoch(e) for e in epochs]
        return epochs


def check_streamable(config: PreprocessConfig) -> None:
    """Raise :class:`SomnaError` unless ``config`` is causal and normalised on the fly (streamable)."""
    if config.filter != "causal" or config.normalise != "running":
        raise SomnaError(
            f"streaming needs preprocessing with filter='causal' and normalise='running' (got filter="
            f"{config.filter!r}, normalise={config.normalise!r}); train the model on a cohort prepared "
            "that way (configs/streaming.toml)"
        )


class OnlinePreprocessor:
    """Raw PSG samples in chunks of any size → model-ready epochs, as soon as each epoch is complete.

    Parameters
    ----------
    sfreq : dict of str to float
        Input rate of each modality, Hz.
    n_chans : dict of str to int
        Channels of each modality.
    config : PreprocessConfig
        Must have ``filter="causal"`` and ``normalise="running"``.

    Raises
    ------
    SomnaError
        If the config is not streamable or a rate cannot be handled.
    """

    def __init__(self, sfreq: dict[str, float], n_chans: dict[str, int], config: PreprocessConfig):
        check_streamable(config)
        self.config = config
        self.modalities = tuple(n_chans)
        missing = [m for m in self.modalities if m not in sfreq]
        if missing:
            raise SomnaError(f"no sampling rate given for {missing}")
        self.streams = {m: ModalityStream(m, sfreq[m], n_chans[m], config) for m in self.modalities}
        self._ready: dict[str, list[np.ndarray]] = {m: [] for m in self.modalities}
        self.n_epochs = 0

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
        for modality, x in samples.items():
            if modality not in self.streams:
                raise ValueError(f"unknown modality {modality!r}; this stream has {list(self.modalities)}")
            x = np.asarray(x, dtype=np.float64)
            stream = self.streams[modality]
            if x.ndim != 2 or x.shape[0] != stream.n_chans:
                raise ValueError(f"{modality} samples must be ({stream.n_chans}, n_samples), got {x.shape}")
            if not np.isfinite(x).all():
                raise SignalQualityError(f"{modality} samples contain NaN or infinite values")
            self._ready[modality].extend(stream.push(x))
        n_new = min(len(v) for v in self._ready.values())
        out = [{m: self._ready[m][i] for m in self.modalities} for i in range(n_new)]
        for m in self.modalities:
            del self._ready[m][:n_new]
        self.n_epochs += n_new
        return out
