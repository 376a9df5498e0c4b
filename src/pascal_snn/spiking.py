"""Modules of a converted spiking network.

A spike train of length ``T`` for a batch of ``B`` samples travels between layers as one
tensor of shape ``[T·B, …]`` (time-major: row ``t·B + b`` is step ``t`` of sample ``b``).
Folding time into the batch dimension lets every per-sample operation (convolution, pooling,
flatten, ``x.view(x.size(0), -1)``) process all steps of a train in one batched call. Train
lengths are fixed at conversion time, so every module knows the ``T`` of its input.
"""

from __future__ import annotations

import torch
from torch import nn

from pascal_snn.neuron import pasc_if_train, vanilla_if_step

__all__ = [
    "MatMulLayer",
    "PascIF",
    "VanillaIF",
    "pad_train",
    "sum_steps",
    "train_add",
    "train_cat",
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


def train_cat(tensors: list[torch.Tensor], lengths: list[int], dim: int = 1) -> torch.Tensor:
    """Concatenate trains along a non-batch ``dim`` after zero-padding them to one length."""
    t = max(lengths)
    return torch.cat([pad_train(x, n, t) for x, n in zip(tensors, lengths)], dim=dim)


def sum_steps(x: torch.Tensor, t: int) -> torch.Tensor:
    """The network output: the sum of the last train over its ``t`` steps."""
    return unfold(x, t).sum(0)


def checked_reshape(x: torch.Tensor, method: str, *args, **kwargs) -> torch.Tensor:
    """``x.view/reshape/flatten(...)`` that must keep dim 0 (time × batch) intact.

    A reshape that moved values across dim 0 would mix time steps into features.
    """
    y = getattr(x, method)(*args, **kwargs)
    if y.dim() == 0 or y.shape[0] != x.shape[0]:
        raise RuntimeError(
            f"{method}{tuple(args)} changes the batch dimension ({x.shape[0]} -> "
            f"{tuple(y.shape)}); in a converted network the batch dimension also holds time "
            "steps, so reshape with x.size(0) (or x.flatten(1)) instead of a fixed batch size"
        )
    return y


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
        return self.op(x)

    def extra_repr(self) -> str:
        return f"t_in={self.t_in}"


class PascIF(nn.Module):
    """The integer-exact PASC IF neuron layer (SPEC §3.2) on a folded train.

    Input ``[T_in·B, …]``; output ``[L·B, …]`` with every element in ``{0, θ*}`` and the first
    ``clamp(count, 0, L)`` steps of each neuron spiking. Counts accumulate over forwards in
    int64 buffers until :meth:`reset_stats`.
    """

    excitatory: torch.Tensor
    inhibitory: torch.Tensor
    output_spikes: torch.Tensor
    updates: torch.Tensor
    samples: torch.Tensor

    def __init__(self, theta: torch.Tensor, L: int, t_in: int) -> None:
        super().__init__()
        self.register_buffer("theta", theta.detach().clone())
        self.L = L
        self.t_in = t_in
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
        out, c = pasc_if_train(steps, self.theta, self.L)
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
        return f"L={self.L}, t_in={self.t_in}, theta={float(self.theta):.4g}"


class VanillaIF(nn.Module):
    """Plain IF neuron of the QCFS SNN baseline (SPEC §4), stepped one timestep per forward.

    State (the membrane potential) lives in the module; :meth:`reset` starts a new run.
    """

    def __init__(self, theta: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("theta", theta.detach().clone())
        self.mem: torch.Tensor | None = None

    def reset(self) -> None:
        self.mem = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, self.mem = vanilla_if_step(self.mem, x, self.theta)
        return out

    def extra_repr(self) -> str:
        return f"theta={float(self.theta):.4g}"
