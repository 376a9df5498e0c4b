"""ResNet-18/34 with QCFS activations, one builder for both (variants as data).

A basic block computes ``QCFS( BN(conv(QCFS(BN(conv(x))))) + shortcut(x) )`` with
``shortcut = BN(conv1×1)`` when the shape changes and the identity otherwise (the QCFS
reference code's block, its ReLU replaced by QCFS). Stems:

- ``"cifar"``: ``conv3×3 → BN → QCFS``, no pooling (the QCFS/PASCAL reference code, also for
  its ImageNet ResNet-34);
- ``"imagenet"``: ``conv7×7/2 → BN → QCFS → MaxPool3×3/2`` (torchvision); the MaxPool sits
  right after a QCFS so the PASC conversion stays exact.

Then four stages (64, 128, 256, 512 channels, strides 1, 2, 2, 2), a global average pool,
``flatten`` and the linear classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from pascal_snn.models.vgg import apply_levels, check_choice, check_width, scaled
from pascal_snn.qcfs import QCFS

__all__ = ["BLOCKS", "BasicBlock", "ResNet", "resnet18", "resnet34"]

Stem = Literal["cifar", "imagenet"]

# Blocks per stage.
BLOCKS: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
}
STAGE_CHANNELS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)


class BasicBlock(nn.Module):
    """``act2( bn2(conv2(act1(bn1(conv1(x))))) + shortcut(x) )``."""

    def __init__(self, in_channels: int, channels: int, stride: int, theta: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = QCFS(theta=theta)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )
        self.act2 = QCFS(theta=theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(out + self.shortcut(x))


def _stem(stem: Stem, in_channels: int, channels: int, theta: float) -> nn.Sequential:
    if stem == "cifar":
        conv = nn.Conv2d(in_channels, channels, 3, 1, padding=1, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(channels), QCFS(theta=theta))
    conv = nn.Conv2d(in_channels, channels, 7, 2, padding=3, bias=False)
    return nn.Sequential(
        conv, nn.BatchNorm2d(channels), QCFS(theta=theta), nn.MaxPool2d(3, 2, padding=1)
    )


class ResNet(nn.Module):
    """``stem → layer1 … layer4 → global average pool → flatten → fc``."""

    def __init__(
        self,
        blocks: Sequence[int],
        num_classes: int,
        in_channels: int,
        width: float,
        stem: Stem,
        theta: float,
    ) -> None:
        super().__init__()
        channels = [scaled(c, width) for c in STAGE_CHANNELS]
        self.stem = _stem(stem, in_channels, channels[0], theta)
        stages = []
        current = channels[0]
        for count, out, stride in zip(blocks, channels, STAGE_STRIDES):
            stage = []
            for i in range(count):
                stage.append(BasicBlock(current, out, stride if i == 0 else 1, theta))
                current = out
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(current, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def _resnet(
    name: str,
    num_classes: int,
    in_channels: int,
    L: int | Sequence[int],
    width: float,
    stem: Stem,
    theta: float,
) -> ResNet:
    check_choice("stem", stem, ("cifar", "imagenet"))
    model = ResNet(BLOCKS[name], num_classes, in_channels, check_width(width), stem, theta)
    apply_levels(model, L)
    return model


def resnet18(
    num_classes: int,
    in_channels: int = 3,
    L: int | Sequence[int] = 4,
    width: float = 1.0,
    stem: Stem = "cifar",
    theta: float = 8.0,
) -> ResNet:
    """ResNet-18 with QCFS activations: 17 QCFS layers (stem + 2 per block × 8 blocks)."""
    return _resnet("resnet18", num_classes, in_channels, L, width, stem, theta)


def resnet34(
    num_classes: int,
    in_channels: int = 3,
    L: int | Sequence[int] = 4,
    width: float = 1.0,
    stem: Stem = "cifar",
    theta: float = 8.0,
) -> ResNet:
    """ResNet-34 with QCFS activations: 33 QCFS layers (stem + 2 per block × 16 blocks)."""
    return _resnet("resnet34", num_classes, in_channels, L, width, stem, theta)
