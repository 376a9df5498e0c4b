"""What a data set is and how to train on it by default."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DatasetInfo"]


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
