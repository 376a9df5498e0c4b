"""Thermometer codes through a graph: which elements are codes, and of which spike value.

A code of spike value ``s`` is a train whose first ``c`` steps are ``s`` and the rest 0 (an IF
layer's output, ``s = θ/L``). The per-step max over codes of *one* spike value is the code of
the max, so max pooling is exact when every pooling window holds codes of one spike value;
codes of different values (``[s₁, 0]`` against ``[s₂, s₂]``) give a per-step max whose sum is
not the max of the sums.

To decide that through any mix of reshapes, permutes, indexing, concatenations and paddings,
each code-keeping operation is run, with its own arguments, on an *id map*: a float64 tensor of
the value's per-sample shape (batch dim 1) holding per element the index of its spike value
(:attr:`CodeMaps.values`), ``-1`` where the element is not a code, ``-2`` for a padded zero
(the empty code of every spike value). Spike values are exact rationals (θ is a float; scaling
by a positive number ``c`` maps ``s`` to ``s·c``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from pascal_snn.convert.ops import Modules, arg

__all__ = ["NOT_CODE", "WILDCARD", "CodeMaps"]

NOT_CODE = -1.0
WILDCARD = -2.0
_BIG = 1e9
ZERO_PADS = (
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ZeroPad3d,
    nn.ConstantPad1d,
    nn.ConstantPad2d,
    nn.ConstantPad3d,
)
NOT_A_CODE = (
    "is not a thermometer code (the output of a QCFS/IF neuron, kept by identity, reshapes, "
    "indexing, positive scaling, zero padding or concatenation)"
)
MIXED = (
    "a pooling window mixes values that are not thermometer codes of one spike value θ/L "
    "(e.g. a torch.cat of IF outputs of different θ/L along a pooled dim), and the per-step max "
    "of such trains is not the max of their sums"
)


class CodeMaps:
    """The id maps of one annotation pass (see the module docstring).

    ``value(node)`` gives a node's concrete value in the shape run (sizes, numbers);
    ``is_train(node)`` whether it is a spike train.
    """

    def __init__(
        self,
        source: nn.Module,
        modules: Modules,
        value: Callable[[fx.Node], Any],
        is_train: Callable[[fx.Node], bool],
    ) -> None:
        self.source = source
        self.modules = modules
        self.value = value
        self.is_train = is_train
        self.maps: dict[fx.Node, Any] = {}
        self.values: list[Fraction] = []  # spike values, indexed by id

    # -- reading -----------------------------------------------------------------------------
    def spike_values(self, node: fx.Node) -> tuple[Fraction, ...] | None:
        """The spike values of ``node`` if every element is a code, else None."""
        ids = self.maps.get(node)
        if not isinstance(ids, torch.Tensor) or bool((ids == NOT_CODE).any()):
            return None
        present = sorted({int(v) for v in torch.unique(ids).tolist() if v >= 0})
        return tuple(self.values[i] for i in present)

    def _id(self, value: Fraction) -> float:
        if value not in self.values:
            self.values.append(value)
        return float(self.values.index(value))

    # -- writing, one method per kind of code-keeping operation ------------------------------
    def neuron(self, node: fx.Node, shape: Sequence[int], spike: Fraction) -> None:
        """An IF layer: every element a code of value ``spike``."""
        self.maps[node] = torch.full((1, *shape), self._id(spike), dtype=torch.float64)

    def reshape(self, node: fx.Node, data: fx.Node, shape: Sequence[int]) -> None:
        if data in self.maps:
            self.maps[node] = self.maps[data].reshape(1, *shape)

    def pick(self, node: fx.Node, data: fx.Node, index: Any) -> None:
        """An element (or a slice) of a tuple of trains."""
        if data in self.maps:
            self.maps[node] = self.maps[data][index]

    def scale(self, node: fx.Node, data: fx.Node, factor: Fraction | None) -> None:
        """Times ``factor``: a code stays a code only for a known positive number."""
        ids = self.maps.get(data)
        if ids is None or factor is None or factor <= 0:
            return
        out = ids.clone()
        for old in torch.unique(ids).tolist():
            if old >= 0:
                out[ids == old] = self._id(self.values[int(old)] * factor)
        self.maps[node] = out

    def run(self, node: fx.Node, data: fx.Node) -> None:
        """A selecting, moving or copying operation: the same operation on the id maps."""
        if data not in self.maps:
            return
        padded = self._zero_pad(node, self.maps[data])
        out = padded if padded is not None else self._apply(node)
        if out is not None:
            self.maps[node] = tuple(out) if isinstance(out, (tuple, list)) else out

    def cat(self, node: fx.Node, members: list[Any], dim: int, stack: bool) -> None:
        """Concatenation (or stack): the members' maps, trains that are no codes as ``-1``."""
        tensors = node.args[0]
        if isinstance(tensors, fx.Node):  # a tuple of trains from chunk/split
            if tensors not in self.maps:
                return
            maps = list(self.maps[tensors])
        else:
            maps = []
            for m in members:
                if not (isinstance(m, fx.Node) and self.is_train(m)):
                    return  # a constant among the members: not a code
                ids = self.maps.get(m)
                if ids is None:
                    shape = self.value(m).shape[1:]
                    ids = torch.full((1, *shape), NOT_CODE, dtype=torch.float64)
                maps.append(ids)
        if all(bool((m == NOT_CODE).all()) for m in maps):
            return
        self.maps[node] = torch.stack(maps, dim) if stack else torch.cat(maps, dim)

    def pool(self, node: fx.Node, data: fx.Node) -> str | None:
        """A max pooling (or amax): None if every window holds codes of one spike value,
        otherwise why not. The result is a code where its window was uniform."""
        ids = self.maps.get(data)
        if ids is None:
            return f"its input '{data.name}' {NOT_A_CODE}"
        wild = ids == WILDCARD
        hi = self._apply_with(node, data, torch.where(wild, -_BIG, ids))
        lo = -self._apply_with(node, data, -torch.where(wild, _BIG, ids))
        all_zero = hi == -_BIG
        uniform = all_zero | ((hi == lo) & (lo >= 0))
        self.maps[node] = torch.where(all_zero, WILDCARD, torch.where(uniform, hi, NOT_CODE))
        return None if bool(uniform.all()) else MIXED

    # -- running an operation on id maps -----------------------------------------------------
    def _concrete(self, a: fx.Node) -> Any:
        if a in self.maps:
            return self.maps[a]
        if a.op == "get_attr":  # a constant of the model (e.g. an index tensor)
            attr: Any = self.source
            for part in str(a.target).split("."):
                attr = getattr(attr, part)
            return attr.detach().cpu() if isinstance(attr, torch.Tensor) else attr
        value = self.value(a)
        if self.is_train(a) or (hasattr(value, "shape") and not isinstance(value, torch.Size)):
            raise LookupError  # a train without a map, or a computed constant tensor
        return value

    def _apply(self, node: fx.Node) -> Any:
        """``node``'s own operation on the id maps of its trains (None if one has none)."""
        try:
            args = fx.node.map_arg(node.args, self._concrete)
            kwargs = fx.node.map_arg(node.kwargs, self._concrete)
        except LookupError:
            return None
        with torch.no_grad():
            if node.op == "call_module":
                return self.modules[str(node.target)](*args, **kwargs)
            if node.op == "call_method":
                return getattr(args[0], str(node.target))(*args[1:], **kwargs)
            target: Any = node.target
            return target(*args, **kwargs)

    def _apply_with(self, node: fx.Node, data: fx.Node, ids: torch.Tensor) -> torch.Tensor:
        saved = self.maps[data]
        self.maps[data] = ids
        try:
            out = self._apply(node)
        finally:
            self.maps[data] = saved
        assert isinstance(out, torch.Tensor)
        return out

    def _zero_pad(self, node: fx.Node, ids: torch.Tensor) -> torch.Tensor | None:
        """Zero padding pads the map with the wildcard (a zero is every value's empty code)."""
        module = self.modules.get(str(node.target)) if node.op == "call_module" else None
        pad: Any = None
        if isinstance(module, ZERO_PADS):
            pad = module.padding
        elif node.target is F.pad and arg(node, 2, "mode", "constant") == "constant":
            pad = fx.node.map_arg(arg(node, 1, "pad"), self.value)
        if pad is None:
            return None
        padded: torch.Tensor = F.pad(ids, pad, value=WILDCARD)
        return padded
