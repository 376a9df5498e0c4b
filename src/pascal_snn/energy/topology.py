"""Which neurons feed each convolution / linear layer, and which neuron each one feeds.

Works on the ``torch.fx`` graph of a converted :class:`~pascal_snn.convert.PascNetwork`
(``PascIF`` neurons, ``MatMulLayer`` layers) or of a QCFS ANN (``QCFS`` neurons, conv/linear
layers, BatchNorm after a conv/linear folded away as in the converter). Everything between
them (pooling, flatten, reshape, dropout, scaling by a number, residual add, concatenation)
passes spikes through.

The input of a layer is one of:
- ``image``: the real-valued input image (the first layer): the layer stays MAC;
- ``spikes``: built only from IF outputs: the layer does accumulates (ACs);
- ``real``: anything else (e.g. an add of a spike train and a layer output): MAC.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import fx, nn

from pascal_snn.convert import PascNetwork
from pascal_snn.graph import trace
from pascal_snn.qcfs import QCFS
from pascal_snn.spiking import MatMulLayer, PascIF, train_add, train_cat

__all__ = ["InputKind", "Link", "Topology", "graph_of", "topology"]

InputKind = Literal["image", "spikes", "real"]

MATMUL = (MatMulLayer, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
NEURON = (PascIF, QCFS)
BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
ADD = {operator.add, operator.iadd, torch.add, train_add, "add", "add_", "__add__"}
CAT = {torch.cat, train_cat}
META_METHODS = {"size", "dim"}


@dataclass(frozen=True)
class Link:
    """A conv/linear layer's place in the network.

    ``sources``: neurons whose spikes reach its input (empty unless ``input == "spikes"``);
    ``sinks``: neurons its output reaches; ``t_in``: length of its input train.
    """

    name: str
    input: InputKind
    sources: tuple[str, ...]
    sinks: tuple[str, ...]
    t_in: int


# Value of a graph node in the spike bookkeeping: the kind of data it holds, plus, for spikes,
# a function that turns per-neuron-layer (spikes, neurons) into the node's (spikes, neurons).
SpikeFn = Callable[[Callable[[str], tuple[int, int]]], tuple[int, int]]


@dataclass(frozen=True)
class _Value:
    kind: Literal["image", "spikes", "real", "meta"]
    length: int = 0
    sources: tuple[str, ...] = ()
    spikes: SpikeFn | None = None


def _leaf(name: str) -> SpikeFn:
    return lambda stats: stats(name)


def _added(parts: list[_Value]) -> SpikeFn:
    """Add: spikes of every summand, over the (shared) neuron count of one summand."""

    def fn(stats):
        got = [p.spikes(stats) for p in parts]  # type: ignore[misc]
        return sum(s for s, _ in got), max(n for _, n in got)

    return fn


def _concatenated(parts: list[_Value]) -> SpikeFn:
    def fn(stats):
        got = [p.spikes(stats) for p in parts]  # type: ignore[misc]
        return sum(s for s, _ in got), sum(n for _, n in got)

    return fn


@dataclass(frozen=True)
class Topology:
    """Links of every conv/linear layer in forward order, and the neurons' steps ``L``."""

    links: tuple[Link, ...]
    levels: dict[str, int]
    _spikes: dict[str, SpikeFn]

    def link(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        raise KeyError(name)

    def input_spikes(
        self, name: str, stats: Callable[[str], tuple[int, int]]
    ) -> tuple[int, int] | None:
        """(spikes, neurons) at layer ``name``'s input, from per-neuron-layer ``stats``.

        An add counts the spikes of both summands over one summand's neurons; a concatenation
        sums both. None when the input is not made of spikes.
        """
        fn = self._spikes.get(name)
        return None if fn is None else fn(stats)

    def step(self, link: Link) -> int:
        """The layer's ``L`` for the energy model: the largest step of the neurons it feeds,
        or (a layer feeding no neuron, e.g. the classifier) the length of its input train."""
        return max((self.levels[s] for s in link.sinks), default=link.t_in)


def graph_of(net: nn.Module) -> fx.GraphModule:
    """The fx graph of a PascNetwork, a GraphModule itself, or a model traced here."""
    if isinstance(net, PascNetwork):
        return net.graph
    if isinstance(net, fx.GraphModule):
        return net
    return trace(net)


def topology(net: nn.Module) -> Topology:
    """Walk the fx graph of ``net`` (a PascNetwork, or a QCFS ANN, traced here)."""
    gm = graph_of(net)
    modules = dict(gm.named_modules())
    values: dict[fx.Node, _Value] = {}
    links: list[tuple[fx.Node, str, _Value]] = []
    levels: dict[str, int] = {}

    def module_of(node: fx.Node) -> nn.Module | None:
        return modules.get(str(node.target)) if node.op == "call_module" else None

    for node in gm.graph.nodes:
        inputs = [values[a] for a in node.all_input_nodes]
        data = [v for v in inputs if v.kind != "meta"]
        module = module_of(node)
        if node.op == "placeholder":
            values[node] = _Value("image", 1)
        elif (
            node.op in ("get_attr", "output")
            or not data
            or (node.op == "call_method" and node.target in META_METHODS)
            or (node.op == "call_function" and node.target is getattr)  # x.shape, x.dtype
        ):
            values[node] = _Value("meta")
        elif isinstance(module, NEURON):
            levels[str(node.target)] = int(module.L)
            values[node] = _Value(
                "spikes", int(module.L), (str(node.target),), _leaf(str(node.target))
            )
        elif isinstance(module, MATMUL):
            links.append((node, str(node.target), data[0]))
            values[node] = _Value("real", data[0].length)
        elif isinstance(module, BATCHNORM) and not _follows_matmul(node, module_of):
            values[node] = _Value("real", data[0].length)  # a standalone affine layer
        else:
            values[node] = _combine(node, data)

    result, spikes = [], {}
    for node, name, value in links:
        kind: InputKind = value.kind  # type: ignore[assignment]
        if kind == "spikes":
            assert value.spikes is not None
            spikes[name] = value.spikes
        sinks = _sinks(node, module_of)
        result.append(Link(name, kind, value.sources, sinks, value.length))
    return Topology(tuple(result), levels, spikes)


def _follows_matmul(node: fx.Node, module_of) -> bool:
    src = node.args[0] if node.args else None
    return isinstance(src, fx.Node) and isinstance(module_of(src), MATMUL)


def _combine(node: fx.Node, data: list[_Value]) -> _Value:
    length = max(v.length for v in data)
    if len(data) == 1:
        return data[0]  # pooling, flatten, reshape, dropout, scaling: spikes pass through
    if all(v.kind == "spikes" for v in data) and (node.target in ADD or node.target in CAT):
        sources = tuple(dict.fromkeys(s for v in data for s in v.sources))
        fn = _added(data) if node.target in ADD else _concatenated(data)
        return _Value("spikes", length, sources, fn)
    return _Value("real", length)


def _sinks(node: fx.Node, module_of) -> tuple[str, ...]:
    """Neurons reached from ``node`` through pass-through operations (not through layers)."""
    found: dict[str, None] = {}
    stack, seen = list(node.users), set()
    while stack:
        user = stack.pop()
        if user in seen:
            continue
        seen.add(user)
        module = module_of(user)
        if isinstance(module, NEURON):
            found[str(user.target)] = None
        elif not isinstance(module, MATMUL) and user.op != "output":
            stack.extend(user.users)
    return tuple(found)
