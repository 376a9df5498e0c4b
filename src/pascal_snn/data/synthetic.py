"""A deterministic random data set for tests: one fixed pattern per class, plus noise.

Class ``c`` has a prototype image ``P_c`` with pixels drawn from {0.2, 0.8}; a sample of class
``c`` is ``clamp(P_c + noise·N(0, 1), 0, 1)``. Prototypes differ in about half their pixels, so
even a linear model separates the classes; the same ``seed`` always gives the same tensors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pascal_snn.data.arrays import ArrayDataset
from pascal_snn.data.info import LoadedData
from pascal_snn.errors import ConfigError

__all__ = ["load_synthetic", "synthetic_datasets"]

IMAGE_SIZE = 8


def _samples(
    prototypes: torch.Tensor, count: int, noise: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    num_classes = prototypes.shape[0]
    labels = torch.arange(count) % num_classes
    labels = labels[torch.randperm(count, generator=generator)]
    images = prototypes[labels] + noise * torch.randn(
        (count, *prototypes.shape[1:]), generator=generator
    )
    return images.clamp_(0.0, 1.0), labels


def synthetic_datasets(
    num_train: int = 512,
    num_test: int = 256,
    *,
    num_classes: int = 10,
    channels: int = 1,
    image_size: int = 8,
    noise: float = 0.25,
    seed: int = 0,
) -> tuple[ArrayDataset, ArrayDataset]:
    """Balanced train/test sets of float32 images ``[channels, image_size, image_size]``."""
    for label, value in (
        ("num_train", num_train),
        ("num_test", num_test),
        ("num_classes", num_classes),
        ("channels", channels),
        ("image_size", image_size),
    ):
        if value < 1:
            raise ConfigError(f"synthetic data: {label} must be ≥ 1, got {value}")
    generator = torch.Generator().manual_seed(seed)
    shape = (num_classes, channels, image_size, image_size)
    prototypes = 0.2 + 0.6 * torch.randint(0, 2, shape, generator=generator).float()
    classes = tuple(f"class {c}" for c in range(num_classes))
    train = ArrayDataset(*_samples(prototypes, num_train, noise, generator), classes=classes)
    test = ArrayDataset(*_samples(prototypes, num_test, noise, generator), classes=classes)
    return train, test


def load_synthetic(
    data_dir: Path | None, *, download: bool, augment: bool, image_size: int | None
) -> LoadedData:
    """The registry's loader: the default sets at ``image_size`` (8); the folder, download and
    augmentation settings do not apply to generated data."""
    size = IMAGE_SIZE if image_size is None else image_size
    train, test = synthetic_datasets(image_size=size)
    return LoadedData(train, test, size)
