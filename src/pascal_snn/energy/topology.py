"""Which neurons feed each convolution / linear layer, and which neuron each one feeds.

Reads the converter's annotations (:func:`pascal_snn.convert.annotate_model`), for a QCFS ANN
and an input shape, or for a converted network: one table of operations decides both what the
converter does and what the energy model counts. Per conv/linear call site, its input is:

- ``image``: the real-valued input image (the first layer): the layer stays MAC;
- ``spikes``: built only from IF outputs: the layer does accumulates (ACs);
- ``real``: anything else (e.g. an add of a spike train and a layer output): MAC.

Everything between layers that is not a layer or a neuron (pooling, reshapes, dropout,
scaling, residual add, concatenation) passes spikes through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import fx, nn

from pascal_snn.convert import Kind, annotate_model, info

__all__ = ["InputKind", "Link", "Topology", "topology"]

InputKind = Literal["image", "spikes", "real"]


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


# Spikes at a node, as a function of per-neuron-layer (spikes, neurons) → (spikes, neurons).
SpikeFn = Callable[[Callable[[str], tuple[int, int]]], tuple[int, int]]


def _leaf(name: str) -> SpikeFn:
    return lambda stats: stats(name)


def _added(parts: list[SpikeFn]) -> SpikeFn:
    """Add: spikes of every summand, over the (shared) neuron count of one summand."""

    def fn(stats: Callable[[str], tuple[int, int]]) -> tuple[int, int]:
        got = [p(stats) for p in parts]
        return sum(s for s, _ in got), max(n for _, n in got)

    return fn


def _concatenated(parts: list[SpikeFn]) -> SpikeFn:
    def fn(stats: Callable[[str], tuple[int, int]]) -> tuple[int, int]:
        got = [p(stats) for p in parts]
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


def topology(net: nn.Module, input_shape: Sequence[int] | None = None) -> Topology:
    """The links of ``net`` (a QCFS ANN with ``input_shape``, one sample's shape, or a
    converted network: its current input shape unless ``input_shape`` is given)."""
    graph = annotate_model(net, input_shape).graph
    spikes: dict[fx.Node, SpikeFn] = {}
    links: list[Link] = []
    levels: dict[str, int] = {}
    link_spikes: dict[str, SpikeFn] = {}
    for node in graph.nodes:
        i = info(node)
        trains = [a for a in node.all_input_nodes if info(a).t is not None]
        if i.kind is Kind.NEURON:
            assert i.site is not None and i.level is not None
            levels[i.site] = i.level
            spikes[node] = _leaf(i.site)
        elif i.kind is Kind.MATMUL:
            source = info(trains[0])
            assert i.site is not None and i.t_in is not None and source.carrier is not None
            if source.carrier == "spikes":
                link_spikes[i.site] = spikes[trains[0]]
            sources = source.sources if source.carrier == "spikes" else ()
            links.append(Link(i.site, source.carrier, sources, _sinks(node), i.t_in))
        elif i.carrier == "spikes" and i.kind in (Kind.ADD, Kind.CAT):
            parts = [spikes[a] for a in _members(node)]
            spikes[node] = _added(parts) if i.kind is Kind.ADD else _concatenated(parts)
        elif i.carrier == "spikes" and trains:
            spikes[node] = spikes[trains[0]]
    return Topology(tuple(links), levels, link_spikes)


def _members(node: fx.Node) -> list[fx.Node]:
    """The trains an add or a concatenation combines (a chunked tuple counts once per part)."""
    if info(node).kind is Kind.CAT and isinstance(node.args[0], (list, tuple)):
        return [a for a in node.args[0] if isinstance(a, fx.Node)]
    if info(node).kind is Kind.CAT:
        tuple_node = node.args[0]
        assert isinstance(tuple_node, fx.Node)
        parts = info(tuple_node).parts or ()
        return [tuple_node] * len(parts)
    return [a for a in node.args[:2] if isinstance(a, fx.Node)]


def _sinks(node: fx.Node) -> tuple[str, ...]:
    """Neuron call sites reached from ``node`` through anything but layers."""
    found: dict[str, None] = {}
    stack, seen = list(node.users), set()
    while stack:
        user = stack.pop()
        if user in seen:
            continue
        seen.add(user)
        kind = info(user).kind
        if kind is Kind.NEURON:
            found[str(info(user).site)] = None
        elif kind not in (Kind.MATMUL, Kind.OUTPUT):
            stack.extend(user.users)
    return tuple(found)
