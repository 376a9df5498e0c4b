"""Modules of a converted spiking network.

A spike train of length ``T`` for a batch of ``B`` samples travels between layers as one
tensor of shape ``[T·B, …]`` (time-major: row ``t·B + b`` is step ``t`` of sample ``b``).
Folding time into the batch dimension lets every per-sample operation (convolution, pooling,
flatten, ``x.view(x.size(0), -1)``) process all steps of a train in one batched call. Train
lengths are fixed at conversion time, so every module knows the ``T`` of its input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pascal_snn.neuron import pasc_if_input, pasc_if_train, vanilla_if_step_

__all__ = [
    "ChannelAffine",
    "MatMulLayer",
    "PascIF",
    "VanillaIF",
    "pad_train",
    "sum_steps",
    "train_add",
    "train_cat",
    "train_reshape",
    "train_shift",
    "train_sub",
]


def unfold(x: torch.Tensor, t: int) -> torch.Tensor:
    """``[T·B, …] → [T, B, …]``."""
    return x.reshape(t, x.shape[0] // t, *x.shape[1:])


def pad_train(x: torch.Tensor, t: int, t_out: int) -> torch.Tensor:
    """Append ``t_out − t`` zero steps to a folded train (the sum over steps is unchanged)."""
    if t_out == t:
        return x
    steps = unfold(x, t)
    zeros = steps.new_zeros((t_out - t, *steps.shape[1:]))
    return torch.cat([steps, zeros]).flatten(0, 1)


def train_add(a: torch.Tensor, b: torch.Tensor, t_a: int, t_b: int) -> torch.Tensor:
    """Residual add of trains of lengths ``t_a`` and ``t_b``: zero-pad both to the longer."""
    t = max(t_a, t_b)
    return pad_train(a, t_a, t) + pad_train(b, t_b, t)


def train_cat(
    tensors: Sequence[torch.Tensor], lengths: Sequence[int], dim: int = 1, stack: bool = False
) -> torch.Tensor:
    """Concatenate (or stack) trains along a non-batch ``dim`` after zero-padding them to one
    length; a shorter thermometer code padded with zeros is still a thermometer code."""
    t = max(lengths)
    padded = [pad_train(x, n, t) for x, n in zip(tensors, lengths, strict=True)]
    return torch.stack(padded, dim=dim) if stack else torch.cat(padded, dim=dim)


def sum_steps(x: torch.Tensor, t: int) -> torch.Tensor:
    """The network output: the sum of the last train over its ``t`` steps."""
    return unfold(x, t).sum(0)


def train_sub(a: torch.Tensor, b: torch.Tensor, t_a: int, t_b: int) -> torch.Tensor:
    """Difference of trains of lengths ``t_a`` and ``t_b``: zero-pad both to the longer."""
    t = max(t_a, t_b)
    return pad_train(a, t_a, t) - pad_train(b, t_b, t)


def train_shift(
    x: torch.Tensor, c: torch.Tensor | float, t: int, subtract: bool, constant_first: bool
) -> torch.Tensor:
    """``x ± c`` or ``c ± x`` on a train of length ``t``: every step gets ``c / t``."""
    part = c / t
    if constant_first:
        return part - x if subtract else part + x
    return x - part if subtract else x + part


def train_reshape(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Any reshape of a folded train to per-sample ``shape`` (dim 0, time × batch, kept).

    The converter replaces every view/reshape/flatten/squeeze/… by this, with the shape the
    annotation found, so a size read from the batch (``x.view(b, -1)``) never reaches it.
    """
    return x.reshape(-1, *shape)


class MatMulLayer(nn.Module):
    """A convolution or linear layer acting on every step of a train (Theorem 3.3).

    ``y_t = W * x_t + c / T_in``: ``op`` holds the layer with any BatchNorm folded in and its
    bias already divided by ``t_in`` at conversion time, so a forward is one batched call.
    """

    def __init__(self, op: nn.Module, t_in: int) -> None:
        super().__init__()
        self.op = op
        self.t_in = t_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.op(x)
        return out

    def extra_repr(self) -> str:
        return f"t_in={self.t_in}"


