"""The PASC rewrite (SPEC §3): reads the annotations, turns each node into its spiking form.

Trains travel folded as ``[T·B, …]`` (see :mod:`pascal_snn.spiking`), so every per-step
operation runs unchanged on all steps at once; only these nodes change:

- NEURON → :class:`PascIF` (Algorithm 1; Algorithm 2 for a layer fed by the image, T_in = 1);
- MATMUL → :class:`MatMulLayer` with bias ``c / T_in`` (and the BatchNorm after it folded in
  when the annotation says so); at ``T_in = 1`` the ANN's own layer, unchanged;
- AFFINE → :class:`ChannelAffine` (``a·x_t + c / T_in``) unless folded; at T = 1 the ANN's own
  BatchNorm;
- SHIFT → ``x_t ± c / T``; ADD / CAT → zero-padding to the longest train; an add of two
  trains of one length that only a neuron reads is fused into that neuron (``PascIF(a, b)``);
- RESHAPE → ``reshape(-1, *shape)`` with the annotated per-sample shape;
- OUTPUT → the sum over the last train's steps.

A train of length 1 is a plain value: on it every operation of the table is the ANN's own.
"""

from __future__ import annotations

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from pascal_snn.convert.annotate import Annotation, info
from pascal_snn.convert.build import Rewrite, share
from pascal_snn.convert.ops import SUB_FUNCTIONS, Kind, refuse
from pascal_snn.errors import ConversionError
from pascal_snn.qcfs import QCFS
from pascal_snn.spiking import (
    ChannelAffine,
    MatMulLayer,
    PascIF,
    sum_steps,
    train_add,
    train_cat,
    train_reshape,
    train_shift,
    train_sub,
)

__all__ = ["rewrite_pasc"]


FRESH = (Kind.MATMUL, Kind.AFFINE, Kind.ADD)  # kinds whose result is a new tensor, never a view


def _data(node: fx.Node) -> fx.Node:
    return next(a for a in node.all_input_nodes if info(a).t is not None)


def _fresh(node: fx.Node) -> bool:
    """True when ``node``'s value is a new tensor that one node alone reads."""
    return len(node.users) == 1 and info(node).kind in FRESH


def _fusable_add(neuron: fx.Node, data: fx.Node, t_in: int) -> tuple[fx.Node, fx.Node] | None:
    """The operands ``(a, b)`` of a residual add the neuron can read itself, or None.

    Fused when the neuron's only input is ``train_add(a, b)`` of two distinct trains both
    of length ``T_in`` and one per-sample shape (so no step is padded and nothing is
    broadcast) and the sum has no other reader; ``a`` is then
    the operand the neuron's train may be written over, if either may."""
    if data.op != "call_function" or data.target is not train_add or len(data.users) != 1:
        return None
    if neuron.args != (data,) or neuron.kwargs:
        return None
    a, b, t_a, t_b = data.args
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)) or a is b:
        return None
    if t_a != t_in or t_b != t_in or info(a).shape != info(b).shape:
        return None  # padded steps or a broadcast: the add stays
    return (b, a) if _fresh(b) and not _fresh(a) else (a, b)


def _is_sub(node: fx.Node) -> bool:
    return node.target in SUB_FUNCTIONS or node.target in ("sub", "subtract")


