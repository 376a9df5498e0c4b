"""The vanilla IF rewrite (SPEC §4): every QCFS call site becomes its own :class:`VanillaIF`.

Everything else runs as the ANN has it, once per time step, on ``[B, …]`` (no folding: the
image enters every step). The part of the graph that depends on the image alone (everything
before the first IF layer) gives the same values at every step, so it is split off into a
*prefix* computed once per batch; the *step* graph takes its results as inputs. The values
are bit-identical to running the whole graph at every step.
"""

from __future__ import annotations

from typing import Any

from torch import fx

from pascal_snn.convert.annotate import Annotation, info
from pascal_snn.convert.build import Rewrite
from pascal_snn.convert.ops import Kind
from pascal_snn.qcfs import QCFS
from pascal_snn.spiking import VanillaIF

__all__ = ["rewrite_vanilla", "split_prefix"]


def rewrite_vanilla(source: fx.GraphModule, annotation: Annotation) -> fx.GraphModule:
    """The one-step vanilla network of an annotated graph (``source`` unchanged)."""
    rewrite = Rewrite(source, annotation)
    for node in list(rewrite.graph.nodes):
        if info(node).kind is Kind.NEURON:
            module = rewrite.module(node)
            assert isinstance(module, QCFS)
            rewrite.place(node, VanillaIF(module.theta.detach()))
    return rewrite.finish()


def _kind(node: fx.Node) -> Kind | None:
    found = node.meta.get("pascal")
    return None if found is None else found.kind


def _prefix_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes computed from the image and constants alone, with no IF neuron on the way."""
    prefix: set[fx.Node] = set()
    for node in graph.nodes:
        kind = _kind(node)
        if kind is Kind.INPUT:
            prefix.add(node)
        elif kind not in (None, Kind.CONST, Kind.NEURON, Kind.OUTPUT):
            ins = node.all_input_nodes
            if any(a in prefix for a in ins) and all(
                a in prefix or _kind(a) is Kind.CONST for a in ins
            ):
                prefix.add(node)
    return prefix


def split_prefix(step: fx.GraphModule) -> tuple[fx.GraphModule, fx.GraphModule]:
    """``(prefix, rest)``: ``prefix(x)`` returns a tuple of the image-only values the rest
    needs; ``rest(*those)`` is one time step. Both call ``step``'s own modules."""
    prefix_nodes = _prefix_nodes(step.graph)
    needed = [
        n
        for n in step.graph.nodes
        if n in prefix_nodes and any(u not in prefix_nodes for u in n.users)
    ]
    prefix = fx.Graph()
    env: dict[fx.Node, Any] = {}
    for n in step.graph.nodes:
        if n in prefix_nodes or _kind(n) is Kind.CONST:
            env[n] = prefix.node_copy(n, lambda a: env[a])
    prefix.output(tuple(env[n] for n in needed))
    rest = fx.Graph()
    env = {n: rest.placeholder(n.name) for n in needed}
    for n in step.graph.nodes:
        if n not in prefix_nodes:
            env[n] = rest.node_copy(n, lambda a: env[a])
    out = []
    for graph, name in ((prefix, "VanillaPrefix"), (rest, "VanillaStep")):
        gm = fx.GraphModule(step, graph, name)
        gm.graph.eliminate_dead_code()
        gm.recompile()
        out.append(gm)
    return out[0], out[1]
