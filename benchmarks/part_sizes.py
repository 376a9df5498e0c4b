"""Benchmark: how the size of a batch's parts moves PASC / (L × ANN), across model widths.

A converted network runs a CPU batch in parts (``ConvertedNetwork.part_bytes``,
``convert/network.py``). This measures, per model and width, PASC / (L × efficient ANN) with
the default rule (about ⌈B/T⌉ images per part, largest tensor between ``part_bytes`` = 4 MiB
and twice that) against ``part_bytes`` = 2 and 8 MiB and the whole batch, interleaved in one
process, CPU time, one thread, the median over rounds. The ANN is the efficient one of
``benchmarks/speed.py`` (BatchNorm folded, inference QCFS). Weights are random, each QCFS θ
set to the 99th percentile of its input on a batch (``gpu_check.calibrate``), so every layer
spikes.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/part_sizes.py \
        --json benchmarks/results/part_sizes.json [--rounds 7] [--widths 0.25,0.5,1.0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed
from gpu_check import calibrate
from pascal_snn import convert
from pascal_snn.io import write_json
from pascal_snn.models import create

MiB = 1 << 20


def measure(name: str, width: float, batch: int, L: int, rounds: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = create(name, 10, in_channels=3, L=L, width=width).eval()
    x = torch.rand(batch, 3, 32, 32)
    calibrate(model, x[:16])
    ann, pasc = speed.efficient_ann(model), convert(model, example_input=x[:1])
    default = pasc.part_bytes
    # the largest tensor of a part: between part_bytes and twice that where the batch allows
    sizes = {"4-8 MiB (default)": default, "2-4 MiB": 2 * MiB, "8-16 MiB": 8 * MiB, "whole": None}

    def run_pasc(label: str) -> Callable[[], object]:
        def run() -> object:
            pasc.part_bytes = sizes[label]
            return pasc(x)

        return run

    runs: dict[str, Callable[[], object]] = {"ann": lambda: [ann(x) for _ in range(L)]}
    runs.update({label: run_pasc(label) for label in sizes})
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.no_grad():
        for f in runs.values():
            f()
        for r in range(rounds):
            order = list(runs)[r % len(runs) :] + list(runs)[: r % len(runs)]
            for k in order:
                t0 = time.thread_time()
                runs[k]()
                times[k].append(time.thread_time() - t0)
    pasc.part_bytes = default
    out = {
        label: statistics.median(t / a for t, a in zip(times[label], times["ann"]))
        for label in sizes
    }
    out["images_per_part_default"] = float(pasc.images_per_part(x))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg16,resnet18")
    parser.add_argument("--widths", default="0.25,0.5,1.0")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--L", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    cpu = speed.cpu_model()
    print(f"{cpu}; torch {torch.__version__}; batch {args.batch}, L {args.L}; CPU time")
    for name in args.models.split(","):
        for width in (float(w) for w in args.widths.split(",")):
            r = measure(name, width, args.batch, args.L, args.rounds)
            results.append({"model": name, "width": width, **r})
            cells = "  ".join(
                f"{k} {v:.3f}" for k, v in r.items() if k != "images_per_part_default"
            )
            print(
                f"{name} w{width}: PASC / (L x ANN): {cells}  "
                f"({r['images_per_part_default']:.0f} images per default part)",
                flush=True,
            )
    if args.json:
        write_json(Path(args.json), {"cpu": cpu, "args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
