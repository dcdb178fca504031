"""The ``somna`` command: one module per sub-command, each adding its own parser and calling the library.

Modules import only argparse at load time; each command imports what it needs when it runs, so that
``somna --help`` and ``somna score`` start fast.
"""

from __future__ import annotations

import argparse
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
from somna.errors import SomnaError

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``somna`` console command.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a somna error (printed as one line), 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SomnaError as err:
        print(f"somna: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("somna: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`somna ... | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(main())
