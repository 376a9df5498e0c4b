"""Train / validation / test splits for honest model selection (SPEC §7).

The validation images are a seeded random subset of the *training* images, served without
augmentation; the model is selected on them and the test set is evaluated once, on the
selected model. A training budget (``train_images``) is a further seeded subset of the
remaining training images. Both index lists depend only on ``(len(train), val_images,
train_images, seed)``, so a run folder's config reproduces its split exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from pascal_snn.data.info import DatasetInfo, dataset_size
from pascal_snn.errors import ConfigError

__all__ = ["DataSplits", "build_splits", "split_indices"]


def split_indices(
    size: int, val_images: int, seed: int, train_images: int | None = None
) -> tuple[list[int], list[int]]:
    """``(train, val)`` index lists of a training set of ``size`` images (sorted, disjoint).

    One permutation drawn from ``seed``: its first ``val_images`` entries are the validation
    images, the next ``train_images`` (default: all the rest) the training images.
    """
    if val_images < 0 or val_images >= size:
        raise ConfigError(
            f"val_images must be in 0 … {size - 1} for a training set of {size} images, got "
            f"{val_images}; hold out fewer images (--val-images)"
        )
    rest = size - val_images
    if train_images is not None and not 1 <= train_images <= rest:
        raise ConfigError(
            f"train_images must be in 1 … {rest} (the training images left after holding out "
            f"{val_images} for validation), got {train_images}"
        )
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    val = order[:val_images]
    train = order[val_images:] if train_images is None else order[val_images:][:train_images]
    return sorted(train.tolist()), sorted(val.tolist())


@dataclass(frozen=True)
class DataSplits:
    """What a training run reads.

    ``train``: augmented training images (validation images held out); ``plain_train``: the
    same images without augmentation (AL statistics); ``val``: the held-out images, without
    augmentation (``None`` when ``val_images`` is 0: the last epoch is then the selected one);
    ``test``: the test set, evaluated once on the selected model.
    """

    train: Dataset
    plain_train: Dataset
    val: Dataset | None
    test: Dataset
    info: DatasetInfo

    @classmethod
    def from_sets(
        cls,
        train: Dataset,
        test: Dataset,
        info: DatasetInfo,
        *,
        val_images: int,
        seed: int = 0,
        plain_train: Dataset | None = None,
        train_images: int | None = None,
    ) -> DataSplits:
        """Split prebuilt sets; ``plain_train`` is ``train`` without augmentation (default:
        ``train`` itself, for data sets without augmentation)."""
        plain = train if plain_train is None else plain_train
        size = dataset_size(train)
        train_idx, val_idx = split_indices(size, val_images, seed, train_images)
        return cls(
            train=Subset(train, train_idx),
            plain_train=Subset(plain, train_idx),
            val=Subset(plain, val_idx) if val_idx else None,
            test=test,
            info=info,
        )


def build_splits(
    name: str,
    *,
    val_images: int | None = None,
    seed: int = 0,
    train_images: int | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
    augment: bool = True,
    image_size: int | None = None,
) -> DataSplits:
    """Load data set ``name`` and split it; ``val_images=None`` takes the data set's default."""
    from pascal_snn.data.registry import build_datasets

    train, test, info = build_datasets(
        name, data_dir=data_dir, download=download, augment=augment, image_size=image_size
    )
    plain = (
        build_datasets(name, data_dir=data_dir, augment=False, image_size=image_size)[0]
        if augment
        else train
    )
    return DataSplits.from_sets(
        train,
        test,
        info,
        val_images=info.val_images if val_images is None else val_images,
        seed=seed,
        plain_train=plain,
        train_images=train_images,
    )
