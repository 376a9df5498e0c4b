"""QCFS activation: the quantized, clipped, shifted ReLU the ANN is trained with (SPEC §2).

    h(z) = θ · clip( floor(z·L/θ + 1/2) / L, 0, 1 )

``θ`` is a trainable scalar per layer; ``floor`` passes gradients straight through (identity),
so ``θ`` receives gradients through the divide and the multiply (Bu et al. 2023). The value of
one spike of the converted layer is ``θ* = θ / L``; the level index of an output is
``k = round(h·L/θ) ∈ {0 … L}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import fx, nn

from pascal_snn import kernel

__all__ = [
    "QCFS",
    "QCFSTracer",
    "clamp_thresholds",
    "forward_module_order",
    "keep_forward_order",
    "level_index",
    "qcfs_inference",
    "qcfs_layers",
    "set_levels",
    "switch_levels",
    "validate_level",
]


def validate_level(L: object, name: str = "L") -> int:
    """Return ``L`` as an int, or raise ValueError naming it if it is not an integer ≥ 1."""
    if isinstance(L, bool) or not isinstance(L, int):
        if isinstance(L, float) and L.is_integer() and L >= 1:
            return int(L)
        raise ValueError(f"{name} must be an integer >= 1 (a quantization step), got {L!r}")
    if L < 1:
        raise ValueError(f"{name} must be an integer >= 1 (a quantization step), got {L}")
    return L


def _quantized(x: torch.Tensor, theta: torch.Tensor, L: int) -> torch.Tensor:
    """``v = floor(x·L/θ + ½)/L``, a new tensor: one allocation, then in place in that order."""
    return torch.mul(x, L).div_(theta).add_(0.5).floor_().div_(L)


def qcfs_inference(x: torch.Tensor, theta: torch.Tensor, L: int) -> torch.Tensor:
    """``h = θ·clamp(floor(x·L/θ + ½)/L, 0, 1)`` without autograd: the forward alone.

    Bit-identical to :class:`QCFS`'s training forward (the same IEEE operations in the same
    order). On CPU float32/float64 one pass of the C kernel (:mod:`pascal_snn.kernel`);
    elsewhere one allocation and six in-place passes. ``theta`` must have ``x``'s dtype.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        y = kernel.qcfs_forward(x.detach(), float(theta.detach()), L)
        if y is not None:
            return y
    return _quantized(x.detach(), theta.detach(), L).clamp_(0, 1).mul_(theta.detach())


class _QCFSFunction(torch.autograd.Function):
    """``h = θ·clip(floor(z·L/θ + ½)/L, 0, 1)`` with the straight-through gradient, fused.

    With ``v = floor(z·L/θ + ½)/L``, ``c = clamp(v, 0, 1)`` and ``m = [0 ≤ v ≤ 1]`` (closed
    interval, as the QCFS reference code trained: PyTorch's clamp gradient was inclusive then):

        ∂h/∂z = m,        ∂h/∂θ = c − m·z/θ,   so   ∇θ = Σ grad·c − (Σ grad·m·z)/θ

    One autograd node instead of seven keeps a QCFS training step close to a ReLU step. It
    saves only ``z`` and ``θ`` (what ReLU saves, one tensor): the backward recomputes ``v``
    from ``z``, bit for bit as the forward did, in the same pass that applies the mask.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, theta: torch.Tensor, L: int) -> torch.Tensor:
        ctx.save_for_backward(x, theta)
        ctx.L = L
        return qcfs_inference(x, theta, L)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        x, theta = ctx.saved_tensors
        L: int = ctx.L
        if grad.device.type == "cpu" and grad.dtype in (torch.float32, torch.float64):
            th = float(theta.detach())
            fast = kernel.qcfs_backward(grad, x, th, L)
            if fast is not None:
                masked, grad_c, masked_x = fast
                grad_theta = torch.tensor(
                    grad_c - masked_x / th, dtype=theta.dtype, device=theta.device
                )
                return masked, grad_theta.reshape(theta.shape), None
        v = _quantized(x, theta, L)
        inside = (v >= 0) & (v <= 1)
        c = v.clamp_(0, 1)
        masked = grad * inside
        grad_theta = (grad * c).sum() - (masked * x).sum() / theta
        return masked, grad_theta.reshape(theta.shape), None


class QCFS(nn.Module):
    """Quantization-clip-floor-shift activation with a trainable threshold ``theta``.

    Args:
        L: quantization step, an integer ≥ 1; settable after construction.
        theta: initial threshold λ (the QCFS reference code uses 8.0).

    Works on any shape, dtype and device; ``theta`` is cast to the input's dtype.
    """

    def __init__(self, L: int = 4, theta: float = 8.0) -> None:
        super().__init__()
        self._L = validate_level(L)
        self.theta = nn.Parameter(torch.tensor(float(theta)))

    @property
    def L(self) -> int:
        return self._L

    @L.setter
    def L(self, value: int) -> None:
        self._L = validate_level(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta.to(x.dtype)
        if torch.is_grad_enabled() and (x.requires_grad or theta.requires_grad):
            out: torch.Tensor = _QCFSFunction.apply(x, theta, self._L)
            return out
        return qcfs_inference(x, theta, self._L)  # no graph to record: the forward alone

    def extra_repr(self) -> str:
        return f"L={self._L}, theta={float(self.theta.detach()):.4g}"

    # L is a plain attribute, not a buffer; keep it in the state dict so checkpoints carry it.
    def get_extra_state(self) -> dict[str, int]:
        return {"L": self._L}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.L = int(state["L"])


@torch.no_grad()
def clamp_thresholds(model: nn.Module, minimum: float = 1e-3) -> None:
    """Keep every QCFS threshold θ ≥ ``minimum`` (call after each optimizer step).

    θ is a threshold: a non-positive value has no spiking meaning (the converter refuses it),
    yet SGD with weight decay can push a layer's θ through zero when its inputs collapse.
    """
    for module in model.modules():
        if isinstance(module, QCFS):
            module.theta.clamp_(min=minimum)


def level_index(h: torch.Tensor, L: int, theta: torch.Tensor | float) -> torch.Tensor:
    """Level index ``k = round(h·L/θ)`` of QCFS outputs ``h`` (int64, in ``0 … L``)."""
    return torch.round(h * L / theta).to(torch.int64)


class QCFSTracer(fx.Tracer):
    """An fx tracer that keeps QCFS (and every standard ``torch.nn`` layer) as one call."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, QCFS) or super().is_leaf_module(m, module_qualified_name)


