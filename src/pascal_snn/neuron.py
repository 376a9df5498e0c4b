"""Integrate-and-fire neurons as pure functions (SPEC §3.2 and §4).

PASC neuron (paper Algorithm 1). A layer with threshold θ and step L has spike value θ* = θ/L.
Given an input train ``X`` of length ``T_in``:

    mem = θ*/2;  count = 0                          (count is an integer)
    stage 1, t = 1 … T_in:          mem += X[t]; if mem ≥ θ*: count += 1; mem -= θ*
    stage 2, t = 1 … max(T_in, L)−1: if mem ≥ θ*: count += 1; mem -= θ*      (excitatory)
                                    elif mem < 0: count -= 1; mem += θ*      (inhibitory)
    stage 3, t = 1 … L:             out[t] = θ* if t ≤ clamp(count, 0, L) else 0

Invariant (Theorem 3.4, exact arithmetic): ``Σ_t out[t] = QCFS(Σ_t X[t])``. Stage 3 is a
thermometer code, so the output train is fully described by the integer ``clamp(count, 0, L)``.

Two implementations give bit-identical results: :func:`pasc_if_reference` is the algorithm
written out step by step; :func:`pasc_if` is the fast one used by the converted network
(in-place updates, integer per-neuron counters, and stage 2 stopped as soon as every neuron
has settled in ``[0, θ*)``, after which no later step can change anything).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "IFCounts",
    "pasc_if",
    "pasc_if_reference",
    "stage2_steps",
    "thermometer",
    "vanilla_if_step",
]


def stage2_steps(t_in: int, L: int) -> int:
    """Number of stage-2 steps, ``max(T_in, L) − 1`` (enough for every correction spike)."""
    return max(t_in, L) - 1


@dataclass(frozen=True)
class IFCounts:
    """Spike and update counts of one PASC IF layer for one batch (0-d int64 tensors).

    ``excitatory`` counts stage-1 and stage-2 spikes, ``inhibitory`` stage-2 negative spikes,
    ``output`` the stage-3 spikes; ``updates_stage*`` are neuron updates (neurons × steps).
    """

    excitatory: torch.Tensor
    inhibitory: torch.Tensor
    output: torch.Tensor
    updates_stage1: int
    updates_stage2: int
    updates_stage3: int


def thermometer(count: torch.Tensor, L: int, spike: torch.Tensor) -> torch.Tensor:
    """Train ``[L, *count.shape]`` whose first ``count`` steps are ``spike`` and the rest 0."""
    steps = torch.arange(L, device=count.device).view(L, *([1] * count.dim()))
    return (steps < count.unsqueeze(0)).to(spike.dtype) * spike


def _counts(exc, inh, out_count, t_in: int, L: int, neurons: int) -> IFCounts:
    return IFCounts(
        excitatory=exc,
        inhibitory=inh,
        output=out_count,
        updates_stage1=t_in * neurons,
        updates_stage2=stage2_steps(t_in, L) * neurons,
        updates_stage3=L * neurons,
    )


def pasc_if_reference(
    x: torch.Tensor, theta: torch.Tensor, L: int
) -> tuple[torch.Tensor, IFCounts]:
    """Algorithm 1, written out step by step. ``x`` is ``[T_in, ...]``.

    Returns the clamped integer spike count per neuron (the thermometer code's length) and the
    layer's counts. Kept as the specification that :func:`pasc_if` is tested against.
    """
    t_in = x.shape[0]
    spike = (theta / L).to(x.dtype)
    mem = torch.full_like(x[0], 0.5) * spike
    count = torch.zeros(x.shape[1:], dtype=torch.int64, device=x.device)
    exc = torch.zeros((), dtype=torch.int64, device=x.device)
    inh = torch.zeros((), dtype=torch.int64, device=x.device)
    for t in range(t_in):
        mem = mem + x[t]
        fire = mem >= spike
        count = count + fire.long()
        exc = exc + fire.sum()
        mem = torch.where(fire, mem - spike, mem)
    for _ in range(stage2_steps(t_in, L)):
        fire = mem >= spike
        neg = (mem < 0) & ~fire
        count = count + fire.long() - neg.long()
        exc = exc + fire.sum()
        inh = inh + neg.sum()
        mem = torch.where(fire, mem - spike, torch.where(neg, mem + spike, mem))
    out = count.clamp(0, L)
    return out, _counts(exc, inh, out.sum(), t_in, L, x[0].numel())


def pasc_if(x: torch.Tensor, theta: torch.Tensor, L: int) -> tuple[torch.Tensor, IFCounts]:
    """Fast Algorithm 1; bit-identical to :func:`pasc_if_reference`. ``x`` is ``[T_in, ...]``."""
    t_in = x.shape[0]
    spike_t = (theta / L).to(x.dtype)
    spike = float(spike_t)  # one host sync per layer call; lets the updates run in place
    # θ*/2 computed exactly as the reference does (0.5·θ*, exact in binary floating point).
    mem = x[0].new_full(x.shape[1:], 0.5 * spike)
    exc = torch.zeros(x.shape[1:], dtype=torch.int32, device=x.device)
    for t in range(t_in):
        mem.add_(x[t])
        fire = mem >= spike
        exc.add_(fire)
        mem.sub_(fire.to(mem.dtype), alpha=spike)
    inh = torch.zeros_like(exc)
    for _ in range(stage2_steps(t_in, L)):
        fire = mem >= spike
        neg = mem < 0
        fire_any, neg_any = bool(fire.any()), bool(neg.any())
        if not (fire_any or neg_any):
            break  # every neuron sits in [0, θ*): no later step changes anything
        if fire_any:
            exc.add_(fire)
            mem.sub_(fire.to(mem.dtype), alpha=spike)
        if neg_any:
            inh.add_(neg)
            mem.add_(neg.to(mem.dtype), alpha=spike)
    out = (exc - inh).clamp_(0, L).to(torch.int64)
    counts = _counts(
        exc.sum(dtype=torch.int64), inh.sum(dtype=torch.int64), out.sum(), t_in, L, mem.numel()
    )
    return out, counts


def vanilla_if_step(
    mem: torch.Tensor | None, x: torch.Tensor, theta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the plain IF neuron of the QCFS SNN (Bu et al. 2023), SPEC §4.

    Threshold θ, soft reset, initial potential θ/2, spikes worth θ. ``mem=None`` starts a run.
    Returns ``(spikes, new_mem)``.
    """
    theta = theta.to(x.dtype)
    if mem is None:
        mem = torch.full_like(x, 0.5) * theta
    mem = mem + x
    fire = (mem >= theta).to(x.dtype)
    mem = mem - fire * theta
    return fire * theta, mem
