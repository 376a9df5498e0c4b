"""``pascal-snn evaluate``: ANN accuracy, PASC equivalence, and the vanilla IF sweep."""

from __future__ import annotations

import argparse
import copy
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import Subset

from pascal_snn.commands.args import DTYPE_NAMES, add_checkpoint_arguments, parse_int_list
from pascal_snn.commands.common import Loaded, load_checkpoint_and_data, progress
from pascal_snn.config import MAX_LEVEL
from pascal_snn.data import dataset_size
from pascal_snn.distributed import (
    all_reduce_sum,
    destroy_distributed,
    init_distributed,
    is_main_process,
    sharded_loader,
)
from pascal_snn.errors import ConfigError
from pascal_snn.evaluation import EquivalenceResult, VanillaSweep, evaluate, first_reaching
from pascal_snn.io import run_folder, write_json
from pascal_snn.qcfs import qcfs_layers

__all__ = ["Evaluation", "add_parser", "evaluate_checkpoint", "run"]

DEFAULT_TIMESTEPS = "1,2,4,8,16,32,64,128,256"
MAX_TIMESTEPS = MAX_LEVEL  # the vanilla network runs T steps one after another


def add_parser(sub: Any) -> argparse.ArgumentParser:
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
        help="ann: the ANN only; pasc (default): the ANN and its PASC network; vanilla: the "
        "ANN and the vanilla IF baseline; both: all three",
    )
    parser.add_argument(
        "--timesteps",
        default=None,
        help=f"vanilla IF timesteps to report, one run up to the largest "
        f"(default: {DEFAULT_TIMESTEPS})",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        default="float64",
        help="arithmetic of the ANN/SNN comparison (default: float64, where agreement is exact)",
    )
    parser.set_defaults(run=run)
    return parser


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate`` measured; :meth:`as_dict` is ``evaluate.json``."""

    checkpoint: str
    dataset: str
    model: str | None
    dtype: str
    images: int
    levels: list[int]
    ann_accuracy: float
    pasc: EquivalenceResult | None = None
    vanilla: VanillaSweep | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "model": self.model,
            "dtype": self.dtype,
            "images": self.images,
            "levels": self.levels,
            "ann_accuracy": self.ann_accuracy,
        }
        if self.pasc is not None:
            out["pasc"] = self.pasc.as_dict()
        if self.vanilla is not None:
            out["vanilla"] = {
                **self.vanilla.as_dict(),
                "timesteps_to_reach_ann": first_reaching(self.vanilla),
            }
        return out


@torch.no_grad()
def ann_counts(
    model: nn.Module, loader: Iterable[Any], dtype: torch.dtype, device: torch.device
) -> tuple[int, int]:
    """``(correct, images)`` of the ANN alone in ``dtype``, summed over processes."""
    ann = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    counts = torch.zeros(2, dtype=torch.int64)
    for images, labels in loader:
        predictions = ann(images.to(device=device, dtype=dtype)).argmax(1).cpu()
        counts += torch.tensor([int((predictions == labels).sum()), len(labels)])
    correct, total = (int(v) for v in all_reduce_sum(counts))
    return correct, total


def _timesteps(args: argparse.Namespace) -> list[int]:
    if args.mode in ("ann", "pasc") and args.timesteps is not None:
        raise ConfigError("--timesteps applies to --mode vanilla or both")
    return parse_int_list(args.timesteps or DEFAULT_TIMESTEPS, "--timesteps", MAX_TIMESTEPS)


def evaluate_checkpoint(args: argparse.Namespace, loaded: Loaded) -> Evaluation:
    """Everything ``evaluate`` reports (``loaded``: the checked checkpoint and data)."""
    timesteps = _timesteps(args)
    init_distributed(loaded.device)
    test_set = loaded.test_set
    if args.num_images is not None:
        test_set = Subset(test_set, range(min(args.num_images, dataset_size(test_set))))
    loader = sharded_loader(test_set, args.batch_size)
    dtype, device, model = getattr(torch, args.dtype), loaded.device, loaded.model
    pasc = vanilla = None
    if args.mode == "ann":
        correct, images = ann_counts(model, progress(loader, f"ANN, {args.dtype}"), dtype, device)
        ann_accuracy = correct / max(images, 1)
    else:  # one pass over the data: the ANN once per batch, one trace for both networks
        parts = {
            "pasc": "ANN and PASC",
            "vanilla": f"ANN and vanilla IF up to T = {max(timesteps)}",
            "both": f"ANN, PASC and vanilla IF up to T = {max(timesteps)}",
        }
        result = evaluate(
            model,
            progress(loader, f"{parts[args.mode]}, {args.dtype}"),
            pasc=args.mode in ("pasc", "both"),
            timesteps=timesteps if args.mode in ("vanilla", "both") else None,
            dtype=dtype,
            device=device,
            reduce=all_reduce_sum,
        )
        pasc, vanilla = result.pasc, result.vanilla
        done = pasc if pasc is not None else vanilla
        assert done is not None
        images, ann_accuracy = done.images, done.ann_accuracy
    return Evaluation(
        checkpoint=str(args.checkpoint),
        dataset=loaded.info.name,
        model=loaded.checkpoint.get("arch", {}).get("name"),
        dtype=args.dtype,
        images=images,
        levels=[layer.L for _, layer in qcfs_layers(model)],
        ann_accuracy=ann_accuracy,
        pasc=pasc,
        vanilla=vanilla,
    )


def print_report(result: Evaluation, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{result.model} on {result.dataset} ({result.dtype})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("test images", str(result.images))
    table.add_row("per-layer L", ",".join(map(str, result.levels)))
    table.add_row("ANN accuracy", f"{100 * result.ann_accuracy:.2f} %")
    pasc = result.pasc
    if pasc is not None:
        table.add_row("PASC SNN accuracy (T = L)", f"{100 * pasc.snn_accuracy:.2f} %")
        table.add_row(
            "ANN↔SNN agreement",
            f"{pasc.agreement}/{pasc.images} ({100 * pasc.agreement_rate:.2f} %)",
        )
        table.add_row("max |logit difference|", f"{pasc.max_abs_logit_diff:.3g}")
        table.add_row("level-boundary cases", str(pasc.boundary_cases))
        table.add_row("unexplained disagreements", str(pasc.unexplained_disagreements))
        if pasc.nonfinite_outputs:
            table.add_row("non-finite outputs (NaN/inf)", str(pasc.nonfinite_outputs))
    console.print(table)
    vanilla = result.vanilla
    if vanilla is not None:
        sweep = Table(title="vanilla IF baseline (QCFS SNN)")
        sweep.add_column("T", justify="right")
        sweep.add_column("accuracy", justify="right")
        sweep.add_column("agreement with ANN", justify="right")
        for t, acc, agree in zip(vanilla.timesteps, vanilla.accuracy, vanilla.agreement_rate):
            sweep.add_row(str(t), f"{100 * acc:.2f} %", f"{100 * agree:.2f} %")
        console.print(sweep)
        reach = first_reaching(vanilla)
        console.print(
            f"vanilla IF reaches the ANN's accuracy at T = {reach}"
            if reach
            else f"vanilla IF stays below the ANN's accuracy up to T = {vanilla.timesteps[-1]}"
        )


def plot_result(result: Evaluation, path: Path) -> None:
    """Vanilla IF accuracy against T with PASC at T = L (needs both parts)."""
    if result.pasc is None or result.vanilla is None:
        raise ValueError("the accuracy-against-timesteps figure needs --mode both")
    levels = result.levels
    uniform = len(set(levels)) == 1
    t_pasc = levels[0] if uniform else sum(levels) / len(levels)
    label = "PASC" if uniform else "PASC (mean per-layer L)"
    from pascal_snn.figures import accuracy_vs_timesteps, save_figure  # matplotlib: on use

    fig = accuracy_vs_timesteps(
        result.vanilla.timesteps,
        result.vanilla.accuracy,
        result.ann_accuracy,
        result.pasc.snn_accuracy,
        t_pasc,
        label,
        vanilla_agreement=result.vanilla.agreement_rate,
    )
    save_figure(fig, path)


def run(args: argparse.Namespace) -> int:
    _timesteps(args)  # every option is checked before anything is loaded
    loaded = load_checkpoint_and_data(args)
    if args.mode in ("pasc", "both"):
        images = dataset_size(loaded.test_set)
        if args.num_images is not None:
            images = min(images, args.num_images)
        loaded.check_memory(args.batch_size, images, getattr(torch, args.dtype))
    main = is_main_process()
    try:
        with run_folder(loaded.out, args.command_line, enabled=main) as out:
            result = evaluate_checkpoint(args, loaded)
            if main:
                write_json(out / "evaluate.json", result.as_dict())
                if result.pasc is not None and result.vanilla is not None:
                    plot_result(result, out / "accuracy_vs_timesteps.png")
                print_report(result)
                print(f"results written to {out}")
    finally:
        destroy_distributed()
    return 0
