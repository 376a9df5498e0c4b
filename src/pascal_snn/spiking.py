"""Modules of a converted spiking network.

A spike train of length ``T`` for a batch of ``B`` samples travels between layers as one
tensor of shape ``[T·B, …]`` (time-major: row ``t·B + b`` is step ``t`` of sample ``b``).
Folding time into the batch dimension lets every per-sample operation (convolution, pooling,
flatten, ``x.view(x.size(0), -1)``) process all steps of a train in one batched call. Train
lengths are fixed at conversion time, so every module knows the ``T`` of its input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pascal_snn.errors import ConversionError
from pascal_snn.neuron import (
    Totals,
    _spike_value,
    if_train_totals,
    input_train_totals,
    stage2_steps,
    vanilla_if_step_,
)

__all__ = [
    "ChannelAffine",
    "MatMulLayer",
    "PascIF",
    "VanillaIF",
    "pad_train",
    "refuse_tracing",
    "sum_steps",
    "train_add",
    "train_cat",
    "train_reshape",
    "train_shift",
    "train_sub",
]


TRACING_REFUSED = (
    "a converted spiking network cannot be traced, exported or compiled (torch.jit.trace, "
    "torch.export, torch.compile): its IF layers run a C kernel on the tensors' raw memory, "
    "which a trace does not record, so a traced graph would compute something else; run the "
    "network as it is, and save it with snn.save(path) and load it with "
    "pascal_snn.load_snn(path)"
)


def _compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return bool(is_compiling()) if is_compiling is not None else False


def refuse_tracing() -> None:
    """Raise :class:`~pascal_snn.errors.ConversionError` under ``torch.jit.trace``,
    ``torch.export`` or ``torch.compile`` (see :data:`TRACING_REFUSED`): a spiking network
    is exact when it runs eagerly, and a trace of it would not be."""
    tracing = torch.jit.is_tracing()  # type: ignore[no-untyped-call]
    if tracing or _compiling():
        raise ConversionError(TRACING_REFUSED)


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
    ``clamp(count, 0, L)`` steps of each neuron spiking. Counts accumulate over forwards (as
    Python integers, exact at any size) until :meth:`reset_stats`; ``samples``,
    ``excitatory``, ``inhibitory``, ``output_spikes`` (0-d) and ``updates`` (stages 1–3) read
    them as int64 tensors.

    ``overwrite``: the input is a fresh tensor no one else reads (the converter sets it for a
    layer fed only by a convolution, linear layer, affine map or add), so when ``T_in ≥ L`` the
    train is written over the input's first L steps instead of into new memory; the output is
    then a view of the input. A forward hook on the layer before sees its output replaced.

    A residual add ``a + b`` of two trains of length ``T_in`` that only this layer reads is
    fused into it by the converter: the layer is called as ``layer(a, b)`` and computes the
    train of ``a + b`` (the same IEEE additions, one pass, the sum never stored).
    """

    theta: torch.Tensor

    def __init__(
        self,
        theta: torch.Tensor,
        L: int,
        t_in: int,
        from_image: bool = False,
        overwrite: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("theta", theta.detach().clone())
        self.L = L
        self.t_in = t_in
        self.from_image = from_image
        self.overwrite = overwrite
        self.neurons = 0  # neurons per sample, known after the first forward
        # samples, excitatory, inhibitory, output spikes, updates of stages 1, 2 and 3
        self._stats = [0] * 7
        # θ* per train dtype, with the θ it was computed from (its storage and version)
        self._spikes: dict[torch.dtype, tuple[int, int, float]] = {}

    @property
    def spike(self) -> torch.Tensor:
        """θ* = θ / L, the value of one spike of this layer."""
        return self.theta / self.L

    @property
    def samples(self) -> torch.Tensor:
        return torch.tensor(self._stats[0])

    @property
    def excitatory(self) -> torch.Tensor:
        return torch.tensor(self._stats[1])

    @property
    def inhibitory(self) -> torch.Tensor:
        return torch.tensor(self._stats[2])

    @property
    def output_spikes(self) -> torch.Tensor:
        return torch.tensor(self._stats[3])

    @property
    def updates(self) -> torch.Tensor:
        return torch.tensor(self._stats[4:7])

    def _spike(self, dtype: torch.dtype) -> float:
        """θ* rounded to ``dtype`` (``neuron._spike_value``), recomputed only when θ changes."""
        key = (self.theta.data_ptr(), self.theta._version)
        found = self._spikes.get(dtype)
        if found is None or found[:2] != key:
            found = (*key, _spike_value(self.theta, self.L, dtype))
            self._spikes[dtype] = found
        return found[2]

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The train of ``x`` (``[T_in·B, …]``), or of ``x + y`` when a residual add of two
        trains of length ``T_in`` is fused into this layer (``y``: the add's other operand;
        the sum is formed as the neuron reads it and never stored)."""
        refuse_tracing()
        steps = unfold(x, self.t_in)
        other = None if y is None else unfold(y, self.t_in)
        if other is not None and (
            self.from_image or other.dtype != steps.dtype or other.shape != steps.shape
        ):
            steps, other = steps + other, None  # the add as torch does it (promotes, broadcasts)
        spike = self._spike(steps.dtype)
        if self.from_image:
            out, totals = input_train_totals(steps, self.theta, self.L, spike)
        elif self.overwrite and self.t_in >= self.L:
            out, totals = if_train_totals(steps, spike, self.L, out=steps[: self.L], y=other)
        else:
            out, totals = if_train_totals(steps, spike, self.L, y=other)
        self.record(steps, totals)
        return out.flatten(0, 1)

    def record(self, steps: torch.Tensor, totals: Totals) -> None:
        """Add one forward's counts: ``steps`` its input ``[T_in, B, …]``, ``totals`` its
        ``(excitatory, inhibitory, output)`` spikes."""
        batch, neurons = steps.shape[1], math.prod(steps.shape[2:])
        if neurons != self.neurons:
            self.neurons = neurons
        stats, size = self._stats, batch * neurons
        stats[0] += batch
        stats[1] += int(totals[0])
        stats[2] += int(totals[1])
        stats[3] += int(totals[2])
        stats[4] += size * self.t_in
        stats[5] += size * stage2_steps(self.t_in, self.L)
        stats[6] += size * self.L

    def reset_stats(self) -> None:
        self._stats = [0] * 7

    def saved_stats(self) -> tuple[int, ...]:
        """The counts so far, for :meth:`restore_stats` (a forward that must not count)."""
        return tuple(self._stats)

    def restore_stats(self, saved: tuple[int, ...]) -> None:
        self._stats = list(saved)

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
        refuse_tracing()
        if self.mem is None or self.mem.shape != x.shape or self.mem.dtype != x.dtype:
            self.mem = torch.full_like(x, 0.5) * self.theta.to(x.dtype)  # a new run
        return vanilla_if_step_(self.mem, x, self.theta)

    def extra_repr(self) -> str:
        return f"theta={float(self.theta):.4g}"
