"""The ``pascal-snn`` command line: one subcommand per module in :mod:`pascal_snn.commands`.

Every user error (:class:`~pascal_snn.errors.PascalError`, a bad flag) is printed as one line
that says what was wrong and what to do, without a traceback, and the process exits with
status 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

import torch

from pascal_snn import __version__
from pascal_snn.commands import al, demo, energy, evaluate, train
from pascal_snn.commands.args import Parser
from pascal_snn.errors import PascalError

# Each module defines ``add_parser(subparsers)`` and ``run(args) -> int``.
COMMANDS = (train, evaluate, al, energy, demo)


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
    try:
        return int(args.run(args) or 0)
    except PascalError as exc:
        print(f"pascal-snn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pascal-snn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
