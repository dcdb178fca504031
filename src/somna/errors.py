"""Errors that somna raises for bad input, each naming the file and the problem."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BatchInterrupted",
    "CacheError",
    "ChannelError",
    "CheckpointError",
    "EDFReadError",
    "HypnogramError",
    "LeakageError",
    "SignalQualityError",
    "SomnaError",
]


class SomnaError(Exception):
    """Base class of every error somna raises on purpose.

    The command line prints these as one line (``somna: error: ...``) instead of a traceback.

    Parameters
    ----------
    message : str
        What is wrong, in words a user can act on.
    path : str | Path | None
        The file the problem is in; it is put in front of the message.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class EDFReadError(SomnaError):
    """A file is not a readable EDF/EDF+ file (not EDF at all, truncated, corrupt header)."""


class ChannelError(SomnaError):
    """A requested channel is missing, ambiguous, or recorded at an unusable sampling rate."""


class HypnogramError(SomnaError):
    """A hypnogram cannot be read, has unknown stages, or does not fit its recording."""


class SignalQualityError(SomnaError):
    """A signal is unusable as recorded: NaN values, a flat line, or too short to stage."""


class CacheError(SomnaError):
    """A prepared cohort cache is missing, incomplete, or fails its checksum."""


class CheckpointError(SomnaError):
    """A checkpoint is unreadable, from another format, or does not match the data it is used on."""


class LeakageError(SomnaError):
    """A subject appears in more than one of train / validation / test."""


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped :func:`somna.runner.run_nights`; its workers are stopped too.

    Parameters
    ----------
    finished, total : int
        Tasks that had ended (done or failed) when the batch stopped, and all of them.
    """

    def __init__(self, finished: int, total: int) -> None:
        self.finished, self.total = finished, total
        super().__init__(f"stopped after {finished} of {total} night(s) had finished")
