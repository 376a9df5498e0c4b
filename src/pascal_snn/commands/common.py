"""Pieces shared by the commands that work on a trained checkpoint (evaluate, al, energy)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from pascal_snn.checkpoint import load_model
from pascal_snn.commands.args import add_checkpoint_arguments, add_data_arguments, parse_int_list
from pascal_snn.data import DatasetInfo, build_datasets
from pascal_snn.distributed import resolve_device
from pascal_snn.errors import ConfigError, DataError
from pascal_snn.io import ensure_dir

__all__ = [
    "Loaded",
    "add_checkpoint_arguments",
    "add_data_arguments",
    "checkpoint_datasets",
    "load_checkpoint_and_data",
    "parse_int_list",
]


@dataclass
class Loaded:
    model: nn.Module
    checkpoint: dict[str, Any]
    train_set: Dataset
    test_set: Dataset
    info: DatasetInfo
    device: torch.device
    out: Path


def checkpoint_datasets(
    args: argparse.Namespace, checkpoint: dict[str, Any]
) -> tuple[Dataset, Dataset, DatasetInfo]:
    """``(train, test, info)`` without augmentation: the data set the checkpoint was trained on
    (its folder and image size), or the one named by ``--dataset``; it must fit the model."""
    recorded = checkpoint.get("dataset") or {}
    name = args.dataset or recorded.get("name")
    if name is None:
        raise ConfigError(
            f"checkpoint '{args.checkpoint}' does not record its data set; pass --dataset"
        )
    same = name == recorded.get("name")
    data_dir = args.data_dir or (recorded.get("data_dir") if same else None)
    image_size = getattr(args, "image_size", None) or (recorded.get("image_size") if same else None)
    train_set, test_set, info = build_datasets(
        name, data_dir=data_dir, download=args.download, augment=False, image_size=image_size
    )
    arch = checkpoint.get("arch", {})
    if arch.get("num_classes") not in (None, info.num_classes):
        raise DataError(
            f"the model predicts {arch['num_classes']} classes but data set '{name}' has "
            f"{info.num_classes}; pass the --dataset it was trained on"
        )
    if arch.get("in_channels") not in (None, info.in_channels):
        raise DataError(
            f"the model takes {arch['in_channels']}-channel images but data set '{name}' has "
            f"{info.in_channels} channels; pass the --dataset it was trained on"
        )
    return train_set, test_set, info


def load_checkpoint_and_data(args: argparse.Namespace) -> Loaded:
    """Load the model and the data set it was trained on (or the one named by --dataset)."""
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.num_images is not None and args.num_images < 1:
        raise ConfigError(f"--num-images must be >= 1, got {args.num_images}")
    device = resolve_device(args.device)
    model, ckpt = load_model(args.checkpoint, map_location=device)
    train_set, test_set, info = checkpoint_datasets(args, ckpt)
    out = ensure_dir(args.out or Path(args.checkpoint).resolve().parent)
    return Loaded(model, ckpt, train_set, test_set, info, device, out)
