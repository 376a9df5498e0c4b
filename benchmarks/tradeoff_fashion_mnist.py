"""Accuracy against T_eff and energy: Adaptive Layerwise L against uniform L (issue 13 item 4).

Reads the run folders that ``benchmarks/tradeoff_train.sh`` trains (cnn6 on Fashion-MNIST, the
same recipe and epoch budget for every run, three seeds): uniform L ∈ {1, 2, 4, 8} and Algorithm 4
plans χ = 2 {1,4}, χ = 3 {1,2,4}, χ = 2 {2,8}, χ = 3 {2,4,8}. For each run's selected model
(best validation epoch at its final levels):

- test accuracy of the ANN and of its PASC SNN on all 10,000 test images (float64; they agree
  on every image, which is checked and recorded);
- T_eff (Eq. 16, measured spike rates) and the FP32 / INT8 energy ratio ANN/SNN on the first
  ``--energy-images`` test images; latency in neuron steps.

Then mean ± standard deviation over seeds per configuration → ``--json``, a markdown table on
stdout and ``--figure`` (accuracy against T_eff, accuracy against energy ratio, error bars).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from pascal_snn.checkpoint import load_model
from pascal_snn.data import build_splits
from pascal_snn.energy import energy_report
from pascal_snn.evaluation import evaluate_equivalence
from pascal_snn.figures import save_figure
from pascal_snn.io import write_json

CONFIGS = {  # label → run-folder prefix
    "uniform L=1": "uniform-L1",
    "uniform L=2": "uniform-L2",
    "uniform L=4": "uniform-L4",
    "uniform L=8": "uniform-L8",
    "AL χ=2 {1,4}": "al-1-4",
    "AL χ=3 {1,2,4}": "al-1-2-4",
    "AL χ=2 {2,8}": "al-2-8",
    "AL χ=3 {2,4,8}": "al-2-4-8",
}


def measure(run: Path, energy_images: int, test_loader: DataLoader) -> dict[str, Any]:
    model, checkpoint = load_model(run / "best.pt")
    exact = evaluate_equivalence(model, test_loader, torch.float64)
    subset = Subset(test_loader.dataset, range(energy_images))
    energy = energy_report(model, DataLoader(subset, batch_size=test_loader.batch_size))
    measured = energy.measured
    assert measured is not None  # a loader was given
    return {
        "run": str(run),
        "levels": exact.levels,
        "selected_epoch": checkpoint["epoch"],
        "ann_accuracy": exact.ann_accuracy,
        "snn_accuracy": exact.snn_accuracy,
        "agreement": exact.agreement,
        "images": exact.images,
        "t_eff": measured.t_eff,
        "energy_fp32": measured.energy_ratio["fp32"],
        "energy_int8": measured.energy_ratio["int8"],
        "latency": energy.latency.total_steps,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(key: str) -> tuple[float, float]:
        values = [r[key] for r in runs]
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    out: dict[str, Any] = {
        "seeds": len(runs),
        "agreement": sum(r["agreement"] for r in runs),
        "images": sum(r["images"] for r in runs),
        "levels": [r["levels"] for r in runs],
    }
    for key in ("snn_accuracy", "t_eff", "energy_fp32", "energy_int8", "latency"):
        out[key], out[f"{key}_std"] = stats(key)
    return out


def figure(summary: dict[str, dict[str, Any]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, xlabel in (
        (axes[0], "t_eff", "T_eff (energy-normalised timesteps, measured spike rates)"),
        (axes[1], "energy_fp32", "energy ratio ANN / SNN (FP32, higher is better)"),
    ):
        for label, s in summary.items():
            adaptive = label.startswith("AL")
            ax.errorbar(
                s[key],
                100 * s["snn_accuracy"],
                xerr=s[f"{key}_std"],
                yerr=100 * s["snn_accuracy_std"],
                fmt="s" if adaptive else "o",
                color="tab:red" if adaptive else "tab:blue",
                capsize=3,
            )
            ax.annotate(label, (s[key], 100 * s["snn_accuracy"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy of the PASC SNN = ANN (%)")
    fig.suptitle("cnn6 on Fashion-MNIST: AL plans (red squares) against uniform L (blue)")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/tradeoff")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--energy-images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default="benchmarks/results/tradeoff_fashion_mnist.json")
    parser.add_argument("--figure", default="benchmarks/results/tradeoff_fashion_mnist.png")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    splits = build_splits("fashion-mnist")
    test_loader = DataLoader(splits.test, batch_size=500)
    per_run: dict[str, list[dict[str, Any]]] = {}
    for label, prefix in CONFIGS.items():
        for seed in seeds:
            run = Path(args.runs) / f"{prefix}-s{seed}"
            if not (run / "result.json").is_file():
                print(f"missing or unfinished: {run}", file=sys.stderr)
                continue
            per_run.setdefault(label, []).append(measure(run, args.energy_images, test_loader))
            print(f"{run}: {per_run[label][-1]['snn_accuracy']:.4f}", file=sys.stderr, flush=True)
    summary = {label: summarise(runs) for label, runs in per_run.items()}
    script = "benchmarks/tradeoff_fashion_mnist.py"
    command = shlex.join(["python", script, *(argv or sys.argv[1:])])
    write_json(Path(args.json), {"command": command, "summary": summary, "runs": per_run})
    save_figure(figure(summary), Path(args.figure))
    print(
        "| configuration | per-layer L (each seed) | SNN = ANN (f64) | test accuracy (%) | T_eff "
        "| energy ratio FP32 | latency |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, s in summary.items():
        levels = " / ".join(",".join(map(str, plan)) for plan in s["levels"])
        print(
            f"| {label} | {levels} | {s['agreement']}/{s['images']} "
            f"| {100 * s['snn_accuracy']:.2f} ± "
            f"{100 * s['snn_accuracy_std']:.2f} | {s['t_eff']:.2f} ± {s['t_eff_std']:.2f} "
            f"| {s['energy_fp32']:.2f} ± {s['energy_fp32_std']:.2f} | {s['latency']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
