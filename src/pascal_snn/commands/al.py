"""``pascal-snn al``: AL metric of a trained checkpoint, its clusters and the per-layer L plan.

Runs the model over ``--num-images`` training images (no augmentation, a seeded shuffle),
prints a table (layer, L, A, g, K, M, cluster, new L), and writes ``al.json`` and
``al_metric.png`` (the paper's Figure 1) into ``--out`` (default: the checkpoint's folder).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from pascal_snn.al import LayerResult, Variant, save_metric_plot
from pascal_snn.al.plan import ALReport, plan_levels
from pascal_snn.al.stats import as_alpha
from pascal_snn.commands.args import (
    add_checkpoint_arguments,
    bounded_int,
    parse_int_list,
    positive_int,
)
from pascal_snn.commands.common import load_checkpoint_and_data, progress
from pascal_snn.config import MAX_LEVEL, MAX_SEED, AdaptivePlan
from pascal_snn.data import dataset_size
from pascal_snn.errors import ConfigError
from pascal_snn.io import run_folder, write_json
from pascal_snn.qcfs import QCFS

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "al",
        help="AL metric per QCFS layer, clusters and per-layer L (paper Algorithm 3)",
        description=(
            "Compute the Adaptive Layerwise metric of every QCFS layer of a checkpoint over "
            "training images, cluster the layers with exact 1-D k-means and assign one L per "
            "cluster (highest metric -> smallest L). Writes al.json and al_metric.png."
        ),
    )
    add_checkpoint_arguments(
        parser,
        num_images=AdaptivePlan.num_images,
        num_images_help=f"training images for the statistics ({AdaptivePlan.num_images})",
    )
    parser.add_argument(
        "--seed", type=bounded_int(0, MAX_SEED), default=0, help="seed of the image shuffle (0)"
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="agreement threshold in (0, 1] (default 1/(2*layers); reference-code: 1/5)",
    )
    parser.add_argument(
        "--clusters",
        type=positive_int,
        default=AdaptivePlan.clusters,
        help=f"number of clusters ({AdaptivePlan.clusters})",
    )
    default_levels = ",".join(map(str, AdaptivePlan.cluster_levels))
    parser.add_argument(
        "--cluster-levels",
        default=default_levels,
        help=f"one L per cluster, comma-separated ({default_levels})",
    )
    parser.add_argument(
        "--variant",
        choices=[v.value for v in Variant],
        default=Variant.PAPER.value,
        help="paper (default) or the public reference code's statistic",
    )
    parser.set_defaults(run=run)
    return parser


def parse_cluster_levels(text: str, clusters: int) -> list[int]:
    """``"1,2,4"`` → ``[1, 2, 4]``; ConfigError unless ``clusters`` integers ≥ 1 are given."""
    levels = parse_int_list(text, "--cluster-levels", maximum=MAX_LEVEL)
    if clusters != len(levels):
        raise ConfigError(
            f"--clusters {clusters} needs exactly {clusters} values in --cluster-levels, "
            f"got {len(levels)} ('{text}'); give one L per cluster"
        )
    return levels


def _validate(args: argparse.Namespace) -> list[int]:
    levels = parse_cluster_levels(args.cluster_levels, args.clusters)
    if args.alpha is not None:
        try:
            as_alpha(args.alpha)
        except ValueError as exc:
            raise ConfigError(f"--alpha: {exc}") from None
    return levels


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "nan"
    return f"{value:.4g}"


def _print_table(results: list[LayerResult], new_levels: list[int], title: str) -> None:
    table = Table(title=title)
    for column in ("layer", "L", "A", "g", "K", "M", "cluster", "new L"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for r, new in zip(results, new_levels):
        s = r.stats
        metric = _fmt(s.metric) + (" (constant)" if s.constant else "")
        table.add_row(
            r.name,
            str(r.L),
            _fmt(s.agreement),
            _fmt(s.skewness),
            _fmt(s.kurtosis),
            metric,
            str(r.cluster),
            str(new),
        )
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    levels = _validate(args)
    loaded = load_checkpoint_and_data(args)
    layers = sum(isinstance(m, QCFS) for m in loaded.model.modules())
    if args.clusters > layers:
        raise ConfigError(
            f"--clusters {args.clusters}: the model has {layers} QCFS layers, so at most "
            f"{layers} clusters; give fewer --clusters and --cluster-levels"
        )
    images = min(args.num_images, dataset_size(loaded.train_set))
    with run_folder(loaded.out, args.command_line) as out:
        plan = plan_levels(
            loaded.model,
            loaded.train_set,
            levels,
            num_images=args.num_images,
            alpha=args.alpha,
            variant=args.variant,
            batch_size=args.batch_size,
            seed=args.seed,
            device=loaded.device,
            wrap=lambda batches: progress(batches, "AL metric", images),
        )
        title = (
            f"AL metric ({plan.variant.value}) of {args.checkpoint.name} on {plan.num_images} "
            f"{loaded.info.name} images"
        )
        _print_table(list(plan.layers), list(plan.levels), title)
        report = ALReport(str(args.checkpoint), loaded.info.name, plan)
        write_json(out / "al.json", report.as_dict())
        ylabel = "AL metric M" if plan.variant is Variant.PAPER else "AL metric M (reference code)"
        save_metric_plot(out / "al_metric.png", list(plan.layers), list(plan.levels), title, ylabel)
    print(f"per-layer L: {list(plan.levels)}")
    print(f"wrote {out / 'al.json'} and {out / 'al_metric.png'}")
    return 0