class ChannelAffine(nn.Module):
    """A BatchNorm that is not folded: ``y_t = a·x_t + c / T_in`` per channel (dim 1).

    ``a = γ/√(σ² + ε)``, ``c = β − μ·a`` from the BatchNorm's running statistics; works on
    every layout BatchNorm accepts: ``[B, C]``, ``[B, C, L]``, ``[B, C, H, W]`` and
    ``[B, C, D, H, W]``.
    """

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, bn: nn.Module, t_in: int) -> None:
        super().__init__()
        mean, var = bn.running_mean, bn.running_var
        assert isinstance(mean, torch.Tensor) and isinstance(var, torch.Tensor)
        weight = bn.weight if isinstance(bn.weight, torch.Tensor) else torch.ones_like(var)
        bias = bn.bias if isinstance(bn.bias, torch.Tensor) else torch.zeros_like(mean)
        eps = bn.eps
        assert isinstance(eps, float)  # BatchNorm's epsilon
        scale = weight.detach() / torch.sqrt(var + eps)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", (bias.detach() - mean * scale) / t_in)
        self.t_in = t_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1, *([1] * (x.dim() - 2)))
        return x * self.scale.view(view) + self.shift.view(view)

    def extra_repr(self) -> str:
        return f"channels={self.scale.numel()}, t_in={self.t_in}"


class PascIF(nn.Module):
    """The integer-exact PASC IF neuron layer (SPEC §3.2) on a folded train.

    Input ``[T_in·B, …]``; output ``[L·B, …]`` with every element in ``{0, θ*}`` and the first
    ``clamp(count, 0, L)`` steps of each neuron spiking. Counts accumulate over forwards in
    int64 buffers until :meth:`reset_stats`.
    """

    theta: torch.Tensor
    excitatory: torch.Tensor
    inhibitory: torch.Tensor
    output_spikes: torch.Tensor
    updates: torch.Tensor
    samples: torch.Tensor

    def __init__(self, theta: torch.Tensor, L: int, t_in: int, from_image: bool = False) -> None:
        super().__init__()
        self.register_buffer("theta", theta.detach().clone())
        self.L = L
        self.t_in = t_in
        self.from_image = from_image
        self.neurons = 0  # neurons per sample, known after the first forward
        for name in ("excitatory", "inhibitory", "output_spikes", "samples"):
            self.register_buffer(name, torch.zeros((), dtype=torch.int64), persistent=False)
        self.register_buffer("updates", torch.zeros(3, dtype=torch.int64), persistent=False)

    @property
    def spike(self) -> torch.Tensor:
        """θ* = θ / L, the value of one spike of this layer."""
        return self.theta / self.L

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = unfold(x, self.t_in)
        run = pasc_if_input if self.from_image else pasc_if_train
        out, c = run(steps, self.theta, self.L)
        self.neurons = steps[0, 0].numel()
        self.samples += steps.shape[1]
        self.excitatory += c.excitatory
        self.inhibitory += c.inhibitory
        self.output_spikes += c.output
        self.updates[0] += c.updates_stage1
        self.updates[1] += c.updates_stage2
        self.updates[2] += c.updates_stage3
        return out.flatten(0, 1)

    def reset_stats(self) -> None:
        for buf in (self.excitatory, self.inhibitory, self.output_spikes, self.samples):
            buf.zero_()
        self.updates.zero_()

    def extra_repr(self) -> str:
        image = ", input layer (Algorithm 2)" if self.from_image else ""
        return f"L={self.L}, t_in={self.t_in}, theta={float(self.theta):.4g}{image}"


class VanillaIF(nn.Module):
    """Plain IF neuron of the QCFS SNN baseline (SPEC §4), stepped one timestep per forward.

    State (the membrane potential) lives in the module and is updated in place
    (:func:`~pascal_snn.neuron.vanilla_if_step_`); :meth:`reset` starts a new run.
    """

    theta: torch.Tensor

    def __init__(self, theta: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("theta", theta.detach().clone())
        self.mem: torch.Tensor | None = None

    def reset(self) -> None:
        self.mem = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mem is None or self.mem.shape != x.shape or self.mem.dtype != x.dtype:
            self.mem = torch.full_like(x, 0.5) * self.theta.to(x.dtype)  # a new run
        return vanilla_if_step_(self.mem, x, self.theta)

    def extra_repr(self) -> str:
        return f"theta={float(self.theta):.4g}"