class _Pasc(Rewrite):
    def node(self, node: fx.Node) -> None:
        i = info(node)
        if i.not_exact is not None:
            raise refuse(
                node,
                i.not_exact,
                "change the model there (or convert with mode='vanilla', which is approximate)",
            )
        handler = getattr(self, f"_{i.kind.value}", None)
        if handler is not None:
            handler(node)

    def _neuron(self, node: fx.Node) -> None:
        module = self.module(node)
        assert isinstance(module, QCFS)
        i = info(node)
        assert i.t_in is not None
        data = _data(node)
        from_image = i.t_in == 1 and info(data).image
        operands = None if from_image else _fusable_add(node, data, i.t_in)
        if operands is None:
            # a fresh tensor only this neuron reads: its train may be written over it
            overwrite = _fresh(data)
        else:  # the neuron reads a + b itself (PascIF(a, b)); the add node goes
            overwrite = _fresh(operands[0])
            node.args = operands
            self.graph.erase_node(data)
        self.place(node, PascIF(module.theta.detach(), module.L, i.t_in, from_image, overwrite))

    def _matmul(self, node: fx.Node) -> None:
        module = self.module(node)
        i = info(node)
        assert i.t_in is not None
        op: nn.Module
        if i.fold:
            (bn_node,) = node.users
            bn = self.module(bn_node)
            assert isinstance(bn, nn.modules.batchnorm._BatchNorm)
            if isinstance(module, nn.Linear):
                op = fuse_linear_bn_eval(module, bn)
            else:
                assert isinstance(module, nn.modules.conv._ConvNd)
                op = fuse_conv_bn_eval(module, bn)
        else:
            op = share(module)
        bias = getattr(op, "bias", None)
        if i.t_in > 1 and bias is not None:
            op.bias = nn.Parameter(bias.detach() / i.t_in, requires_grad=False)
        self.place(node, MatMulLayer(op, i.t_in))

    def _affine(self, node: fx.Node) -> None:
        i = info(node)
        assert i.t_in is not None
        if i.fold:
            node.replace_all_uses_with(_data(node))
            self.graph.erase_node(node)
        elif i.t_in > 1:
            self.place(node, ChannelAffine(self.module(node), i.t_in))

    def _reshape(self, node: fx.Node) -> None:
        self.call(node, train_reshape, _data(node), info(node).shape)

    def _add(self, node: fx.Node) -> None:
        a, b = node.args[0], node.args[1]
        assert isinstance(a, fx.Node) and isinstance(b, fx.Node)
        fn = train_sub if _is_sub(node) else train_add
        self.call(node, fn, a, b, info(a).t, info(b).t)

    def _shift(self, node: fx.Node) -> None:
        t = info(node).t
        if t == 1:
            return
        data = _data(node)
        first = node.args[0] is not data
        other = node.args[0] if first else node.args[1]
        self.call(node, train_shift, data, other, t, _is_sub(node), first)

    def _cat(self, node: fx.Node) -> None:
        tensors = node.args[0]
        if isinstance(tensors, fx.Node):  # a tuple of trains from chunk/split
            parts = info(tensors).parts
            assert parts is not None
            lengths = [info(tensors).t] * len(parts)
        else:
            assert isinstance(tensors, (list, tuple))
            lengths = [info(m).t or 1 if isinstance(m, fx.Node) else 1 for m in tensors]
        dim = (
            node.args[1]
            if len(node.args) > 1
            else node.kwargs.get("dim", node.kwargs.get("axis", 0))
        )
        stack = getattr(node.target, "__name__", "") == "stack"
        self.call(node, train_cat, tensors, lengths, dim, stack)

    def _output(self, node: fx.Node) -> None:
        (result,) = node.args
        assert isinstance(result, fx.Node)
        with self.graph.inserting_before(node):
            total = self.graph.call_function(sum_steps, (result, info(result).t))
        node.args = (total,)


def rewrite_pasc(source: fx.GraphModule, annotation: Annotation) -> fx.GraphModule:
    """The PASC network of one annotated graph (a new GraphModule; ``source`` unchanged)."""
    rewrite = _Pasc(source, annotation)
    for node in list(rewrite.graph.nodes):
        try:
            rewrite.node(node)
        except ConversionError:
            raise
        except Exception as exc:  # an unforeseen form: refuse it rather than guess
            raise refuse(
                node,
                f"the converter cannot rewrite it ({type(exc).__name__}: {exc})",
                "write it with the supported operations, or report the model",
            ) from exc
    return rewrite.finish()
