"""``pascal-snn train``: train a QCFS network into a run folder (checkpoints, metrics, config).

Values come from, highest first: explicit flags, ``--config run.yaml``, the data set's recipe,
built-in defaults. ``--resume`` continues ``RUN_DIR/last.pt`` with the run's own settings.
Under ``torchrun --nproc_per_node=N -m pascal_snn train …`` it trains with DDP.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from pascal_snn import distributed
from pascal_snn.checkpoint import load_checkpoint
from pascal_snn.config import (
    RUN_DEFINING,
    RunConfig,
    check_same_run,
    load_yaml,
    parse_levels,
)
from pascal_snn.data import add_data_arguments
from pascal_snn.errors import ConfigError
from pascal_snn.training import LAST, train

__all__ = ["add_parser", "config_from_args", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train a QCFS network (the ANN) with checkpoints and resume",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="model name (default: the data set's default model)")
    parser.add_argument(
        "--levels",
        help="quantization step L: one integer for every QCFS layer (e.g. 4) or one per "
        "layer in forward order (e.g. 4,4,2,2); default 4",
    )
    parser.add_argument("--epochs", type=int, help="number of epochs (default: data set recipe)")
    parser.add_argument(
        "--batch-size", type=int, help="batch size per process (default: data set recipe)"
    )
    parser.add_argument("--lr", type=float, help="initial learning rate (default: recipe)")
    parser.add_argument("--weight-decay", type=float, help="SGD weight decay (default: recipe)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument(
        "--val-images",
        type=int,
        help="training images held out to select the model on (default: data set recipe, "
        "e.g. 5000 for Fashion-MNIST, 144 for digits; 0: select the last epoch)",
    )
    parser.add_argument("--val-seed", type=int, help="seed of the validation split (default 0)")
    parser.add_argument(
        "--train-images",
        type=int,
        help="train on a seeded random subset of this many training images (default: all)",
    )
    parser.add_argument("--width", type=float, help="channel width multiplier (default 1.0)")
    parser.add_argument("--out", metavar="RUN_DIR", help="run folder (required)")
    parser.add_argument("--config", metavar="YAML", help="run configuration file (YAML)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in RUN_DIR from its last.pt"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA if available)")
    parser.add_argument("--workers", type=int, help="data loader worker processes (default 0)")
    parser.add_argument(
        "--model-kwargs",
        metavar="K=V,…",
        help="extra model options, e.g. stem=imagenet or head=imagenet,pool=max",
    )
    adaptive = parser.add_argument_group("adaptive layerwise training (paper Algorithm 4)")
    adaptive.add_argument(
        "--adaptive",
        action="store_true",
        help="train at uniform --levels, compute the AL metric, cluster the layers, then "
        "retrain with uniform L for --switch-fraction of the epochs and per-layer L after",
    )
    adaptive.add_argument("--clusters", type=int, help="number of AL clusters (default 3)")
    adaptive.add_argument(
        "--cluster-levels", help="one L per cluster, e.g. 1,2,4 (default); smallest = most tolerant"
    )
    adaptive.add_argument(
        "--switch-fraction", type=float, help="share of epochs at uniform L (default 0.667)"
    )
    adaptive.add_argument(
        "--init-checkpoint", help="skip phase 0: take the AL statistics of this trained model"
    )
    adaptive.add_argument("--al-images", type=int, help="training images for the AL metric (3000)")
    add_data_arguments(parser)
    # Unset flags must not override the YAML file or the data set's recipe.
    parser.set_defaults(run=run, dataset=None, data_dir=None, download=None, image_size=None)
    return parser


ADAPTIVE_FLAGS = ("clusters", "cluster_levels", "switch_fraction", "init_checkpoint", "al_images")


def parse_model_kwargs(text: str) -> dict[str, Any]:
    """``"stem=imagenet,pool=max"`` → dict; numbers become int/float."""
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--model-kwargs takes KEY=VALUE pairs separated by commas, got '{text}'"
            )
        parsed: Any = value.strip()
        for cast in (int, float):
            try:
                parsed = cast(parsed)
                break
            except ValueError:
                continue
        out[key.strip()] = parsed
    return out


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    keys = set(RunConfig.keys())
    values = {k: v for k, v in vars(args).items() if k in keys and v is not None}
    if args.levels is not None:
        values["levels"] = parse_levels(args.levels)
    if args.model_kwargs is not None:
        values["model_kwargs"] = parse_model_kwargs(args.model_kwargs)
    if values.get("download") is False:  # store_true left unset
        del values["download"]
    return values


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's configuration: flags over ``--config`` YAML; on ``--resume`` the run's own."""
    given = {**(load_yaml(args.config) if args.config else {}), **_explicit(args)}
    if not given.get("out"):
        raise ConfigError("give the run folder with --out RUN_DIR")
    if not args.resume:
        return RunConfig().merged(given)
    last = Path(given["out"]) / LAST
    if not last.is_file():
        raise ConfigError(
            f"nothing to resume: '{last}' does not exist; run without --resume to start"
        )
    stored = RunConfig.from_dict(load_checkpoint(last)["config"])
    check_same_run(stored, given, str(given["out"]))
    return stored.merged({k: v for k, v in given.items() if k not in RUN_DEFINING})


