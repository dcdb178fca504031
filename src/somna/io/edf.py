"""Read PSG signals from EDF/EDF+ files at each channel's native sampling rate.

edfio is used rather than MNE's reader: MNE resamples every channel of a mixed-rate file to the
highest rate, which turns Sleep-EDF SC's 1-Hz ``EMG submental`` envelope into a 100-Hz staircase.
edfio keeps each signal as recorded.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import edfio
import numpy as np

from somna.errors import ChannelError, EDFReadError, SignalQualityError
from somna.io.channels import SLEEP_EDF_CHANNELS, ChannelSpec, derivation_label, pick_channels
from somna.io.lights import lights_annotation
from somna.io.recording import Recording, check_rates
from somna.io.sleepedf import parse_sleep_edf_name

__all__ = ["psg_channel_labels", "read_psg"]

# Physical dimension (lower case, stripped) → factor to µV. Unknown or empty → assumed µV (factor 1).
_TO_MICROVOLT: dict[str, float] = {
    "uv": 1.0,
    "µv": 1.0,  # micro sign U+00B5
    "μv": 1.0,  # Greek mu U+03BC
    "microvolt": 1.0,
    "microvolts": 1.0,
    "nv": 1e-3,
    "mv": 1e3,
    "millivolt": 1e3,
    "millivolts": 1e3,
    "v": 1e6,
    "volt": 1e6,
    "volts": 1e6,
}

_FIXED_HEADER_BYTES = 256
_BDF_MAGIC = b"\xffBIOSEMI"
"""First 8 bytes of a BDF/BDF+ file (24-bit samples), where EDF has ``0`` and seven spaces."""
_SIGNAL_HEADER_BYTES = 256


def _check_header_and_size(path: Path) -> None:
    """Check that ``path`` starts like an EDF file and is exactly as long as its header says.

    edfio accepts a truncated file with only a warning (and drops the partial record), so the size
    is checked here from the header fields: header bytes + num_data_records × record bytes.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        fixed = f.read(_FIXED_HEADER_BYTES)
        if len(fixed) < _FIXED_HEADER_BYTES or fixed[:8] not in (b"0       ", _BDF_MAGIC):
            raise EDFReadError("not an EDF file (it does not start with the 256-byte EDF header)", path)
        sample_bytes = 3 if fixed[:8] == _BDF_MAGIC else 2
        try:
            header_bytes = int(fixed[184:192].decode("ascii"))
            n_records = int(fixed[236:244].decode("ascii"))
            n_signals = int(fixed[252:256].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise EDFReadError(
                "corrupt EDF header: header size, number of data records or number of signals "
                "is not a number",
                path,
            ) from None
        if n_signals < 0 or header_bytes != _FIXED_HEADER_BYTES + n_signals * _SIGNAL_HEADER_BYTES:
            raise EDFReadError(
                f"corrupt EDF header: {n_signals} signals need a "
                f"{256 + 256 * max(n_signals, 0)}-byte header, the header says {header_bytes} bytes",
                path,
            )
        signal_header = f.read(n_signals * _SIGNAL_HEADER_BYTES)
    if len(signal_header) < n_signals * _SIGNAL_HEADER_BYTES:
        raise EDFReadError(f"truncated EDF header: {size} bytes, the header alone needs {header_bytes}", path)
    # Samples per data record: the 9th per-signal field (8 bytes each), after 216 bytes per signal.
    offset = n_signals * 216
    try:
        samples = [
            int(signal_header[offset + 8 * i : offset + 8 * (i + 1)].decode("ascii"))
            for i in range(n_signals)
        ]
    except (UnicodeDecodeError, ValueError):
        raise EDFReadError(
            "corrupt EDF header: a 'samples per data record' field is not a number", path
        ) from None
    empty = [i for i, n in enumerate(samples) if n < 1]
    if empty:
        raise EDFReadError(
            f"corrupt EDF header: signal {empty[0]} has {samples[empty[0]]} samples per data record "
            "(at least 1 is needed)",
            path,
        )
    _check_record_duration(fixed[244:252], signal_header[: 16 * n_signals], path)
    record_bytes = sample_bytes * sum(samples)
    if n_records < -1:
        raise EDFReadError(f"corrupt EDF header: {n_records} data records (-1 or more are allowed)", path)
    if n_records == -1:
        # -1 means "unknown" (recording still running); accept whole records only.
        if record_bytes == 0 or (size - header_bytes) % record_bytes:
            raise EDFReadError("incomplete last data record (number of data records is -1)", path)
        return
    expected = header_bytes + n_records * record_bytes
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise EDFReadError(
            f"{what}: the header declares {n_records} data records of {record_bytes} bytes "
            f"({expected} bytes in all), the file has {size} bytes",
            path,
        )


def _check_record_duration(field: bytes, labels: bytes, path: Path) -> None:
    """Refuse a data-record duration that is not a finite number > 0.

    0 is allowed for annotation-only EDF+ files (every signal is ``EDF Annotations``), as the EDF+
    specification does; edfio fails with an internal error on it for any other signal.
    """
    try:
        duration = float(field.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise EDFReadError(
            f"corrupt EDF header: the data-record duration {field.decode('latin-1').strip()!r} "
            "is not a number",
            path,
        ) from None
    annotations_only = all(
        labels[i : i + 16].strip() == b"EDF Annotations" for i in range(0, len(labels), 16)
    )
    if not math.isfinite(duration) or duration < 0 or (duration == 0 and not annotations_only):
        raise EDFReadError(
            f"corrupt EDF header: the data-record duration is {duration:g} s "
            "(a positive number of seconds is needed)",
            path,
        )


def _read_edf(path: Path) -> edfio.Edf:
    """Open an EDF/EDF+ file with edfio (data loaded lazily), every failure as :class:`EDFReadError`."""
    if not path.is_file():
        raise EDFReadError("no such file", path)
    _check_header_and_size(path)
    try:
        with warnings.catch_warnings():
            # Sizes were checked above; an edfio warning left means a malformed file.
            warnings.filterwarnings("error", category=UserWarning, module=r"edfio(\.|$)")
            # ... except the one for a header with -1 ("unknown") records, whose count edfio takes
            # from the size, checked above to be a whole number of records.
            warnings.filterwarnings("ignore", "EDF header indicates -1 data records", UserWarning)
            with path.open("rb") as f:
                bdf = f.read(8) == _BDF_MAGIC
            if bdf:
                edf = edfio.read_bdf(path, header_encoding="latin-1")
            else:
                edf = edfio.read_edf(path, lazy_load_data=True, header_encoding="latin-1")
            # Annotations are parsed on access: do it here so their errors are reported alike.
            edf.annotations  # noqa: B018
            return edf
    except Exception as err:
        # Parse boundary: edfio raises whatever its parsing hits on a corrupt header or annotation
        # (ValueError, UnicodeDecodeError, IndexError, ZeroDivisionError, UnboundLocalError, ...,
        # and its warnings, made errors above). This block only parses the file, so any exception
        # here means the file is unreadable; sizes and fields checked above get their own messages.
        raise EDFReadError(f"cannot read EDF file: {type(err).__name__}: {err}", path) from None


def _start(edf: edfio.Edf, path: Path) -> tuple[dt.datetime, bool]:
    try:
        time = edf.starttime
    except (ValueError, OverflowError, edfio.AnonymizedDateError) as err:
        # OverflowError: an EDF+ time-keeping onset too large for the sub-second start offset.
        raise EDFReadError(f"corrupt EDF header start time: {err}", path) from None
    try:
        with warnings.catch_warnings():
            # edfio warns when the EDF+ "Startdate" differs from the legacy date field and uses the
            # EDF+ one; so does somna.
            warnings.filterwarnings("ignore", "Different values in startdate fields", UserWarning)
            date = edf.startdate
    except edfio.AnonymizedDateError:
        # EDF+ allows hiding the date ("X"); keep the clock time on the EDF+ placeholder date.
        return dt.datetime.combine(dt.date(1985, 1, 1), time), True
    except ValueError as err:
        raise EDFReadError(f"corrupt EDF header start date: {err}", path) from None
    return dt.datetime.combine(date, time), False


def _check_calibration(sig: edfio.EdfSignal, path: Path) -> None:
    """Refuse a signal whose physical/digital range cannot scale its samples to finite values.

    edfio returns the raw digital values (with a warning, or silently when a range field is not a
    number) for such a signal; somna refuses it instead of staging unscaled numbers.
    """
    try:
        pmin, pmax = sig.physical_min, sig.physical_max
        dmin, dmax = sig.digital_min, sig.digital_max
    except ValueError as err:
        raise EDFReadError(
            f"corrupt EDF header: a physical or digital range field of {sig.label!r} is not a number ({err})",
            path,
        ) from None
    problem = None
    if not (math.isfinite(pmin) and math.isfinite(pmax) and math.isfinite(pmax - pmin)):
        problem = f"physical range [{pmin:g}, {pmax:g}] is not finite"
    elif pmin == pmax:
        problem = f"physical minimum equals physical maximum ({pmin:g})"
    elif dmax <= dmin:
        problem = f"digital maximum {dmax} is not above digital minimum {dmin}"
    if problem:
        raise EDFReadError(f"corrupt EDF header: {problem} for {sig.label!r}", path)


def _calibrate_into(out: np.ndarray, digital: np.ndarray, sig: edfio.EdfSignal, factor: float) -> None:
    """Physical values of ``digital`` samples, in µV, written into ``out`` (float32).

    The EDF calibration (the straight line through (digital min, physical min) and (digital max,
    physical max)) and the unit factor folded into one gain and offset. EDF samples are 16-bit
    integers, so float32 holds them with 8 bits to spare.
    """
    gain = (sig.physical_max - sig.physical_min) / (sig.digital_max - sig.digital_min)
    offset = sig.physical_min - gain * sig.digital_min
    np.multiply(digital, np.float32(gain * factor), out=out, casting="unsafe")
    out += np.float32(offset * factor)


_RECORD_ONSET = re.compile(rb"^([+-]\d+(?:\.\d*)?)\x14\x14")


def _record_starts(path: Path) -> np.ndarray | None:
    """Start of every data record of an EDF+D/BDF+D file, seconds from the file's start, from each
    record's time-keeping annotation; ``None`` for a continuous file (EDF, EDF+C, BDF, BDF+C).

    Raises
    ------
    EDFReadError
        For a discontinuous file whose records lack a time-keeping annotation, go back in time or
        overlap.
    """
    with path.open("rb") as f:
        fixed = f.read(_FIXED_HEADER_BYTES)
        if fixed[192:197] not in (b"EDF+D", b"BDF+D"):
            return None
        n_signals = int(fixed[252:256])
        header = f.read(n_signals * _SIGNAL_HEADER_BYTES)
    sample_bytes = 3 if fixed[:8] == _BDF_MAGIC else 2
    labels = [header[16 * i : 16 * (i + 1)].strip() for i in range(n_signals)]
    samples = [int(header[216 * n_signals + 8 * i : 216 * n_signals + 8 * (i + 1)]) for i in range(n_signals)]
    duration = float(fixed[244:252])
    if b"EDF Annotations" not in labels and b"BDF Annotations" not in labels:
        raise EDFReadError(
            "EDF+D file without an annotation signal: its records cannot be placed in time", path
        )
    index = next(i for i, label in enumerate(labels) if label in (b"EDF Annotations", b"BDF Annotations"))
    before = sample_bytes * sum(samples[:index])
    width = sample_bytes * samples[index]
    record = sample_bytes * sum(samples)
    header_bytes = _FIXED_HEADER_BYTES + n_signals * _SIGNAL_HEADER_BYTES
    n_records = (path.stat().st_size - header_bytes) // record if record else 0
    starts = np.empty(n_records)
    with path.open("rb") as f:
        for k in range(n_records):
            f.seek(header_bytes + k * record + before)
            match = _RECORD_ONSET.match(f.read(width))
            if match is None:
                raise EDFReadError(f"EDF+D data record {k} has no time-keeping annotation", path)
            starts[k] = float(match.group(1))
    starts -= starts[0] if n_records else 0.0
    steps = np.diff(starts)
    bad = np.flatnonzero(steps < duration - 1e-6)
    if bad.size:
        k = int(bad[0]) + 1
        raise EDFReadError(
            f"EDF+D data record {k} starts at {starts[k]:g} s, before the previous record ends "
            f"({starts[k - 1] + duration:g} s): records overlap or go back in time",
            path,
        )
    return starts


def _gaps(starts: np.ndarray, duration: float) -> list[tuple[float, float]]:
    """The gaps between records: (start, end) in seconds from the file's start."""
    ends = starts[:-1] + duration
    return [(float(e), float(s)) for e, s in zip(ends, starts[1:], strict=True) if s - e > 1e-6]


def _place_records(samples: np.ndarray, starts: np.ndarray, per_record: int, fs: float) -> np.ndarray:
    """A discontinuous signal on its full time line: each record at its start, gaps filled with 0."""
    offsets = np.round(starts * fs).astype(np.int64)
    out = np.zeros(int(offsets[-1]) + per_record if offsets.size else 0, dtype=np.float32)
    for k, offset in enumerate(offsets):
        out[offset : offset + per_record] = samples[k * per_record : (k + 1) * per_record]
    return out


def _unit_factor(unit: str) -> tuple[float, bool]:
    key = unit.strip().lower()
    if key in _TO_MICROVOLT:
        return _TO_MICROVOLT[key], False
    return 1.0, True


def _calibrated(sig: Any, modality: str, path: Path, assumed: list[str]) -> np.ndarray:
    """One channel's samples in µV (float32), its calibration checked."""
    _check_calibration(sig, path)
    factor, guessed = _unit_factor(sig.physical_dimension)
    if guessed and sig.label not in assumed:
        assumed.append(sig.label)
    try:
        digital = sig.digital
    except (ValueError, OSError) as err:
        raise EDFReadError(f"cannot read the samples of {sig.label!r}: {err}", path) from None
    if digital.size == 0:
        raise SignalQualityError(f"{modality} channel {sig.label!r} has no samples", path)
    out = np.empty(digital.size, dtype=np.float32)
    _calibrate_into(out, digital, sig, factor)
    return out


def psg_channel_labels(path: str | Path) -> list[str]:
    """The channel labels of an EDF/EDF+ file, in its order.

    Raises
    ------
    EDFReadError
        As :func:`read_psg` for a file that is not a readable EDF file.
    """
    return [sig.label for sig in _read_edf(Path(path)).signals]


def read_psg(
    path: str | Path,
    channels: ChannelSpec = SLEEP_EDF_CHANNELS,
    modalities: Sequence[str] = ("eeg", "eog", "emg"),
) -> Recording:
    """Read the staging channels of a PSG EDF/EDF+ file, each modality at its native rate.

    Parameters
    ----------
    path : str | Path
        The EDF file (Sleep-EDF's ``*-PSG.edf`` or any EDF/EDF+ PSG).
    channels : ChannelSpec
        Per modality, the wanted channels as lists of aliases (first preferred). A file channel
        matches an alias when both are equal ignoring case, surrounding spaces and repeated spaces.
    modalities : sequence of str
        Modalities to read, keys of ``channels``.

    Returns
    -------
    Recording
        Signals in µV (float32: EDF stores 16-bit integers), per modality of shape (n_channels,
        n_samples), at the file's rates.
        Physical dimensions ``uV``/``µV``, ``nV``, ``mV`` and ``V`` are converted to µV; a channel
        with an empty or unknown dimension is assumed to be in µV already and listed in
        ``extra["assumed_microvolt"]``. Sleep-EDF names fill ``subject`` (``"SC00"``), ``night``
        and ``study``. A hidden EDF+ start date (``X``) gives 1985-01-01 with
        ``extra["anonymised_date"] = True``.

    Raises
    ------
    EDFReadError
        If the file is missing, not EDF, has a corrupt header (including a data-record duration that
        is not > 0, a signal with no samples per record, or a wanted channel whose physical or digital
        range cannot scale its samples), or is truncated (its size is not header + data records ×
        record size).
    ChannelError
        If a wanted channel is missing (the message lists the file's channels) or ambiguous, the
        channels of one modality have different rates, or a rate is unusable
        (:func:`somna.io.recording.check_rates`: EEG/EOG below 50 Hz, others below 1 Hz, any above
        100 kHz).
    SignalQualityError
        If a channel is flat or has non-finite samples (see :func:`somna.io.recording.check_signals`).
    """
    path = Path(path)
    edf = _read_edf(path)
    start, anonymised = _start(edf, path)
    picked = pick_channels(channels, modalities, [sig.label for sig in edf.signals], path)
    signals: dict[str, np.ndarray] = {}
    sfreq: dict[str, float] = {}
    names: dict[str, list[str]] = {}
    assumed: list[str] = []
    labels = [sig.label for sig in edf.signals]
    starts = _record_starts(path)
    record_s = float(edf.data_record_duration)
    gaps = _gaps(starts, record_s) if starts is not None else []
    for modality in modalities:
        derivations = picked[modality]
        used = sorted({i for d in derivations for i in d if i is not None})
        rate = check_rates(
            modality, {labels[i]: float(edf.signals[i].sampling_frequency) for i in used}, path
        )
        rows: np.ndarray | None = None  # filled row by row: no stacking copy of a night's samples
        for row, (active, reference) in enumerate(derivations):
            name = derivation_label(labels, (active, reference))
            samples = _calibrated(edf.signals[active], modality, path, assumed)
            if gaps:
                samples = _place_records(samples, starts, round(rate * record_s), rate)
            if reference is not None:
                other = _calibrated(edf.signals[reference], modality, path, assumed)
                if gaps:
                    other = _place_records(other, starts, round(rate * record_s), rate)
                if other.size != samples.size:
                    raise ChannelError(
                        f"{name}: {labels[active]!r} and {labels[reference]!r} differ in length", path
                    )
                samples -= other
            if rows is None:
                rows = np.empty((len(derivations), samples.size), dtype=np.float32)
            rows[row] = samples
            if samples.min() == samples.max():
                raise SignalQualityError(
                    f"{modality} channel {name!r} is flat: every sample equals {samples[0]:g} over the "
                    "whole recording (electrode disconnected or signal not recorded)",
                    path,
                )
        signals[modality] = rows
        sfreq[modality] = rate
        names[modality] = [derivation_label(labels, d) for d in derivations]
    try:
        night = parse_sleep_edf_name(path)
    except ValueError:
        night = None
    recording = Recording(
        path=path,
        signals=signals,
        sfreq=sfreq,
        channel_names=names,
        start=start,
        subject=night.subject_id if night else None,
        night=night.night if night else None,
        study=night.study if night else None,
        extra={"assumed_microvolt": assumed, "anonymised_date": anonymised, "gaps_s": gaps},
    )
    for annotation in edf.annotations:
        which = lights_annotation(annotation.text)
        field_name = f"lights_{which}_s"
        if which and getattr(recording, field_name) is None:
            setattr(recording, field_name, float(annotation.onset))
    return recording  # checked as check_signals would: calibrated integers are always finite
