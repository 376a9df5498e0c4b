"""The layer table: every convolution / linear layer of a model with its shapes and MACs.

ANN multiply-accumulates per image (paper Appendix A.4):

    conv:   MACs = C_i · C_o · K_h · K_w · H_o · W_o / groups
    linear: MACs = C_i · C_o                     (· positions, for a linear on [B, …, C_i])

Shapes come from tracing one forward pass with forward hooks, so any model the converter
accepts (and a converted :class:`~pascal_snn.convert.PascNetwork`) gets a table without a
list of known architectures. Conv1d reports ``k_h = h_out = 1``; Conv3d folds depth into the
height fields (``k_h = K_d·K_h``, ``h_out = D_o·H_o``), which keeps the MAC formula exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call

from pascal_snn.convert import PascNetwork
from pascal_snn.spiking import MatMulLayer, PascIF

__all__ = ["LayerRow", "layer_table", "total_macs"]

Kind = Literal["conv", "linear"]
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class LayerRow:
    """One convolution or linear layer, per image. ``macs`` is the dense ANN count."""

    name: str
    kind: Kind
    c_in: int
    c_out: int
    k_h: int
    k_w: int
    h_out: int
    w_out: int
    groups: int
    macs: int

    @property
    def fan_in(self) -> int:
        """Inputs summed by one output: ``C_i/groups · K_h · K_w`` (``C_i`` for linear)."""
        return self.c_in // self.groups * self.k_h * self.k_w


def _row(name: str, module: nn.Module, out: torch.Tensor) -> LayerRow:
    per_sample = tuple(out.shape[1:])  # dim 0 is the batch (time × batch in an SNN)
    if isinstance(module, nn.Linear):
        positions = math.prod(per_sample[:-1])
        c_in, c_out = module.in_features, module.out_features
        return LayerRow(
            name, "linear", c_in, c_out, 1, 1, positions, 1, 1, c_in * c_out * positions
        )
    assert isinstance(module, CONVS)
    kernel = tuple(module.kernel_size)
    spatial = per_sample[1:]
    k_w, w_out = kernel[-1], spatial[-1]
    k_h, h_out = math.prod(kernel[:-1]), math.prod(spatial[:-1])
    c_in, c_out, groups = module.in_channels, module.out_channels, module.groups
    macs = c_in * c_out * k_h * k_w * h_out * w_out // groups
    return LayerRow(name, "conv", c_in, c_out, k_h, k_w, h_out, w_out, groups, macs)


def _matmul_modules(model: nn.Module) -> dict[nn.Module, str]:
    """Conv/linear modules → report name (a converted layer reports its MatMulLayer's name,
    which is its call site's; a module the ANN calls twice reports ``name`` and ``name#2``)."""
    root = model.graph if isinstance(model, PascNetwork) else model
    names: dict[nn.Module, str] = {}
    for name, module in root.named_modules():
        if isinstance(module, MatMulLayer):
            names[module.op] = name
        elif isinstance(module, (*CONVS, nn.Linear)) and module not in names:
            names[module] = name
    return names


def _first_tensor(model: nn.Module) -> torch.Tensor | None:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor
    return None


def _forward_meta(model: nn.Module, shape: Sequence[int], dtype: torch.dtype) -> None:
    """One forward on the meta device: shapes only, no arithmetic, no copy of the weights."""
    state = {
        k: torch.empty_like(v, device="meta")
        for k, v in (*model.named_parameters(), *model.named_buffers())
    }
    x = torch.zeros((1, *shape), dtype=dtype, device="meta")
    functional_call(model, state, (x,), strict=False)


def _forward_real(model: nn.Module, shape: Sequence[int], ref: torch.Tensor | None) -> None:
    """One forward of a zero image (for modules that compute on host values, e.g. PascIF)."""
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    counters = [(m, m.saved_stats()) for m in model.modules() if isinstance(m, PascIF)]
    try:
        model(torch.zeros((1, *shape), dtype=dtype, device=device))
    finally:  # the trace run must not show up in a converted network's spike counters
        for module, saved in counters:
            module.restore_stats(saved)


def layer_table(model: nn.Module, input_shape: Sequence[int]) -> list[LayerRow]:
    """One :class:`LayerRow` per convolution / linear call, in forward order.

    ``input_shape`` is one image's shape (``(C, H, W)``). The forward runs on the meta device
    where the model allows it (fast, even for VGG-16 at 224×224), else on one zero image.
    Rows are named after call sites: a layer the forward calls twice gives ``fc`` and ``fc#2``.
    """
    if isinstance(model, PascNetwork):
        model.prepare(input_shape)
    names = _matmul_modules(model)
    rows: list[LayerRow] = []
    calls: dict[str, int] = {}

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        site = name if calls[name] == 1 else f"{name}#{calls[name]}"
        rows.append(_row(site, module, out))

    handles = [m.register_forward_hook(hook) for m in names]
    ref = _first_tensor(model)
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            if isinstance(model, PascNetwork):  # its IF layers read θ on the host
                _forward_real(model, input_shape, ref)
            else:
                try:
                    _forward_meta(model, input_shape, dtype)
                except Exception:  # a module needs real values
                    rows.clear()
                    calls.clear()
                    _forward_real(model, input_shape, ref)
    finally:
        for h in handles:
            h.remove()
        if was_training:
            model.train()
    return rows


def total_macs(rows: Sequence[LayerRow]) -> int:
    """Sum of the ANN MACs of ``rows`` (per image)."""
    return sum(r.macs for r in rows)
