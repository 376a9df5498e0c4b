"""VGG-style networks built from a config table (torchvision ``make_layers`` style).

Every convolution is ``conv3×3 → BatchNorm → QCFS``; every hidden linear layer is
``linear → QCFS``; the classifier (the last linear layer) has no activation. Pooling is
AvgPool 2×2 (the QCFS and PASCAL reference code) or MaxPool 2×2 (``pool="max"``); a MaxPool
always follows a QCFS directly, so the PASC conversion stays exact.

VGG-16 MACs (conv ``C_i·C_o·K_h·K_w·H_o·W_o``, linear ``C_i·C_o``), paper Appendix A.5/A.6:
CIFAR head at 32×32: 332,111,872 (10 classes), 332,480,512 (100 classes);
ImageNet head at 224×224, 1000 classes: 15,470,264,320.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from pascal_snn.errors import ConfigError
from pascal_snn.qcfs import QCFS, set_levels, validate_level

__all__ = [
    "CONFIGS",
    "VGG",
    "apply_levels",
    "check_choice",
    "check_width",
    "classifier",
    "make_layers",
    "scaled",
    "vgg16",
]

Pool = Literal["avg", "max"]
Head = Literal["cifar", "imagenet"]

# An int is a 3×3 convolution with that many output channels, "P" a 2×2 pooling.
CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (
        64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"
    ),
}  # fmt: skip


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, rounded, at least 1."""
    return max(1, round(channels * width))


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return str(value)


def check_width(width: object) -> float:
    """The width multiplier as a float > 0, or ConfigError."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ConfigError(f"width must be a number > 0 (a channel multiplier), got {width!r}")
    return float(width)


def apply_levels(model: nn.Module, L: int | Sequence[int]) -> list[int]:
    """Set the QCFS levels: one int for every layer, or a list/tuple with one per layer in
    forward order (ValueError stating the expected count otherwise)."""
    if isinstance(L, (list, tuple)):
        return set_levels(model, L)
    return set_levels(model, validate_level(L))


def _pool(pool: Pool) -> nn.Module:
    return nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2)


def make_layers(
    cfg: Sequence[int | str],
    in_channels: int,
    width: float = 1.0,
    pool: Pool = "avg",
    theta: float = 8.0,
) -> tuple[nn.Sequential, int]:
    """The feature extractor of ``cfg`` and its number of output channels.

    Each int ``c`` becomes ``Conv2d(·, c·width, 3, padding=1) → BatchNorm2d → QCFS`` (the conv
    keeps its bias, as in the reference code, so reference weights load one to one),
    each ``"P"`` a 2×2 pooling layer.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for item in cfg:
        if item == "P":
            layers.append(_pool(pool))
            continue
        out = scaled(int(item), width)
        layers += [
            nn.Conv2d(channels, out, 3, padding=1),
            nn.BatchNorm2d(out),
            QCFS(theta=theta),
        ]
        channels = out
    return nn.Sequential(*layers), channels


def classifier(
    in_features: int,
    hidden: Sequence[int],
    num_classes: int,
    dropout: float = 0.0,
    theta: float = 8.0,
    batchnorm: bool = False,
) -> nn.Sequential:
    """``(Linear [→ BatchNorm1d] → QCFS [→ Dropout])`` per hidden size, then the plain
    ``Linear`` classifier."""
    layers: list[nn.Module] = []
    features = in_features
    for size in hidden:
        layers.append(nn.Linear(features, size))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(QCFS(theta=theta))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        features = size
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features → pool → flatten → classifier``.

    ``pool`` is an adaptive average pool to the spatial size the classifier expects (identity
    at the nominal input size: 1×1 after 32×32 for the CIFAR head, 7×7 after 224×224 for the
    ImageNet head).
    """

    def __init__(self, features: nn.Sequential, pool: nn.Module, head: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.pool = pool
        self.classifier = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg16(
    num_classes: int,
    in_channels: int = 3,
    L: int | Sequence[int] = 4,
    width: float = 1.0,
    head: Head = "cifar",
    pool: Pool = "avg",
    dropout: float = 0.0,
    theta: float = 8.0,
) -> VGG:
    """VGG-16 with QCFS activations (15 QCFS layers: 13 conv + 2 hidden linear).

    ``head="cifar"``: the QCFS/PASCAL reference CIFAR model, 32×32 input, classifier
    ``512 → 4096 → 4096 → classes``. ``head="imagenet"``: 224×224 input, classifier
    ``25088 → 4096 → 4096 → classes``. ``width`` scales every channel and hidden size.
    """
    check_choice("head", head, ("cifar", "imagenet"))
    check_choice("pool", pool, ("avg", "max"))
    width = check_width(width)
    features, channels = make_layers(CONFIGS["vgg16"], in_channels, width, pool, theta)
    side = 1 if head == "cifar" else 7
    hidden = [scaled(4096, width)] * 2
    model = VGG(
        features,
        nn.AdaptiveAvgPool2d(side),
        classifier(channels * side * side, hidden, num_classes, dropout, theta),
    )
    apply_levels(model, L)
    return model
