"""``pascal-snn train``: train a QCFS network into a run folder (checkpoints, metrics, config).

Values come from, highest first: explicit flags, ``--config run.yaml``, the data set's recipe,
built-in defaults. ``--resume`` continues ``RUN_DIR/last.pt`` with the run's own settings.
Under ``torchrun --nproc_per_node=N -m pascal_snn train …`` it trains with DDP.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pascal_snn import distributed
from pascal_snn.checkpoint import load_checkpoint
from pascal_snn.config import (
    RUN_DEFINING,
    RunConfig,
    check_same_run,
    load_yaml,
    parse_levels,
)
from pascal_snn.data import add_data_arguments
from pascal_snn.errors import ConfigError
from pascal_snn.training import LAST, train

__all__ = ["add_parser", "config_from_args", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train a QCFS network (the ANN) with checkpoints and resume",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="model name (default: the data set's default model)")
    parser.add_argument(
        "--levels",
        help="quantization step L: one integer for every QCFS layer (e.g. 4) or one per "
        "layer in forward order (e.g. 4,4,2,2); default 4",
    )
    parser.add_argument("--epochs", type=int, help="number of epochs (default: data set recipe)")
    parser.add_argument(
        "--batch-size", type=int, help="batch size per process (default: data set recipe)"
    )
    parser.add_argument("--lr", type=float, help="initial learning rate (default: recipe)")
    parser.add_argument("--weight-decay", type=float, help="SGD weight decay (default: recipe)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--width", type=float, help="channel width multiplier (default 1.0)")
    parser.add_argument("--out", metavar="RUN_DIR", help="run folder (required)")
    parser.add_argument("--config", metavar="YAML", help="run configuration file (YAML)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in RUN_DIR from its last.pt"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA if available)")
    parser.add_argument("--workers", type=int, help="data loader worker processes (default 0)")
    add_data_arguments(parser)
    # Unset flags must not override the YAML file or the data set's recipe.
    parser.set_defaults(run=run, dataset=None, data_dir=None, download=None, image_size=None)
    return parser


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    keys = set(RunConfig.keys())
    values = {k: v for k, v in vars(args).items() if k in keys and v is not None}
    if args.levels is not None:
        values["levels"] = parse_levels(args.levels)
    if values.get("download") is False:  # store_true left unset
        del values["download"]
    return values


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's configuration: flags over ``--config`` YAML; on ``--resume`` the run's own."""
    given = {**(load_yaml(args.config) if args.config else {}), **_explicit(args)}
    if not given.get("out"):
        raise ConfigError("give the run folder with --out RUN_DIR")
    if not args.resume:
        return RunConfig().merged(given)
    last = Path(given["out"]) / LAST
    if not last.is_file():
        raise ConfigError(
            f"nothing to resume: '{last}' does not exist; run without --resume to start"
        )
    stored = RunConfig.from_dict(load_checkpoint(last)["config"])
    check_same_run(stored, given, str(given["out"]))
    return stored.merged({k: v for k, v in given.items() if k not in RUN_DEFINING})


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        result = train(config, resume=args.resume)
        if distributed.is_main_process():
            _report(result)
    finally:
        distributed.destroy_distributed()
    return 0


def _report(result: dict[str, Any]) -> None:
    epochs = result["epochs"]
    if result["already_finished"]:
        print(f"run '{result['run_dir']}' already finished all {epochs} epochs; nothing to do")
    print(
        f"ANN test accuracy: {result['test_acc']:.2%} after {epochs} epochs "
        f"(best {result['best_acc']:.2%} at epoch {result['best_epoch']})"
    )
    print(f"run folder: {result['run_dir']}")