def forward_module_order(model: nn.Module) -> list[str] | None:
    """Qualified names of the leaf modules in the order the forward pass first calls them
    (one ``torch.fx`` trace), or None if the model cannot be traced symbolically."""
    try:
        graph = QCFSTracer().trace(model)
    except Exception:  # untraceable user code: callers fall back to registration order
        return None
    return list(_call_order(graph))


def _call_order(graph: fx.Graph) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            seen.setdefault(str(node.target), None)
    return tuple(seen)


_ORDER = "_pascal_qcfs_order"  # the model's cached (structure, QCFS names in forward order)


def _structure(model: nn.Module) -> tuple[tuple[str, str, str | None], ...]:
    """What a model's forward order can depend on, short of its Python code: every module's
    qualified name and type (as text, so the model still pickles), and the code of any
    ``fx.GraphModule`` in it (its type stays the same when its graph is rewritten)."""
    return tuple(
        (
            name,
            f"{type(m).__module__}.{type(m).__qualname__}",
            m.code if isinstance(m, fx.GraphModule) else None,
        )
        for name, m in model.named_modules()
    )


def keep_forward_order(model: nn.Module, graph: fx.Graph) -> None:
    """Remember ``graph``'s call order as ``model``'s forward order (see :func:`qcfs_layers`).

    ``graph`` is a :class:`QCFSTracer` trace of ``model`` or of a copy with the same module
    tree (the converter traces its own copy and hands its trace here, so that no one traces
    the model a second time).
    """
    model.__dict__[_ORDER] = (_structure(model), _call_order(graph))


def qcfs_layers(model: nn.Module) -> list[tuple[str, QCFS]]:
    """The model's QCFS modules as ``(name, module)`` in forward order.

    Forward order is the order in which the modules first run on an input; it is taken from
    a ``torch.fx`` trace when the model traces, and falls back to registration order (which is
    the forward order for every model built by :mod:`pascal_snn.models`).

    The trace runs once per model structure: its result is kept on the model itself (a plain
    attribute, not in the state dict) with the module tree it was computed for (names, types,
    and the code of fx GraphModules), and is recomputed whenever that tree changes (a module
    added, removed or replaced by one of another type). A forward whose call order depends on
    something else (a plain Python attribute it reads) is not seen: delete the attribute
    ``_pascal_qcfs_order`` after changing such a switch.
    """
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, QCFS)]
    if len(named) <= 1:
        return named
    structure = _structure(model)
    cached = model.__dict__.get(_ORDER)
    if cached is not None and cached[0] == structure:
        order: tuple[str, ...] | None = cached[1]
    else:
        found = forward_module_order(model)
        order = None if found is None else tuple(found)
        model.__dict__[_ORDER] = (structure, order)
    if order is None:
        return named
    rank = {name: i for i, name in enumerate(order)}
    return sorted(named, key=lambda item: rank.get(item[0], len(rank)))


def set_levels(model: nn.Module, levels: int | Sequence[int]) -> list[int]:
    """Set every QCFS layer's L: one int for all, or one value per layer in forward order.

    Returns the per-layer list that was applied. A list of the wrong length raises ValueError
    stating the expected count; nothing is changed in that case.
    """
    layers = qcfs_layers(model)
    if not isinstance(levels, Sequence) or isinstance(levels, str):
        values = [validate_level(levels)] * len(layers)
    else:
        values = [validate_level(v, f"L[{i}]") for i, v in enumerate(levels)]
        if len(values) != len(layers):
            raise ValueError(
                f"got {len(values)} levels but the model has {len(layers)} QCFS layers; "
                f"give one int or exactly {len(layers)} values"
            )
    for (_, layer), value in zip(layers, values):
        layer.L = value
    return values


@torch.no_grad()
def switch_levels(model: nn.Module, levels: int | Sequence[int]) -> list[int]:
    """Change every QCFS layer's L mid-training (Algorithm 4's switch), keeping its spike value.

    A layer going from ``L`` to ``L'`` gets ``θ' = θ·L'/L``, so ``θ* = θ/L`` — the value of one
    spike and the firing thresholds ``(k − ½)·θ*`` of its lowest levels — is unchanged: on
    ``z < (L' + ½)·θ*`` the layer computes exactly what it did, and it saturates at ``L'·θ*``.
    With θ kept instead, the first threshold ``θ/(2L')`` jumps (4× for 4 → 1), the layer falls
    silent, and training diverges (docs/design.md, "Algorithm 4's switch"). Layers whose L does
    not change are untouched, so calling this again with the same levels (e.g. every epoch, or
    after a resume) changes nothing. Returns the per-layer list applied.
    """
    layers = qcfs_layers(model)
    before = [layer.L for _, layer in layers]
    values = set_levels(model, levels)
    for (_, layer), old, new in zip(layers, before, values):
        if new != old:
            layer.theta.mul_(new / old)
    return values
