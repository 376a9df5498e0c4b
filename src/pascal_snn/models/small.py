"""Small CNNs sized for the built-in data sets (sklearn 8×8 digits, 28×28 (Fashion-)MNIST).

Same building blocks as VGG (:func:`make_layers`): ``conv3×3 → BatchNorm → QCFS``, 2×2 average
pooling, a ``linear → BatchNorm1d → QCFS`` hidden layer (the BatchNorm keeps its
pre-activations at unit scale, so units fire from the first step) and a plain linear classifier.
The initial QCFS threshold is 4.0 rather than the reference 8.0: after BatchNorm the
pre-activations are of unit scale, and short runs (the digits demo trains for a few epochs)
converge faster from θ = 4.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from pascal_snn.errors import ConfigError
from pascal_snn.models.vgg import (
    VGG,
    Pool,
    apply_levels,
    check_choice,
    check_width,
    classifier,
    make_layers,
    scaled,
)

__all__ = ["cnn6", "digits_cnn", "mnist_cnn"]


def _small_cnn(
    cfg: Sequence[int | str],
    hidden: int,
    image_size: int,
    num_classes: int,
    in_channels: int,
    L: int | Sequence[int],
    width: float,
    pool: Pool,
    theta: float,
) -> VGG:
    check_choice("pool", pool, ("avg", "max"))
    width = check_width(width)
    features, channels = make_layers(cfg, in_channels, width, pool, theta)
    side = image_size // 2 ** sum(1 for c in cfg if c == "P")
    if side < 1:
        raise ConfigError(f"image_size {image_size} is too small for this model (needs >= 4)")
    hidden_size = scaled(hidden, width)
    head = classifier(
        channels * side * side, [hidden_size], num_classes, theta=theta, batchnorm=True
    )
    model = VGG(features, nn.AdaptiveAvgPool2d(side), head)
    apply_levels(model, L)
    return model


def digits_cnn(
    num_classes: int = 10,
    in_channels: int = 1,
    L: int | Sequence[int] = 4,
    width: float = 1.0,
    pool: Pool = "avg",
    image_size: int = 8,
    theta: float = 4.0,
) -> VGG:
    """CNN for 8×8 digits: conv32 → conv64 → pool → conv64 → pool → fc128 → classes.

    4 QCFS layers; about 1.8 M MACs per 8×8 image at width 1.
    """
    return _small_cnn(
        (32, 64, "P", 64, "P"), 128, image_size, num_classes, in_channels, L, width, pool, theta
    )


def mnist_cnn(
    num_classes: int = 10,
    in_channels: int = 1,
    L: int | Sequence[int] = 4,
    width: float = 1.0,
    pool: Pool = "avg",
    image_size: int = 28,
    theta: float = 4.0,
) -> VGG:
    """CNN for 28×28 images: conv32 → pool → conv64 → pool → conv64 → fc128 → classes.

    4 QCFS layers; about 6.0 M MACs per 28×28 image at width 1.
    """
    return _small_cnn(
        (32, "P", 64, "P", 64), 128, image_size, num_classes, in_channels, L, width, pool, theta
    )


def cnn6(
    num_classes: int = 10,
    in_channels: int = 1,
    L: int | Sequence[int] = 4,
    width: float = 1.0,
    pool: Pool = "avg",
    image_size: int = 28,
    theta: float = 2.0,
) -> VGG:
    """Six-QCFS-layer CNN for 28×28 images, small enough to train many times (the AL trade-off
    study): conv16 → pool → conv32 → conv32 → pool → conv64 → conv64 → pool → fc128 → classes.

    About 5.6 M MACs per 28×28 image at width 1.
    """
    return _small_cnn(
        (16, "P", 32, 32, "P", 64, 64, "P"),
        128,
        image_size,
        num_classes,
        in_channels,
        L,
        width,
        pool,
        theta,
    )
