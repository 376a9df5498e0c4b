"""The data sets by name: their defaults, ``build_datasets`` and the CLI flags."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from types import MappingProxyType

from torch.utils.data import Dataset

from pascal_snn.data.cifar import cifar_datasets
from pascal_snn.data.digits import digits_datasets
from pascal_snn.data.imagenet import imagenet_datasets
from pascal_snn.data.info import DatasetInfo
from pascal_snn.data.mnist import mnist_datasets
from pascal_snn.data.synthetic import synthetic_datasets
from pascal_snn.errors import ConfigError

__all__ = ["DATASETS", "add_data_arguments", "build_datasets"]


def _info(name: str, classes: int, channels: int, size: int, model: str, **train) -> DatasetInfo:
    return DatasetInfo(name, classes, channels, size, model, **train)


# Defaults before any data is read (image_size native, classes unnamed). CIFAR / ImageNet:
# paper A.8 (lr, weight decay) and the QCFS reference code (epochs, batch size). Small sets:
# sized for short CPU runs (see docs/data.md). val_images: held out of the training images for
# model selection (10 % of digits' 1,437; 5,000 of MNIST's / CIFAR's 50–60k).
DATASETS: MappingProxyType[str, DatasetInfo] = MappingProxyType(
    {
        "digits": _info("digits", 10, 1, 8, "digits_cnn", lr=0.1, weight_decay=5e-4,
                        epochs=30, batch_size=64, val_images=144),
        "mnist": _info("mnist", 10, 1, 28, "mnist_cnn", lr=0.05, weight_decay=5e-4,
                       epochs=10, batch_size=128, val_images=5000),
        "fashion-mnist": _info("fashion-mnist", 10, 1, 28, "mnist_cnn", lr=0.05,
                               weight_decay=5e-4, epochs=15, batch_size=128, val_images=5000),
        "cifar10": _info("cifar10", 10, 3, 32, "vgg16", lr=0.1, weight_decay=5e-4,
                         epochs=300, batch_size=128, val_images=5000),
        "cifar100": _info("cifar100", 100, 3, 32, "vgg16", lr=0.02, weight_decay=5e-4,
                          epochs=300, batch_size=128, val_images=5000),
        "imagenet": _info("imagenet", 1000, 3, 224, "resnet34", lr=0.1, weight_decay=1e-4,
                          epochs=120, batch_size=128, val_images=10000),
        "synthetic": _info("synthetic", 10, 1, 8, "digits_cnn", lr=0.05, weight_decay=0.0,
                           epochs=5, batch_size=32, val_images=64),
    }
)  # fmt: skip


def build_datasets(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = False,
    augment: bool = True,
    image_size: int | None = None,
) -> tuple[Dataset, Dataset, DatasetInfo]:
    """``(train, test, info)`` for data set ``name`` (one of :data:`DATASETS`).

    Items are ``(float32 [C, H, W], int)``. ``augment=False`` makes the training split
    deterministic (test-time transform). ``image_size`` zero-pads the small data sets
    (digits, MNIST, Fashion-MNIST, CIFAR; it may not shrink them), sets ImageNet's crop size and
    the synthetic images' size. A missing or malformed data set raises ``DataError``.
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown data set '{name}'; choose one of {', '.join(DATASETS)}")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"--image-size must be a positive integer, got {image_size}")
    folder = Path(data_dir).expanduser() if data_dir is not None else None
    defaults = DATASETS[name]
    used: Path | None = None
    if name == "digits":
        if folder is not None:
            raise ConfigError(
                "digits ships inside scikit-learn and takes no --data-dir; did you mean "
                "--dataset mnist or fashion-mnist?"
            )
        train, test, size = digits_datasets(augment=augment, image_size=image_size)
    elif name == "synthetic":
        size = image_size if image_size is not None else defaults.image_size
        train, test = synthetic_datasets(image_size=size)
    elif name in ("mnist", "fashion-mnist"):
        train, test, used, size = mnist_datasets(name, folder, download, augment, image_size)
    elif name in ("cifar10", "cifar100"):
        train, test, used, size = cifar_datasets(name, folder, download, augment, image_size)
    else:
        train, test, used, size = imagenet_datasets(folder, download, augment, image_size)
    classes = tuple(train.classes)
    info = dataclasses.replace(
        defaults,
        num_classes=len(classes) or defaults.num_classes,
        image_size=size,
        classes=classes,
        data_dir=str(used) if used is not None else None,
    )
    return train, test, info


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def add_data_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add ``--dataset``, ``--data-dir``, ``--download`` and ``--image-size`` to ``parser``."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        choices=list(DATASETS),
        default="digits",
        help="data set (default: digits, built into scikit-learn, no download)",
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the data set (default: the data set's usual place, see docs/data.md)",
    )
    group.add_argument(
        "--download",
        action="store_true",
        help="download MNIST / Fashion-MNIST / CIFAR if missing (needs network access)",
    )
    group.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="zero-pad small images to this size (e.g. 32 for Fashion-MNIST on VGG-16); "
        "crop size for ImageNet",
    )
    return group
