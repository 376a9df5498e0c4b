"""Pieces shared by the commands that work on a trained checkpoint (evaluate, al, energy):
load and check the checkpoint and its data before any work, check the memory a conversion
needs, show progress."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.data import Dataset

from pascal_snn.checkpoint import load_model
from pascal_snn.commands.args import add_checkpoint_arguments, add_data_arguments, parse_int_list
from pascal_snn.data import DatasetInfo, build_datasets
from pascal_snn.distributed import is_main_process, resolve_device
from pascal_snn.errors import ConfigError, DataError
from pascal_snn.io import check_writable
from pascal_snn.memory import check_fits
from pascal_snn.progress import ImageProgress

__all__ = [
    "Loaded",
    "add_checkpoint_arguments",
    "add_data_arguments",
    "checkpoint_datasets",
    "load_checkpoint_and_data",
    "parse_int_list",
    "progress",
]

T = TypeVar("T")


@dataclass
class Loaded:
    """A checkpoint's model (eval mode, on ``device``), the checkpoint, the data set it is run
    on (no augmentation) and the output folder (checked writable, not created yet)."""

    model: nn.Module
    checkpoint: dict[str, Any]
    train_set: Dataset[Any]
    test_set: Dataset[Any]
    info: DatasetInfo
    device: torch.device
    out: Path

    def check_memory(self, batch_size: int, images: int, dtype: torch.dtype) -> None:
        """Refuse, before any work, a conversion whose spike trains for a batch (of at most
        ``images`` images) would not fit."""
        batch = max(1, min(batch_size, images))
        check_fits(self.model, self.info.input_shape, batch, dtype, self.device)


def _describe(record: dict[str, Any]) -> str:
    shape = record.get("input_shape")
    parts = [
        "×".join(map(str, shape)) + " images" if shape else None,
        f"{record['num_classes']} classes" if record.get("num_classes") else None,
        record.get("normalisation") or None,
    ]
    details = "; ".join(p for p in parts if p)
    return f"{record.get('name')}" + (f" ({details})" if details else "")


def checkpoint_datasets(
    args: argparse.Namespace, checkpoint: dict[str, Any]
) -> tuple[Dataset[Any], Dataset[Any], DatasetInfo]:
    """``(train, test, info)`` without augmentation: the data set the checkpoint was trained on
    (its folder and image size). Another one (``--dataset``, ``--image-size``) is an error
    unless ``--other-dataset`` is given; it must still fit the model."""
    recorded = dict(checkpoint.get("dataset") or {})
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
    given = {
        "name": info.name,
        "input_shape": list(info.input_shape),
        "num_classes": info.num_classes,
        "normalisation": info.normalisation,
    }
    differs = [k for k, v in given.items() if recorded.get(k) not in (None, v)]
    if differs and not getattr(args, "other_dataset", False):
        raise ConfigError(
            f"checkpoint '{args.checkpoint}' was trained on {_describe(recorded)}, not on "
            f"{_describe(given)} (differs in {', '.join(differs)}); evaluate it on its own data "
            "set, or pass --other-dataset to run it on this one anyway"
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


def _check_shape(model: nn.Module, info: DatasetInfo, device: torch.device) -> None:
    """One forward of a zero image: the model must accept the data's image shape."""
    x = torch.zeros((1, *info.input_shape), device=device)
    try:
        with torch.no_grad():
            model(x)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"the model cannot take {info.name}'s {'×'.join(map(str, info.input_shape))} "
            f"images ({first}); run it on the data set it was trained on"
        ) from None


def load_checkpoint_and_data(args: argparse.Namespace) -> Loaded:
    """Check the output folder, load the model (refusing unusable weights) and the data set
    it was trained on — everything before the first piece of work; nothing is written."""
    out = Path(args.out) if args.out is not None else Path(args.checkpoint).resolve().parent
    check_writable(out)
    device = resolve_device(args.device)
    model, ckpt = load_model(args.checkpoint, map_location=device)
    train_set, test_set, info = checkpoint_datasets(args, ckpt)
    _check_shape(model, info, device)
    return Loaded(model, ckpt, train_set, test_set, info, device, out)


def progress(batches: Iterable[T], label: str, total: int | None = None) -> Iterator[T]:
    """``batches`` with a progress display on the main process (a bar on a terminal, a line
    every 10 s otherwise)."""
    return ImageProgress(enabled=is_main_process()).wrap(batches, label, total)
