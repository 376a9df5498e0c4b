"""Bring your own ReLU network (issue 12): fine-tune it into an exact PASCAL SNN on Fashion-MNIST.

The path a user with a trained ReLU CNN takes, against training with QCFS from scratch at the
same total epoch budget, on cnn6 (six activation layers, 28×28, the trade-off study's model and
recipe: a seeded 12,000-image training subset (``--train-images``), SGD momentum 0.9, lr 0.05,
weight decay 5e-4, batch 128, cosine, crop + flip, 5,000 validation images held out, model
selection on them; 4 + 2 epochs here against 6 from scratch):

1. a ReLU cnn6 trained for ``--relu-epochs`` epochs (this script's own loop; the library's
   ``train_loader`` / ``train_one_epoch`` / ``evaluate_counts``) → ``RUN/relu.pt``;
2. its QCFS copy (L = 4) with θ calibrated on 3,000 training images, *no* training: what
   calibration alone gives (ANN and PASC SNN on the test set);
3. ``pascal-snn train --init-relu-weights RUN/relu.pt --epochs FT --lr 0.01`` (the CLI path);
4. QCFS from scratch for ``relu_epochs + FT`` epochs: the trade-off study's uniform L = 4 runs
   (``benchmarks/tradeoff_train.sh``), both seeds.

For 2–4: test accuracy of the ANN and of its PASC SNN, float64 agreement on all 10,000 test
images. Writes ``--json`` and prints the table of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from pascal_snn import QCFS, calibrate_thresholds, load_relu_weights
from pascal_snn.checkpoint import load_model
from pascal_snn.data import build_splits
from pascal_snn.evaluation import evaluate_equivalence
from pascal_snn.io import write_json
from pascal_snn.models import create
from pascal_snn.training import evaluate_counts, seed_epoch, train_loader, train_one_epoch

CPU = torch.device("cpu")


def relu_twin(model: nn.Module) -> nn.Module:
    """``model`` with every QCFS replaced by ReLU (same module names)."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, QCFS):
                setattr(module, name, nn.ReLU())
    return model


def train_relu(out: Path, epochs: int, splits: Any) -> dict[str, Any]:
    """ReLU cnn6 with the recipe; the best validation epoch's state_dict → ``out/relu.pt``."""
    torch.manual_seed(0)
    model = relu_twin(create("cnn6", 10, in_channels=1, L=4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    loader, sampler = train_loader(splits.train, 128, seed=0)
    val = DataLoader(splits.val, batch_size=500)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(epochs):
        seed_epoch(0, epoch)
        sampler.set_epoch(epoch)
        train_one_epoch(model, loader, optimizer, CPU)
        schedule.step()
        correct, total = evaluate_counts(model, val, CPU)
        print(f"relu epoch {epoch + 1}: val {correct / total:.4f}", file=sys.stderr, flush=True)
        if best is None or correct / total > best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = (correct / total, epoch + 1, state)
    assert best is not None
    torch.save(best[2], out / "relu.pt")
    model.load_state_dict(best[2])
    correct, total = evaluate_counts(model, DataLoader(splits.test, batch_size=500), CPU)
    return {
        "epochs": epochs,
        "selected_epoch": best[1],
        "val_acc": best[0],
        "test_acc": correct / total,
    }


def spiking(model: nn.Module, test: DataLoader) -> dict[str, Any]:
    exact = evaluate_equivalence(model, test, torch.float64)
    return {
        "ann_accuracy": exact.ann_accuracy,
        "snn_accuracy": exact.snn_accuracy,
        "agreement": exact.agreement,
        "images": exact.images,
        "max_abs_logit_diff": exact.max_abs_logit_diff,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/finetune")
    parser.add_argument("--relu-epochs", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument(
        "--train-images", type=int, default=12000, help="the trade-off study's training subset"
    )
    parser.add_argument(
        "--scratch-runs", default="runs/tradeoff/uniform-L4-s0,runs/tradeoff/uniform-L4-s1"
    )
    parser.add_argument("--json", default="benchmarks/results/finetune_fashion_mnist.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    began = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = build_splits("fashion-mnist", train_images=args.train_images)
    test = DataLoader(splits.test, batch_size=500)
    results: dict[str, Any] = {"relu": train_relu(out, args.relu_epochs, splits)}

    calibrated = create("cnn6", 10, in_channels=1, L=4)
    load_relu_weights(calibrated, out / "relu.pt")
    calibrate_thresholds(
        calibrated, DataLoader(Subset(splits.plain_train, range(3000)), batch_size=500), 3000
    )
    results["calibrated_only"] = {"epochs": args.relu_epochs, **spiking(calibrated, test)}

    run = out / "finetuned"
    command = [sys.executable, "-m", "pascal_snn", "train", "--dataset", "fashion-mnist"]
    command += ["--model", "cnn6", "--levels", "4", "--epochs", str(args.finetune_epochs)]
    command += ["--lr", "0.01", "--batch-size", "128", "--threads", "1"]
    command += ["--train-images", str(args.train_images)]
    command += ["--init-relu-weights", str(out / "relu.pt"), "--out", str(run)]
    if (run / "last.pt").is_file():
        command.append("--resume")
    subprocess.run(command, check=True)
    finetuned, _ = load_model(run / "best.pt")
    results["finetuned"] = {
        "epochs": args.relu_epochs + args.finetune_epochs,
        "command": shlex.join(["pascal-snn", *command[3:]]),
        **spiking(finetuned, test),
    }
    results["scratch"] = []
    for folder in filter(None, args.scratch_runs.split(",")):
        if not (Path(folder) / "result.json").is_file():
            print(f"skipping unfinished from-scratch run {folder}", file=sys.stderr)
            continue
        model, checkpoint = load_model(Path(folder) / "best.pt")
        epochs = int(checkpoint["config"]["epochs"])
        results["scratch"].append({"run": folder, "epochs": epochs, **spiking(model, test)})
    script = "benchmarks/finetune_fashion_mnist.py"
    results["command"] = shlex.join(["python", script, *(argv or sys.argv[1:])])
    results["seconds"] = time.perf_counter() - began
    write_json(Path(args.json), results)

    relu = results["relu"]
    print("| network | epochs | ANN test acc. | PASC SNN test acc. | agreement f64 |")
    print("|---|---|---|---|---|")
    print(f"| ReLU cnn6 | {relu['epochs']} | {100 * relu['test_acc']:.2f} | – | – |")
    rows = [("QCFS copy, θ calibrated, no training", results["calibrated_only"])]
    rows.append(("QCFS copy, fine-tuned", results["finetuned"]))
    rows += [(f"QCFS from scratch ({s['run']})", s) for s in results["scratch"]]
    for label, r in rows:
        print(
            f"| {label} | {r['epochs']} | {100 * r['ann_accuracy']:.2f} "
            f"| {100 * r['snn_accuracy']:.2f} | {r['agreement']}/{r['images']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
