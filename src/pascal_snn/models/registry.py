"""Models by name (timm style): ``create(name, num_classes, ...)`` builds one.

The name → builder table is fixed at import; ``create`` drops keyword arguments whose value is
``None`` so unset CLI options never override a builder's defaults. ``torchvision:<name>``
builds any torchvision classification model, QCFS-swapped
(:mod:`pascal_snn.models.torchvision_models`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any

from torch import nn

from pascal_snn.errors import ConfigError
from pascal_snn.models import torchvision_models
from pascal_snn.models.resnet import resnet18, resnet34
from pascal_snn.models.small import cnn6, digits_cnn, mnist_cnn
from pascal_snn.models.vgg import vgg16

__all__ = ["create", "names"]

_BUILDERS: MappingProxyType[str, Callable[..., nn.Module]] = MappingProxyType(
    {
        "cnn6": cnn6,
        "digits_cnn": digits_cnn,
        "mnist_cnn": mnist_cnn,
        "resnet18": resnet18,
        "resnet34": resnet34,
        "vgg16": vgg16,
    }
)


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_BUILDERS)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def create(
    name: str,
    num_classes: int,
    in_channels: int | None = 3,
    L: int | Sequence[int] | None = 4,
    width: float | None = 1.0,
    **kw: Any,
) -> nn.Module:
    """Build the model ``name`` with QCFS activations (``torchvision:<name>`` for torchvision's).

    ``L`` is one quantization step for every QCFS layer or a list with one per layer in forward
    order (a wrong count raises :class:`ConfigError`, a ValueError, stating the expected count).
    ``width`` multiplies every channel count. Further keywords go to the builder (e.g.
    ``head``, ``pool`` for ``vgg16``; ``stem`` for the ResNets); ``None`` values are dropped.
    """
    kw = {k: v for k, v in kw.items() if v is not None}
    if name.startswith(torchvision_models.PREFIX):
        return _create_torchvision(name, num_classes, in_channels, L, width, kw)
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ConfigError(
            f"unknown model {name!r}; available models: {', '.join(names())}, or "
            f"{torchvision_models.PREFIX}<name> for a torchvision classification model "
            f"(e.g. {torchvision_models.PREFIX}resnet18)"
        )
    accepted = set(inspect.signature(builder).parameters)
    unknown = sorted(set(kw) - accepted)
    if unknown:
        extra = sorted(accepted - {"num_classes", "in_channels", "L", "width"})
        raise ConfigError(
            f"model {name!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(extra) or 'none'}"
        )
    args: dict[str, Any] = {"num_classes": _positive_int("num_classes", num_classes)}
    if in_channels is not None:
        args["in_channels"] = _positive_int("in_channels", in_channels)
    if width is not None:
        args["width"] = width
    if L is not None:
        args["L"] = L
    try:
        return builder(**args, **kw)
    except ConfigError:
        raise
    except ValueError as exc:  # bad L (count or value): keep the message, make it a user error
        raise ConfigError(f"model {name!r}: {exc}") from exc


def _create_torchvision(
    name: str,
    num_classes: int,
    in_channels: int | None,
    L: int | Sequence[int] | None,
    width: float | None,
    kw: dict[str, Any],
) -> nn.Module:
    try:
        return torchvision_models.build(
            name[len(torchvision_models.PREFIX) :],
            num_classes=_positive_int("num_classes", num_classes),
            in_channels=None if in_channels is None else _positive_int("in_channels", in_channels),
            L=4 if L is None else L,
            width=width,
            **kw,
        )
    except ConfigError:
        raise
    except ValueError as exc:  # a refused architecture (ConversionError) or a bad L
        raise ConfigError(f"model {name!r}: {exc}") from exc
