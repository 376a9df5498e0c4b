"""What a data set is and how to train on it by default."""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch.utils.data import Dataset, Subset

__all__ = ["DatasetInfo", "LoadedData", "Loader", "dataset_labels", "dataset_size"]


def dataset_size(dataset: Dataset[Any]) -> int:
    """``len(dataset)``: every data set here is map-style (``Dataset`` itself does not promise
    ``__len__``, so this checks it)."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"{type(dataset).__name__} has no length; a map-style data set is needed")
    return len(dataset)


@dataclass(frozen=True)
class DatasetInfo:
    """Shape of a data set's items and its training defaults (SPEC §7, paper A.8).

    Items are ``(image, label)`` with ``image`` a float32 tensor ``[in_channels, image_size,
    image_size]`` and ``label`` an ``int`` in ``[0, num_classes)``. ``lr``, ``weight_decay``,
    ``epochs`` and ``batch_size`` are the defaults for SGD (momentum 0.9) with a cosine schedule;
    ``default_model`` names the ``pascal_snn.models`` entry that fits this data by default.
    ``val_images`` training images held out (un-augmented) to select the model on, so the test
    set is used once, on the selected model (SPEC §7).
    ``data_dir`` is the folder the data came from (``None`` for built-in / generated data).
    ``normalisation`` says how stored pixels become the model's input values.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    default_model: str
    lr: float
    weight_decay: float
    epochs: int
    batch_size: int = 128
    val_images: int = 0
    classes: tuple[str, ...] = ()
    data_dir: str | None = None
    normalisation: str = ""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)


@dataclass(frozen=True)
class _Unknown(Exception):
    pass


def dataset_labels(dataset: Dataset[Any]) -> list[int] | None:
    """Every item's label without loading the images (``targets`` of an ArrayDataset or
    ImageFolder, through any Subset), or None when the data set does not expose them."""
    try:
        return _labels(dataset)
    except _Unknown:
        return None


def _labels(dataset: Any) -> list[int]:
    if isinstance(dataset, Subset):
        inner = _labels(dataset.dataset)
        return [inner[i] for i in dataset.indices]
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise _Unknown
    return [int(t) for t in targets]


@dataclass(frozen=True)
class LoadedData:
    """What a data set's loader returns: its splits, their image size and the folder read."""

    train: Dataset[Any]
    test: Dataset[Any]
    image_size: int
    data_dir: Path | None = None


class Loader(Protocol):
    """The one signature of every data set's loader (held by the registry)."""

    def __call__(
        self, data_dir: Path | None, *, download: bool, augment: bool, image_size: int | None
    ) -> LoadedData: ...
