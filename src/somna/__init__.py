"""somna: automatic sleep staging from polysomnography (EEG + EOG + EMG).

The front door, modelled on YASA and MNE::

    import somna

    stager = somna.load_stager("runs/demo/model")           # a trained run, checkpoint or ONNX export
    hypnogram = stager.predict("night.edf", eeg="C4-M1")    # or an mne.io.Raw, or numpy arrays
    hypnogram.sleep_metrics()                               # TST, SE, SOL, WASO, REM latency, ...
    hypnogram.evaluate(somna.read_hypnogram("night-scored.edf"))

Names are imported on first use, so ``import somna`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from somna.errors import SomnaError
    from somna.evaluation.sleep_metrics import sleep_metrics
    from somna.hypnogram import Hypnogram
    from somna.inference.backends import load_stager
    from somna.inference.stager import Stager
    from somna.io.edf import read_psg
    from somna.io.hypnogram_files import read_hypnogram
    from somna.io.recording import Recording

_EXPORTS = {
    "Hypnogram": "somna.hypnogram",
    "Recording": "somna.io.recording",
    "SomnaError": "somna.errors",
    "Stager": "somna.inference.stager",
    "load_stager": "somna.inference.backends",
    "read_hypnogram": "somna.io.hypnogram_files",
    "read_psg": "somna.io.edf",
    "sleep_metrics": "somna.evaluation.sleep_metrics",
}

__all__ = [
    "Hypnogram",
    "Recording",
    "SomnaError",
    "Stager",
    "__version__",
    "load_stager",
    "read_hypnogram",
    "read_psg",
    "sleep_metrics",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'somna' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
