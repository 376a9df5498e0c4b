"""Fashion-MNIST headline results (issue 13): what the committed checkpoints do as spiking networks.

For every checkpoint (``--checkpoint NAME=PATH``, trained by the ``pascal-snn train`` commands in
BENCHMARKS.md; the model was selected on 5,000 held-out training images, the test set is used
here and in the run's result.json only):

- ANN and PASC SNN accuracy on all 10,000 test images; agreement and the largest logit
  difference in float64; agreement, boundary cases and unexplained disagreements in float32;
- the vanilla IF baseline (QCFS SNN of Bu et al.) at T = 1 … 256 on the first
  ``--vanilla-images`` test images: accuracy, agreement with the ANN, the T it needs to reach the
  ANN's accuracy;
- SpikingJelly 2.0's ANN→SNN converter on the same weights (QCFS → ReLU; its rate-coding recipe
  as its documentation recommends for accuracy: channel-wise 99.9th-percentile thresholds
  calibrated on 1,000 training images, half-threshold initial membrane potential) at T = L and
  T = 32 on the same images: accuracy and agreement with the ANN. The recipe calibrates on the
  ReLU twin, whose unclipped activations are not the QCFS network's (the twin of a VGG-16 with
  87 % scores 18 %), so each T is run twice: thresholds as calibrated, and every layer's
  thresholds set to its trained θ (what an expert converting a clipped network would do);
- T_norm, T_eff (measured spike rates), latency and the energy ratios on the first
  ``--energy-images`` test images.

Writes ``--json`` (default benchmarks/results/fashion_mnist.json; results accumulate by name)
and prints the markdown table of BENCHMARKS.md. The command and the CPU that produced the
figures are recorded in the JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shlex
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from pascal_snn import QCFS
from pascal_snn.checkpoint import load_model
from pascal_snn.data import build_splits
from pascal_snn.energy import energy_report
from pascal_snn.evaluation import evaluate_equivalence, first_reaching, sweep_vanilla
from pascal_snn.io import write_json
from pascal_snn.qcfs import qcfs_layers

TIMESTEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def relu_twin(model: nn.Module) -> nn.Module:
    """A copy with every QCFS replaced by ReLU (what a SpikingJelly user converts)."""
    twin = copy.deepcopy(model).eval()
    for module in list(twin.modules()):
        for name, child in module.named_children():
            if isinstance(child, QCFS):
                setattr(module, name, nn.ReLU())
    return twin


def set_thresholds(snn: nn.Module, thetas: Sequence[float]) -> None:
    """Give the k-th spiking block of a SpikingJelly network the k-th QCFS threshold θ: its
    input scaler divides by θ, its output scaler multiplies by θ (every channel)."""
    blocks = [m for name, m in snn.named_modules() if hasattr(m, "scaler0")]
    if len(blocks) != len(thetas):
        raise RuntimeError(f"{len(blocks)} SpikingJelly spiking blocks for {len(thetas)} QCFS")
    for block, theta in zip(blocks, thetas):
        with torch.no_grad():
            block.scaler0.scale.fill_(1.0 / theta)
            block.scaler1.scale.fill_(theta)


def spikingjelly_sweep(
    model: nn.Module,
    calibration: Iterable[tuple[torch.Tensor, torch.Tensor]],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    timesteps: Sequence[int],
    thresholds: str = "calibrated",
) -> dict[str, Any]:
    """Accuracy and agreement with ``model`` of SpikingJelly's rate-coded SNN at each T, its
    thresholds ``"calibrated"`` by the recipe or set to the trained ``"theta"``."""
    from spikingjelly.activation_based import ann2snn, functional

    twin = relu_twin(model)
    recipe = ann2snn.RateCodingRecipe(
        dataloader=calibration, mode="99.9%", channel_wise=True, half_threshold=True
    )
    snn = ann2snn.Converter(recipe=recipe).convert(twin).eval()
    if thresholds == "theta":
        set_thresholds(snn, [float(m.theta) for _, m in qcfs_layers(model)])
    steps = sorted(set(timesteps))
    correct = [0] * len(steps)
    agree = [0] * len(steps)
    relu_correct = images = 0
    with torch.no_grad():
        for x, y in batches:
            ann_out = model(x)
            ann_pred = ann_out.argmax(1)
            relu_correct += int((twin(x).argmax(1) == y).sum())
            functional.reset_net(snn)
            total = torch.zeros_like(ann_out)
            for t in range(1, steps[-1] + 1):
                total += snn(x)
                if t in steps:
                    pred = total.argmax(1)  # the mean over t steps has the same argmax
                    i = steps.index(t)
                    correct[i] += int((pred == y).sum())
                    agree[i] += int((pred == ann_pred).sum())
            images += len(y)
    return {
        "timesteps": steps,
        "accuracy": [c / images for c in correct],
        "agreement_with_ann": [a / images for a in agree],
        "relu_twin_accuracy": relu_correct / images,
        "images": images,
        "recipe": "RateCodingRecipe(mode='99.9%', channel_wise=True, half_threshold=True)",
        "thresholds": thresholds,
    }


def evaluate(name: str, path: str, args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    model, checkpoint = load_model(path)
    model.eval()
    config = checkpoint["config"]
    splits = build_splits(
        config["dataset"],
        val_images=config.get("val_images"),
        seed=config.get("val_seed", 0),
        data_dir=args.data_dir,
        image_size=config.get("image_size"),
    )
    test_set = splits.test
    if args.test_images is not None:  # smoke runs only; the figures use all 10,000
        test_set = Subset(test_set, range(min(args.test_images, len(test_set))))
    test = DataLoader(test_set, batch_size=args.batch_size)
    exact64 = evaluate_equivalence(model, test, torch.float64)
    exact32 = evaluate_equivalence(model, test, torch.float32)
    first = Subset(test_set, range(min(args.vanilla_images, len(test_set))))
    first_loader = DataLoader(first, batch_size=args.batch_size)
    sweep = sweep_vanilla(model, first_loader, TIMESTEPS, torch.float32)
    levels = exact64.levels
    uniform = levels[0] if len(set(levels)) == 1 else max(levels)
    calibration = Subset(splits.plain_train, range(1000))
    sj = {
        thresholds: spikingjelly_sweep(
            model,
            DataLoader(calibration, batch_size=args.batch_size),
            first_loader,
            sorted({uniform, 32}),
            thresholds,
        )
        for thresholds in ("calibrated", "theta")
    }
    energy_loader = DataLoader(
        Subset(test_set, range(min(args.energy_images, len(test_set)))),
        batch_size=args.batch_size,
    )
    energy = energy_report(model, energy_loader)
    measured, analytic = energy.measured, energy.analytic
    assert measured is not None  # a loader was given
    return {
        "checkpoint": path,
        "model": checkpoint["arch"]["name"],
        "width": checkpoint["arch"].get("width"),
        "levels": levels,
        "selected_epoch": checkpoint["epoch"],
        "val_acc": next(
            (m["val_acc"] for m in checkpoint["metrics"] if m["epoch"] == checkpoint["epoch"]),
            None,
        ),
        "ann_accuracy": exact64.ann_accuracy,
        "snn_accuracy": exact64.snn_accuracy,
        "float64": exact64.as_dict(),
        "float32": exact32.as_dict(),
        "vanilla": {
            **sweep.as_dict(),
            "timesteps_to_reach_ann": first_reaching(sweep),
        },
        "spikingjelly": sj,
        "energy": {
            "images": energy.images,
            "t_norm": measured.t_norm,
            "t_eff": measured.t_eff,
            "t_norm_analytic": analytic.t_norm,
            "latency_steps": energy.latency.total_steps,
            "spike_rate_b": measured.b,
            "energy_ratio": dict(measured.energy_ratio),
        },
        "seconds": time.perf_counter() - began,
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| model | per-layer L | ANN | PASC | agreement f64 (max diff) | agreement f32 "
        "(boundary, unexplained) | vanilla IF T=4 / 16 / 64 / 256 (agreement at 256) "
        "| vanilla T to reach ANN | SpikingJelly T=L / 32 (agreement): calibrated; θ "
        "| T_norm | T_eff "
        "| latency | energy FP32 / INT8 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        f64, f32, van, sj, e = (
            r["float64"],
            r["float32"],
            r["vanilla"],
            r["spikingjelly"],
            r["energy"],
        )
        acc = dict(zip(van["timesteps"], van["accuracy"]))
        agree = dict(zip(van["timesteps"], van["agreement_with_ann"]))
        vanilla = " / ".join(f"{100 * acc[t]:.1f}" for t in (4, 16, 64, 256))
        reach = van["timesteps_to_reach_ann"] or f"not by {van['timesteps'][-1]}"
        spiking = "; ".join(
            " / ".join(
                f"{100 * a:.1f} ({100 * g:.1f})"
                for a, g in zip(sj[k]["accuracy"], sj[k]["agreement_with_ann"])
            )
            for k in ("calibrated", "theta")
        )
        levels = r["levels"]
        shown = (
            f"{levels[0]} ×{len(levels)}" if len(set(levels)) == 1 else ",".join(map(str, levels))
        )
        t_norm = "–" if e["t_norm"] is None else f"{e['t_norm']:.2f}"
        rows.append(
            f"| {name} | {shown} | {100 * r['ann_accuracy']:.2f} | {100 * r['snn_accuracy']:.2f} "
            f"| {f64['agreement']}/{f64['images']} ({f64['max_abs_logit_diff']:.1e}) "
            f"| {f32['agreement']}/{f32['images']} ({f32['boundary_cases']}, "
            f"{f32['unexplained_disagreements']}) "
            f"| {vanilla} ({100 * agree[256]:.1f}) | {reach} | {spiking} "
            f"| {t_norm} | {e['t_eff']:.2f} | {e['latency_steps']} "
            f"| {e['energy_ratio']['fp32']:.2f} / {e['energy_ratio']['int8']:.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", action="append", required=True, metavar="NAME=PATH", help="repeatable"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--vanilla-images", type=int, default=2000)
    parser.add_argument("--energy-images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--test-images", type=int, default=None, help="smoke runs: first N")
    parser.add_argument("--json", default="benchmarks/results/fashion_mnist.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "benchmarks/results_fashion_mnist.py", *(argv or sys.argv[1:])])
    path = Path(args.json)
    stored = json.loads(path.read_text()) if path.is_file() else {}
    results: dict[str, Any] = stored.get("results", {})
    for item in args.checkpoint:
        name, sep, checkpoint = item.partition("=")
        if not sep:
            parser.error(f"--checkpoint takes NAME=PATH, got {item!r}")
        results[name] = {**evaluate(name, checkpoint, args), "command": command, "cpu": cpu_name()}
        write_json(path, {"results": results})
        print(f"{name}: done in {results[name]['seconds']:.0f} s", file=sys.stderr, flush=True)
    print(table({n: results[n] for n in results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
