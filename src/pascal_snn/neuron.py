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

Three implementations give bit-identical results. :func:`pasc_if_reference` is the algorithm
written out step by step, the specification. :func:`pasc_if` (count) and :func:`pasc_if_train`
(count and train, used by the converted network) run, on CPU float32/float64 trains, the C
kernel of :mod:`pascal_snn.kernel`: all three stages per neuron in one pass over its ``T_in``
inputs, the reference's IEEE operations in its order. Elsewhere (other devices and dtypes, or
no kernel built) they run the torch path :func:`_stages`: every update in place on
preallocated buffers, spike masks and per-neuron counts held as 0/1 and integer-valued floats
of the train's dtype, no per-neuron excitatory or inhibitory counters (their totals follow
from per-step sums and ``Σ count``), stage 2 stopped as soon as a step would change nothing
(every neuron settled in ``[0, θ*)``), and the thermometer written one step at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pascal_snn import kernel

__all__ = [
    "IFCounts",
    "Totals",
    "if_train_totals",
    "input_train_totals",
    "pasc_if",
    "pasc_if_input",
    "pasc_if_reference",
    "pasc_if_train",
    "stage2_steps",
    "thermometer",
    "vanilla_if_step",
    "vanilla_if_step_",
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
    if spike.dim() != 0:
        steps = torch.arange(L, device=count.device).view(L, *([1] * count.dim()))
        return (steps < count.unsqueeze(0)).to(spike.dtype) * spike
    return _thermometer_float(count, L, spike, spike.dtype)


def _thermometer_float(
    count: torch.Tensor,
    L: int,
    spike: float | torch.Tensor,
    dtype: torch.dtype,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``out[k] = spike·[k < count]``: one comparison per step written as 0/1, then one scale
    (into ``out`` if given, ``[L, *count.shape]`` of ``dtype``)."""
    if out is None:
        out = torch.empty((L, *count.shape), dtype=dtype, device=count.device)
    for k in range(L):
        torch.gt(count, k, out=out[k])
    return out.mul_(spike)


def _spike_value(theta: torch.Tensor, L: int, dtype: torch.dtype) -> float:
    """θ* = θ/L rounded to the train's dtype, as a host number (one sync per layer call)."""
    return float((theta / L).to(dtype))


def _counts(
    exc: torch.Tensor, inh: torch.Tensor, out_count: torch.Tensor, t_in: int, L: int, neurons: int
) -> IFCounts:
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


def _count_dtype(dtype: torch.dtype) -> torch.dtype:
    """Float dtype of the per-neuron counters: integers up to 2^24 are exact in either."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _exact_sum(x: torch.Tensor, bound: int) -> torch.Tensor:
    """``Σ x`` as a 0-d int64 tensor, for integer-valued float ``x`` with ``Σ |x| ≤ bound``.

    Every partial sum is an integer of magnitude ≤ ``bound``, so accumulating in ``x.dtype``
    is exact while ``bound`` fits its mantissa (the fast case); otherwise accumulate in float64.
    """
    exact = round(2 / torch.finfo(x.dtype).eps)  # 2^24 for float32, 2^53 for float64
    total = x.sum() if bound <= exact else x.sum(dtype=torch.float64)
    return total.to(torch.int64)


def _stages(x: torch.Tensor, spike: float, L: int) -> tuple[torch.Tensor, IFCounts]:
    """Stages 1 and 2 of Algorithm 1 on ``x`` ``[T_in, ...]`` with ``θ* = spike``.

    Returns ``clamp(count, 0, L)`` as a float tensor (integer values) and the counts. Spike
    masks are float tensors of the train's dtype (comparisons written into them, no bool
    tensors, which are several times slower here), and updates run in place:
    ``mem −= mask·θ*`` computes ``mem − θ*`` where the mask is 1 and leaves ``mem`` unchanged
    (``mem − 0``) where it is 0, exactly as the reference's ``where``.
    """
    t_in = x.shape[0]
    n = x[0].numel()
    # stage 1. mem = θ*/2 + X[1]: the reference's (0.5·θ*) + X[1], one rounding either way.
    mem = torch.add(x[0], 0.5 * spike)
    count = torch.ge(mem, spike, out=torch.empty_like(mem, dtype=_count_dtype(x.dtype)))
    mask = torch.empty_like(mem)
    mem.sub_(count if count.dtype == mem.dtype else mask.copy_(count), alpha=spike)
    for t in range(1, t_in):
        mem.add_(x[t])
        torch.ge(mem, spike, out=mask)
        mem.sub_(mask, alpha=spike)
        count.add_(mask)
    # stage 2: mask = +1 (excitatory, mem ≥ θ*), −1 (inhibitory, mem < 0 and not firing).
    # The reference's "mem < 0 and not firing" is plain mem < 0: both never hold at once, for
    # θ* > 0 trivially, for θ* ≤ 0 because every step leaves mem < θ* or mem ≥ 0.
    neg = torch.empty_like(mem)
    inhibitory = torch.zeros((), dtype=torch.int64, device=x.device)
    steps = stage2_steps(t_in, L)
    for _ in range(steps):
        torch.ge(mem, spike, out=mask)
        torch.lt(mem, 0.0, out=neg)
        fired, inhibited = _exact_sum(mask, n), _exact_sum(neg, n)
        if not bool(fired + inhibited):
            break  # every neuron sits in [0, θ*): no later step changes anything
        inhibitory += inhibited
        mask.sub_(neg)
        mem.sub_(mask, alpha=spike)
        count.add_(mask)
    # Σ_neurons (excitatory − inhibitory) = Σ count, so the excitatory total needs no counter.
    bound = n * (t_in + steps)
    excitatory = _exact_sum(count, bound) + inhibitory
    count.clamp_(0, L)
    counts = _counts(excitatory, inhibitory, _exact_sum(count, n * L), t_in, L, n)
    return count, counts


def _kernel_counts(totals: tuple[int, int, int], x: torch.Tensor, L: int) -> IFCounts:
    exc, inh, out = (torch.tensor(v, dtype=torch.int64, device=x.device) for v in totals)
    return _counts(exc, inh, out, x.shape[0], L, x[0].numel())


def pasc_if(x: torch.Tensor, theta: torch.Tensor, L: int) -> tuple[torch.Tensor, IFCounts]:
    """Fast Algorithm 1; bit-identical to :func:`pasc_if_reference`. ``x`` is ``[T_in, ...]``."""
    spike = _spike_value(theta, L, x.dtype)
    if x.dim() > 0 and x.shape[0] > 0:
        steps = stage2_steps(x.shape[0], L)
        fast = kernel.pasc_if(x.detach(), spike, L, steps, train=False, count=True)
        if fast is not None and fast[1] is not None:
            return fast[1], _kernel_counts(fast[2], x, L)
    return _pasc_if_torch(x, spike, L)


def _pasc_if_torch(x: torch.Tensor, spike: float, L: int) -> tuple[torch.Tensor, IFCounts]:
    """:func:`pasc_if` by the torch path, whatever the device (the kernel's fallback)."""
    count, counts = _stages(x, spike, L)
    return count.to(torch.int64), counts


def pasc_if_train(
    x: torch.Tensor, theta: torch.Tensor, L: int, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, IFCounts]:
    """All three stages: the output train ``[L, ...]`` (values 0 and θ*) and the counts.

    Equal to ``thermometer(pasc_if(x, θ, L)[0], L, θ*)`` bit for bit, without the int64 count.
    The train has ``x``'s dtype and device; on the kernel path each of its steps also keeps
    the memory layout of ``x``'s steps (e.g. channels-last). ``out`` receives the train: laid
    out like ``x``'s steps, one after another, and either disjoint from ``x`` or ``x[:L]`` itself
    when ``T_in ≥ L`` (every neuron's inputs are read before its train is written).
    """
    spike = _spike_value(theta, L, x.dtype)
    if x.dim() > 0 and x.shape[0] > 0:
        steps = stage2_steps(x.shape[0], L)
        fast = kernel.pasc_if(x.detach(), spike, L, steps, train=True, count=False, out=out)
        if fast is not None and fast[0] is not None:
            return fast[0], _kernel_counts(fast[2], x, L)
    return _pasc_if_train_torch(x, spike, L, out)


def _pasc_if_train_torch(
    x: torch.Tensor, spike: float, L: int, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, IFCounts]:
    """:func:`pasc_if_train` by the torch path, whatever the device (the kernel's fallback)."""
    count, counts = _stages(x, spike, L)  # reads all of x before out (maybe x[:L]) is written
    return _thermometer_float(count, L, spike, x.dtype, out), counts


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


def vanilla_if_step_(mem: torch.Tensor, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """:func:`vanilla_if_step` with the membrane ``mem`` updated in place; returns the spikes.

    Bit-identical to ``vanilla_if_step(mem, x, theta)``: on CPU float32/float64 one pass of the
    C kernel (:func:`pascal_snn.kernel.vanilla_if`), elsewhere the same torch operations in
    place. ``mem`` must have ``x``'s shape and dtype (start a run with
    ``torch.full_like(x, 0.5) * θ``).
    """
    theta = theta.to(x.dtype)
    if x.device.type == "cpu":
        fast = kernel.vanilla_if(x.detach(), mem, float(theta))
        if fast is not None:
            return fast
    mem.add_(x)
    fire = (mem >= theta).to(x.dtype)
    spikes = fire.mul_(theta)
    mem.sub_(spikes)
    return spikes


def pasc_if_input(x: torch.Tensor, theta: torch.Tensor, L: int) -> tuple[torch.Tensor, IFCounts]:
    """The input layer (paper Algorithm 2): ``x`` is ``[1, ...]``, a real-valued train of one step.

    The level is computed with the ANN's own QCFS formula, the same operations in the same
    order as ``QCFS.forward`` (θ cast to ``x``'s dtype first), so it is bit-identical to the
    ANN's first activation in every dtype:

        k = floor(x·L/θ + ½);    count = clamp(k, 0, L)

    and the output is the thermometer code of ``count`` (``[L, ...]``, values 0 and θ/L).
    Spike statistics are those of Algorithm 1 with ``T_in = 1`` in exact arithmetic: after
    stage 1 the membrane is ``θ*/2 + x``, so stages 1–2 fire ``clamp(k, 0, L)`` excitatory and
    ``clamp(−k, 0, L − 1)`` inhibitory spikes; updates are ``1``, ``L − 1`` and ``L`` per neuron.
    On CPU float32/float64 one pass of the C kernel (:func:`pascal_snn.kernel.pasc_input`).
    """
    train, totals = input_train_totals(x, theta, L, _spike_value(theta, L, x.dtype))
    exc, inh, out = (torch.as_tensor(v, dtype=torch.int64, device=x.device) for v in totals)
    return train, _counts(exc, inh, out, 1, L, x[0].numel())


Totals = tuple[int, int, int] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def input_train_totals(
    x: torch.Tensor, theta: torch.Tensor, L: int, spike: float
) -> tuple[torch.Tensor, Totals]:
    """:func:`pasc_if_input` as the train and ``(excitatory, inhibitory, output)`` totals
    (ints from the kernel, 0-d int64 tensors from torch); ``spike`` is ``_spike_value``'s θ*."""
    if x.dim() > 1 and x.device.type == "cpu":
        fast = kernel.pasc_input(x[0].detach(), float(theta.to(x.dtype)), L, spike)
        if fast is not None:
            return fast[0], fast[1]
    return _input_train_torch(x, theta, L)


def _input_train_torch(
    x: torch.Tensor, theta: torch.Tensor, L: int
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """:func:`input_train_totals` by torch operations, whatever the device (the kernel's
    fallback): QCFS.forward's own, in its order."""
    k = torch.floor(x[0] * L / theta.to(x.dtype) + 0.5)
    count = k.clamp(0, L)
    excitatory = count.to(torch.int64).sum()
    inhibitory = (-k).clamp(0, L - 1).to(torch.int64).sum()
    # θ* as in pasc_if_train: (θ / L) in θ's dtype, then cast to the train's
    train = thermometer(count, L, (theta / L).to(x.dtype))
    return train, (excitatory, inhibitory, excitatory.clone())


def if_train_totals(
    x: torch.Tensor,
    spike: float,
    L: int,
    out: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Totals]:
    """:func:`pasc_if_train` with θ* given as ``spike`` (``_spike_value``'s), returning the
    train and ``(excitatory, inhibitory, output)`` totals: ints from the kernel, 0-d int64
    tensors from the torch path. What the PascIF layer calls, per part of a batch.

    ``y``: a train of ``x``'s shape added to it (a residual add fused into the neuron); the
    result is that of the neuron on ``x + y``. ``out`` may be ``x`` itself, never ``y``."""
    if x.dim() > 0 and x.shape[0] > 0:
        steps = stage2_steps(x.shape[0], L)
        fast = kernel.pasc_if(
            x.detach(),
            spike,
            L,
            steps,
            train=True,
            count=False,
            out=out,
            y=None if y is None else y.detach(),
        )
        if fast is not None and fast[0] is not None:
            return fast[0], fast[2]
    if y is not None:
        x = x + y  # a new tensor: out (x's own storage, if given) is written after it is read
    train, c = _pasc_if_train_torch(x, spike, L, out)
    return train, (c.excitatory, c.inhibitory, c.output)
