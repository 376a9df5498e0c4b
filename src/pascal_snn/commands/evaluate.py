"""``pascal-snn evaluate``: ANN accuracy, PASC equivalence, and the vanilla IF sweep."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import Subset

from pascal_snn.commands.common import (
    add_checkpoint_arguments,
    load_checkpoint_and_data,
    parse_int_list,
)
from pascal_snn.distributed import (
    all_reduce_sum,
    destroy_distributed,
    init_distributed,
    is_main_process,
    sharded_loader,
)
from pascal_snn.errors import ConfigError
from pascal_snn.evaluation import evaluate_equivalence, first_reaching, sweep_vanilla
from pascal_snn.figures import accuracy_vs_timesteps, save_figure
from pascal_snn.io import write_json

DEFAULT_TIMESTEPS = "1,2,4,8,16,32,64,128,256"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="ANN accuracy, PASC equivalence and the vanilla IF baseline of a checkpoint",
        description="Convert a trained checkpoint and compare the spiking network with the ANN: "
        "accuracy, prediction agreement, largest logit difference, float32 boundary cases, and "
        "the vanilla IF baseline's accuracy against timesteps.",
    )
    add_checkpoint_arguments(parser)
    parser.add_argument(
        "--mode",
        choices=["ann", "pasc", "vanilla", "both"],
        default="pasc",
        help="what to evaluate besides the ANN (default: pasc; both = pasc + vanilla)",
    )
    parser.add_argument(
        "--timesteps",
        default=None,
        help=f"vanilla IF timesteps to report, one run up to the largest "
        f"(default: {DEFAULT_TIMESTEPS})",
    )
    parser.add_argument(
        "--dtype",
        choices=list(DTYPES),
        default="float64",
        help="arithmetic of the ANN/SNN comparison (default: float64, where agreement is exact)",
    )
    parser.set_defaults(run=run)


def evaluate_checkpoint(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """Everything ``evaluate`` reports, as a dict, and the output folder."""
    if args.mode in ("ann", "pasc") and args.timesteps is not None:
        raise ConfigError("--timesteps applies to --mode vanilla or both")
    timesteps = parse_int_list(args.timesteps or DEFAULT_TIMESTEPS, "--timesteps")
    loaded = load_checkpoint_and_data(args)
    init_distributed(loaded.device)
    test_set = loaded.test_set
    if args.num_images is not None:
        test_set = Subset(test_set, range(min(args.num_images, len(test_set))))  # type: ignore[arg-type]
    loader = sharded_loader(test_set, args.batch_size)
    dtype = DTYPES[args.dtype]
    model = loaded.model
    result: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "dataset": loaded.info.name,
        "model": loaded.checkpoint.get("arch", {}).get("name"),
        "dtype": args.dtype,
    }
    equivalence = evaluate_equivalence(
        model, loader, dtype=dtype, device=loaded.device, reduce=all_reduce_sum
    )
    result.update(
        images=equivalence.images,
        levels=equivalence.levels,
        ann_accuracy=equivalence.ann_accuracy,
    )
    if args.mode != "ann":
        result["pasc"] = equivalence.as_dict()
    if args.mode in ("vanilla", "both"):
        sweep = sweep_vanilla(
            model, loader, timesteps, dtype=dtype, device=loaded.device, reduce=all_reduce_sum
        )
        result["vanilla"] = sweep.as_dict()
        result["vanilla"]["timesteps_to_reach_ann"] = first_reaching(sweep)
    return result, loaded.out


def print_report(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{result['model']} on {result['dataset']} ({result['dtype']})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("test images", str(result["images"]))
    table.add_row("per-layer L", ",".join(map(str, result["levels"])))
    table.add_row("ANN accuracy", f"{100 * result['ann_accuracy']:.2f} %")
    pasc = result.get("pasc")
    if pasc:
        table.add_row("PASC SNN accuracy (T = L)", f"{100 * pasc['snn_accuracy']:.2f} %")
        table.add_row(
            "ANN↔SNN agreement",
            f"{pasc['agreement']}/{pasc['images']} ({100 * pasc['agreement_rate']:.2f} %)",
        )
        table.add_row("max |logit difference|", f"{pasc['max_abs_logit_diff']:.3g}")
        table.add_row("level-boundary cases", str(pasc["boundary_cases"]))
        table.add_row("unexplained disagreements", str(pasc["unexplained_disagreements"]))
    console.print(table)
    vanilla = result.get("vanilla")
    if vanilla:
        sweep = Table(title="vanilla IF baseline (QCFS SNN)")
        sweep.add_column("T", justify="right")
        sweep.add_column("accuracy", justify="right")
        sweep.add_column("agreement with ANN", justify="right")
        for t, acc, agree in zip(
            vanilla["timesteps"], vanilla["accuracy"], vanilla["agreement_with_ann"]
        ):
            sweep.add_row(str(t), f"{100 * acc:.2f} %", f"{100 * agree:.2f} %")
        console.print(sweep)
        reach = vanilla["timesteps_to_reach_ann"]
        console.print(
            f"vanilla IF reaches the ANN's accuracy at T = {reach}"
            if reach
            else f"vanilla IF stays below the ANN's accuracy up to T = {vanilla['timesteps'][-1]}"
        )


def plot_result(result: dict[str, Any], path: Path) -> None:
    levels = result["levels"]
    uniform = len(set(levels)) == 1
    t_pasc = levels[0] if uniform else sum(levels) / len(levels)
    label = "PASC" if uniform else "PASC (mean per-layer L)"
    fig = accuracy_vs_timesteps(
        result["vanilla"]["timesteps"],
        result["vanilla"]["accuracy"],
        result["ann_accuracy"],
        result["pasc"]["snn_accuracy"],
        t_pasc,
        label,
        vanilla_agreement=result["vanilla"]["agreement_with_ann"],
    )
    save_figure(fig, path)


def run(args: argparse.Namespace) -> int:
    try:
        result, out = evaluate_checkpoint(args)
        if is_main_process():
            write_json(out / "evaluate.json", result)
            if "vanilla" in result and "pasc" in result:
                plot_result(result, out / "accuracy_vs_timesteps.png")
            print_report(result)
            print(f"results written to {out}")
    finally:
        destroy_distributed()
    return 0
