"""``pascal-snn train``: train a QCFS network into a run folder (checkpoints, metrics, config).

Values come from, highest first: explicit flags, ``--config run.yaml``, the data set's recipe,
built-in defaults. ``--resume`` continues ``RUN_DIR/last.pt`` with the run's own settings.
Under ``torchrun --nproc_per_node=N -m pascal_snn train …`` it trains with DDP.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pascal_snn import distributed
from pascal_snn.adaptive import AdaptiveResult, train_adaptive
from pascal_snn.commands.args import add_data_arguments, add_runtime_arguments, parse_int_list
from pascal_snn.config import ALPHA_VARIANTS, MAX_LEVEL, RunConfig, load_yaml, parse_levels
from pascal_snn.errors import ConfigError
from pascal_snn.io import run_folder
from pascal_snn.training import TrainResult, train

__all__ = ["add_parser", "given_from_args", "run"]

DESCRIPTION = """\
Train a QCFS network (the ANN) into a run folder: checkpoints (last.pt, best.pt), per-epoch
metrics (metrics.jsonl), the resolved configuration (config.yaml) and the selected model's
test accuracy (result.json).

Values come from, highest first: the flags given, the --config YAML file, the data set's
recipe, built-in defaults. --resume continues RUN_DIR/last.pt with the run's own settings.
Under torchrun --nproc_per_node=N -m pascal_snn train ... it trains with DDP.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train a QCFS network (the ANN) with checkpoints and resume",
        description=DESCRIPTION,
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
    add_runtime_arguments(parser)
    parser.add_argument("--workers", type=int, help="data loader worker processes (default 0)")
    parser.add_argument(
        "--init-relu-weights",
        metavar="PATH.pt",
        help="fine-tune a trained ReLU network: start from its state_dict (a plain "
        "torch.save(relu_model.state_dict()), same layer names), with every QCFS threshold "
        "calibrated on --calibration-images training images",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        help="training images for the threshold calibration of --init-relu-weights (3000)",
    )
    parser.add_argument(
        "--model-kwargs",
        metavar="K=V,…",
        help="extra model options, e.g. stem=imagenet or head=imagenet,pool=max",
    )
    parser.add_argument(
        "--grad-clip",
        type=float,
        help="clip the gradient norm to this before every step (default: no clipping). "
        "An --adaptive run whose plan puts many layers at a much smaller L needs it "
        "(e.g. 5; docs/design.md); training warns when a level change makes the norm jump",
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
        "--switch-fraction", type=float, help="share of epochs at uniform L (default 2/3)"
    )
    adaptive.add_argument(
        "--init-checkpoint", help="skip phase 0: take the AL statistics of this trained model"
    )
    adaptive.add_argument("--al-images", type=int, help="training images for the AL metric (3000)")
    adaptive.add_argument(
        "--al-alpha",
        type=float,
        help="agreement threshold of the AL metric in (0, 1] (default 1/(2*layers))",
    )
    adaptive.add_argument(
        "--al-variant",
        choices=ALPHA_VARIANTS,
        help="AL statistic: the paper's (default) or the public reference code's",
    )
    add_data_arguments(parser)
    # Unset flags must not override the YAML file or the data set's recipe.
    parser.set_defaults(run=run, dataset=None, data_dir=None, download=None, image_size=None)
    return parser


# --flag → AdaptivePlan key
ADAPTIVE_FLAGS = {
    "clusters": "clusters",
    "cluster_levels": "cluster_levels",
    "switch_fraction": "switch_fraction",
    "init_checkpoint": "init_checkpoint",
    "al_images": "num_images",
    "al_alpha": "alpha",
    "al_variant": "variant",
}


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


def given_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The values the user gave (flags over the ``--config`` YAML), as RunConfig keys; on
    ``--resume`` the run supplies the rest (:func:`pascal_snn.training.open_run`)."""
    given = dict(load_yaml(args.config)) if args.config else {}
    keys = set(RunConfig.keys()) - {"adaptive"}
    given.update({k: v for k, v in vars(args).items() if k in keys and v is not None})
    if args.levels is not None:
        given["levels"] = parse_levels(args.levels)
    if args.model_kwargs is not None:
        given["model_kwargs"] = parse_model_kwargs(args.model_kwargs)
    if given.get("download") is False:  # store_true left unset
        del given["download"]
    plan = {key: getattr(args, flag) for flag, key in ADAPTIVE_FLAGS.items()}
    plan = {k: v for k, v in plan.items() if v is not None}
    if "cluster_levels" in plan:
        plan["cluster_levels"] = parse_int_list(
            plan["cluster_levels"], "--cluster-levels", maximum=MAX_LEVEL
        )
    yaml_plan = given.get("adaptive")
    if args.adaptive or yaml_plan not in (None, False):
        base = yaml_plan if isinstance(yaml_plan, dict) else {}
        given["adaptive"] = {**base, **plan}
    elif plan:
        flags = ", ".join(f"--{f.replace('_', '-')}" for f in ADAPTIVE_FLAGS if getattr(args, f))
        raise ConfigError(f"{flags} only apply with --adaptive")
    if not given.get("out"):
        raise ConfigError("give the run folder with --out RUN_DIR")
    return given


def run(args: argparse.Namespace) -> int:
    given = given_from_args(args)
    RunConfig().merged(given)  # every value checked before the folder is touched
    main = distributed.is_main_process()
    try:
        with run_folder(given["out"], args.command_line, enabled=main):
            if given.get("adaptive") is not None:
                adaptive = train_adaptive(given, resume=args.resume)
                if main:
                    _report(adaptive.run)
                    _adaptive_summary(adaptive)
            else:
                result = train(given, resume=args.resume)
                if main:
                    _report(result)
    finally:
        distributed.destroy_distributed()
    return 0


def _adaptive_summary(result: AdaptiveResult) -> None:
    """Per-layer L, ANN accuracy and PASC equivalence of the selected model → adaptive.json."""
    import torch
    from torch.utils.data import DataLoader

    from pascal_snn.data import build_datasets
    from pascal_snn.evaluation import evaluate_equivalence
    from pascal_snn.io import write_json

    config = result.run.config
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
        "al": result.al.as_dict(),
    }
    write_json(Path(result.run.run_dir) / "adaptive.json", summary)
    print(f"per-layer L: {','.join(map(str, result.levels))}")
    print(
        f"PASC SNN accuracy {pasc.snn_accuracy:.2%}, agreement with the ANN "
        f"{pasc.agreement}/{pasc.images} (float64)"
    )


def _report(result: TrainResult) -> None:
    """Print the selected model's test accuracy."""
    if result.already_finished:
        print(f"run '{result.run_dir}' already finished all {result.epochs} epochs; nothing to do")
    val = "" if result.val_acc is None else f", validation {result.val_acc:.2%}"
    print(
        f"ANN test accuracy: {result.test_acc:.2%} ({result.test_correct}/{result.test_total}) "
        f"of the model selected at epoch {result.selected_epoch}/{result.epochs}{val}"
    )
    print(f"run folder: {result.run_dir}")