def run(args: argparse.Namespace) -> int:
    if args.adaptive:
        return _run_adaptive(args)
    given = [f"--{name.replace('_', '-')}" for name in ADAPTIVE_FLAGS if getattr(args, name)]
    if given:
        raise ConfigError(f"{', '.join(given)} only apply with --adaptive")
    config = config_from_args(args)
    try:
        result = train(config, resume=args.resume)
        if distributed.is_main_process():
            _report(result)
    finally:
        distributed.destroy_distributed()
    return 0


def _adaptive_plan(args: argparse.Namespace, stored: dict[str, Any] | None) -> Any:
    """The adaptive plan from the flags; on resume, the run's own plan (flags may not change it)."""
    from pascal_snn.adaptive import AdaptivePlan
    from pascal_snn.commands.common import parse_int_list

    fields = {f.name for f in dataclasses.fields(AdaptivePlan)}
    values: dict[str, Any] = {"clusters": 3, "cluster_levels": (1, 2, 4), "switch_fraction": 0.667}
    values.update({k: v for k, v in (stored or {}).items() if k in fields})
    values["cluster_levels"] = tuple(values["cluster_levels"])
    overrides: dict[str, Any] = {}
    if args.cluster_levels is not None:
        overrides["cluster_levels"] = tuple(parse_int_list(args.cluster_levels, "--cluster-levels"))
        overrides["clusters"] = len(overrides["cluster_levels"])
    if args.clusters is not None:
        overrides["clusters"] = args.clusters
    for flag, key in (
        ("switch_fraction", "switch_fraction"),
        ("init_checkpoint", "init_checkpoint"),
        ("al_images", "num_images"),
    ):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if stored is not None:
        changed = sorted(k for k, v in overrides.items() if values.get(k) != v)
        if changed:
            raise ConfigError(f"--resume cannot change the adaptive plan ({', '.join(changed)})")
    values.update(overrides)
    return AdaptivePlan(**values)


def _run_adaptive(args: argparse.Namespace) -> int:
    from pascal_snn.adaptive import PHASE0, train_adaptive

    given = {**(load_yaml(args.config) if args.config else {}), **_explicit(args)}
    if not given.get("out"):
        raise ConfigError("give the run folder with --out RUN_DIR")
    out = Path(given["out"])
    stored_plan = None
    if args.resume:
        last = next((p for p in (out / LAST, out / PHASE0 / LAST) if p.is_file()), None)
        if last is None:
            raise ConfigError(f"nothing to resume in '{out}': no {LAST} in it or in {PHASE0}/")
        checkpoint = load_checkpoint(last)
        stored_plan = checkpoint.get("plan")
        stored = RunConfig.from_dict(checkpoint["config"])
        stored = dataclasses.replace(stored, out=str(out), level_schedule=[])
        check_same_run(stored, {k: v for k, v in given.items() if k != "out"}, str(out))
        config = stored.merged({k: v for k, v in given.items() if k not in RUN_DEFINING})
    else:
        config = RunConfig().merged(given)
    plan = _adaptive_plan(args, stored_plan)
    try:
        result = train_adaptive(config, plan, resume=args.resume)
        if distributed.is_main_process():
            _report(result.run)
            _adaptive_summary(result, config)
    finally:
        distributed.destroy_distributed()
    return 0


def _adaptive_summary(result: Any, config: RunConfig) -> None:
    """Per-layer L, ANN accuracy and PASC equivalence of the selected model → adaptive.json."""
    import torch
    from torch.utils.data import DataLoader

    from pascal_snn.data import build_datasets
    from pascal_snn.evaluation import evaluate_equivalence
    from pascal_snn.io import write_json

    _, test_set, _ = build_datasets(
        config.dataset, data_dir=config.data_dir, augment=False, image_size=config.image_size
    )
    model = result.run.model
    device = next(model.parameters()).device
    pasc = evaluate_equivalence(model, DataLoader(test_set, batch_size=256), torch.float64, device)
    summary = {
        "levels": result.levels,
        "switch_epoch": result.switch_epoch,
        "ann_accuracy": pasc.ann_accuracy,
        "pasc": pasc.as_dict(),
        "al": result.al,
    }
    write_json(Path(result.run.run_dir) / "adaptive.json", summary)
    print(f"per-layer L: {','.join(map(str, result.levels))}")
    print(
        f"PASC SNN accuracy {pasc.snn_accuracy:.2%}, agreement with the ANN "
        f"{pasc.agreement}/{pasc.images} (float64)"
    )


def _report(result: Any) -> None:
    """Print the selected model's test accuracy (``result`` is a TrainResult)."""
    if result.already_finished:
        print(f"run '{result.run_dir}' already finished all {result.epochs} epochs; nothing to do")
    val = "" if result.val_acc is None else f", validation {result.val_acc:.2%}"
    print(
        f"ANN test accuracy: {result.test_acc:.2%} ({result.test_correct}/{result.test_total}) "
        f"of the model selected at epoch {result.selected_epoch}/{result.epochs}{val}"
    )
    print(f"run folder: {result.run_dir}")
