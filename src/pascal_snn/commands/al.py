"""``pascal-snn al``: AL metric of a trained checkpoint, its clusters and the per-layer L plan.

Runs the model over ``--num-images`` training images (no augmentation, a seeded shuffle),
prints a table (layer, L, A, g, K, M, cluster, new L), and writes ``al.json`` and
``al_metric.png`` (the paper's Figure 1) into ``--out`` (default: the checkpoint's folder).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from pascal_snn.al import LayerResult, Variant, save_metric_plot
from pascal_snn.al.plan import plan_levels
from pascal_snn.al.stats import as_alpha
from pascal_snn.commands.common import add_checkpoint_arguments
from pascal_snn.errors import ConfigError

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
        parser, num_images=3000, num_images_help="training images for the statistics (3000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the image shuffle (0)")
    parser.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="agreement threshold in (0, 1] (default 1/(2*layers); reference-code: 1/5)",
    )
    parser.add_argument("--clusters", type=int, default=3, help="number of clusters (3)")
    parser.add_argument(
        "--cluster-levels", default="1,2,4", help="one L per cluster, comma-separated (1,2,4)"
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
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--cluster-levels must be comma-separated integers >= 1 such as 1,2,4; got '{text}'"
        ) from None
    if not levels or any(v < 1 for v in levels):
        raise ConfigError(
            f"--cluster-levels must be comma-separated integers >= 1 such as 1,2,4; got '{text}'"
        )
    if clusters < 1 or clusters != len(levels):
        raise ConfigError(
            f"--clusters {clusters} needs exactly {clusters} values in --cluster-levels, "
            f"got {len(levels)} ('{text}'); give one L per cluster"
        )
    return levels


def _validate(args: argparse.Namespace) -> list[int]:
    levels = parse_cluster_levels(args.cluster_levels, args.clusters)
    if args.num_images < 1:
        raise ConfigError(f"--num-images must be >= 1, got {args.num_images}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.alpha is not None:
        try:
            as_alpha(args.alpha)
        except ValueError as exc:
            raise ConfigError(f"--alpha: {exc}") from None
    return levels


def _load_data(args: argparse.Namespace, checkpoint: dict[str, Any]) -> Any:
    from pascal_snn.commands.common import checkpoint_datasets

    train, _, info = checkpoint_datasets(args, checkpoint)
    return info.name, train


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "nan"
    return f"{value:.4g}"


def _print_table(results: list[LayerResult], new_levels: list[int], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

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
    levels = _validate(args)  # before anything slow is imported or loaded

    from pascal_snn.checkpoint import load_model
    from pascal_snn.distributed import resolve_device
    from pascal_snn.io import ensure_dir, write_json

    model, checkpoint = load_model(args.checkpoint, map_location="cpu")
    dataset_name, train = _load_data(args, checkpoint)
    device = resolve_device(args.device)
    model.to(device)
    plan = plan_levels(
        model,
        train,
        levels,
        num_images=args.num_images,
        alpha=args.alpha,
        variant=args.variant,
        batch_size=args.batch_size,
        seed=args.seed,
        device=device,
    )
    title = (
        f"AL metric ({plan.variant.value}) of {args.checkpoint.name} on {plan.num_images} "
        f"{dataset_name} images"
    )
    _print_table(list(plan.layers), list(plan.levels), title)
    out = ensure_dir(args.out if args.out is not None else args.checkpoint.resolve().parent)
    report = {"checkpoint": str(args.checkpoint), "dataset": dataset_name, **plan.as_dict()}
    write_json(out / "al.json", report)
    ylabel = "AL metric M" if plan.variant is Variant.PAPER else "AL metric M (reference code)"
    save_metric_plot(out / "al_metric.png", list(plan.layers), list(plan.levels), title, ylabel)
    print(f"per-layer L: {list(plan.levels)}")
    print(f"wrote {out / 'al.json'} and {out / 'al_metric.png'}")
    return 0
