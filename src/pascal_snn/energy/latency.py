"""End-to-end latency, in neuron steps, of a layer-by-layer PASC schedule (SPEC §3.5).

A PASC IF layer must see its whole input train before stage 2, so with its input starting
at step ``s`` it emits its ``L`` output steps from ``s + T_in + max(T_in, L) − 1`` on.
Convolution, linear, pooling, flatten and scaling act per step and add no delay; a residual
add (or concatenation) starts when its latest input starts and lasts as long as its longest
input. The image is one step starting at 0; the logits are ready when the last train ends.

This is a latency, not an energy figure: T_norm and T_eff (:mod:`.analytic`) normalise
energy and are far smaller (VGG-16 at L = 4: T_norm ≈ 4.2, latency 106 steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import fx, nn

from pascal_snn.convert import Kind, annotate_model, info
from pascal_snn.neuron import stage2_steps

__all__ = ["Latency", "NeuronTiming", "chain_latency", "if_delay", "latency"]


def if_delay(t_in: int, L: int) -> int:
    """Steps from the start of an IF layer's input to the start of its output."""
    return t_in + stage2_steps(t_in, L)


@dataclass(frozen=True)
class NeuronTiming:
    """One IF layer: input train ``[input_start, input_start + t_in)``, output train
    ``[output_start, output_start + L)``."""

    name: str
    t_in: int
    L: int
    input_start: int
    output_start: int

    @property
    def output_end(self) -> int:
        return self.output_start + self.L


@dataclass(frozen=True)
class Latency:
    """``total_steps``: steps from the image to the end of the output train."""

    total_steps: int
    output_length: int
    neurons: tuple[NeuronTiming, ...]


def latency(net: nn.Module, input_shape: Sequence[int] | None = None) -> Latency:
    """Latency of ``net``: a QCFS ANN (whose conversion it describes) with ``input_shape``,
    one sample's shape, or a converted network (its current input shape by default)."""
    graph = annotate_model(net, input_shape).graph
    start: dict[fx.Node, int] = {}  # train node → step at which its first step is ready
    neurons: list[NeuronTiming] = []
    total, out_length = 0, 0
    for node in graph.nodes:
        i = info(node)
        trains = [a for a in node.all_input_nodes if info(a).t is not None]
        begin = max((start[a] for a in trains), default=0)
        if i.kind is Kind.OUTPUT:
            total, out_length = begin + int(i.t or 0), int(i.t or 0)
        elif i.kind is Kind.NEURON:
            assert i.site is not None and i.level is not None and i.t_in is not None
            out = begin + if_delay(i.t_in, i.level)
            neurons.append(NeuronTiming(i.site, i.t_in, i.level, begin, out))
            start[node] = out
        elif i.t is not None:
            start[node] = begin
    return Latency(total, out_length, tuple(neurons))


def chain_latency(levels: Sequence[int], t_first: int = 1) -> int:
    """Latency of a plain chain of IF layers with steps ``levels`` (no residual branches)."""
    start, t = 0, t_first
    for L in levels:
        start += if_delay(t, L)
        t = L
    return start + t
