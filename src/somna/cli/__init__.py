"""The ``somna`` command: one module per sub-command, each adding its own parser and calling the library.

Modules import only argparse at load time; each command imports what it needs when it runs, so that
``somna --help`` and ``somna score`` start fast.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from somna import __version__
from somna.cli import (
    demo,
    download,
    evaluate,
    experiment,
    export,
    info,
    metrics,
    prepare,
    score,
    stream,
    synth,
)
from somna.errors import BatchInterrupted, SomnaError

__all__ = ["build_parser", "main"]

COMMAND_MODULES = (synth, download, prepare, info, experiment, evaluate, score, stream, export, metrics, demo)
"""Each adds its parser(s) with ``add_parser``, in the order ``somna --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``somna`` argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="somna",
        description="Automatic sleep staging from polysomnography (EEG + EOG + EMG).",
        epilog="Run `somna COMMAND --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"somna {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parser(sub)
    return parser


def _printable_streams() -> None:
    """File names that are not valid text (bytes from another encoding) print escaped, not as an error."""
    for output in (sys.stdout, sys.stderr):
        reconfigure = getattr(output, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _os_error_message(err: OSError) -> str:
    """One line for an operating-system error: what failed, on which file, and what to do."""
    where = f"{err.filename}: " if err.filename else ""
    if err.errno == errno.ENOSPC:
        return f"{where}the disk is full; free space and run the same command again (finished work is kept)"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}not allowed to write or read here ({err.strerror})"
    return f"{where}{err.strerror or err}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``somna`` console command.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a somna error or a failed operation (printed as one line),
        130 when interrupted, 141 when the reader of the output went away, 70 for an internal error
        (printed as one line naming the error; ``SOMNA_DEBUG=1`` shows the traceback).
    """
    _printable_streams()
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SomnaError as err:
        print(f"somna: error: {err}", file=sys.stderr)
        return 2
    except BatchInterrupted as err:
        print(
            f"somna: interrupted: {err.finished} of {err.total} night(s) had finished and are kept; run the "
            "same command again to do the rest",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print("somna: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`somna ... | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as err:
        print(f"somna: error: {_os_error_message(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        if os.environ.get("SOMNA_DEBUG"):
            raise
        print(
            f"somna: internal error: {type(err).__name__}: {err} (a bug in somna: please report it with the "
            "command; SOMNA_DEBUG=1 shows where it happened)",
            file=sys.stderr,
        )
        return 70
    return 0


if __name__ == "__main__":
    sys.exit(main())
