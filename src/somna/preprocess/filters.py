"""Filters that serve offline scoring and live streams alike: a linear-phase band-pass and a resampler.

Both carry their state across calls, so a recording pushed in chunks of any size gives the same samples
as the whole recording pushed at once, and the offline pipeline is simply one push of everything.

* :class:`LinearPhaseFilter` applies MNE's default FIR design (:func:`firwin_bandpass`, equal to
  :func:`mne.filter.create_filter`) with its delay compensated, the ends padded by odd reflection as
  :func:`mne.filter.filter_data` pads them: the output equals ``filter_data``'s zero-phase output. Live, a
  sample is delivered once ``(n_taps - 1) / 2`` later samples have arrived (5.5 s for the 0.3 Hz edge
  at 100 Hz): the look-ahead that zero phase costs.
* :class:`StatefulResampler`: a causal polyphase resampler for any rational rate ratio.

Only numpy and :mod:`scipy.fft` are used (``scipy.signal`` takes most of a second to import, longer
than scoring a night).
"""

from __future__ import annotations

import functools
import os
from fractions import Fraction

import numpy as np
import scipy.fft

from somna.errors import SomnaError

__all__ = [
    "LinearPhaseFilter",
    "StatefulResampler",
    "convolve_valid",
    "fir_bandpass",
    "firwin_bandpass",
    "preprocess_threads",
    "set_filter_threads",
]

_THREADS = -1
_HAMMING_LENGTH_FACTOR = 3.3  # MNE's filter length per transition bandwidth for a Hamming window


def set_filter_threads(n_threads: int) -> None:
    """Threads the filters' FFTs may use in this process (-1: every core).

    Worker processes that each preprocess one night (``somna prepare``, batch ``somna score``) set 1,
    so that N workers do not start N threads each.
    """
    global _THREADS
    _THREADS = int(n_threads)


def preprocess_threads() -> int:
    """Threads the filters use now (see :func:`set_filter_threads`)."""
    return _THREADS if _THREADS > 0 else (os.cpu_count() or 1)


def _lowpass(n_taps: int, cutoff: float, window: np.ndarray) -> np.ndarray:
    """Windowed-sinc low-pass, ``cutoff`` as a fraction of Nyquist, unit gain at 0 Hz (SciPy's firwin)."""
    m = np.arange(n_taps) - (n_taps - 1) / 2.0
    h = cutoff * np.sinc(cutoff * m) * window
    return h / h.sum()


@functools.lru_cache(maxsize=64)
def _bandpass_design(sfreq: float, l_freq: float, h_freq: float) -> np.ndarray:
    nyquist = sfreq / 2.0
    l_trans = min(max(0.25 * l_freq, 2.0), l_freq)
    h_trans = min(max(0.25 * h_freq, 2.0), nyquist - h_freq)
    seconds = float(f"{_HAMMING_LENGTH_FACTOR / min(l_trans, h_trans)}")  # MNE goes through text
    n_taps = max(int(np.ceil(seconds * sfreq)), 1)
    n_taps += (n_taps - 1) % 2  # odd
    freq = [l_freq - l_trans, l_freq, h_freq, h_freq + h_trans]
    gain = [0, 1, 1, 0]
    if freq[-1] != nyquist:
        freq, gain = [*freq, nyquist], [*gain, 0]
    if freq[0] != 0:
        freq, gain = [0, *freq], [0, *gain]
    freq = [f / nyquist for f in freq]
    # MNE's firwin design: one low-pass per change of gain, each as long as its own transition needs
    h = np.zeros(n_taps)
    prev_freq, prev_gain = freq[-1], gain[-1]
    for this_freq, this_gain in zip(freq[-2::-1], gain[-2::-1], strict=True):
        if this_gain != prev_gain:
            this_n = round(_HAMMING_LENGTH_FACTOR / ((prev_freq - this_freq) / 2.0))
            this_n += 1 - this_n % 2
            if this_n > n_taps:
                raise SomnaError(f"cannot design a {l_freq:g}–{h_freq:g} Hz band-pass at {sfreq:g} Hz")
            low = _lowpass(this_n, (prev_freq + this_freq) / 2.0, np.hamming(this_n))
            offset = (n_taps - this_n) // 2
            h[offset : n_taps - offset] += low if this_gain else -low
        prev_freq, prev_gain = this_freq, this_gain
    h.setflags(write=False)
    return h


def firwin_bandpass(sfreq: float, l_freq: float, h_freq: float) -> np.ndarray:
    """MNE's default FIR band-pass: the taps :func:`mne.filter.create_filter` designs for these edges.

    Windowed-sinc ("firwin") design with a Hamming window, automatic transition bands
    (``min(max(0.25 f, 2 Hz), f)`` below, ``min(max(0.25 f, 2 Hz), Nyquist - f)`` above) and a length of
    3.3 / (narrower transition) seconds, made odd. Written here with numpy because MNE designs it with
    ``scipy.signal``, whose import alone takes longer than scoring a night; a test checks that the taps
    equal MNE's.

    Parameters
    ----------
    sfreq : float
        Sampling rate, Hz.
    l_freq, h_freq : float
        Pass-band edges, Hz (``0 < l_freq < h_freq < sfreq / 2``).

    Returns
    -------
    np.ndarray of float64, shape (n_taps,)
        Read-only (shared by every caller).

    Examples
    --------
    >>> firwin_bandpass(100.0, 0.3, 35.0).size  # 3.3 / 0.3 Hz = 11 s at 100 Hz, made odd
    1101
    """
    if not 0 < l_freq < h_freq < sfreq / 2:
        raise SomnaError(f"band-pass {l_freq:g}–{h_freq:g} Hz is impossible at {sfreq:g} Hz")
    return _bandpass_design(float(sfreq), float(l_freq), float(h_freq))


_DIRECT_MAX = 1 << 21  # output samples × taps up to which :func:`convolve_valid` convolves directly


def _block_size(n_taps: int) -> int:
    return max(8192, 1 << (4 * (n_taps - 1)).bit_length())


