"""The annotation pass: one walk over the traced graph that records, per node, everything the
rewrites and the energy model need (in ``node.meta["pascal"]``, a :class:`NodeInfo`).

Per node: its :class:`~.ops.Kind`; the length ``T`` of the train it carries (None for sizes and
constants); its per-sample shape (the batch is dim 0, and only dim 0, of every train: checked
on two batch sizes, see :mod:`.shapes`); the call site of a module (``act``, ``act#2``, …);
whether it is a thermometer code and of which spike values; where its spikes come from (for
the energy model); whether a BatchNorm folds into the layer before it; and, for PASC, why an
operation would not be exact (``not_exact``), which the vanilla baseline does not care about.

Anything that is exact in neither mode raises :class:`ConversionError` naming the node.
Which values are thermometer codes (and so may be max pooled) is :mod:`.codes`'s business.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Literal

import torch
from torch import fx, nn

from pascal_snn.convert.codes import CodeMaps
from pascal_snn.convert.ops import (
    DIV_FUNCTIONS,
    NEG_FUNCTIONS,
    SIZE_FUNCTIONS,
    Kind,
    Modules,
    arg,
    classify,
    refuse,
)
from pascal_snn.convert.shapes import TensorShape, propagate
from pascal_snn.errors import ConversionError, DataError
from pascal_snn.qcfs import QCFS

__all__ = ["Annotation", "Carrier", "NodeInfo", "annotate", "check", "copy_graph", "info"]

META = "pascal"
SITE = "pascal_site"

Carrier = Literal["image", "spikes", "real"]
Shape = tuple[int, ...]

BATCH_TODO = (
    "in a converted network dim 0 carries time steps and samples together: keep the batch "
    "as dim 0, whole and alone (reshape with x.size(0) or -1, reduce, concatenate, index and "
    "permute over dims >= 1 only)"
)


@dataclass(frozen=True)
class NodeInfo:
    """What the annotation pass knows about one node (see the module docstring)."""

    kind: Kind
    t: int | None = None  # train length; None for sizes and constants
    shape: Shape | None = None  # per-sample shape of a train tensor
    parts: tuple[Shape, ...] | None = None  # per-sample shapes of a tuple of trains
    t_in: int | None = None  # NEURON / MATMUL / AFFINE: length of the input train
    image: bool = False  # computed from the image with no neuron on the way (then t = 1)
    site: str | None = None  # call site of a module: "act", "act#2", …
    level: int | None = None  # NEURON: L
    code: tuple[Fraction, ...] | None = None  # thermometer code: its spike values
    carrier: Carrier | None = None  # energy: image, IF spikes, or real values
    sources: tuple[str, ...] = ()  # energy: neuron call sites whose spikes reach here
    fold: bool = False  # a BatchNorm folded into the conv/linear before it
    taint: bool | tuple[bool, ...] = False  # SIZE: holds the batch size
    not_exact: str | None = None  # PASC only: why this operation is not exact


def info(node: fx.Node) -> NodeInfo:
    """The annotation of ``node`` (the node must belong to an annotated graph)."""
    found: NodeInfo = node.meta[META]
    return found


@dataclass(frozen=True)
class Annotation:
    """An annotated copy of a traced model's graph, for one per-sample input shape."""

    graph: fx.Graph
    input_shape: Shape

    def nodes(self) -> list[fx.Node]:
        return list(self.graph.nodes)


def copy_graph(graph: fx.Graph) -> fx.Graph:
    """A copy of ``graph`` with fresh nodes (names and ``meta`` kept)."""
    new = fx.Graph()
    out = new.graph_copy(graph, {})
    old_output = next(n for n in graph.nodes if n.op == "output")
    new.output(out).meta = dict(old_output.meta)
    return new


def _tainted(value: bool | tuple[bool, ...]) -> bool:
    return any(value) if isinstance(value, tuple) else value


def _normalise(dim: int, rank: int) -> int:
    return dim + rank if dim < 0 else dim


