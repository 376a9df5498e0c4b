"""The ``pascal-snn`` command line: one subcommand per module in :mod:`pascal_snn.commands`.

Every user error (:class:`~pascal_snn.errors.PascalError`, a bad flag) is printed as one line
that says what was wrong and what to do, without a traceback, and the process exits with
status 2.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

import torch

from pascal_snn import __version__
from pascal_snn.commands import al, convert, demo, energy, evaluate, train
from pascal_snn.commands.args import Parser
from pascal_snn.errors import PascalError

# Each module defines ``add_parser(subparsers)`` and ``run(args) -> int``.
COMMANDS = (train, evaluate, convert, al, energy, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="pascal-snn",
        description="Train QCFS networks and convert them into exact spiking networks (PASCAL).",
    )
    parser.add_argument("--version", action="version", version=f"pascal-snn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # --help, --version, or a bad flag (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    args.command_line = shlex.join(["pascal-snn", *words])
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    name = f"pascal-snn {args.command}"
    try:
        return int(args.run(args) or 0)
    except PascalError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, torch.OutOfMemoryError) as exc:
        print(
            f"{name}: error: out of memory ({_first_line(exc)}); {OUT_OF_MEMORY}", file=sys.stderr
        )
        return 2
    except RuntimeError as exc:
        if "can't allocate memory" not in str(exc) and "out of memory" not in str(exc):
            return _internal_error(name, exc)
        print(
            f"{name}: error: out of memory ({_first_line(exc)}); {OUT_OF_MEMORY}", file=sys.stderr
        )
        return 2
    except Exception as exc:
        return _internal_error(name, exc)


OUT_OF_MEMORY = "use a smaller --batch-size (or a smaller model, image size or L)"
DEBUG = "PASCAL_SNN_DEBUG"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _internal_error(name: str, exc: Exception) -> int:
    """A failure no check foresaw: one line (the traceback with PASCAL_SNN_DEBUG=1), status 1."""
    if os.environ.get(DEBUG):
        raise exc
    print(
        f"{name}: internal error: {type(exc).__name__}: {_first_line(exc)} (this is a bug; "
        f"please report it with the command line; {DEBUG}=1 shows the traceback)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
