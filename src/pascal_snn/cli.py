"""The ``pascal-snn`` command line: one subcommand per module in :mod:`pascal_snn.commands`.

Every user error (:class:`~pascal_snn.errors.PascalError`) is printed as one clear message
without a traceback, and the process exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pascal_snn.errors import PascalError

# Each module defines ``add_parser(subparsers)`` and ``run(args) -> int``.
COMMANDS = ("train", "evaluate", "al", "energy", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pascal-snn",
        description="Train QCFS networks and convert them into exact spiking networks (PASCAL).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"pascal_snn.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pascal_snn.commands.{name}":
                raise
            continue  # command not built yet
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
