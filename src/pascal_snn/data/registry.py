"""The data sets by name: their defaults and their loaders (one signature), and
``build_datasets``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType
from typing import Any

from torch.utils.data import Dataset

from pascal_snn.data.cifar import CIFAR_SOURCES, load_cifar10, load_cifar100
from pascal_snn.data.digits import load_digits
from pascal_snn.data.imagenet import MEAN as IMAGENET_MEAN
from pascal_snn.data.imagenet import STD as IMAGENET_STD
from pascal_snn.data.imagenet import load_imagenet
from pascal_snn.data.info import DatasetInfo, Loader
from pascal_snn.data.mnist import load_fashion_mnist, load_mnist
from pascal_snn.data.synthetic import load_synthetic
from pascal_snn.errors import ConfigError

__all__ = ["DATASETS", "LOADERS", "build_datasets"]


def _info(
    name: str, classes: int, channels: int, size: int, model: str, **train: Any
) -> DatasetInfo:
    return DatasetInfo(name, classes, channels, size, model, **train)


def _standardised(mean: tuple[float, ...], std: tuple[float, ...]) -> str:
    return f"pixel / 255, then (x - mean) / std per channel, mean {mean}, std {std}"


# Defaults before any data is read (image_size native, classes unnamed). CIFAR / ImageNet:
# paper A.8 (lr, weight decay) and the QCFS reference code (epochs, batch size). Small sets:
# sized for short CPU runs (see docs/data.md). val_images: held out of the training images for
# model selection (10 % of digits' 1,437; 5,000 of MNIST's / CIFAR's 50–60k).
C10, C100 = CIFAR_SOURCES["cifar10"], CIFAR_SOURCES["cifar100"]
DATASETS: MappingProxyType[str, DatasetInfo] = MappingProxyType(
    {
        "digits": _info("digits", 10, 1, 8, "digits_cnn", lr=0.1, weight_decay=5e-4,
                        epochs=30, batch_size=64, val_images=144,
                        normalisation="pixel / 16 (values 0-16 to [0, 1])"),
        "mnist": _info("mnist", 10, 1, 28, "mnist_cnn", lr=0.05, weight_decay=5e-4,
                       epochs=10, batch_size=128, val_images=5000,
                       normalisation="pixel / 255"),
        "fashion-mnist": _info("fashion-mnist", 10, 1, 28, "mnist_cnn", lr=0.05,
                               weight_decay=5e-4, epochs=15, batch_size=128, val_images=5000,
                               normalisation="pixel / 255"),
        "cifar10": _info("cifar10", 10, 3, 32, "vgg16", lr=0.1, weight_decay=5e-4,
                         epochs=300, batch_size=128, val_images=5000,
                         normalisation=_standardised(C10.mean, C10.std)),
        "cifar100": _info("cifar100", 100, 3, 32, "vgg16", lr=0.02, weight_decay=5e-4,
                          epochs=300, batch_size=128, val_images=5000,
                          normalisation=_standardised(C100.mean, C100.std)),
        "imagenet": _info("imagenet", 1000, 3, 224, "resnet34", lr=0.1, weight_decay=1e-4,
                          epochs=120, batch_size=128, val_images=10000,
                          normalisation=_standardised(IMAGENET_MEAN, IMAGENET_STD)),
        "synthetic": _info("synthetic", 10, 1, 8, "digits_cnn", lr=0.05, weight_decay=0.0,
                           epochs=5, batch_size=32, val_images=64,
                           normalisation="generated values in [0, 1]"),
    }
)  # fmt: skip

LOADERS: MappingProxyType[str, Loader] = MappingProxyType(
    {
        "digits": load_digits,
        "mnist": load_mnist,
        "fashion-mnist": load_fashion_mnist,
        "cifar10": load_cifar10,
        "cifar100": load_cifar100,
        "imagenet": load_imagenet,
        "synthetic": load_synthetic,
    }
)


def build_datasets(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = False,
    augment: bool = True,
    image_size: int | None = None,
) -> tuple[Dataset[Any], Dataset[Any], DatasetInfo]:
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
    loaded = LOADERS[name](folder, download=download, augment=augment, image_size=image_size)
    classes = tuple(getattr(loaded.train, "classes", ()))
    defaults = DATASETS[name]
    info = dataclasses.replace(
        defaults,
        num_classes=len(classes) or defaults.num_classes,
        image_size=loaded.image_size,
        classes=classes,
        data_dir=str(loaded.data_dir) if loaded.data_dir is not None else None,
    )
    return loaded.train, loaded.test, info
