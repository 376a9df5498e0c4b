"""``pascal-snn demo``: the whole PASCAL story on built-in data, with a one-page report."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from pascal_snn.commands.common import parse_int_list
from pascal_snn.data import DATASETS
from pascal_snn.demo import DemoSettings, run_demo
from pascal_snn.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    parser.add_argument("--epochs", type=int, default=None, help="epochs per training run")
    parser.add_argument("--levels", type=int, default=4, help="uniform L of the first model (4)")
    parser.add_argument(
        "--cluster-levels",
        default="1,2,4",
        help="one L per AL cluster, smallest for the most tolerant (1,2,4)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, … (default: auto)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the built-in small models run fastest on one)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.epochs is not None and args.epochs < 2:
        raise ConfigError(f"--epochs must be >= 2 (two training phases), got {args.epochs}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if args.levels < 1:
        raise ConfigError(f"--levels must be an integer >= 1, got {args.levels}")
    levels = tuple(parse_int_list(args.cluster_levels, "--cluster-levels"))
    settings = DemoSettings(
        out=args.out,
        dataset=args.dataset,
        data_dir=args.data_dir,
        quick=args.quick,
        levels=args.levels,
        epochs=args.epochs,
        clusters=len(levels),
        cluster_levels=levels,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
    )
    metrics = run_demo(settings)
    summary(metrics)
    print(f"report: {args.out}/report.md")
    return 0


def summary(m: dict) -> None:
    a = m["adaptive"]
    table = Table(title=f"PASCAL demo on {m['dataset']} ({m['seconds']:.0f} s)")
    for column in ("", "per-layer L", "ANN", "PASC SNN", "agreement f64", "T_eff", "latency"):
        table.add_column(column, justify="right")
    for name, part in (("uniform", m), ("adaptive", a)):
        table.add_row(
            name,
            ",".join(map(str, part["levels"])),
            f"{100 * part['ann_accuracy']:.2f} %",
            f"{100 * part['snn_accuracy']:.2f} %",
            f"{100 * part['agreement']:.2f} %",
            f"{part['t_eff']:.2f}",
            str(part["energy"]["latency_steps"]),
        )
    Console().print(table)
    reach = m["vanilla"]["timesteps_to_reach_ann"]
    last = m["vanilla"]["timesteps"][-1]
    Console().print(
        f"vanilla IF needs T = {reach} to reach the ANN's accuracy"
        if reach
        else f"vanilla IF stays below the ANN's accuracy up to T = {last}"
    )