class _Annotator:
    """Walks the graph once in order; one handler per :class:`Kind`."""

    def __init__(
        self,
        source: nn.Module,
        graph: fx.Graph,
        kinds: dict[fx.Node, Kind],
        at2: dict[fx.Node, Any],
        at3: dict[fx.Node, Any],
    ) -> None:
        self.source = source
        self.graph = graph
        self.modules: Modules = dict(source.named_modules())
        self.kinds = kinds
        self.at2, self.at3 = at2, at3
        self.codes = CodeMaps(source, self.modules, self.at2.__getitem__, self._is_train)
        self.calls = Counter(str(n.target) for n in graph.nodes if n.op == "call_module")

    # -- driving ------------------------------------------------------------------------------
    def run(self) -> None:
        seen: Counter[str] = Counter()
        for node in self.graph.nodes:
            if node.op == "call_module":
                seen[str(node.target)] += 1
                k = seen[str(node.target)]
                node.meta[SITE] = str(node.target) if k == 1 else f"{node.target}#{k}"
            kind = self.kinds[node]
            try:
                self._check_batch_size_uses(node)
                node.meta[META] = getattr(self, f"_{kind.value}")(node)
            except (ConversionError, DataError):
                raise
            except Exception as exc:  # an unforeseen form: refuse it rather than guess
                raise refuse(
                    node,
                    f"the converter cannot analyse this use of it ({type(exc).__name__}: {exc})",
                    "write it with the supported operations, or report the model",
                ) from exc

    def _check_batch_size_uses(self, node: fx.Node) -> None:
        """A value holding the batch size may only feed size arithmetic and reshapes (whose
        shapes the rewrite takes from the annotation): elsewhere it would hold T·B."""
        kind = self.kinds[node]
        if kind is Kind.RESHAPE:
            return
        if kind is Kind.SIZE and (node.op == "call_method" or node.target in SIZE_FUNCTIONS):
            return
        for a in node.all_input_nodes:
            if self.kinds[a] is Kind.SIZE and _tainted(info(a).taint):
                raise refuse(
                    node,
                    f"it uses the batch size (graph node '{a.name}', read from a shape) as a "
                    "value, which in a converted network is time steps × batch",
                    "use the batch size only in view/reshape (or write -1 there)",
                )

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _is_train(node: fx.Node) -> bool:
        return info(node).t is not None

    def t(self, node: fx.Node) -> int:
        found = info(node).t
        assert found is not None
        return found

    def trains(self, node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if info(a).t is not None]

    def data(self, node: fx.Node) -> fx.Node:
        """The train an operation acts on (its first train argument)."""
        return self.trains(node)[0]

    def shape_of(self, node: fx.Node) -> Shape:
        shape = info(node).shape
        if shape is None:
            raise refuse(node, "a tuple of spike trains is used where one tensor is needed")
        return shape

    def rank(self, node: fx.Node) -> int:
        return len(self.shape_of(node)) + 1

    def value(self, a: Any) -> Any:
        """The concrete value of an argument (a size or a constant number) in the B = 2 run."""
        return fx.node.map_arg(a, lambda n: self.at2[n])

    def _batch_first(self, node: fx.Node, s2: Any, s3: Any) -> Shape:
        if (
            isinstance(s2, TensorShape)
            and isinstance(s3, TensorShape)
            and len(s2.shape) >= 1
            and s2.shape[0] == 2
            and s3.shape[0] == 3
            and s2.shape[1:] == s3.shape[1:]
        ):
            return s2.shape[1:]
        if not isinstance(s2, TensorShape):
            raise refuse(node, "this operation does not return one tensor")
        raise refuse(
            node,
            f"its output does not keep the batch as dim 0 and only there (shape "
            f"{tuple(s2.shape)} for a batch of 2, {tuple(s3.shape)} for a batch of 3)",
            BATCH_TODO,
        )

    def train_shape(self, node: fx.Node) -> Shape:
        return self._batch_first(node, self.at2[node], self.at3[node])

    def dims(self, node: fx.Node, raw: Any, rank: int, what: str = "dim") -> list[int]:
        """Normalised dims of an argument; refuses None (all dims) and the batch dim."""
        if raw is None:
            raise refuse(node, f"without a {what} it acts on every dim, the batch too", BATCH_TODO)
        values = self.value(raw)
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values:  # dim=() or [] also means every dim
            raise refuse(
                node, f"with an empty {what} it acts on every dim, the batch too", BATCH_TODO
            )
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in values):
            raise refuse(node, f"its {what} {values} is not a list of integers")
        out = [_normalise(d, rank) for d in values]
        if 0 in out:
            raise refuse(node, f"its {what} {raw} is the batch dimension (dim 0)", BATCH_TODO)
        return out

    def inherit(self, node: fx.Node, kind: Kind, **fields: Any) -> NodeInfo:
        """An operation on one train: same length, image flag, carrier and sources."""
        src = info(self.data(node))
        base: dict[str, Any] = {
            "t": src.t,
            "image": src.image,
            "carrier": src.carrier,
            "sources": src.sources,
        }
        base.update(fields)
        if "shape" not in base and "parts" not in base:
            base["shape"] = self.train_shape(node)
        return NodeInfo(kind, **base)

    # -- handlers, one per kind ---------------------------------------------------------------
    def _input(self, node: fx.Node) -> NodeInfo:
        shape = self.train_shape(node)
        return NodeInfo(Kind.INPUT, t=1, shape=shape, image=True, carrier="image")

    def _const(self, node: fx.Node) -> NodeInfo:
        return NodeInfo(Kind.CONST)

    def _size(self, node: fx.Node) -> NodeInfo:
        trains = self.trains(node)
        if trains:  # a query of a train's shape
            rank = self.rank(trains[0])
            name = node.target if node.op == "call_method" else node.args[1]
            if name in ("size", "shape"):
                dim = arg(node, 1, "dim") if name == "size" else None
                if dim is None:
                    return NodeInfo(Kind.SIZE, taint=(True,) + (False,) * (rank - 1))
                return NodeInfo(Kind.SIZE, taint=_normalise(self.value(dim), rank) == 0)
            return NodeInfo(Kind.SIZE, taint=name in ("numel", "nelement"))
        base = node.args[0]
        if (
            node.target is operator.getitem
            and isinstance(base, fx.Node)
            and isinstance(info(base).taint, tuple)
        ):
            taint = info(base).taint
            assert isinstance(taint, tuple)
            picked = taint[self.value(node.args[1])]
            return NodeInfo(Kind.SIZE, taint=tuple(picked) if isinstance(picked, tuple) else picked)
        ins = [info(a).taint for a in node.all_input_nodes]
        return NodeInfo(Kind.SIZE, taint=any(_tainted(t) for t in ins))

    def _neuron(self, node: fx.Node) -> NodeInfo:
        module = self.modules[str(node.target)]
        assert isinstance(module, QCFS)
        data = self.data(node)
        shape = self.train_shape(node)
        key = Fraction(float(module.theta.detach())) / module.L
        self.codes.neuron(node, shape, key)
        site = node.meta[SITE]
        return NodeInfo(
            Kind.NEURON,
            t=module.L,
            shape=shape,
            t_in=self.t(data),
            site=site,
            level=module.L,
            code=(key,),
            carrier="spikes",
            sources=(site,),
        )

    def _matmul(self, node: fx.Node) -> NodeInfo:
        data = self.data(node)
        site = node.meta[SITE]
        return self.inherit(
            node, Kind.MATMUL, t_in=self.t(data), site=site, carrier="real", sources=()
        )

    def _affine(self, node: fx.Node) -> NodeInfo:
        data = self.data(node)
        shape = self.train_shape(node)
        src = info(data)
        fold = (
            src.kind is Kind.MATMUL
            and node.args[0] is data
            and self.t(data) > 1
            and self.calls[str(data.target)] == 1
            and len(data.users) == 1
            and self._folds_on_channels(data)
        )
        if fold:
            data.meta[META] = replace(src, fold=True)
        return self.inherit(
            node,
            Kind.AFFINE,
            shape=shape,
            t_in=self.t(data),
            site=node.meta[SITE],
            carrier=self.real(data),
            sources=(),
            fold=fold,
        )

    def real(self, data: fx.Node) -> Carrier:
        """The carrier of a nonlinear or affine function of ``data``: still the image if
        ``data`` is (the image, normalised), otherwise real values."""
        return "image" if info(data).carrier == "image" else "real"

    def _folds_on_channels(self, layer: fx.Node) -> bool:
        """A BatchNorm normalises dim 1; a conv's output channels are dim 1, a linear layer's
        output features are its last dim, which is dim 1 only on ``[B, F]``."""
        module = self.modules[str(layer.target)]
        return not isinstance(module, nn.Linear) or len(self.shape_of(layer)) == 1

    def _linear(self, node: fx.Node) -> NodeInfo:
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        rank = self.rank(self.data(node))
        if name in ("sum", "mean", "cumsum"):
            self.dims(node, arg(node, 1, "dim"), rank)
        return self.inherit(node, Kind.LINEAR)

    def _reshape(self, node: fx.Node) -> NodeInfo:
        result = self.inherit(node, Kind.RESHAPE)
        assert result.shape is not None
        self.codes.reshape(node, self.data(node), result.shape)
        return replace(result, code=self.codes.spike_values(node))

    def _select(self, node: fx.Node) -> NodeInfo:
        data = self.data(node)
        src = info(data)
        if node.op == "call_function" and node.target is operator.getitem:
            if src.parts is not None:
                return self._pick(node, data)
            self._check_index(node, data)
        else:
            self._check_select_dims(node, data)
        result = self.inherit(node, Kind.SELECT)
        self.codes.run(node, data)
        return replace(result, code=self.codes.spike_values(node))

    def _pick(self, node: fx.Node, data: fx.Node) -> NodeInfo:
        """An element (or a slice) of a tuple of trains."""
        parts = info(data).parts
        assert parts is not None
        index: Any = node.args[1]
        picked: Any = parts[index]
        self.codes.pick(node, data, index)
        if isinstance(index, slice):
            return self.inherit(node, Kind.SELECT, parts=tuple(picked))
        return replace(
            self.inherit(node, Kind.SELECT, shape=picked), code=self.codes.spike_values(node)
        )

    def _check_index(self, node: fx.Node, data: fx.Node) -> None:
        """``x[index]`` must take the whole of dim 0 (``x[:, …]`` or ``x[..., j]``)."""
        index = node.args[1]
        entries = list(index) if isinstance(index, tuple) else [index]
        if any(isinstance(e, fx.Node) and info(e).t is not None for e in entries):
            raise refuse(node, "indexing a spike train with another train depends on the data")
        first = entries[0] if entries else slice(None)
        if first is Ellipsis:
            used = sum(1 for e in entries if e is not None and e is not Ellipsis)
            first = entries[1] if used >= self.rank(data) and len(entries) > 1 else slice(None)
        whole = isinstance(first, slice) and first in (
            slice(None),
            slice(0, None),
            slice(None, None, 1),
        )
        if not whole:
            raise refuse(
                node, f"the index {index!r} does not keep the whole batch dimension", BATCH_TODO
            )

    def _check_select_dims(self, node: fx.Node, data: fx.Node) -> None:
        rank = self.rank(data)
        name = node.target if node.op != "call_function" else getattr(node.target, "__name__", "")
        if node.op == "call_function" and node.target is getattr:
            name = str(node.args[1])
            if (name == "T" and rank >= 2) or (name == "mT" and rank <= 2):
                raise refuse(node, f"x.{name} moves the batch dimension", BATCH_TODO)
        elif name in ("flip",):
            raw = (
                arg(node, 1, "dims")
                if node.op == "call_function" or len(node.args) <= 2
                else list(node.args[1:])
            )
            self.dims(node, raw, rank, "dims")
        elif name == "roll":
            self.dims(node, arg(node, 2, "dims"), rank, "dims")
        elif name in ("transpose", "swapaxes", "swapdims"):
            pair = [
                arg(node, 1, "dim0", arg(node, 1, "axis0")),
                arg(node, 2, "dim1", arg(node, 2, "axis1")),
            ]
            self.dims(node, None if None in pair else pair, rank)
        elif name in ("expand", "repeat"):
            sizes = self.value(list(node.args[1:]))
            sizes = (
                list(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)) else sizes
            )
            keep = -1 if name == "expand" else 1
            if len(sizes) != rank or sizes[0] != keep:
                raise refuse(node, f"{name}{tuple(sizes)} acts on the batch dimension", BATCH_TODO)
        elif name in ("to", "type_as", "float", "double"):
            dtypes = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, torch.dtype)]
            if any(not d.is_floating_point for d in dtypes):
                raise refuse(node, "a cast of a spike train to a non-float type", "keep it a float")
        elif name in ("movedim", "moveaxis"):
            src, dst = self.value(arg(node, 1, "source")), self.value(arg(node, 2, "destination"))
            self.dims(node, list(src) if isinstance(src, (list, tuple)) else [src], rank)
            self.dims(node, list(dst) if isinstance(dst, (list, tuple)) else [dst], rank)
        elif name == "permute":
            raw = node.args[1:] if node.op == "call_method" else [arg(node, 1, "dims")]
            perm = self.value(raw[0] if len(raw) == 1 else list(raw))
            perm = list(perm) if isinstance(perm, (list, tuple)) else [perm]
            if _normalise(perm[0], rank) != 0:
                raise refuse(node, f"the permutation {perm} moves the batch dimension", BATCH_TODO)
        elif name == "t" and rank >= 2:
            raise refuse(node, "x.t() swaps the batch dimension with dim 1", BATCH_TODO)
        elif name in ("pixel_shuffle", "pixel_unshuffle") and rank < 4:
            raise refuse(
                node, "pixel shuffling a tensor without a channel dim moves the batch", BATCH_TODO
            )
        elif name == "pad":
            pad = self.value(arg(node, 1, "pad"))
            if len(pad) // 2 >= rank:
                raise refuse(node, f"the padding {pad} pads the batch dimension", BATCH_TODO)
        module = self.modules.get(str(node.target)) if node.op == "call_module" else None
        padding = getattr(module, "padding", None)
        if isinstance(padding, tuple) and len(padding) // 2 >= rank:
            raise refuse(node, f"the padding {padding} pads the batch dimension", BATCH_TODO)
        if isinstance(module, (nn.PixelShuffle, nn.PixelUnshuffle)) and rank < 4:
            raise refuse(
                node, "pixel shuffling a tensor without a channel dim moves the batch", BATCH_TODO
            )

    def _split(self, node: fx.Node) -> NodeInfo:
        data = self.data(node)
        rank = self.rank(data)
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        dim = arg(node, 1, "dim", 0) if name == "unbind" else arg(node, 2, "dim", 0)
        self.dims(node, dim, rank)
        s2, s3 = self.at2[node], self.at3[node]
        if not isinstance(s2, tuple) or not isinstance(s3, tuple) or len(s2) != len(s3):
            raise refuse(node, "the batch size changes how the train is split", BATCH_TODO)
        parts = tuple(self._batch_first(node, a, b) for a, b in zip(s2, s3))
        self.codes.run(node, data)
        return self.inherit(node, Kind.SPLIT, parts=parts)

    def _maxpool(self, node: fx.Node) -> NodeInfo:
        data = self.data(node)
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        if name == "amax":
            self.dims(node, arg(node, 1, "dim"), self.rank(data))
        why = self.codes.pool(node, data)
        not_exact = None
        if why is not None and self.t(data) > 1:
            not_exact = f"max pooling is exact only on thermometer codes: {why}"
        result = self.inherit(node, Kind.MAXPOOL)
        return replace(result, code=self.codes.spike_values(node), not_exact=not_exact)

    def _scale(self, node: fx.Node) -> NodeInfo:
        data = self.data(node)
        factor = self._factor(node, data)
        result = self.inherit(node, Kind.SCALE)
        self.codes.scale(node, data, factor)
        return replace(result, code=self.codes.spike_values(node))

    def _factor(self, node: fx.Node, data: fx.Node) -> Fraction | None:
        """The exact number a train is multiplied by (None for a constant tensor)."""
        family = node.target
        if family in NEG_FUNCTIONS or node.target in ("neg", "negative"):
            return Fraction(-1)
        other = node.args[1] if node.args[0] is data else node.args[0]
        value = self.value(other)
        if isinstance(value, TensorShape):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise refuse(node, f"a spike train can only be scaled by a number, not {value!r}")
        if not math.isfinite(value):
            raise refuse(node, f"scaling by {value} is not finite")
        divide = family in DIV_FUNCTIONS or node.target in ("div", "divide", "true_divide")
        if divide and value == 0:
            raise refuse(node, "division by zero")
        return 1 / Fraction(value) if divide else Fraction(value)

    def _add(self, node: fx.Node) -> NodeInfo:
        a, b = node.args[0], node.args[1]
        assert isinstance(a, fx.Node) and isinstance(b, fx.Node)
        ia, ib = info(a), info(b)
        spikes = ia.carrier == "spikes" and ib.carrier == "spikes"
        return NodeInfo(
            Kind.ADD,
            t=max(self.t(a), self.t(b)),
            shape=self.train_shape(node),
            image=ia.image and ib.image,
            carrier="spikes" if spikes else "real",
            sources=tuple(dict.fromkeys(ia.sources + ib.sources)) if spikes else (),
        )

    def _shift(self, node: fx.Node) -> NodeInfo:
        data = self.data(node)
        other = node.args[1] if node.args[0] is data else node.args[0]
        value = self.value(other)
        if not isinstance(value, (int, float, TensorShape)) or isinstance(value, bool):
            raise refuse(node, f"a spike train can only be shifted by a constant, not {value!r}")
        return self.inherit(node, Kind.SHIFT, carrier=self.real(data), sources=())

    def _product(self, node: fx.Node) -> NodeInfo:
        trains = self.trains(node)
        t = max(self.t(a) for a in trains)
        not_exact = None
        if t > 1:
            not_exact = (
                "the product of two spike trains (or a division by one) is not linear in the "
                "time steps; it is exact only on trains of length 1"
            )
        image = all(info(a).carrier == "image" for a in trains)
        return NodeInfo(
            Kind.PRODUCT,
            t=t,
            shape=self.train_shape(node),
            image=all(info(a).image for a in trains),
            carrier="image" if image else "real",
            not_exact=not_exact,
        )

    def _cat(self, node: fx.Node) -> NodeInfo:
        members = self._members(node)
        stack = getattr(node.target, "__name__", "") == "stack"
        trains = [m for m in members if isinstance(m, fx.Node) and info(m).t is not None]
        first = info(trains[0])
        rank = len(first.shape if first.shape is not None else (first.parts or [()])[0]) + 1
        raw = arg(node, 1, "dim", node.kwargs.get("axis", 0))
        self.dims(node, raw, rank + 1 if stack else rank)
        out_shape = self.train_shape(node)
        t = max(self.t(m) for m in trains)
        consts = len(members) - len(trains)
        infos = [info(m) for m in trains]
        spikes = all(i.carrier == "spikes" for i in infos) and not consts
        not_exact = None
        if consts and t > 1:
            not_exact = (
                "concatenating a spike train with a constant would need the constant split "
                "over time"
            )
        result = NodeInfo(
            Kind.CAT,
            t=t,
            shape=out_shape,
            image=all(i.image for i in infos),
            carrier="spikes" if spikes else "real",
            sources=tuple(dict.fromkeys(s for i in infos for s in i.sources)) if spikes else (),
            not_exact=not_exact,
        )
        self.codes.cat(node, members, self.value(raw), stack)
        return replace(result, code=self.codes.spike_values(node))

    def _members(self, node: fx.Node) -> list[Any]:
        tensors = node.args[0]
        if isinstance(tensors, fx.Node):  # a tuple of trains from chunk/split
            parts = info(tensors).parts
            if parts is None:
                raise refuse(node, "torch.cat needs a list of tensors")
            return [tensors] * len(parts)
        assert isinstance(tensors, (list, tuple))
        return list(tensors)

    def _output(self, node: fx.Node) -> NodeInfo:
        (result,) = node.args
        if not isinstance(result, fx.Node) or info(result).t is None:
            raise refuse(
                node,
                "the model's output is not one tensor computed from its input",
                "return one logits tensor from forward()",
            )
        self.shape_of(result)
        return NodeInfo(Kind.OUTPUT, t=info(result).t)


def annotate(
    source: fx.GraphModule, input_shape: Sequence[int], example: torch.Tensor | None = None
) -> Annotation:
    """Annotate a copy of ``source``'s graph for inputs of per-sample shape ``input_shape``.

    ``source`` is a traced model (QCFS kept as a leaf, eval mode). ``example`` (optional) is a
    real batch, used only to word an error when the model rejects it.
    Raises :class:`ConversionError` for what no mode can convert, :class:`DataError` for an
    input the model itself rejects.
    """
    graph = copy_graph(source.graph)
    modules = dict(source.named_modules())
    kinds = classify(graph, modules)
    at2, at3 = propagate(source, graph, input_shape, example)
    _Annotator(source, graph, kinds, at2, at3).run()
    return Annotation(graph, tuple(int(s) for s in input_shape))


def check(source: fx.GraphModule) -> None:
    """Every check that needs no shapes (the operation table, module settings)."""
    classify(source.graph, dict(source.named_modules()))
