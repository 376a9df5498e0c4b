"""ImageNet (or any image folder) with ``train/`` and ``val/`` class subfolders.

Read with torchvision's ``ImageFolder``: ``<root>/train/<class>/*.JPEG`` and
``<root>/val/<class>/*.JPEG`` with the same class folders. Train: RandomResizedCrop(224) +
horizontal flip; val: Resize(256) + CenterCrop(224); both normalised with the usual ImageNet
mean/std. ``image_size`` replaces 224 (and the resize becomes ``round(image_size·256/224)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torchvision takes seconds to import: only when ImageNet is used
    from torchvision import datasets, transforms

from pascal_snn.data.info import LoadedData
from pascal_snn.data.locations import cache_dir
from pascal_snn.errors import DataError

__all__ = ["imagenet_datasets", "load_imagenet"]

NATIVE_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
HOW_TO_GET = (
    "ImageNet cannot be downloaded automatically (its licence needs a sign-in at image-net.org): "
    "download ILSVRC2012 there, unpack it as train/<class>/*.JPEG and val/<class>/*.JPEG "
    "(the validation images sorted into class folders) and pass that folder with --data-dir"
)


def _transforms(size: int, train: bool) -> transforms.Compose:
    from torchvision import transforms

    to_tensor = [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    if train:
        steps = [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip()]
    else:
        steps = [transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size)]
    return transforms.Compose(steps + to_tensor)


def _folder(root: Path, split: str, size: int, train: bool) -> datasets.ImageFolder:
    from torchvision import datasets

    path = root / split
    if not path.is_dir():
        raise DataError(f"imagenet: '{root}' has no '{split}/' folder. {HOW_TO_GET}")
    try:
        return datasets.ImageFolder(str(path), transform=_transforms(size, train))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(
            f"imagenet: '{path}' must hold one subfolder of images per class ({exc})"
        ) from exc


def imagenet_datasets(
    data_dir: Path | None = None,
    download: bool = False,
    augment: bool = True,
    image_size: int | None = None,
) -> tuple[datasets.ImageFolder, datasets.ImageFolder, Path, int]:
    """Train/val ``ImageFolder``s, the folder used and the crop size.

    ``augment=False`` gives the training split the validation transform (deterministic, e.g.
    for the AL metric's statistics).
    """
    root = data_dir if data_dir is not None else cache_dir("imagenet")
    if not root.is_dir():
        hint = " (--download does not apply)" if download else ""
        raise DataError(f"imagenet not found: no folder '{root}'{hint}. {HOW_TO_GET}")
    size = NATIVE_SIZE if image_size is None else image_size
    train = _folder(root, "train", size, train=augment)
    val = _folder(root, "val", size, train=False)
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))[:5]
        only_val = sorted(set(val.classes) - set(train.classes))[:5]
        raise DataError(
            f"imagenet: '{root}/train' and '{root}/val' have different class folders "
            f"(only in train: {only_train}, only in val: {only_val}); sort the validation "
            f"images into the same class folders as train"
        )
    return train, val, root, size


def load_imagenet(
    data_dir: Path | None, *, download: bool, augment: bool, image_size: int | None
) -> LoadedData:
    """The registry's loader for ImageNet (``download`` only changes the hint: it cannot)."""
    train, test, folder, size = imagenet_datasets(data_dir, download, augment, image_size)
    return LoadedData(train, test, size, folder)
