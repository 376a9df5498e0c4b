"""In-memory image data sets (digits, MNIST, Fashion-MNIST, CIFAR, synthetic).

Images are kept as one tensor ``[N, C, H, W]`` (uint8 where the source is 8-bit, so MNIST's
60,000 images take 47 MB) and turned into float32 in ``[0, 1]`` one item at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from pascal_snn.errors import ConfigError, DataError
from pascal_snn.memory import available_bytes

__all__ = [
    "ArrayDataset",
    "Chain",
    "RandomHorizontalFlip",
    "RandomShift",
    "pad_images",
    "resolve_padded_size",
]

Transform = Callable[[torch.Tensor], torch.Tensor]


class ArrayDataset(Dataset):
    """``(transform(images[i] / max_value), int(labels[i]))`` over tensors held in memory.

    ``max_value`` maps stored values to ``[0, 1]`` (255 for 8-bit pixels, 16 for the 0–16
    digits). ``transform`` (e.g. random crop, normalisation) sees that float32 ``[C, H, W]``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        max_value: float = 1.0,
        transform: Transform | None = None,
        classes: Sequence[str] = (),
    ) -> None:
        if images.dim() != 4 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"images must be [N, C, H, W] and labels [N], got {tuple(images.shape)} and "
                f"{tuple(labels.shape)}"
            )
        self.images = images
        self.labels = labels.to(torch.int64)
        self.max_value = float(max_value)
        self.transform = transform
        self.classes = tuple(classes)

    @property
    def targets(self) -> list[int]:
        """Labels as a list (the torchvision attribute name)."""
        return self.labels.tolist()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].to(torch.float32)
        if self.max_value != 1.0:
            image = image / self.max_value
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


class RandomShift:
    """Random crop of the zero-padded image back to its size: a shift of at most ``padding``
    pixels in each direction (torchvision's ``RandomCrop(size, padding)`` on a square image,
    without importing torchvision). Draws from torch's global generator, so a seeded epoch
    gives the same shifts every time."""

    def __init__(self, padding: int) -> None:
        self.padding = padding

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        p = self.padding
        height, width = image.shape[-2:]
        padded = torch.nn.functional.pad(image, (p, p, p, p))
        top, left = torch.randint(0, 2 * p + 1, (2,)).tolist()
        return padded[..., top : top + height, left : left + width]

    def __repr__(self) -> str:
        return f"RandomShift(padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability ½ (torch's global generator, as
    :class:`RandomShift`). For data whose classes are unchanged by a mirror (clothes, objects);
    not for digits."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image.flip(-1) if bool(torch.randint(0, 2, ())) else image

    def __repr__(self) -> str:
        return "RandomHorizontalFlip()"


class Chain:
    """Apply transforms in order (torchvision's ``Compose`` without importing torchvision)."""

    def __init__(self, *transforms: Transform) -> None:
        self.transforms = transforms

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        for transform in self.transforms:
            image = transform(image)
        return image

    def __repr__(self) -> str:
        return f"Chain({', '.join(map(repr, self.transforms))})"


def resolve_padded_size(name: str, native: int, image_size: int | None) -> int:
    """The output size for a data set that can only grow by zero padding."""
    if image_size is None:
        return native
    if image_size < native:
        raise ConfigError(
            f"--image-size {image_size} is smaller than the {native}×{native} images of {name}; "
            f"{name} can only be zero-padded to a size ≥ {native}"
        )
    return image_size


def pad_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad ``[N, C, H, W]`` symmetrically to ``size × size`` (an odd extra goes last)."""
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    top, left = (size - height) // 2, (size - width) // 2
    shape = (*images.shape[:-2], size, size)
    needed = math.prod(shape) * images.element_size()
    free = available_bytes(images.device)
    if free is not None and needed > free:
        raise DataError(
            f"zero-padding {images.shape[0]} images to {size}×{size} needs "
            f"{needed / 2**30:.1f} GiB but about {free / 2**30:.1f} GiB are free; choose a "
            "smaller --image-size"
        )
    padded = images.new_zeros(shape)
    padded[..., top : top + height, left : left + width] = images
    return padded
