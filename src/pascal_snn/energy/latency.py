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

from pascal_snn.energy.topology import META_METHODS, NEURON, graph_of
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


def latency(net: nn.Module) -> Latency:
    """Latency of ``net`` (a PascNetwork, or a QCFS ANN whose conversion it describes)."""
    gm = graph_of(net)
    modules = dict(gm.named_modules())
    timing: dict[fx.Node, tuple[int, int] | None] = {}  # node → (start, length) or None
    neurons: list[NeuronTiming] = []
    total, out_length = 0, 0
    for node in gm.graph.nodes:
        data = [timing[a] for a in node.all_input_nodes if timing[a] is not None]
        module = modules.get(str(node.target)) if node.op == "call_module" else None
        if node.op == "placeholder":
            timing[node] = (0, 1)
        elif node.op == "output":
            timing[node] = None
            if data:
                start, length = data[0]  # type: ignore[misc]
                total, out_length = start + length, length
        elif (
            not data
            or (node.op == "call_method" and node.target in META_METHODS)
            or (node.op == "call_function" and node.target is getattr)
        ):
            timing[node] = None
        elif isinstance(module, NEURON):
            start, t_in = max(d[0] for d in data), max(d[1] for d in data)  # type: ignore[index]
            L = int(module.L)
            out = start + if_delay(t_in, L)
            neurons.append(NeuronTiming(str(node.target), t_in, L, start, out))
            timing[node] = (out, L)
        else:
            timing[node] = (max(d[0] for d in data), max(d[1] for d in data))  # type: ignore[index]
    return Latency(total, out_length, tuple(neurons))


def chain_latency(levels: Sequence[int], t_first: int = 1) -> int:
    """Latency of a plain chain of IF layers with steps ``levels`` (no residual branches)."""
    start, t = 0, t_first
    for L in levels:
        start += if_delay(t, L)
        t = L
    return start + t
