"""``pascal-snn demo``: the whole PASCAL story on built-in data, with a one-page report."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from pascal_snn.commands.args import (
    add_runtime_arguments,
    bounded_int,
    parse_int_list,
)
from pascal_snn.config import MAX_EPOCHS, MAX_LEVEL, MAX_SEED, AdaptivePlan, RunConfig
from pascal_snn.data import DATASETS

if TYPE_CHECKING:  # the demo module imports matplotlib: loaded only when the demo runs
    from pascal_snn.demo import DemoMetrics, DemoSettings

__all__ = ["add_parser", "run", "settings_from_args", "summary"]

EVAL_BATCH = 256  # pascal_snn.demo evaluates the test images in batches of 256


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "demo",
        help="train, convert, compare, adapt and measure on built-in data; writes a report",
        description="Train a QCFS ANN, convert it with PASC, check equivalence, sweep the vanilla "
        "IF baseline, run Adaptive Layerwise quantization (Algorithm 4) and measure spike "
        "rates, operations and energy. Writes report.md, metrics.json and figures to --out.",
    )
    parser.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    parser.add_argument(
        "--dataset",
        choices=list(DATASETS),
        default="digits",
        help="data set (default: digits, built in; no download)",
    )
    parser.add_argument("--data-dir", default=None, help="folder of the data set")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few epochs and fewer timesteps: a smoke run of every stage",
    )
    parser.add_argument(
        "--epochs",
        type=bounded_int(2, MAX_EPOCHS),
        default=None,
        help="epochs per training run, at least 2 (two training phases)",
    )
    parser.add_argument(
        "--levels",
        type=bounded_int(1, MAX_LEVEL),
        default=RunConfig.levels,
        help=f"uniform L of the first model ({RunConfig.levels})",
    )
    default_levels = ",".join(map(str, AdaptivePlan.cluster_levels))
    parser.add_argument(
        "--cluster-levels",
        default=default_levels,
        help=f"one L per AL cluster, smallest for the most tolerant ({default_levels})",
    )
    parser.add_argument(
        "--seed", type=bounded_int(0, MAX_SEED), default=RunConfig.seed, help="random seed (0)"
    )
    add_runtime_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    """The demo's settings from its flags (everything validated here, before any work)."""
    from pascal_snn.demo import DemoSettings

    levels = tuple(parse_int_list(args.cluster_levels, "--cluster-levels", maximum=MAX_LEVEL))
    return DemoSettings(
        out=args.out,
        quick=args.quick,
        train=RunConfig(
            dataset=args.dataset,
            data_dir=args.data_dir,
            levels=args.levels,
            epochs=args.epochs,
            seed=args.seed,
            device=args.device,
        ),
        adaptive=AdaptivePlan(clusters=len(levels), cluster_levels=levels),
        threads=args.threads,
        command=args.command_line,
    )


def _check_memory(settings: DemoSettings) -> None:
    """The uniform model's PASC network must fit in memory at the demo's batch size (the
    check happens before training, not after it)."""
    import torch

    from pascal_snn import models
    from pascal_snn.distributed import resolve_device
    from pascal_snn.memory import check_fits

    train, info = settings.train, DATASETS[settings.train.dataset]
    model = models.create(
        train.model or info.default_model,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        L=train.levels,
        width=train.width,
        **train.model_kwargs,
    )
    device = resolve_device(train.device)
    check_fits(
        model, info.input_shape, EVAL_BATCH, torch.float64, device, "choose a smaller --levels"
    )


def run(args: argparse.Namespace) -> int:
    from pascal_snn.commands.common import progress
    from pascal_snn.demo import run_demo
    from pascal_snn.io import run_folder

    settings = settings_from_args(args)
    _check_memory(settings)
    with run_folder(settings.out, args.command_line):
        metrics = run_demo(settings, wrap=lambda batches, label: progress(batches, label))
    summary(metrics)
    print(f"report: {args.out}/report.md")
    return 0


def summary(m: DemoMetrics) -> None:
    table = Table(title=f"PASCAL demo on {m.dataset} ({m.seconds:.0f} s)")
    for column in ("", "per-layer L", "ANN", "PASC SNN", "agreement f64", "T_eff", "latency"):
        table.add_column(column, justify="right")
    for name, part in (("uniform", m.uniform), ("adaptive", m.adaptive)):
        table.add_row(
            name,
            ",".join(map(str, part.levels)),
            f"{100 * part.ann_accuracy:.2f} %",
            f"{100 * part.snn_accuracy:.2f} %",
            f"{100 * part.agreement:.2f} %",
            f"{part.t_eff:.2f}",
            str(part.energy.latency_steps),
        )
    console = Console()
    console.print(table)
    reach = m.timesteps_to_reach_ann
    console.print(
        f"vanilla IF needs T = {reach} to reach the ANN's accuracy"
        if reach
        else f"vanilla IF stays below the ANN's accuracy up to T = {m.vanilla.timesteps[-1]}"
    )
