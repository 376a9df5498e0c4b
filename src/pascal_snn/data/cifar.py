"""CIFAR-10 / CIFAR-100 from the standard python-pickle batches, read without running code.

The batches (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``;
``cifar-100-python/train``, ``test``, ``meta``) are pickles, and unpickling can run arbitrary
code. :func:`load_batch` therefore uses an unpickler that only resolves the few globals that
rebuild numpy arrays; anything else is refused with a :class:`DataError`. (torchvision's own
reader calls plain ``pickle.load`` after an md5 check; we read with the restricted unpickler
and check structure instead, so small stand-ins in the same format work in tests.)
"""

from __future__ import annotations

import importlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pascal_snn.data.arrays import ArrayDataset, pad_images, resolve_padded_size
from pascal_snn.data.info import LoadedData
from pascal_snn.data.locations import cache_dir
from pascal_snn.errors import DataError

__all__ = [
    "CIFAR_SOURCES",
    "CifarSource",
    "cifar_datasets",
    "find_cifar_folder",
    "load_batch",
    "load_cifar10",
    "load_cifar100",
]

NATIVE_SIZE = 32
CROP_PADDING = 4


def _numpy_private(module: str, name: str) -> Any:
    """A numpy global that pickled arrays refer to (``numpy._core`` in numpy 2, ``numpy.core``
    in numpy 1)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")  # pragma: no cover


_reconstruct = _numpy_private("multiarray", "_reconstruct")
scalar = _numpy_private("multiarray", "scalar")
_frombuffer = _numpy_private("numeric", "_frombuffer")

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("codecs").encode,  # bytes under pickle protocol 2
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _reconstruct
    _ALLOWED[(_module, "scalar")] = scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_module, "_frombuffer")] = _frombuffer  # pickle protocol 5


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler for plain containers and numpy arrays; every other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def load_batch(path: Path) -> dict[str, Any]:
    """One CIFAR batch file as a dict with ``str`` keys (Python 2 pickles decode as latin-1)."""
    try:
        raw = path.read_bytes()
        loaded = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except OSError as exc:
        raise DataError(f"cannot read CIFAR batch '{path}': {exc}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
        raise DataError(
            f"'{path}' is not a CIFAR python batch ({exc}); only pickles of dicts, lists and "
            f"numpy arrays are read. Re-download the data set (--download) or fix --data-dir"
        ) from exc
    if not isinstance(loaded, dict):
        raise DataError(f"'{path}' holds a {type(loaded).__name__}, expected a CIFAR batch dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in loaded.items()}


@dataclass(frozen=True)
class CifarSource:
    """File layout of one CIFAR variant (names as in the official archives)."""

    name: str
    num_classes: int
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    torchvision_class: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR_SOURCES = {
    # normalisation constants of the QCFS / PASCAL reference code, so their weights load as-is
    "cifar10": CifarSource(
        name="cifar10",
        num_classes=10,
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
        torchvision_class="CIFAR10",
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
    ),
    "cifar100": CifarSource(
        name="cifar100",
        num_classes=100,
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        torchvision_class="CIFAR100",
        mean=(129.3 / 255, 124.1 / 255, 112.4 / 255),
        std=(68.2 / 255, 65.4 / 255, 70.4 / 255),
    ),
}


def _missing(source: CifarSource, folder: Path) -> list[str]:
    names = (*source.train_files, *source.test_files, source.meta_file)
    return [name for name in names if not (folder / name).is_file()]


def find_cifar_folder(source: CifarSource, data_dir: Path | None, download: bool) -> Path:
    """The batches folder: ``<root>/<cifar-folder>`` or ``data_dir`` itself if it holds them."""
    root = data_dir if data_dir is not None else cache_dir(source.name)
    candidates = [root / source.folder] + ([root] if data_dir is not None else [])
    for folder in candidates:
        if not _missing(source, folder):
            return folder
    if download:
        _download(source, root)
        if not _missing(source, root / source.folder):
            return root / source.folder
    found = next((folder for folder in candidates if folder.is_dir()), None)
    detail = f"; '{found}' lacks {', '.join(_missing(source, found))}" if found else ""
    raise DataError(
        f"{source.name} not found: looked for '{source.folder}/' (python batches) in '{root}'"
        f"{detail}. Run again with --download to fetch it there, or point --data-dir at the "
        f"folder that holds '{source.folder}'"
    )


def _download(source: CifarSource, root: Path) -> None:
    from torchvision import datasets
    from torchvision.datasets.utils import download_and_extract_archive

    reference = getattr(datasets, source.torchvision_class)
    try:
        download_and_extract_archive(
            reference.url, str(root), filename=reference.filename, md5=reference.tgz_md5
        )
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
        raise DataError(
            f"could not download {source.name} into '{root}' ({exc}); check the network, or "
            f"fetch and unpack {reference.url} there by hand"
        ) from exc


def _read_split(
    source: CifarSource, folder: Path, files: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in files:
        path = folder / name
        batch = load_batch(path)
        data, batch_labels = batch.get("data"), batch.get(source.label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
            raise DataError(f"'{path}' has no uint8 'data' matrix; it is not a {source.name} batch")
        if data.shape[1] != 3 * NATIVE_SIZE * NATIVE_SIZE:
            raise DataError(
                f"'{path}' rows hold {data.shape[1]} values, expected 3072 (3×32×32 pixels)"
            )
        batch_labels = np.asarray(batch_labels if batch_labels is not None else [])
        if batch_labels.shape != (data.shape[0],) or batch_labels.dtype.kind not in "iu":
            raise DataError(
                f"'{path}' needs {data.shape[0]} integer '{source.label_key}' (one per image); "
                f"it is not a {source.name} batch"
            )
        if batch_labels.size and not 0 <= batch_labels.min() <= batch_labels.max() < (
            source.num_classes
        ):
            raise DataError(
                f"'{path}' has labels outside 0–{source.num_classes - 1}; it is not a "
                f"{source.name} batch"
            )
        images.append(data.reshape(-1, 3, NATIVE_SIZE, NATIVE_SIZE))
        labels.append(batch_labels.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _class_names(source: CifarSource, folder: Path) -> tuple[str, ...]:
    names = load_batch(folder / source.meta_file).get(source.names_key)
    if not isinstance(names, list) or len(names) != source.num_classes:
        raise DataError(
            f"'{folder / source.meta_file}' needs a list of {source.num_classes} "
            f"'{source.names_key}'; it is not {source.name} metadata"
        )
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def cifar_datasets(
    name: str,
    data_dir: Path | None = None,
    download: bool = False,
    augment: bool = True,
    image_size: int | None = None,
) -> tuple[ArrayDataset, ArrayDataset, Path, int]:
    """Train/test sets of ``name`` ("cifar10" or "cifar100"), the folder used, the size.

    Training augmentation: random crop 32 with padding 4 and a horizontal flip; both splits are
    then normalised with the reference code's per-channel mean/std. ``image_size`` > 32
    zero-pads (before normalisation).
    """
    source = CIFAR_SOURCES[name]
    size = resolve_padded_size(name, NATIVE_SIZE, image_size)
    folder = find_cifar_folder(source, data_dir, download)
    classes = _class_names(source, folder)
    from torchvision import transforms  # imported on use: torchvision takes seconds to import

    normalize = transforms.Normalize(source.mean, source.std)
    train_steps: list = []
    if augment:
        train_steps = [
            transforms.RandomCrop(size, padding=CROP_PADDING),
            transforms.RandomHorizontalFlip(),
        ]
    splits = []
    for files, steps in ((source.train_files, train_steps), (source.test_files, [])):
        images, labels = _read_split(source, folder, files)
        splits.append(
            ArrayDataset(
                pad_images(torch.from_numpy(images), size),
                torch.from_numpy(labels),
                max_value=255,
                transform=transforms.Compose([*steps, normalize]),
                classes=classes,
            )
        )
    return splits[0], splits[1], folder, size


def load_cifar10(
    data_dir: Path | None, *, download: bool, augment: bool, image_size: int | None
) -> LoadedData:
    """The registry's loader for CIFAR-10."""
    train, test, folder, size = cifar_datasets("cifar10", data_dir, download, augment, image_size)
    return LoadedData(train, test, size, folder)


def load_cifar100(
    data_dir: Path | None, *, download: bool, augment: bool, image_size: int | None
) -> LoadedData:
    """The registry's loader for CIFAR-100."""
    train, test, folder, size = cifar_datasets("cifar100", data_dir, download, augment, image_size)
    return LoadedData(train, test, size, folder)
