"""Running ``python -m somna`` as a real subprocess for the kill and signal tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def somna_env() -> dict[str, str]:
    """The environment of a somna subprocess: one thread per library, unbuffered output."""
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    return {**os.environ, **threads, "PYTHONUNBUFFERED": "1"}


def _interruptible() -> None:
    """Let the command take Ctrl-C even when the tests run where SIGINT is ignored (a shell's background
    job, as CI may run them): an ignored SIGINT is inherited, and Python then installs no handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_somna(args: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """``python -m somna ARGS`` in a new session (its own process group), output into ``log``."""
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "somna", *args],
            cwd=cwd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=somna_env(),
            start_new_session=True,
            preexec_fn=_interruptible,
        )


def group_alive(pgid: int) -> list[int]:
    """Running processes of a process group (zombies waiting to be reaped do not count)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive
