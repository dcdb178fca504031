"""What a model's training nights looked like, and whether a night to stage looks like them.

A night's **profile** summarises the normalised signals a model sees: per EEG/EOG channel the log power
in six bands (0.5-2, 2-4, 4-8, 8-12, 12-16, 16-30 Hz) and for the EMG envelope its level and spread,
each as the median over the night's epochs. Training stores, with the model, the spread of these over its
training nights and the model's confidence (mean probability of the chosen stage) on its validation
nights (:func:`training_profile`). A night to stage whose profile lies far outside that spread, or on
which the model is much less sure than on any validation night, is flagged with the reason
(:func:`out_of_distribution`): its stages are then not to be trusted like the validation numbers say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "BANDS",
    "epoch_features",
    "night_profile",
    "out_of_distribution",
    "summarise",
    "training_profile",
]

BANDS: tuple[tuple[float, float], ...] = (
    (0.5, 2.0),
    (2.0, 4.0),
    (4.0, 8.0),
    (8.0, 12.0),
    (12.0, 16.0),
    (16.0, 30.0),
)
"""Frequency bands of the EEG/EOG features, Hz."""

_MAX_EPOCHS = 600  # epochs a profile is taken from (evenly spaced): enough for medians, cheap to compute
_Z_LIMIT = 5.0  # standard deviations of the training nights beyond which a feature is "far" outside
_MIN_SD = 0.1  # floor of a feature's spread (log10 units: ×1.26 in power), so few nights do not flag sanely
_MIN_NIGHTS = 4  # fewer training nights say too little about their spread: only the confidence is checked
_CONFIDENCE_MARGIN = 0.1  # below the least confident validation night by this much: flagged


def epoch_features(signals: Mapping[str, np.ndarray], epoch_s: float = 30.0) -> dict[str, np.ndarray]:
    """The profile's features of each of some epochs.

    Parameters
    ----------
    signals : mapping of str to np.ndarray
        Per modality, (n_epochs, n_channels, n_samples) normalised epochs.
    epoch_s : float
        Epoch length, s (sets the frequency of each FFT bin).

    Returns
    -------
    dict of str to np.ndarray
        Feature name (``"EOG 1 0.5-2 Hz power"``, ``"EMG 1 tone"``) → one value per epoch.
    """
    out: dict[str, np.ndarray] = {}
    for modality, data in signals.items():
        epochs = np.asarray(data, dtype=np.float32)
        n_chans, n_times = epochs.shape[1], epochs.shape[2]
        if modality == "emg":
            for c in range(n_chans):
                out[f"EMG {c + 1} tone"] = epochs[:, c].mean(axis=1)
                out[f"EMG {c + 1} tone variability"] = epochs[:, c].std(axis=1)
            continue
        freqs = np.fft.rfftfreq(n_times, epoch_s / n_times)
        power = np.abs(np.fft.rfft(epochs, axis=-1)) ** 2 / n_times
        for c in range(n_chans):
            for lo, hi in BANDS:
                inside = (freqs >= lo) & (freqs < hi)
                if inside.any():
                    out[f"{modality.upper()} {c + 1} {lo:g}-{hi:g} Hz power"] = np.log10(
                        power[:, c, inside].mean(axis=1) + 1e-12
                    )
    return out


def summarise(features: Mapping[str, np.ndarray]) -> dict[str, float]:
    """A night's profile from its epochs' features: the median of each."""
    return {name: float(np.median(values)) for name, values in features.items() if len(values)}


def night_profile(signals: Mapping[str, Any], epoch_s: float = 30.0) -> dict[str, float]:
    """The profile of one night's normalised epochs (from at most 600 of them, evenly spaced).

    Parameters
    ----------
    signals : mapping of str to array-like
        Per modality, (n_epochs, n_channels, n_samples) normalised epochs (arrays or cached fields).
    epoch_s : float
        Epoch length, s.

    Returns
    -------
    dict of str to float
        Feature name → median over the night's epochs (:func:`epoch_features`).
    """
    n = min(len(data) for data in signals.values())
    if n == 0:
        return {}
    picked = np.unique(np.linspace(0, n - 1, min(n, _MAX_EPOCHS)).round().astype(int))
    chosen = {
        m: np.asarray(data[picked[0] : picked[-1] + 1])[picked - picked[0]] for m, data in signals.items()
    }
    return summarise(epoch_features(chosen, epoch_s))


def training_profile(nights: Sequence[Mapping[str, float]], confidences: Sequence[float]) -> dict[str, Any]:
    """What a model's training nights looked like (stored with the model).

    Parameters
    ----------
    nights : sequence of dict
        :func:`night_profile` of each training night.
    confidences : sequence of float
        The trained model's mean confidence on each validation night.

    Returns
    -------
    dict
        ``features`` (name → mean, sd, min, max over the nights), ``confidence`` (mean, min) and
        ``n_nights``: plain data, stored in checkpoints and ONNX manifests.
    """
    names = sorted(set.intersection(*(set(n) for n in nights))) if nights else []
    features = {}
    for name in names:
        values = np.array([n[name] for n in nights], dtype=np.float64)
        features[name] = {
            "mean": float(values.mean()),
            "sd": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    conf = np.asarray(confidences, dtype=np.float64)
    return {
        "features": features,
        "confidence": {"mean": float(conf.mean()), "min": float(conf.min())} if conf.size else None,
        "n_nights": len(nights),
    }


def out_of_distribution(
    profile: Mapping[str, Any] | None, night: Mapping[str, float], confidence: float | None
) -> list[str]:
    """Why a night lies outside what the model was trained on (empty when it does not).

    A feature is outside when it is more than five training standard deviations (at least 0.1 in log10
    power) from the training nights' mean *and* beyond their range by half that range, which is only
    judged from four training nights on; the model's confidence is outside when it falls 0.1 below the
    least confident validation night's.

    Parameters
    ----------
    profile : mapping | None
        :func:`training_profile` stored with the model (``None``: nothing to compare with).
    night : mapping of str to float
        :func:`night_profile` of the night.
    confidence : float | None
        The model's mean confidence on the night.

    Returns
    -------
    list of str
        One reason per feature or for the confidence, the farthest first.
    """
    if not profile:
        return []
    far: list[tuple[float, str]] = []
    features = profile.get("features", {}) if profile.get("n_nights", 0) >= _MIN_NIGHTS else {}
    for name, stats in features.items():
        if name not in night:
            continue
        value = night[name]
        sd = max(stats["sd"], _MIN_SD)
        z = (value - stats["mean"]) / sd
        span = stats["max"] - stats["min"]
        beyond = value > stats["max"] + span / 2 or value < stats["min"] - span / 2
        if abs(z) > _Z_LIMIT and beyond:
            side = "above" if z > 0 else "below"
            far.append((abs(z), f"{name} far {side} the training nights' (z = {z:+.1f})"))
    reasons = [text for _, text in sorted(far, reverse=True)]
    stats = profile.get("confidence")
    if stats and confidence is not None and confidence < stats["min"] - _CONFIDENCE_MARGIN:
        reasons.append(
            f"the model is much less sure of this night than of any validation night (mean confidence "
            f"{confidence:.2f}, against {stats['min']:.2f} at least)"
        )
    return reasons
