"""Copy a run's checkpoint without its training state, to commit it (issue 13 item 3).

Drops the optimizer, the learning-rate schedule and the random-number state (half the file for
SGD with momentum); the model, its levels, architecture, data-set record, configuration,
metrics and AL phase stay, so ``pascal-snn evaluate / al / energy / convert`` load the copy as
they load the original. ``--resume`` needs the original ``last.pt``.

    python benchmarks/ship_checkpoint.py runs/fmnist/vgg16-L4/best.pt \
        benchmarks/results/checkpoints/fashion-mnist-vgg16-L4.pt
"""

from __future__ import annotations

import argparse

import torch

from pascal_snn.io import save_torch

TRAINING_STATE = ("optimizer", "scheduler", "rng")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("target")
    args = parser.parse_args()
    checkpoint = torch.load(args.source, map_location="cpu", weights_only=True)
    shipped = {k: v for k, v in checkpoint.items() if k not in TRAINING_STATE}
    save_torch(args.target, shipped)
    print(f"{args.target}: kept {', '.join(shipped)}")


if __name__ == "__main__":
    main()