def convolve_valid(x: np.ndarray, h: np.ndarray, group: int = 32) -> np.ndarray:
    """``np.convolve(row, h, "valid")`` of every row of ``x``, in float32, by overlap-save FFTs.

    ``group`` overlapping blocks at a time go through one batched real FFT (:mod:`scipy.fft`, on
    :func:`preprocess_threads` threads), so a night's channels are filtered in a few dozen FFT calls.

    Parameters
    ----------
    x : np.ndarray, shape (n_chans, n_samples)
    h : np.ndarray, shape (n_taps,)

    Returns
    -------
    np.ndarray of float32, shape (n_chans, max(n_samples - n_taps + 1, 0))
    """
    x = np.asarray(x, dtype=np.float32)
    n_taps = h.size
    n_out = x.shape[1] - n_taps + 1
    out = np.empty((x.shape[0], max(n_out, 0)), dtype=np.float32)
    if n_out <= 0:
        return out
    if n_out * n_taps <= _DIRECT_MAX:  # a live stream's chunk: direct convolution is cheaper than FFTs
        taps = np.asarray(h, dtype=np.float32)
        for row, signal in zip(out, x, strict=True):
            row[:] = np.convolve(signal, taps, mode="valid")
        return out
    block = _block_size(n_taps)
    step = block - n_taps + 1
    response = scipy.fft.rfft(np.asarray(h, dtype=np.float32), block)
    workers = preprocess_threads()
    n_full = max((x.shape[1] - block) // step + 1, 0)  # blocks that lie inside the signal
    for first in range(0, n_full, group):
        blocks = np.lib.stride_tricks.sliding_window_view(x, block, axis=1)[:, ::step]
        part = blocks[:, first : min(first + group, n_full)]
        spectrum = scipy.fft.rfft(part, axis=-1, workers=workers)
        spectrum *= response
        y = scipy.fft.irfft(spectrum, block, workers=workers, overwrite_x=True)
        lo = first * step
        target = out[:, lo : lo + part.shape[1] * step].reshape(x.shape[0], part.shape[1], step)
        target[...] = y[..., n_taps - 1 :]  # straight into the output (a view: whole blocks of it)
    done = n_full * step
    if done < n_out:  # the rest, shorter than a block: one zero-padded block
        tail = np.zeros((x.shape[0], block), dtype=np.float32)
        rest = x[:, done:]
        tail[:, : rest.shape[1]] = rest
        y = scipy.fft.irfft(scipy.fft.rfft(tail, axis=-1) * response, block)
        out[:, done:] = y[:, n_taps - 1 : n_taps - 1 + n_out - done]
    return out


class LinearPhaseFilter:
    """A symmetric FIR applied to a stream with its delay compensated (zero phase, with look-ahead).

    The output equals the zero-phase filtering of the whole signal with the ends padded by odd
    reflection (``2 x[0] - x[k]``) over ``n_taps - 1`` samples, as :func:`mne.filter.filter_data` pads
    them: sample ``i`` is delivered once input sample ``i + (n_taps - 1) / 2`` has arrived, and
    :meth:`flush` delivers the rest when the stream ends. The first output waits until ``n_taps``
    samples have arrived (the start's reflection needs them).

    Parameters
    ----------
    taps : np.ndarray, shape (n_taps,)
        Odd-length symmetric filter (:func:`firwin_bandpass`).
    n_chans : int
        Channels.
    """

    def __init__(self, taps: np.ndarray, n_chans: int):
        self.taps = np.asarray(taps, dtype=np.float64)
        if self.taps.size % 2 != 1:
            raise ValueError("a linear-phase filter needs an odd number of taps")
        self.n_chans = n_chans
        self.delay = (self.taps.size - 1) // 2
        self.n_edge = self.taps.size - 1
        self._buffer = np.empty((n_chans, 0), dtype=np.float32)  # before the start: raw input
        self._started = False
        self._dropped = 0  # outputs of the left padding not delivered yet (``delay`` of them)
        self.n_in = 0
        self.n_out = 0

    def push(self, x: np.ndarray) -> np.ndarray:
        """Filter the next samples (n_chans, n_samples); return every output now complete (float32)."""
        x = np.asarray(x, dtype=np.float32)
        self.n_in += x.shape[-1]
        self._buffer = np.concatenate([self._buffer, x], axis=1) if self._buffer.size else x
        if not self._started:
            if self._buffer.shape[1] < self.n_edge + 1:
                return np.empty((self.n_chans, 0), dtype=np.float32)
            head = self._buffer
            left = 2 * head[:, :1] - head[:, self.n_edge : 0 : -1]
            self._buffer = np.concatenate([left, head], axis=1)
            self._started = True
            self._dropped = self.delay
        return self._convolve()

    def _convolve(self) -> np.ndarray:
        y = convolve_valid(self._buffer, self.taps)
        self._buffer = self._buffer[:, self._buffer.shape[1] - self.n_edge :].copy()
        if self._dropped:  # outputs that belong to the left padding
            cut = min(self._dropped, y.shape[1])
            y, self._dropped = y[:, cut:], self._dropped - cut
        self.n_out += y.shape[1]
        return y

    def flush(self) -> np.ndarray:
        """End of the stream: pad the end by odd reflection and return the remaining outputs."""
        if not self._started:  # shorter than the filter: MNE's limited reflection over the whole signal
            return self._flush_short()
        if self.n_in < 2:
            return np.empty((self.n_chans, 0), dtype=np.float32)
        tail = self._buffer
        last = tail[:, -1:]
        right = 2 * last - tail[:, -2 : -self.delay - 2 : -1]
        self._buffer = np.concatenate([tail, right], axis=1)
        y = self._convolve()
        return y[:, : self.n_in - (self.n_out - y.shape[1])]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Filter a whole signal at once: the same output as :meth:`push` then :meth:`flush` on a new
        filter, without the copies a stream needs (offline preprocessing)."""
        x = np.asarray(x, dtype=np.float32)
        if self.n_in:
            raise ValueError("run() filters a whole signal; this filter has already been pushed samples")
        if x.shape[1] < self.n_edge + 1:
            self.push(x)
            return self.flush()
        n = x.shape[1]
        padded = np.empty((x.shape[0], self.n_edge + n + self.delay), dtype=np.float32)
        padded[:, : self.n_edge] = 2 * x[:, :1] - x[:, self.n_edge : 0 : -1]
        padded[:, self.n_edge : self.n_edge + n] = x
        padded[:, self.n_edge + n :] = 2 * x[:, -1:] - x[:, -2 : -self.delay - 2 : -1]
        self.n_in = self.n_out = n
        self._started = True
        return convolve_valid(padded, self.taps)[:, self.delay :]

    def _flush_short(self) -> np.ndarray:
        x = self._buffer.astype(np.float64)
        n = x.shape[1]
        if n == 0:
            return np.empty((self.n_chans, 0), dtype=np.float32)
        n_edge = max(min(self.taps.size, n) - 1, 0)
        left = 2 * x[:, :1] - x[:, n_edge:0:-1]
        right = 2 * x[:, -1:] - x[:, -2 : -n_edge - 2 : -1]
        padded = np.concatenate([left, x, right], axis=1)
        out = np.stack(
            [np.convolve(row, self.taps)[self.delay + n_edge : self.delay + n_edge + n] for row in padded]
        )
        self.n_out += n
        return out.astype(np.float32)


def fir_bandpass(signal: np.ndarray, sfreq: float, l_freq: float, h_freq: float) -> np.ndarray:
    """Zero-phase FIR band-pass of a whole signal, equal to :func:`mne.filter.filter_data`'s default.

    Parameters
    ----------
    signal : np.ndarray, shape (n_channels, n_samples)
    sfreq : float
        Sampling rate, Hz.
    l_freq, h_freq : float
        Pass-band edges, Hz.

    Returns
    -------
    np.ndarray of float32, shape (n_channels, n_samples)
    """
    x = np.atleast_2d(np.asarray(signal, dtype=np.float32))
    stream = LinearPhaseFilter(firwin_bandpass(sfreq, l_freq, h_freq), x.shape[0])
    return stream.run(x).reshape(np.shape(signal))


def _rate_ratio(sfreq: float, target_sfreq: float) -> tuple[int, int]:
    ratio = Fraction(target_sfreq / sfreq).limit_denominator(1000)
    if not np.isclose(float(ratio), target_sfreq / sfreq, rtol=1e-9, atol=0.0):
        raise SomnaError(
            f"cannot resample {sfreq:g} Hz to {target_sfreq:g} Hz exactly: their ratio is not a fraction "
            "with a denominator of at most 1000"
        )
    return ratio.numerator, ratio.denominator


_RESAMPLE_BLOCK = 8192  # outputs per block: bounds memory when a whole night is pushed at once


class StatefulResampler:
    """Causal rational resampler (upsample by ``up``, anti-alias FIR, keep every ``down``-th sample).

    Equivalent to zero-stuffing the input by ``up``, filtering with a Kaiser-windowed FIR (β = 5,
    cutoff 90 % of the lower Nyquist frequency, 10 zero crossings each side as in
    :func:`scipy.signal.resample_poly`) and decimating by ``down``, computed per output sample from the
    polyphase branches and exact across chunk boundaries. Output ``k`` stands for time
    ``k / target_sfreq``; the FIR delays the signal by ``10 / min(sfreq, target_sfreq)`` s (0.1 s for
    100 Hz output). Before the first sample the input is taken as constant at its first value, so a DC
    offset causes no start-up transient.

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
        n = 2 * half_len + 1
        h = _lowpass(n, 0.9 / max_rate, np.kaiser(n, 5.0)) * self.up
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
        """Resample the next samples, (n_chans, n_samples) → (n_chans, n_new).

        After ``n`` inputs in total, ``ceil(n up / down)`` outputs have been returned.
        """
        if self.identity:
            self.n_in += x.shape[-1]
            self.n_out += x.shape[-1]
            return x
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] == 0:
            return np.empty((self.n_chans, 0))
        if self.history is None:
            self.history = np.repeat(x[:, :1], self.n_taps - 1, axis=1)
        buf = np.concatenate([self.history, x], axis=1)
        origin = self.n_in - (self.n_taps - 1)  # buf[:, j] is input sample origin + j
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
                rows = windows[:, i0 - origin - (self.n_taps - 1)]
                out[:, ks - self.n_out] = rows @ self.branches[phase]
        self.history = buf[:, buf.shape[1] - (self.n_taps - 1) :].copy()
        self.n_in, self.n_out = n_total, stop
        return out
