"""Algorithm 4's switch to per-layer L: why it diverged, and what keeping θ/L changes.

Trains ResNet-18 (width 0.25, 3×3 stem) on Fashion-MNIST (32×32, 5,000 validation images held
out) at uniform L = 4 for ``--epochs-before`` epochs of a cosine schedule over ``--epochs``
(SGD lr 0.02, momentum 0.9, weight decay 5e-4, batch 128: the recipe of the run that diverged),
computes the AL plan of that model (χ = 3, levels 1, 2, 4, 3,000 training images), then
measures one training batch of the next epoch three ways: before the switch, switched with θ
kept (what training did), and switched with θ·L'/L (``pascal_snn.qcfs.switch_levels``).
With ``--steps N`` it also trains N steps after each kind of switch and logs every step.

Figures: docs/design.md, "Algorithm 4's switch", from

    python benchmarks/algorithm4_switch.py --steps 40 \
        --out benchmarks/results/algorithm4_switch.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pascal_snn import models, qcfs_layers, set_levels
from pascal_snn.al.plan import plan_levels
from pascal_snn.data import build_splits
from pascal_snn.qcfs import clamp_thresholds, switch_levels
from pascal_snn.training import seed_epoch, train_loader


def one_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Loss, gradient norm, θ gradients and per-layer share of non-zero outputs on one batch."""
    shares: list[float] = []
    hooks = [
        layer.register_forward_hook(lambda m, i, o: shares.append(float((o > 0).float().mean())))
        for _, layer in qcfs_layers(model)
    ]
    model.train()
    loss = F.cross_entropy(model(images), labels)
    model.zero_grad()
    loss.backward()
    for hook in hooks:
        hook.remove()
    grads = [p.grad.double() for p in model.parameters() if p.grad is not None]
    return {
        "loss": float(loss.detach()),
        "grad_norm": math.sqrt(sum(float((g * g).sum()) for g in grads)),
        "theta_grad": [float(layer.theta.grad) for _, layer in qcfs_layers(model)],
        "active": shares,
        "theta": [float(layer.theta.detach()) for _, layer in qcfs_layers(model)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="cosine schedule length")
    parser.add_argument("--epochs-before", type=int, default=2, help="epochs before the switch")
    parser.add_argument("--steps", type=int, default=0, help="steps to train after the switch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="JSON file for every figure")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    splits = build_splits("fashion-mnist", image_size=32)
    torch.manual_seed(0)
    model = models.create("resnet18", num_classes=10, in_channels=1, L=4, width=0.25)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs)
    loader, sampler = train_loader(splits.train, 128, seed=0)
    for epoch in range(args.epochs_before):
        seed_epoch(0, epoch)
        sampler.set_epoch(epoch)
        model.train()
        for images, labels in loader:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            clamp_thresholds(model)
        schedule.step()
        print(f"epoch {epoch + 1}: last loss {float(loss):.3f}", flush=True)
    plan = list(plan_levels(model, splits.plain_train, (1, 2, 4), num_images=3000, seed=0).levels)
    print("plan", ",".join(map(str, plan)))
    seed_epoch(0, args.epochs_before)
    sampler.set_epoch(args.epochs_before)
    batches = iter(loader)
    first = next(batches)
    results: dict[str, Any] = {"plan": plan}
    variants = {
        "before switch": lambda m: None,
        "θ kept": lambda m: set_levels(m, plan),
        "θ·L'/L": lambda m: switch_levels(m, plan),
    }
    rest = [next(batches) for _ in range(args.steps)]
    for label, switch in variants.items():
        net = copy.deepcopy(model)
        opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
        # the momentum of the run so far, copied: load_state_dict keeps the very tensors of a
        # state dict on the same device and dtype, so a variant that diverges would otherwise
        # write NaN into the momentum every later variant starts from
        opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
        switch(net)
        step = one_step(net, *first)
        silent = [i for i, (L, a) in enumerate(zip(plan, step["active"])) if L == 1 and a == 0]
        print(
            f"{label:18s}  loss {step['loss']:.3f}  gradient norm {step['grad_norm']:8.2f}  "
            f"max |dθ| {max(map(abs, step['theta_grad'])):.2f}"
            + ("   L=1 layers silent" if silent and label != "before switch" else "")
        )
        log = [step]
        for images, labels in rest if label != "before switch" else []:
            opt.step()
            clamp_thresholds(net)
            log.append(one_step(net, images, labels))
        results[label] = log
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
