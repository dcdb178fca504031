"""Configuration dataclasses, loaded from the TOML files in ``configs/``.

The command line only parses arguments and calls the library; every experiment is a config file plus
a seed, so a result can be rerun.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from somna.errors import SomnaError
from somna.io.recording import SLEEP_EDF_CHANNELS, ChannelSpec

__all__ = ["CohortConfig", "PreprocessConfig", "build_section", "config_to_dict", "load_config", "read_toml"]


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw PSG becomes model input.

    Parameters
    ----------
    sfreq : float
        Rate of EEG and EOG after resampling, Hz.
    eeg_band, eog_band : tuple of float
        Zero-phase FIR band-pass edges in Hz; the upper edge is lowered to 45 % of the input rate
        for slow recordings (a 50 Hz file keeps up to 22.5 Hz).
    emg_sfreq : float
        Rate of the EMG envelope, Hz (Sleep-EDF SC stores a 1 Hz envelope; raw EMG is turned into a
        1 Hz RMS envelope so SC and ST look alike).
    emg_highpass : float
        High-pass edge applied to raw EMG before the RMS envelope, Hz.
    clip : float
        Normalised signals are clipped to ± this many robust standard deviations (artefacts).
    trim_wake_min : float | None
        Minutes of wake kept before the first and after the last sleep epoch; ``None`` keeps the
        whole recording.
    epoch_s : float
        Scoring epoch length, s.
    filter : {"zero-phase", "causal"}
        ``"zero-phase"``: FIR band-pass over the whole recording and polyphase resampling (offline only).
        ``"causal"``: stateful resampling and Butterworth band-pass that run on a live stream
        (:mod:`somna.preprocess.online`); the signal is delayed by the filters' phase lag (≈ 0.1 s).
    normalise : {"recording", "running"}
        ``"recording"``: median/IQR of the whole kept recording (or a reference span).
        ``"running"``: each epoch scaled by the median/IQR of all samples from the start of the kept
        span up to the end of that epoch (histogram estimate, O(1) per epoch). Streaming needs
        ``filter="causal"`` and ``normalise="running"``.
    stats_samples : int
        Most samples per channel the recording's median and IQR are taken from (one from each run of
        equal length: :func:`somna.preprocess.robust_scale`). 2^17: every sample of a recording up to
        22 min at 100 Hz, one in 22 of an 8-h night; the quantiles then move by about half a percent of
        the IQR, far below the spread between recordings, at a quarter of the cost of 2^19 (models
        saved before this setting existed used 2^19, and still do).
    """

    sfreq: float = 100.0
    eeg_band: tuple[float, float] = (0.3, 35.0)
    eog_band: tuple[float, float] = (0.3, 35.0)
    emg_sfreq: float = 1.0
    emg_highpass: float = 10.0
    clip: float = 20.0
    trim_wake_min: float | None = 30.0
    epoch_s: float = 30.0
    filter: str = "zero-phase"
    normalise: str = "recording"
    stats_samples: int = 2**17

    def __post_init__(self) -> None:
        if (
            isinstance(self.stats_samples, bool)
            or not isinstance(self.stats_samples, int)
            or self.stats_samples < 1000
        ):
            raise SomnaError(
                f"preprocess stats_samples must be a whole number ≥ 1000, not {self.stats_samples!r}"
            )
        if self.filter not in ("zero-phase", "causal"):
            raise SomnaError(f"preprocess filter must be 'zero-phase' or 'causal', not {self.filter!r}")
        if self.normalise not in ("recording", "running"):
            raise SomnaError(f"preprocess normalise must be 'recording' or 'running', not {self.normalise!r}")

    @property
    def samples_per_epoch(self) -> int:
        """Samples of one EEG/EOG epoch after resampling."""
        return round(self.sfreq * self.epoch_s)

    @property
    def emg_samples_per_epoch(self) -> int:
        """Samples of one EMG-envelope epoch."""
        return round(self.emg_sfreq * self.epoch_s)


@dataclass(frozen=True)
class CohortConfig:
    """Which channels a cohort is read from, and how it is preprocessed."""

    channels: ChannelSpec = field(
        default_factory=lambda: {k: [list(a) for a in v] for k, v in SLEEP_EDF_CHANNELS.items()}
    )
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML config file; a missing or malformed file is a :class:`SomnaError` naming it."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SomnaError("config file not found", path) from None
    except tomllib.TOMLDecodeError as err:
        raise SomnaError(f"not valid TOML: {err}", path) from None


def build_section(cls: type, values: dict[str, Any], where: str, path: str | Path) -> Any:
    """Build a config dataclass from one TOML table; unknown keys are an error naming file and key.

    TOML arrays become tuples (the dataclasses are frozen and hashable).
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SomnaError(f"unknown key(s) {unknown} in [{where}]; known: {sorted(known)}", path)
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_config(path: str | Path) -> CohortConfig:
    """Read a cohort configuration from a TOML file.

    Parameters
    ----------
    path : str | Path
        TOML file with optional tables ``[channels]`` (modality → list of alias lists) and
        ``[preprocess]`` (fields of :class:`PreprocessConfig`). ``trim_wake_min = -1`` keeps the whole
        recording (TOML has no null).

    Returns
    -------
    CohortConfig

    Raises
    ------
    SomnaError
        If the file is missing, not TOML, or has unknown keys.
    """
    data = read_toml(path)
    pre = dict(data.get("preprocess", {}))
    if pre.get("trim_wake_min", 0) is not None and pre.get("trim_wake_min", 0) < 0:
        pre["trim_wake_min"] = None
    preprocess = build_section(PreprocessConfig, pre, "preprocess", path)
    channels = data.get("channels") or CohortConfig().channels
    return CohortConfig(channels=channels, preprocess=preprocess)


# Preprocessing fields added after cohorts were first cached: left out of the dict at their defaults, so
# that caches prepared (and checkpoints trained) before they existed keep their config keys.
_OMITTED_AT_DEFAULT = {"filter": "zero-phase", "normalise": "recording"}


def config_to_dict(config: CohortConfig) -> dict[str, Any]:
    """Plain-dict form of a config (for manifests and checkpoints)."""
    out = asdict(config)
    pre = out["preprocess"]
    for key, default in _OMITTED_AT_DEFAULT.items():
        if pre.get(key) == default:
            del pre[key]
    return out
