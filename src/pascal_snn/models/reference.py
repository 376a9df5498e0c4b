"""Load weights trained with the QCFS / PASCAL reference code into a model of this zoo.

The reference code (github.com/putshua/SNN_conversion_QCFS, which PASCAL builds on) names its
modules differently (VGG-16: ``layer1 … layer5`` + ``classifier`` Sequentials; ResNet-18/34:
``conv1``, ``conv2_x … conv5_x`` with ``residual_function`` / ``shortcut`` / ``act`` or
``relu``, ``fc``) and stores each activation's threshold as a 1-element tensor named ``up``
(``MyFloor``) or ``thresh`` (``IF``). Both layouts register their modules in forward order, as
the models here do, so the mapping is structural: the state dict is cut into units —
convolution/linear (``weight`` [+ ``bias``]), BatchNorm (``weight``, ``bias``, running
statistics) and threshold — and the i-th unit of the checkpoint goes into the i-th unit of the
model, with every kind and shape checked. The quantization step ``L`` is not stored by the
reference code; the model keeps its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pascal_snn.errors import CheckpointError
from pascal_snn.qcfs import QCFS

__all__ = ["load_reference_weights"]

THRESHOLD_NAMES = ("up", "thresh", "theta")
BN_NAMES = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
WRAPPER_KEYS = ("state_dict", "model", "net", "model_state_dict")
MAX_LISTED = 12


@dataclass
class _Unit:
    """One layer's tensors: ``kind`` is 'conv', 'linear', 'bn' or 'threshold'."""

    prefix: str
    kind: str
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def describe(self) -> str:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in self.tensors.items())
        return f"{self.kind} '{self.prefix}' [{shapes}]"


def _unwrap(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """The state dict inside a training checkpoint ({'state_dict': ...} etc.), if wrapped."""
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        for key in WRAPPER_KEYS:
            if isinstance(state.get(key), Mapping):
                return state[key]
    return state


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Tensor entries with a DataParallel/DDP ``module.`` prefix removed."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. QCFS extra state (L) in this library's own checkpoints
        out[key.removeprefix("module.")] = value
    return out


def _kind(prefix: str, names: set[str], tensors: dict[str, torch.Tensor]) -> str | None:
    if "running_mean" in names or "running_var" in names:
        return "bn" if names <= BN_NAMES else None
    if len(names) == 1 and next(iter(names)) in THRESHOLD_NAMES:
        return "threshold" if tensors[next(iter(names))].numel() == 1 else None
    if "weight" in names and names <= {"weight", "bias"}:
        dim = tensors["weight"].dim()
        return "linear" if dim == 2 else "conv" if dim in (3, 4, 5) else None
    return None


def _checkpoint_units(state: dict[str, torch.Tensor]) -> list[_Unit]:
    """Group keys by module prefix, in the order the state dict lists them."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        prefix, _, name = key.rpartition(".")
        groups.setdefault(prefix, {})[name] = value
    units = []
    unknown = []
    for prefix, tensors in groups.items():
        kind = _kind(prefix, set(tensors), tensors)
        if kind is None:
            unknown.append(f"'{prefix}' ({', '.join(sorted(tensors))})")
        else:
            units.append(_Unit(prefix, kind, tensors))
    if unknown:
        raise CheckpointError(
            "the checkpoint holds tensors that are neither convolution/linear, BatchNorm nor an "
            f"activation threshold ({'/'.join(THRESHOLD_NAMES)}): {', '.join(unknown[:MAX_LISTED])}"
            "; it does not come from the QCFS/PASCAL reference VGG-16 or ResNet-18/34"
        )
    return units


def _model_units(model: nn.Module) -> list[tuple[_Unit, nn.Module]]:
    units = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            kind = "linear" if isinstance(module, nn.Linear) else "conv"
            tensors = {"weight": module.weight}
            if module.bias is not None:
                tensors["bias"] = module.bias
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            kind = "bn"
            tensors = {k: v for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}
        elif isinstance(module, QCFS):
            kind, tensors = "threshold", {"theta": module.theta}
        else:
            continue
        units.append((_Unit(name, kind, dict(tensors)), module))
    return units


def _mismatch(ours: _Unit, theirs: _Unit) -> str | None:
    if ours.kind != theirs.kind:
        return f"expected {ours.kind}"
    if ours.kind == "threshold":
        return None
    if ours.kind == "bn":
        missing = {"weight", "bias", "running_mean", "running_var"} - set(theirs.tensors)
        if missing:
            return f"missing {', '.join(sorted(missing))}"
        shape = tuple(ours.tensors["running_mean"].shape)
        if any(tuple(v.shape) != shape for k, v in theirs.tensors.items() if v.dim() > 0):
            return f"expected {shape} per channel"
        return None
    if set(ours.tensors) != set(theirs.tensors):
        has = "with" if "bias" in ours.tensors else "without"
        return f"expected a layer {has} bias"
    for key, value in ours.tensors.items():
        if tuple(value.shape) != tuple(theirs.tensors[key].shape):
            return f"expected {key} {tuple(value.shape)}"
    return None


def load_reference_weights(
    model: nn.Module, state_dict: Mapping[str, Any], strict: bool = True
) -> dict[str, str]:
    """Copy a QCFS/PASCAL reference-code state dict into ``model`` (in place).

    ``state_dict`` may be wrapped (``{"state_dict": ...}``, ``{"model": ...}``) and may carry
    the ``module.`` prefix of DataParallel/DDP. The conv/linear, BatchNorm and threshold
    tensors of the checkpoint are matched to the model's in order, checking kind and shape;
    thresholds (``up``/``thresh``, shape ``[1]``) become the QCFS ``theta``. Returns the
    mapping ``{model module name: checkpoint module name}``.

    Raises :class:`CheckpointError` listing every unit whose kind or shape differs (nothing is
    changed then). ``strict=False`` allows a checkpoint without thresholds (a plain-ReLU model):
    the QCFS thresholds then keep their values.
    """
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(
            "expected a state dict (a mapping of names to tensors), "
            f"got {type(state_dict).__name__}"
        )
    theirs = _checkpoint_units(_strip_prefix(_unwrap(state_dict)))
    ours = _model_units(model)
    if not strict and not any(u.kind == "threshold" for u in theirs):
        ours = [(u, m) for u, m in ours if u.kind != "threshold"]
    problems = []
    for i, ((mine, _), other) in enumerate(zip(ours, theirs)):
        why = _mismatch(mine, other)
        if why is not None:
            problems.append(f"#{i} model {mine.describe()} <- checkpoint {other.describe()}: {why}")
    if len(ours) != len(theirs):
        counts = (
            f"the model has {len(ours)} layers with weights or thresholds "
            f"({_count(u for u, _ in ours)}) but the checkpoint has {len(theirs)} "
            f"({_count(theirs)})"
        )
        problems.insert(0, counts)
    if problems:
        listed = problems[:MAX_LISTED]
        more = len(problems) - len(listed)
        raise CheckpointError(
            "the checkpoint does not match the model:\n  "
            + "\n  ".join(listed)
            + (f"\n  ... and {more} more" if more > 0 else "")
            + f"\n{_hint(ours, theirs)}"
        )
    with torch.no_grad():
        for (mine, module), other in zip(ours, theirs):
            if mine.kind == "threshold":
                value = next(iter(other.tensors.values()))
                theta = module.theta
                assert isinstance(theta, torch.Tensor)  # a QCFS module's threshold parameter
                theta.copy_(value.reshape(()).to(theta))
                continue
            target = module.state_dict()
            for key, value in other.tensors.items():
                if key in target:
                    target[key] = value.to(target[key].dtype).reshape(target[key].shape)
            module.load_state_dict(target)
    return {mine.prefix: other.prefix for (mine, _), other in zip(ours, theirs)}


def _count(units: Any) -> str:
    tally: dict[str, int] = {}
    for unit in units:
        tally[unit.kind] = tally.get(unit.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(tally.items()))


def _hint(ours: list[tuple[_Unit, nn.Module]], theirs: list[_Unit]) -> str:
    hint = (
        "Build the model that matches the reference code (same architecture, num_classes, "
        "in_channels, width=1.0)"
    )
    first_ours = next((u for u, _ in ours if u.kind == "conv"), None)
    first_theirs = next((u for u in theirs if u.kind == "conv"), None)
    if first_ours is not None and first_theirs is not None:
        k_ours = tuple(first_ours.tensors["weight"].shape[2:])
        k_theirs = tuple(first_theirs.tensors["weight"].shape[2:])
        if k_ours != k_theirs:
            hint += (
                f"; the first convolution's kernel is {k_theirs} in the checkpoint but "
                f"{k_ours} in the model (the reference ResNets use the 3×3 stem: stem='cifar')"
            )
    if not any(u.kind == "threshold" for u in theirs):
        hint += (
            "; the checkpoint has no activation thresholds (up/thresh), so it is a plain-ReLU "
            "model: fine-tune it with QCFS, or pass strict=False to keep the model's thresholds"
        )
    return hint + "."
