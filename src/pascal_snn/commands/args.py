"""Command-line arguments shared by the commands: argparse types that say what was wrong,
one-line parse errors, and the flag groups every command uses (data, runtime, checkpoint)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from pascal_snn.config import MAX_BATCH, MAX_IMAGE_SIZE
from pascal_snn.data.registry import DATASETS
from pascal_snn.errors import ConfigError

__all__ = [
    "DEFAULT_THREADS",
    "DTYPE_NAMES",
    "MAX_BATCH",
    "MAX_THREADS",
    "Parser",
    "add_checkpoint_arguments",
    "add_data_arguments",
    "add_runtime_arguments",
    "bounded_int",
    "nonnegative_int",
    "parse_int_list",
    "positive_float",
    "positive_int",
]

# torch intra-op threads of every command unless --threads says otherwise. Measured on the
# project's 2-core machine (BENCHMARKS.md, "Threads"): one thread is as fast as two on an idle
# machine for the built-in models and many times faster on a busy one (OpenMP threads
# spin-wait on oversubscribed cores).
DEFAULT_THREADS = 1
MAX_THREADS = 256

# --dtype choices of the commands that run a spiking network: names of torch dtypes (resolved
# with getattr(torch, name) where torch is imported, so parsing imports no torch)
DTYPE_NAMES = ("float32", "float64")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (what was wrong, where to look), status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def bounded_int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``minimum … maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


positive_int = bounded_int(1)
nonnegative_int = bounded_int(0)


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got '{text}'")
    return value


def parse_int_list(text: str, flag: str, maximum: int | None = None) -> list[int]:
    """``"1,2,4"`` → ``[1, 2, 4]``; positive integers only (at most ``maximum``), else a
    ConfigError naming the flag."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise ConfigError(
            f"{flag} takes comma-separated positive integers such as 1,2,4, got '{text}'"
        )
    if maximum is not None and max(values) > maximum:
        raise ConfigError(f"{flag}: values must be <= {maximum}, got {max(values)}")
    return values


def add_data_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add ``--dataset``, ``--data-dir``, ``--download`` and ``--image-size`` to ``parser``."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        choices=list(DATASETS),
        default="digits",
        help="data set (default: digits, built into scikit-learn, no download)",
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the data set (default: the data set's usual place, see docs/data.md)",
    )
    group.add_argument(
        "--download",
        action="store_true",
        help="download MNIST / Fashion-MNIST / CIFAR if missing (needs network access)",
    )
    group.add_argument(
        "--image-size",
        type=bounded_int(1, MAX_IMAGE_SIZE),
        default=None,
        help="zero-pad small images to this size (e.g. 32 for Fashion-MNIST on VGG-16); "
        "crop size for ImageNet",
    )
    return group


def add_runtime_arguments(parser: argparse.ArgumentParser, device: str | None = None) -> None:
    """``--device`` and ``--threads``."""
    parser.add_argument("--device", default=device, help="cpu, cuda, cuda:N … (default: auto)")
    parser.add_argument(
        "--threads",
        type=bounded_int(1, MAX_THREADS),
        default=DEFAULT_THREADS,
        help=f"torch CPU threads (default {DEFAULT_THREADS}: fastest for these models on a "
        "small or busy machine; see BENCHMARKS.md)",
    )


def add_checkpoint_arguments(
    parser: argparse.ArgumentParser,
    *,
    num_images: int | None = None,
    num_images_help: str = "use only the first N test images (default: all)",
    batch_size: int = 256,
) -> None:
    """``--checkpoint`` plus data, batch, device, threads and output flags (data set from the
    run)."""
    parser.add_argument(
        "--checkpoint", required=True, type=Path, help="a checkpoint written by `train`"
    )
    group = add_data_arguments(parser)
    group.add_argument(
        "--other-dataset",
        action="store_true",
        help="run on a data set other than the one the checkpoint was trained on (by default "
        "that is refused: the numbers would mean nothing)",
    )
    parser.set_defaults(dataset=None)  # default: the data set the checkpoint was trained on
    parser.add_argument(
        "--batch-size",
        type=bounded_int(1, MAX_BATCH),
        default=batch_size,
        help=f"images per batch ({batch_size})",
    )
    parser.add_argument("--num-images", type=positive_int, default=num_images, help=num_images_help)
    add_runtime_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the results (default: the checkpoint's folder)",
    )
