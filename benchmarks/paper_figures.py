"""The paper's analytic figures, recomputed from our models: MAC totals (Appendix A.5–A.7),
T_norm at the assumed spike rate 0.75 (§4.2), latency, and Table 3's energy ratios.

No training and no data: layer tables come from shape tracing on the meta device. Runs in a
few seconds. Figures it printed (torch 2.14, CPU) are in BENCHMARKS.md; docs/energy.md explains
every difference from the paper.

    python benchmarks/paper_figures.py
"""

from __future__ import annotations

from pascal_snn import set_levels
from pascal_snn.energy import energy_ratio, latency, layer_table, timesteps, total_macs
from pascal_snn.models import create

MODELS = [
    ("VGG-16 CIFAR-10", "vgg16", 10, (3, 32, 32), {}, 4, 4.21, 332_111_872),
    ("VGG-16 CIFAR-100", "vgg16", 100, (3, 32, 32), {}, 8, 8.79, 332_480_512),
    (
        "VGG-16 ImageNet",
        "vgg16",
        1000,
        (3, 224, 224),
        {"head": "imagenet"},
        16,
        18.37,
        15_470_264_320,
    ),
    ("ResNet-18 CIFAR-10", "resnet18", 10, (3, 32, 32), {}, 8, 8.22, 217_584_640),
    (
        "ResNet-34 ImageNet (7x7 stem)",
        "resnet34",
        1000,
        (3, 224, 224),
        {"stem": "imagenet"},
        8,
        8.17,
        None,
    ),
]
TABLE3 = [(0.66, 0.005, 7.49, 11.03), (0.73, 0.006, 6.76, 9.94)]


def main() -> None:
    print("| model | MACs (ours) | MACs (paper) | L | T_norm @0.75 (ours) | paper | latency |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, name, classes, shape, kw, L, paper_t, paper_macs in MODELS:
        model = create(name, classes, in_channels=shape[0], L=L, **kw)
        set_levels(model, L)
        rows = layer_table(model, shape)
        ts = timesteps(rows, [0.75] * len(rows), [L] * len(rows))
        paper = f"{paper_macs:,}" if paper_macs else "–"
        print(
            f"| {label} | {total_macs(rows):,} | {paper} | {L} | {ts.t_norm:.2f} "
            f"| {paper_t} | {latency(model, shape).total_steps} |"
        )
    print()
    print("| Table 3 b | c | FP32 (ours) | paper | INT8 (ours) | paper |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b, c, fp32, int8 in TABLE3:
        print(
            f"| {b} | {c} | {energy_ratio(1.0, b, c, 'fp32'):.2f} | {fp32} "
            f"| {energy_ratio(1.0, b, c, 'int8'):.2f} | {int8} |"
        )


if __name__ == "__main__":
    main()
