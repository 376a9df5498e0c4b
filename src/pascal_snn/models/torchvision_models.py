"""torchvision classification models by name (``torchvision:<name>``), QCFS-swapped.

``build("resnet18", num_classes=10, in_channels=1, L=4, stem="cifar")`` builds torchvision's
architecture with random weights (``weights=None``: nothing is downloaded), adapts it, and
returns :func:`pascal_snn.qcfsify.qcfsify` of it — an ``fx.GraphModule`` whose parameter names
are torchvision's, so a torchvision ``state_dict`` of the same configuration loads with
:func:`pascal_snn.qcfsify.load_relu_weights`.

Adaptations:

- ``num_classes`` goes to the builder (a fresh classifier of that size).
- ``in_channels ≠ 3``: the first convolution in forward order is replaced by one with the same
  shape parameters and ``in_channels`` inputs (fresh weights).
- ``stem="cifar"`` (for small images, e.g. 32×32), defined for
  the ResNet family (``resnet*``, ``resnext*``, ``wide_resnet*``): ``conv1`` becomes a 3×3
  stride-1 convolution and the max-pool is removed (the CIFAR ResNet stem);
  DenseNets (``densenet*``): ``features.conv0`` likewise, and ``features.pool0`` removed.
  Other families are refused with ``stem="cifar"`` (``stem="imagenet"``, the default, keeps
  torchvision's stem).
- GoogLeNet / Inception v3: ``aux_logits=False`` and ``init_weights=True`` unless given (the
  auxiliary heads run only in training, so the graph would depend on the mode).
- Other keywords go to the torchvision builder; the strings ``true``/``false``/``none`` (as
  ``--model-kwargs`` gives them) become ``True``/``False``/``None``. ``theta`` and
  ``relu6_theta`` set the initial QCFS thresholds.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from torch import fx, nn

from pascal_snn.errors import ConfigError
from pascal_snn.qcfsify import DEFAULT_THETA, RELU6_THETA, qcfsify

__all__ = ["PREFIX", "build", "names"]

PREFIX = "torchvision:"
_CIFAR_FAMILIES = ("resnet", "resnext", "wide_resnet", "densenet")
_AUX_MODELS = ("googlenet", "inception_v3")


def names() -> list[str]:
    """torchvision's classification model names (``torchvision.models`` only), sorted."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered == "none":
            return None
    return value


def _replace(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_name, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, module)


def _conv_like(conv: nn.Conv2d, in_channels: int, **changes: Any) -> nn.Conv2d:
    args: dict[str, Any] = {
        "kernel_size": conv.kernel_size,
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "groups": 1 if conv.groups == conv.in_channels else conv.groups,
        "bias": conv.bias is not None,
        "padding_mode": conv.padding_mode,
    }
    args.update(changes)
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
        **args,
    )


def _cifar_stem(name: str, model: nn.Module, in_channels: int) -> None:
    conv_path, pool_path = (
        ("features.conv0", "features.pool0")
        if name.startswith("densenet")
        else ("conv1", "maxpool")
    )
    conv = model.get_submodule(conv_path)
    if not isinstance(conv, nn.Conv2d):
        raise ConfigError(f"{PREFIX}{name}: expected a Conv2d at '{conv_path}' for stem='cifar'")
    small = {"kernel_size": 3, "stride": 1, "padding": 1, "bias": False}
    _replace(model, conv_path, _conv_like(conv, in_channels, **small))
    _replace(model, pool_path, nn.Identity())


def _first_conv(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The first convolution / linear layer the forward pass calls, by qualified name."""
    from pascal_snn.graph import forward_module_order

    modules = dict(model.named_modules())
    order = forward_module_order(model) or list(modules)
    for path in order:
        module = modules.get(path)
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            return path, module
    return None


def build(
    name: str,
    num_classes: int,
    in_channels: int | None = 3,
    L: int | Sequence[int] | Mapping[str, int] = 4,
    width: float | None = None,
    **kw: Any,
) -> fx.GraphModule:
    """torchvision's ``name`` with random weights, adapted (module docstring), qcfsified."""
    import torchvision

    available = names()
    if name not in available:
        import difflib

        close = difflib.get_close_matches(name, available, n=4)
        hint = f" (did you mean {', '.join(PREFIX + c for c in close)}?)" if close else ""
        raise ConfigError(
            f"unknown torchvision model {name!r}{hint}; torchvision "
            f"{torchvision.__version__} has: {', '.join(available)}"
        )
    if width is not None and float(width) != 1.0:
        raise ConfigError(
            f"{PREFIX}{name} takes no width multiplier (width={width}); pick a smaller "
            "torchvision variant or its own option (e.g. mobilenet_v2 width_mult=0.5)"
        )
    options = {k: _plain(v) for k, v in kw.items()}
    for forbidden in ("weights", "weights_backbone", "num_classes"):
        if forbidden in options:
            raise ConfigError(
                f"{PREFIX}{name}: option {forbidden!r} is not accepted here; the model is "
                "built with random weights and the data set's class count (load trained ReLU "
                "weights with pascal_snn.qcfsify.load_relu_weights)"
            )
    stem = options.pop("stem", "imagenet")
    theta = options.pop("theta", DEFAULT_THETA)
    relu6_theta = options.pop("relu6_theta", RELU6_THETA)
    if stem not in ("imagenet", "cifar"):
        raise ConfigError(f"{PREFIX}{name}: stem must be 'imagenet' or 'cifar', got {stem!r}")
    if stem == "cifar" and not name.startswith(_CIFAR_FAMILIES):
        raise ConfigError(
            f"{PREFIX}{name}: stem='cifar' is defined for the ResNet family (resnet*, "
            "resnext*, wide_resnet*: 3×3 stride-1 conv1, no max-pool) and DenseNets "
            "(densenet*: same for conv0/pool0); other families run with their own stem "
            "(leave stem unset) on images large enough for their downsampling"
        )
    if name in _AUX_MODELS:
        options.setdefault("aux_logits", False)
        options.setdefault("init_weights", True)
    channels = 3 if in_channels is None else int(in_channels)
    if channels != 3 and options.get("transform_input"):
        raise ConfigError(
            f"{PREFIX}{name}: transform_input=True assumes 3 RGB channels; the data has {channels}"
        )
    builder = torchvision.models.get_model_builder(name)
    try:
        model = builder(weights=None, num_classes=num_classes, **options)
    except TypeError as exc:
        params = _model_options(builder)
        raise ConfigError(
            f"{PREFIX}{name} does not take option(s) {', '.join(sorted(options)) or '(none)'} "
            f"({exc}); its builder takes: {params}"
        ) from None
    if stem == "cifar":
        _cifar_stem(name, model, channels)
    if channels != 3:
        first = _first_conv(model)
        if first is None or not isinstance(first[1], nn.Conv2d):
            raise ConfigError(f"{PREFIX}{name}: no first Conv2d found to take {channels} channels")
        path, conv = first
        assert isinstance(conv, nn.Conv2d)
        if conv.in_channels != channels:
            _replace(model, path, _conv_like(conv, channels))
    return qcfsify(model, L=L, theta=theta, relu6_theta=relu6_theta)


def _model_options(builder: Any) -> str:
    """The keyword options of the model class behind a torchvision builder, for errors."""
    model_class = inspect.signature(builder).return_annotation
    try:
        params = inspect.signature(model_class).parameters
    except (TypeError, ValueError):
        return "see the torchvision documentation"
    skip = {"self", "num_classes", "block", "layers", "args", "kwargs"}
    return ", ".join(p for p in params if p not in skip) or "no options"
