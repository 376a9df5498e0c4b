"""Fashion-MNIST results: VGG-16 and ResNet-18 (width 0.25), uniform L = 4 and AL (χ = 3).

What it measures, per model: ANN accuracy, PASC SNN accuracy and ANN↔SNN agreement (float64 and
float32, all 10,000 test images); the vanilla IF baseline at T = 1…256 on the first
``--vanilla-images`` test images and the T it needs to reach the ANN; the AL plan (levels 1, 2, 4)
and the retrained model (Algorithm 4, phase 0 = the uniform model); T_norm / T_eff, latency,
spike rates and energy ratios measured on ``--energy-images`` test images.

Each model runs the library's demo pipeline (``pascal_snn.demo.run_demo``) into
``runs/fashion-mnist/<model>/`` (report.md, metrics.json, figures), then this script writes
``benchmarks/results/fashion_mnist.json`` and prints the markdown table for BENCHMARKS.md.
Images are zero-padded to 32×32 (CIFAR-style networks). Budget: ``--epochs`` per training run,
optionally on a fixed random subset of the training images (``--train-images``) and the first
``--test-images`` test images. The figures in BENCHMARKS.md (VGG-16 77.55 % = PASC 77.55 %,
ResNet-18 74.95 % = PASC 74.95 %, 2000/2000 agreement in float64 and float32; vanilla IF
61.0 % / 65.0 % at T = 256) came from, in 9.4 and 13.5 minutes on 2 CPU cores:

    python benchmarks/results_fashion_mnist.py --models vgg16 --epochs 3 --test-images 2000 \
        --lr 0.02 --vanilla-images 300 --energy-images 300 --threads 2
    python benchmarks/results_fashion_mnist.py --models resnet18 --epochs 3 --train-images 10000 \
        --test-images 2000 --lr 0.02 --vanilla-images 300 --energy-images 300 --threads 1
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from pascal_snn.config import AdaptivePlan, RunConfig
from pascal_snn.demo import DemoSettings, run_demo
from pascal_snn.io import write_json

TIMESTEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def table(results: dict[str, dict]) -> str:
    rows = [
        "| model | L per layer | ANN acc. | PASC acc. | agreement f64 | agreement f32 (boundary) "
        "| vanilla acc. T=4 / 16 / 64 / 256 | vanilla T to reach ANN | T_norm | T_eff | latency "
        "| energy ratio FP32 / INT8 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results.items():
        van = m["vanilla"]
        acc = dict(zip(van["timesteps"], van["accuracy"]))
        vanilla = " / ".join(f"{100 * acc[t]:.1f}" for t in (4, 16, 64, 256) if t in acc)
        reach = van["timesteps_to_reach_ann"] or f"not by {van['timesteps'][-1]}"
        for label, part in (("uniform", m), ("AL χ=3 {1,2,4}", m["adaptive"])):
            f64, f32, e = part["float64"], part["float32"], part["energy"]
            t_norm = "–" if e["t_norm"] is None else f"{e['t_norm']:.2f}"
            rows.append(
                f"| {name} ({label}) | {','.join(map(str, part['levels']))} "
                f"| {100 * part['ann_accuracy']:.2f} | {100 * part['snn_accuracy']:.2f} "
                f"| {f64['agreement']}/{f64['images']} "
                f"| {f32['agreement']}/{f32['images']} ({f32['boundary_cases']}) "
                f"| {vanilla if label == 'uniform' else '–'} "
                f"| {reach if label == 'uniform' else '–'} "
                f"| {t_norm} | {e['t_eff']:.2f} | {e['latency_steps']} "
                f"| {e['energy_ratio']['fp32']:.2f} / {e['energy_ratio']['int8']:.2f} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg16,resnet18")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="runs/fashion-mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--vanilla-images", type=int, default=1000)
    parser.add_argument("--energy-images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: recipe)")
    parser.add_argument(
        "--test-images",
        type=int,
        default=None,
        help="use the first N test images for every figure (default: all 10,000)",
    )
    parser.add_argument(
        "--train-images",
        type=int,
        default=None,
        help="train on a fixed random subset of this many images (default: all 60,000)",
    )
    parser.add_argument("--json", default="benchmarks/results/fashion_mnist.json")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/results_fashion_mnist.py", *(argv or sys.argv[1:])])
    results = {}
    for name in args.models.split(","):
        settings = DemoSettings(
            out=str(Path(args.out) / name),
            train=RunConfig(
                dataset="fashion-mnist",
                data_dir=args.data_dir,
                model=name,
                width=0.25,
                image_size=32,
                epochs=args.epochs,
                levels=4,
                train_images=args.train_images,
                lr=args.lr,
            ),
            adaptive=AdaptivePlan(clusters=3, cluster_levels=(1, 2, 4)),
            timesteps=TIMESTEPS,
            vanilla_images=args.vanilla_images,
            energy_images=args.energy_images,
            threads=args.threads,
            test_images=args.test_images,
            command=command,
        )
        metrics = run_demo(settings).as_dict()
        results[name] = {**metrics, "train_images_used": args.train_images or 60000}
        # several invocations (e.g. one per model) accumulate in one file
        path = Path(args.json)
        stored = json.loads(path.read_text())["results"] if path.is_file() else {}
        stored.update(results)
        write_json(path, {"results": stored})
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
