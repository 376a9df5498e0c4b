"""Operations a converted network actually performs on a data set (SPEC §6, last point).

While measuring, a forward hook on every :class:`~pascal_snn.spiking.MatMulLayer` counts:

- **ACs** (layer input made of spikes): every non-zero input element, on every step, is
  accumulated into each output it reaches. The count is exact with borders, strides,
  padding, dilation and groups: the layer's own convolution with an all-ones kernel applied to
  the indicator ``x ≠ 0`` of the folded input train gives, per output, the number of non-zero
  inputs in its receptive field; their sum is the number of ACs.
- **MACs** (input is the image or real-valued): dense, ``outputs · fan-in`` per step.
- **bias adds**: the folded constant ``c / T_in`` added to every output on every step.

The IF layers count their own excitatory / inhibitory / output spikes and neuron updates
per stage (``PascIF`` buffers). Spike rates per layer input come from those counters through
:mod:`pascal_snn.energy.topology`. Hooks exist only inside :func:`measure`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pascal_snn.convert import PascNetwork
from pascal_snn.energy.topology import InputKind, Topology, topology
from pascal_snn.errors import DataError
from pascal_snn.spiking import MatMulLayer

__all__ = ["LayerOps", "Measurement", "NeuronOps", "count_acs", "measure"]

_CONV_FN = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}


def count_acs(op: nn.Module, x: torch.Tensor) -> int:
    """Number of (non-zero input, output) connections of ``op`` on the batch ``x``."""
    nonzero = x != 0
    if isinstance(op, nn.Linear):
        return int(nonzero.sum(dtype=torch.int64)) * op.out_features
    if not isinstance(op, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        raise TypeError(f"cannot count the operations of {type(op).__name__}")
    ind = nonzero.to(torch.float32)  # per-output counts ≤ fan-in: exact in float32
    padding: str | int | tuple[int, ...] = op.padding
    if op.padding_mode != "zeros":  # reflect/replicate/circular padding reads real inputs
        ind = F.pad(ind, op._reversed_padding_repeated_twice, mode=op.padding_mode)
        padding = 0
    g = op.groups
    ones = ind.new_ones((g, op.in_channels // g, *op.kernel_size))
    per_group = _CONV_FN[type(op)](ind, ones, None, op.stride, padding, op.dilation, g)
    # every output channel of a group sees the same inputs: count once, times channels/group
    return int(per_group.round().to(torch.int64).sum()) * (op.out_channels // g)


def _fan_in(op: nn.Module) -> int:
    if isinstance(op, nn.Linear):
        return op.in_features
    if not isinstance(op, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        raise TypeError(f"cannot count the operations of {type(op).__name__}")
    return op.weight[0].numel()  # C_i/groups · K_h · K_w


@dataclass
class _Tally:
    acs: int = 0
    macs: int = 0
    bias_adds: int = 0
    input_events: int = 0
    images: int = 0


@dataclass(frozen=True)
class LayerOps:
    """Totals over the measured images for one conv/linear layer (see module docstring).

    ``spike_rate``: spikes at the layer's input over all steps per input neuron per image
    (None when the input is not spikes).
    """

    name: str
    input: InputKind
    t_in: int
    images: int
    acs: int
    macs: int
    bias_adds: int
    input_events: int
    spike_rate: float | None


@dataclass(frozen=True)
class NeuronOps:
    """Totals over the measured images for one PASC IF layer."""

    name: str
    L: int
    t_in: int
    neurons: int
    images: int
    excitatory: int
    inhibitory: int
    output_spikes: int
    updates: tuple[int, int, int]  # stage 1, stage 2, stage 3 (neurons × steps)

    @property
    def spike_rate(self) -> float:
        """Output spikes per neuron per image (the paper's Figure 4)."""
        return self.output_spikes / (self.images * self.neurons) if self.images else 0.0


@dataclass(frozen=True)
class Measurement:
    images: int
    layers: tuple[LayerOps, ...]
    neurons: tuple[NeuronOps, ...]
    topology: Topology = field(repr=False)

    @property
    def acs(self) -> int:
        return sum(layer.acs for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


def _batches(loader: Iterable[Any], limit: int | None) -> Iterable[torch.Tensor]:
    seen = 0
    for batch in loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(x, torch.Tensor):
            raise DataError(f"the loader yielded {type(x).__name__}, expected image tensors")
        if limit is not None:
            x = x[: limit - seen]
        if x.shape[0] == 0:
            break
        seen += x.shape[0]
        yield x
        if limit is not None and seen >= limit:
            break


def measure(
    net: PascNetwork,
    loader: Iterable[Any],
    num_images: int | None = None,
    device: torch.device | str | None = None,
) -> Measurement:
    """Run ``net`` on (up to ``num_images`` of) ``loader`` and count what it did.

    ``loader`` yields image batches or ``(images, labels)``. Resets ``net``'s IF counters
    first; on return they hold this run's totals. ``device`` defaults to the net's.
    """
    if not isinstance(net, PascNetwork):
        raise TypeError("measure() needs a PascNetwork from pascal_snn.convert(model)")
    if num_images is not None and num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    ref = next(iter(net.buffers()), None)
    if device is not None:
        net.to(device)
    dev = torch.device(device) if device is not None else (ref.device if ref is not None else None)
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
    batches = (x.to(device=dev, dtype=dtype) for x in _batches(loader, num_images))
    first = next(batches, None)
    if first is None:
        raise DataError("the data loader yielded no images to measure")
    shape = tuple(first.shape[1:])
    net.prepare(shape, first)  # the layers (and their names) of this input shape
    topo = topology(net)
    kinds = {link.name: link.input for link in topo.links}
    tallies: dict[str, _Tally] = {name: _Tally() for name in kinds}

    def hook(name: str) -> Callable[[MatMulLayer, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def fn(module: MatMulLayer, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            x = inputs[0]
            tally = tallies[name]
            tally.images += x.shape[0] // module.t_in
            tally.input_events += int((x != 0).sum(dtype=torch.int64))
            if kinds[name] == "spikes":
                tally.acs += count_acs(module.op, x)
            else:
                tally.macs += out[0].numel() * _fan_in(module.op) * out.shape[0]
            if getattr(module.op, "bias", None) is not None:
                tally.bias_adds += out.numel()

        return fn

    net.reset_stats()
    handles = [m.register_forward_hook(hook(name)) for name, m in net.matmul_layers()]
    images = 0
    try:
        with torch.no_grad():
            for x in itertools.chain([first], batches):
                if tuple(x.shape[1:]) != shape:
                    raise DataError(
                        f"measure() needs one image shape; got {shape} and then "
                        f"{tuple(x.shape[1:])}"
                    )
                net(x)
                images += x.shape[0]
    finally:
        for h in handles:
            h.remove()
    if images == 0:
        raise DataError("the data loader yielded no images to measure")

    neurons = tuple(
        NeuronOps(
            name,
            m.L,
            m.t_in,
            m.neurons,
            int(m.samples),
            int(m.excitatory),
            int(m.inhibitory),
            int(m.output_spikes),
            (int(m.updates[0]), int(m.updates[1]), int(m.updates[2])),
        )
        for name, m in net.if_layers()
    )
    by_name = {n.name: n for n in neurons}

    def stats(name: str) -> tuple[int, int]:
        n = by_name[name]
        return n.output_spikes, n.neurons

    layers = []
    for link in topo.links:
        got = topo.input_spikes(link.name, stats)  # (total spikes, neurons per image)
        rate = None if got is None else got[0] / (images * got[1])
        t = tallies[link.name]
        layers.append(
            LayerOps(
                link.name,
                link.input,
                link.t_in,
                t.images,
                t.acs,
                t.macs,
                t.bias_adds,
                t.input_events,
                rate,
            )
        )
    return Measurement(images, tuple(layers), neurons, topo)
