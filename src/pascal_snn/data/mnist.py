"""MNIST and Fashion-MNIST from a folder of the four IDX files.

Looked for in ``--data-dir`` (or its torchvision layout ``<dir>/MNIST/raw``,
``<dir>/FashionMNIST/raw``), else in the default folders: Debian's
``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``) and
``~/.cache/pascal-snn/<name>``. ``--download`` fetches missing files from torchvision's mirrors.
Pixels become float32 in ``[0, 1]`` (no mean/std normalisation, so zero padding is black).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pascal_snn.data.arrays import (
    ArrayDataset,
    Chain,
    RandomHorizontalFlip,
    RandomShift,
    pad_images,
    resolve_padded_size,
)
from pascal_snn.data.idx import read_idx
from pascal_snn.data.info import LoadedData
from pascal_snn.data.locations import cache_dir, download_file
from pascal_snn.errors import DataError

__all__ = [
    "IDX_FILES",
    "MnistSource",
    "find_idx_folder",
    "load_fashion_mnist",
    "load_idx_folder",
    "load_mnist",
    "mnist_datasets",
]

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
NATIVE_SIZE = 28
CROP_PADDING = 2


@dataclass(frozen=True)
class MnistSource:
    """Where one IDX data set lives and how to get it."""

    name: str
    torchvision_class: str  # also the torchvision folder name: <root>/<class>/raw
    system_folders: tuple[Path, ...]
    install_hint: str
    classes: tuple[str, ...]
    mirror: bool = False  # a horizontal flip keeps every class (training augmentation)

    def default_folders(self) -> tuple[Path, ...]:
        return (*self.system_folders, cache_dir(self.name))


SOURCES = {
    "mnist": MnistSource(
        name="mnist",
        torchvision_class="MNIST",
        system_folders=(),
        install_hint="",
        classes=tuple(str(digit) for digit in range(10)),
    ),
    "fashion-mnist": MnistSource(
        name="fashion-mnist",
        torchvision_class="FashionMNIST",
        system_folders=(Path("/usr/share/datasets/fashion-mnist"),),
        install_hint="install Debian's copy with 'sudo apt-get install dataset-fashion-mnist', ",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        mirror=True,
    ),
}


def _idx_path(folder: Path, filename: str) -> Path | None:
    """``filename`` in ``folder``, gzipped or already extracted (torchvision keeps both)."""
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _missing(folder: Path) -> list[str]:
    return [name for name in IDX_FILES if _idx_path(folder, name) is None]


def _status(folder: Path) -> str:
    return f"lacks {', '.join(_missing(folder))}" if folder.is_dir() else "no such folder"


def find_idx_folder(source: MnistSource, data_dir: Path | None, download: bool) -> Path:
    """The folder that holds all four IDX files (downloading them first if asked)."""
    if data_dir is not None:
        candidates = [data_dir, data_dir / source.torchvision_class / "raw"]
    else:
        candidates = list(source.default_folders())
    for folder in candidates:
        if not _missing(folder):
            return folder
    target = data_dir if data_dir is not None else cache_dir(source.name)
    if download:
        _download(source, target)
        return target
    looked = "; ".join(f"'{folder}' ({_status(folder)})" for folder in candidates)
    raise DataError(
        f"{source.name} not found: looked for the four IDX files ({', '.join(IDX_FILES)}) in: "
        f"{looked}. To get it, {source.install_hint}run again with --download (saves "
        f"into '{target}'), or point --data-dir at a folder holding those files"
    )


def _download(source: MnistSource, folder: Path) -> None:
    from torchvision import datasets

    reference = getattr(datasets, source.torchvision_class)
    folder.mkdir(parents=True, exist_ok=True)
    for filename, md5 in reference.resources:
        if _idx_path(folder, filename) is None:
            urls = [mirror + filename for mirror in reference.mirrors]
            download_file(urls, folder, filename, md5)


def _load_split(folder: Path, prefix: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _idx_path(folder, f"{prefix}-images-idx3-ubyte.gz")
    labels_path = _idx_path(folder, f"{prefix}-labels-idx1-ubyte.gz")
    assert images_path is not None and labels_path is not None
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"'{images_path}' holds {images.dtype} values of shape {images.shape}, expected "
            f"uint8 images of shape (N, 28, 28); this folder does not hold {name}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"'{labels_path}' holds {labels.dtype} values of shape {labels.shape}, expected "
            f"{images.shape[0]} uint8 labels (one per image in '{images_path.name}')"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"'{labels_path}' has label {labels.max()}, expected labels 0–9")
    return images, labels


def load_idx_folder(folder: Path, name: str = "mnist") -> dict[str, np.ndarray]:
    """``{"train_images", "train_labels", "test_images", "test_labels"}`` from ``folder``."""
    train_images, train_labels = _load_split(folder, "train", name)
    test_images, test_labels = _load_split(folder, "t10k", name)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


def mnist_datasets(
    name: str,
    data_dir: Path | None = None,
    download: bool = False,
    augment: bool = True,
    image_size: int | None = None,
) -> tuple[ArrayDataset, ArrayDataset, Path, int]:
    """Train/test sets of ``name`` ("mnist" or "fashion-mnist"), the folder used, the size.

    ``image_size`` > 28 zero-pads symmetrically. Training augmentation: random crop with
    padding 2 (shifts of up to 2 pixels, zero fill); for Fashion-MNIST also a random horizontal
    flip (a mirrored shirt is a shirt; a mirrored digit is not a digit, so MNIST gets none).
    """
    source = SOURCES[name]
    size = resolve_padded_size(name, NATIVE_SIZE, image_size)
    folder = find_idx_folder(source, data_dir, download)
    arrays = load_idx_folder(folder, name)

    def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(arrays[f"{split}_images"]).unsqueeze(1)
        return pad_images(images, size), torch.from_numpy(arrays[f"{split}_labels"])

    train_transform: Chain | RandomShift | None = None
    if augment:
        shift = RandomShift(CROP_PADDING)
        train_transform = Chain(shift, RandomHorizontalFlip()) if source.mirror else shift
    train = ArrayDataset(
        *tensors("train"), max_value=255, transform=train_transform, classes=source.classes
    )
    test = ArrayDataset(*tensors("test"), max_value=255, classes=source.classes)
    return train, test, folder, size


def load_mnist(
    data_dir: Path | None, *, download: bool, augment: bool, image_size: int | None
) -> LoadedData:
    """The registry's loader for MNIST."""
    train, test, folder, size = mnist_datasets("mnist", data_dir, download, augment, image_size)
    return LoadedData(train, test, size, folder)


def load_fashion_mnist(
    data_dir: Path | None, *, download: bool, augment: bool, image_size: int | None
) -> LoadedData:
    """The registry's loader for Fashion-MNIST."""
    train, test, folder, size = mnist_datasets(
        "fashion-mnist", data_dir, download, augment, image_size
    )
    return LoadedData(train, test, size, folder)
