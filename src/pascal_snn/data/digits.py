"""scikit-learn's 8×8 handwritten digits: the built-in data set (no download).

1,797 grey-scale images with values 0–16, scaled to ``[0, 1]``. Split once, deterministically
and stratified by class: ``train_test_split(test_size=0.2, stratify=y, random_state=0)`` gives
1,437 training and 360 test images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pascal_snn.data.arrays import ArrayDataset, RandomShift, pad_images, resolve_padded_size
from pascal_snn.data.info import LoadedData
from pascal_snn.errors import ConfigError

__all__ = [
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_FRACTION",
    "digits_datasets",
    "digits_split",
    "load_digits",
]

NATIVE_SIZE = 8
MAX_VALUE = 16
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
CROP_PADDING = 1


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(images uint8 [N, 1, 8, 8] in 0–16, labels [N], train_index, test_index)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None]  # values are the integers 0..16
    labels = bunch.target.astype(np.int64)
    train_index, test_index = train_test_split(
        np.arange(labels.size),
        test_size=DIGITS_TEST_FRACTION,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    return images, labels, np.sort(train_index), np.sort(test_index)


def digits_datasets(
    augment: bool = True, image_size: int | None = None
) -> tuple[ArrayDataset, ArrayDataset, int]:
    """Train/test sets and the image size (``image_size`` > 8 zero-pads symmetrically).

    Training augmentation: random crop with padding 1, i.e. shifts of at most one pixel
    (zero fill); no flips. See docs/data.md for why.
    """
    size = resolve_padded_size("digits", NATIVE_SIZE, image_size)
    images, labels, train_index, test_index = digits_split()
    images_t = pad_images(torch.from_numpy(images), size)
    labels_t = torch.from_numpy(labels)
    classes = tuple(str(digit) for digit in range(10))
    transform = RandomShift(CROP_PADDING) if augment else None
    train = ArrayDataset(
        images_t[train_index],
        labels_t[train_index],
        max_value=MAX_VALUE,
        transform=transform,
        classes=classes,
    )
    test = ArrayDataset(
        images_t[test_index], labels_t[test_index], max_value=MAX_VALUE, classes=classes
    )
    return train, test, size


def load_digits(
    data_dir: Path | None, *, download: bool, augment: bool, image_size: int | None
) -> LoadedData:
    """The registry's loader (``download`` does not apply: the data ships with scikit-learn)."""
    if data_dir is not None:
        raise ConfigError(
            "digits ships inside scikit-learn and takes no --data-dir; did you mean "
            "--dataset mnist or fashion-mnist?"
        )
    train, test, size = digits_datasets(augment=augment, image_size=image_size)
    return LoadedData(train, test, size)
