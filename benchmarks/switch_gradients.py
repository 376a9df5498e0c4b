"""Benchmark: the gradients of a trained network before and after Algorithm 4's switch of
every layer to a smaller L (the failure of the all-L = 1 ResNet-18 AL run, BENCHMARKS.md §3).

Loads a trained uniform-L checkpoint, takes one training batch (seeded), and prints the loss,
the first layer's weight-gradient norm and every QCFS θ with its gradient, at the trained L and
after ``switch_levels(model, L')`` (θ' = θ·L'/L, the spike value kept), in training mode.
``--batches N`` prints the global gradient norm of N batches (the first batch's details).
``--steps N`` then trains N SGD steps after the switch (the runs' optimizer: momentum 0.9,
weight decay 5e-4, ``--lr``, batch 128, no augmentation), optionally with the gradient norm
clipped (``--clip``), printing the loss, the first layer's weight norm and the first θ.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/switch_gradients.py \
        --checkpoint benchmarks/results/checkpoints/fashion-mnist-resnet18-L4.pt --to 1 \
        [--steps 200 --lr 0.0125 [--clip 5]]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from pascal_snn import qcfs_layers
from pascal_snn.checkpoint import load_model
from pascal_snn.data import build_splits
from pascal_snn.qcfs import switch_levels


def gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    model.train()
    model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    first = next(p for p in model.parameters() if p.dim() > 1)
    assert first.grad is not None
    thetas = [(n, float(q.theta.detach()), float(q.theta.grad)) for n, q in qcfs_layers(model)]
    grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
    return {
        "loss": float(loss.detach()),
        "grad_norm": float(torch.cat(grads).norm()),
        "first_weight_grad_norm": float(first.grad.norm()),
        "median_abs_theta_grad": statistics.median(abs(g) for _, _, g in thetas),
        "thetas": thetas,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument(
        "--to", default="1", help="the L every layer switches to, or one L per layer (4,1,4,…)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=0, help="SGD steps after the switch")
    parser.add_argument(
        "--batches", type=int, default=1, help="training batches to take the gradients of"
    )
    parser.add_argument("--lr", type=float, default=0.0125)
    parser.add_argument("--clip", type=float, default=None, help="clip the gradient norm")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    model, checkpoint = load_model(args.checkpoint)
    config = checkpoint["config"]
    splits = build_splits(
        config["dataset"],
        val_images=config.get("val_images"),
        seed=config.get("val_seed", 0),
        image_size=config.get("image_size"),
    )
    batches = []
    for x, y in DataLoader(splits.train, batch_size=args.batch_size, shuffle=True):
        batches.append((x, y))
        if len(batches) == args.batches:
            break
    befores = [gradients(model, x, y) for x, y in batches]
    levels = [int(v) for v in args.to.split(",")]
    switch_levels(model, levels[0] if len(levels) == 1 else levels)
    afters = [gradients(model, x, y) for x, y in batches]
    before, after = befores[0], afters[0]
    for label, gs in (("trained L", befores), (f"after the switch to L = {args.to}", afters)):
        norms = ", ".join(f"{g['grad_norm']:.3g}" for g in gs)
        print(f"{label}: global gradient norm of each of {len(gs)} batches: {norms}")
    for label, g in (("trained L", before), (f"after the switch to L = {args.to}", after)):
        print(
            f"{label}: loss {g['loss']:.3f}, first layer |grad W| "
            f"{g['first_weight_grad_norm']:.3g}, median |grad θ| {g['median_abs_theta_grad']:.3g}"
        )
        for name, theta, grad in g["thetas"][:4]:
            print(f"    {name:16s} θ {theta:8.3f}  grad θ {grad:10.3f}")
    if args.steps:
        train_after_switch(model, splits.train, args)
    return 0


def train_after_switch(model: torch.nn.Module, train_set: Any, args: argparse.Namespace) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    first = next(p for p in model.parameters() if p.dim() > 1)
    name, layer = qcfs_layers(model)[0]
    loader = DataLoader(train_set, batch_size=128, shuffle=True)
    batches = iter(loader)
    model.train()
    for step in range(args.steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if args.clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(
                f"step {step:4d}: loss {float(loss.detach()):.3f}, first layer |W| "
                f"{float(first.detach().norm()):.3g}, θ of {name} {float(layer.theta.detach()):.3g}"
            )


if __name__ == "__main__":
    sys.exit(main())
