"""Benchmark: where a PASC forward and L passes of the efficient ANN spend their time, by kind
of layer (convolution/linear, pooling, neuron, the rest), measured with forward hooks.

VGG-16 or ResNet-18 (CIFAR layout, width 0.25, L = 4) with the weights of
``benchmarks/speed.py --weights``, batch 64 of 32×32 inputs, one thread, CPU time; medians of 5
rounds. The ANN is speed.py's efficient ANN (BatchNorm folded, inference QCFS). Hooks add the
same per-call cost to both networks.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/time_breakdown.py --weights /tmp/perf/w \
        --model vgg16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed
from pascal_snn import QCFS, convert
from pascal_snn.models import create
from pascal_snn.spiking import MatMulLayer, PascIF

KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    ((PascIF, QCFS), "neuron"),
    ((MatMulLayer, nn.Conv2d, nn.Linear), "conv/linear"),
    ((nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d), "pooling"),
)


def kind_of(module: nn.Module, inside_matmul: bool) -> str | None:
    if inside_matmul:  # a PASC convolution is timed by the MatMulLayer around it
        return None
    for types, name in KINDS:
        if isinstance(module, types):
            return name
    return None


def timed(net: nn.Module, x: torch.Tensor, passes: int) -> tuple[float, Counter[str]]:
    spent: Counter[str] = Counter()
    started: dict[int, float] = {}
    wrapped = {id(m.op) for m in net.modules() if isinstance(m, MatMulLayer)}
    handles = []
    for module in net.modules():
        kind = kind_of(module, id(module) in wrapped)
        if kind is None:
            continue
        handles.append(
            module.register_forward_pre_hook(
                lambda m, i: started.__setitem__(id(m), time.thread_time())
            )
        )
        handles.append(
            module.register_forward_hook(
                lambda m, i, o, k=kind: spent.update({k: time.thread_time() - started[id(m)]})
            )
        )
    t0 = time.thread_time()
    for _ in range(passes):
        net(x)
    total = time.thread_time() - t0
    for handle in handles:
        handle.remove()
    return total, spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="speed.py's weights folder")
    parser.add_argument("--model", default="vgg16", choices=["vgg16", "resnet18"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    L = 4
    model = create(args.model, 10, in_channels=3, L=L, width=0.25)
    path = Path(args.weights) / f"{args.model}-L4-w0.25-fashion-mnist-400steps.pt"
    model.load_state_dict(torch.load(path, weights_only=True))
    model.eval()
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ann, pasc = speed.efficient_ann(model), convert(model, example_input=x[:1])
    rounds: dict[str, list[tuple[float, Counter[str]]]] = {"ann": [], "pasc": []}
    with torch.no_grad():
        for net in (ann, pasc):
            net(x)
        for _ in range(args.rounds):
            rounds["ann"].append(timed(ann, x, L))
            rounds["pasc"].append(timed(pasc, x, 1))
    print(f"{speed.cpu_model()}; torch {torch.__version__}; {args.model}, batch 64, L {L}")
    for label, runs in (("L ANN passes", rounds["ann"]), ("PASC forward", rounds["pasc"])):
        total = statistics.median(t for t, _ in runs) * 1e3
        kinds = {name: statistics.median(c[name] for _, c in runs) * 1e3 for _, name in KINDS}
        rest = total - sum(kinds.values())
        cells = ", ".join(f"{k} {v:.1f}" for k, v in kinds.items())
        print(f"{label}: {total:.1f} ms = {cells}, other {rest:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
