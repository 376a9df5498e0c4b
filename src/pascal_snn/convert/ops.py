"""The converter's one table of operations: what each ``torch.fx`` node does to a spike train.

Every node of a traced model gets a :class:`Kind`. The annotation pass, both rewrites and the
energy model (topology, latency) read kinds, never module classes or function names, so there
is exactly one place that says which operation is what. The table is closed: an operation on a
spike train that is not listed here is refused.

The kinds say how an operation acts on a train ``x_1 … x_T`` (SPEC §3.1, §3.3):

- ``MATMUL``, ``AFFINE``, ``SHIFT``: linear with a constant part ``c``; step ``t`` gets
  ``W·x_t + c/T`` so that the steps sum to the ANN's value;
- ``LINEAR``, ``RESHAPE``, ``SELECT``, ``SPLIT``, ``SCALE``: linear without a constant part,
  applied to every step; ``RESHAPE``, ``SELECT`` and ``SPLIT`` only move, pick or copy elements
  (so a thermometer code stays a code);
- ``ADD``, ``CAT``: trains of different lengths are zero-padded to the longest;
- ``MAXPOOL``: exact on thermometer codes of one spike value per window (or on a train of length 1);
- ``PRODUCT``: a product or quotient of two trains, exact only on trains of length 1;
- ``NEURON``: a QCFS call site, which becomes an IF layer;
- ``SIZE`` and ``CONST``: values that are not trains (shapes, parameters, numbers).

A train of length 1 is a plain value, so on it every operation of the table is exact.
"""

from __future__ import annotations

import enum
import math
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from pascal_snn.errors import ConversionError
from pascal_snn.qcfs import QCFS

__all__ = [
    "SUPPORTED",
    "Kind",
    "Modules",
    "arg",
    "classify",
    "describe",
    "refuse",
]

Modules = dict[str, nn.Module]

SUPPORTED = (
    "supported: Conv1d/2d/3d and Linear, BatchNorm (eval), QCFS, average and adaptive average "
    "pooling, max pooling on IF outputs, Upsample/interpolate, zero/reflect/replicate padding, "
    "Flatten/Unflatten, Dropout, Identity, residual add/subtract, torch.cat/stack/chunk/split "
    "on non-batch dims, scaling by a constant, adding a constant, sum/mean over non-batch dims, "
    "and shape methods (size, view, reshape, flatten, squeeze, unsqueeze, permute, transpose, "
    "indexing that keeps the whole batch)"
)


class Kind(enum.Enum):
    """What a graph node is, as far as spike trains are concerned (see the module docstring)."""

    INPUT = "input"  # the image batch: a train of length 1
    CONST = "const"  # does not depend on the input (parameters, numbers, constant tensors)
    SIZE = "size"  # a non-train value computed from shapes (x.size(), x.shape[1] // 2, …)
    NEURON = "neuron"  # a QCFS call site
    MATMUL = "matmul"  # a Conv1d/2d/3d or Linear call site
    AFFINE = "affine"  # a BatchNorm call site: a per-channel affine map on dim 1
    LINEAR = "linear"  # average pooling, sum/mean, cumsum, linear interpolation
    RESHAPE = "reshape"  # view, reshape, flatten, unflatten, squeeze, unsqueeze
    SELECT = "select"  # permute, index, flip, pad, nearest upsampling, identity
    SPLIT = "split"  # chunk, split, unbind: a tuple of trains
    MAXPOOL = "maxpool"  # max pooling, amax
    SCALE = "scale"  # multiplied or divided by a constant
    ADD = "add"  # sum or difference of two trains
    SHIFT = "shift"  # a train plus or minus a constant
    CAT = "cat"  # cat / stack of trains
    PRODUCT = "product"  # product or quotient of two trains: exact only at T = 1
    OUTPUT = "output"


#: Kinds whose value is a spike train (or a tuple of them).
TRAIN_KINDS = frozenset(Kind) - {Kind.CONST, Kind.SIZE, Kind.OUTPUT}

MATMUL_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BATCHNORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
)
RELU_LIKE_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardtanh,
    nn.Hardswish,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.Softplus,
)
RELU_LIKE_FUNCTIONS: frozenset[Any] = frozenset(
    {
        F.relu,
        F.relu_,
        torch.relu,
        torch.relu_,
        F.relu6,
        F.leaky_relu,
        F.gelu,
        F.silu,
        F.mish,
        F.hardtanh,
        F.hardswish,
        F.elu,
        F.selu,
        F.celu,
        F.softplus,
    }
)
RELU_LIKE_METHODS = frozenset({"relu", "relu_", "clamp", "clamp_", "clip", "clamp_min"})

MAXPOOL_TYPES: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
CONSTANT_PAD_TYPES: tuple[type[nn.Module], ...] = (
    nn.ConstantPad1d,
    nn.ConstantPad2d,
    nn.ConstantPad3d,
)

MODULE_KINDS: dict[type[nn.Module], Kind] = {
    **dict.fromkeys(MATMUL_TYPES, Kind.MATMUL),
    **dict.fromkeys(BATCHNORM_TYPES, Kind.AFFINE),
    QCFS: Kind.NEURON,
    **dict.fromkeys(
        (
            nn.AvgPool1d,
            nn.AvgPool2d,
            nn.AvgPool3d,
            nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d,
            nn.AdaptiveAvgPool3d,
            nn.UpsamplingBilinear2d,
        ),
        Kind.LINEAR,
    ),
    **dict.fromkeys(MAXPOOL_TYPES, Kind.MAXPOOL),
    **dict.fromkeys((nn.Flatten, nn.Unflatten), Kind.RESHAPE),
    **dict.fromkeys(
        (
            nn.Identity,
            nn.Dropout,
            nn.Dropout1d,
            nn.Dropout2d,
            nn.Dropout3d,
            nn.AlphaDropout,
            nn.FeatureAlphaDropout,
            nn.UpsamplingNearest2d,
            nn.ZeroPad1d,
            nn.ZeroPad2d,
            nn.ZeroPad3d,
            nn.ConstantPad1d,
            nn.ConstantPad2d,
            nn.ConstantPad3d,
            nn.ReflectionPad1d,
            nn.ReflectionPad2d,
            nn.ReflectionPad3d,
            nn.ReplicationPad1d,
            nn.ReplicationPad2d,
            nn.ReplicationPad3d,
            nn.CircularPad1d,
            nn.CircularPad2d,
            nn.CircularPad3d,
            nn.PixelShuffle,
            nn.PixelUnshuffle,
            nn.ChannelShuffle,
        ),
        Kind.SELECT,
    ),
}

ADD_FUNCTIONS: frozenset[Any] = frozenset({operator.add, operator.iadd, torch.add})
SUB_FUNCTIONS: frozenset[Any] = frozenset({operator.sub, operator.isub, torch.sub, torch.subtract})
MUL_FUNCTIONS: frozenset[Any] = frozenset({operator.mul, operator.imul, torch.mul, torch.multiply})
DIV_FUNCTIONS: frozenset[Any] = frozenset(
    {operator.truediv, operator.itruediv, torch.div, torch.divide, torch.true_divide}
)
NEG_FUNCTIONS: frozenset[Any] = frozenset({operator.neg, torch.neg, torch.negative})
ARITHMETIC_METHODS = {
    "add": ADD_FUNCTIONS,
    "sub": SUB_FUNCTIONS,
    "subtract": SUB_FUNCTIONS,
    "mul": MUL_FUNCTIONS,
    "multiply": MUL_FUNCTIONS,
    "div": DIV_FUNCTIONS,
    "divide": DIV_FUNCTIONS,
    "true_divide": DIV_FUNCTIONS,
    "neg": NEG_FUNCTIONS,
    "negative": NEG_FUNCTIONS,
}
INPLACE_METHODS = frozenset(f"{m}_" for m in ARITHMETIC_METHODS) | {
    "copy_",
    "zero_",
    "fill_",
    "clamp_",
    "relu_",
}

FUNCTION_KINDS: dict[Any, Kind] = {
    **dict.fromkeys((torch.cat, torch.concat, torch.concatenate, torch.stack), Kind.CAT),
    **dict.fromkeys(
        (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.unflatten),
        Kind.RESHAPE,
    ),
    **dict.fromkeys(
        (
            torch.transpose,
            torch.swapaxes,
            torch.swapdims,
            torch.permute,
            torch.movedim,
            torch.moveaxis,
            torch.t,
            torch.flip,
            torch.roll,
            torch.clone,
            torch.detach,
            torch.channel_shuffle,
            F.pad,
            F.pixel_shuffle,
            F.pixel_unshuffle,
            F.dropout,
            F.dropout1d,
            F.dropout2d,
            F.dropout3d,
            F.alpha_dropout,
            F.feature_alpha_dropout,
        ),
        Kind.SELECT,
    ),
    **dict.fromkeys((torch.chunk, torch.split, torch.unbind, torch.tensor_split), Kind.SPLIT),
    **dict.fromkeys(
        (
            torch.sum,
            torch.mean,
            torch.cumsum,
            F.avg_pool1d,
            F.avg_pool2d,
            F.avg_pool3d,
            F.adaptive_avg_pool1d,
            F.adaptive_avg_pool2d,
            F.adaptive_avg_pool3d,
        ),
        Kind.LINEAR,
    ),
    **dict.fromkeys(
        (
            torch.amax,
            F.max_pool1d,
            F.max_pool2d,
            F.max_pool3d,
            F.adaptive_max_pool1d,
            F.adaptive_max_pool2d,
            F.adaptive_max_pool3d,
        ),
        Kind.MAXPOOL,
    ),
}
FUNCTIONAL_LAYERS: frozenset[Any] = frozenset(
    {
        F.conv1d,
        F.conv2d,
        F.conv3d,
        F.conv_transpose1d,
        F.conv_transpose2d,
        F.conv_transpose3d,
        F.linear,
        F.batch_norm,
    }
)
# F.interpolate copies elements (nearest) or mixes them linearly (every other mode).
INTERPOLATE_FUNCTIONS: frozenset[Any] = frozenset({F.interpolate, F.upsample})
NEAREST_MODES = frozenset({"nearest", "nearest-exact"})

METHOD_KINDS: dict[str, Kind] = {
    **dict.fromkeys(("size", "dim", "numel", "nelement", "ndimension"), Kind.SIZE),
    **dict.fromkeys(
        (
            "view",
            "reshape",
            "flatten",
            "unflatten",
            "squeeze",
            "unsqueeze",
            "view_as",
            "reshape_as",
        ),
        Kind.RESHAPE,
    ),
    **dict.fromkeys(
        (
            "permute",
            "transpose",
            "swapaxes",
            "swapdims",
            "movedim",
            "moveaxis",
            "t",
            "flip",
            "roll",
            "contiguous",
            "clone",
            "detach",
            "to",
            "type_as",
            "float",
            "double",
            "expand",
            "repeat",
        ),
        Kind.SELECT,
    ),
    **dict.fromkeys(("chunk", "split", "unbind", "tensor_split"), Kind.SPLIT),
    **dict.fromkeys(("sum", "mean", "cumsum"), Kind.LINEAR),
    "amax": Kind.MAXPOOL,
}
# getattr(x, name) on a train: sizes, or (T, mT) a transposed train.
ATTRIBUTE_KINDS = {
    "shape": Kind.SIZE,
    "ndim": Kind.SIZE,
    "dtype": Kind.SIZE,
    "device": Kind.SIZE,
    "T": Kind.SELECT,
    "mT": Kind.SELECT,
}
# Functions that may compute on sizes and constants (never on a train).
SIZE_FUNCTIONS: frozenset[Any] = frozenset(
    {
        operator.add,
        operator.sub,
        operator.mul,
        operator.floordiv,
        operator.truediv,
        operator.mod,
        operator.pow,
        operator.neg,
        operator.getitem,
        getattr,
    }
)


def arg(node: fx.Node, position: int, name: str, default: Any = None) -> Any:
    """Argument ``name`` of a call, given by position (self at 0 for methods) or keyword."""
    if len(node.args) > position:
        return node.args[position]
    return node.kwargs.get(name, default)


def describe(node: fx.Node) -> str:
    """How an error names a node: the module (and its call site) or the function."""
    if node.op == "call_module":
        site = node.meta.get("pascal_site", str(node.target))
        call = "" if site == node.target else f", call site '{site}'"
        return f"module '{node.target}' ({node.meta.get('pascal_type', 'module')}{call})"
    if node.op == "call_method":
        return f"method '.{node.target}()' (graph node '{node.name}')"
    target = getattr(node.target, "__name__", str(node.target))
    return f"operation '{target}' (graph node '{node.name}')"


def refuse(node: fx.Node, why: str, todo: str | None = None) -> ConversionError:
    """A :class:`ConversionError` naming ``node``, saying why and what to do."""
    tail = todo if todo is not None else SUPPORTED
    return ConversionError(f"cannot convert {describe(node)}: {why}. {tail}.")


def _relu_refusal(node: fx.Node) -> ConversionError:
    return refuse(
        node,
        "a ReLU-like activation is left in the model",
        "replace it with pascal_snn.QCFS and train (or fine-tune) again",
    )


def _check_module(node: fx.Node, module: nn.Module) -> None:
    """Shape-free checks of one leaf module call on a train."""
    if isinstance(module, QCFS):
        theta = float(module.theta.detach())
        if not math.isfinite(theta) or theta <= 0:
            raise refuse(
                node,
                f"its threshold theta={theta} is not > 0: one spike is worth theta/L, which "
                "must be positive for an IF neuron to count spikes (a non-positive threshold "
                "has no spiking meaning)",
                "clamp the thresholds (pascal_snn.qcfs.clamp_thresholds) and retrain",
            )
    elif isinstance(module, BATCHNORM_TYPES):
        bn: Any = module
        if bn.running_mean is None or bn.running_var is None or not bn.track_running_stats:
            raise refuse(
                node,
                "a BatchNorm without running statistics normalises with batch statistics, "
                "which spikes cannot reproduce",
                "train it with track_running_stats=True",
            )
    elif isinstance(module, MAXPOOL_TYPES) and module.return_indices:
        raise refuse(node, "max pooling that returns indices is not supported", None)
    elif isinstance(module, CONSTANT_PAD_TYPES) and module.value != 0:
        raise refuse(
            node,
            f"padding with the constant {module.value} adds a constant to part of the tensor",
            "pad with zeros",
        )


def _module_kind(node: fx.Node, modules: Modules) -> Kind:
    module = modules[str(node.target)]
    node.meta["pascal_type"] = type(module).__name__
    if isinstance(module, RELU_LIKE_TYPES):
        raise _relu_refusal(node)
    if isinstance(module, nn.Upsample):
        return Kind.SELECT if module.mode in NEAREST_MODES else Kind.LINEAR
    kind = MODULE_KINDS.get(type(module))
    if kind is None and isinstance(module, nn.modules.conv._ConvTransposeNd):
        raise refuse(
            node,
            "transposed convolutions are linear but not supported by the converter yet",
            "upsample with nn.Upsample followed by an nn.Conv layer",
        )
    if kind is None and isinstance(module, (*MATMUL_TYPES, *BATCHNORM_TYPES)):
        raise refuse(
            node,
            f"{type(module).__name__} subclasses {type(module).__mro__[1].__name__} but may "
            "compute something else",
            f"use torch.nn's own {type(module).__mro__[1].__name__}",
        )
    if kind is None:
        raise refuse(node, f"the layer {type(module).__name__} has no exact spiking equivalent")
    _check_module(node, module)
    return kind


def _arithmetic_kind(node: fx.Node, family: frozenset[Any], trains: set[fx.Node]) -> Kind:
    """ADD / SHIFT / SCALE / PRODUCT for an arithmetic call with at least one train operand."""
    operands = list(node.args[:2])
    is_train = [isinstance(a, fx.Node) and a in trains for a in operands]
    if family is NEG_FUNCTIONS:
        return Kind.SCALE
    if family in (ADD_FUNCTIONS, SUB_FUNCTIONS):
        if node.kwargs.get("alpha", 1) != 1 or len(node.args) > 2:
            raise refuse(node, "add/sub with alpha is not supported", "write x + a * y")
        return Kind.ADD if all(is_train) else Kind.SHIFT
    if family is DIV_FUNCTIONS and node.kwargs.get("rounding_mode") is not None:
        raise refuse(node, "division with rounding is not linear")
    if all(is_train) or (family is DIV_FUNCTIONS and not is_train[0]):
        return Kind.PRODUCT
    return Kind.SCALE


def _function_kind(node: fx.Node, trains: set[fx.Node]) -> Kind:
    fn = node.target
    if fn in RELU_LIKE_FUNCTIONS:
        raise _relu_refusal(node)
    for family in (ADD_FUNCTIONS, SUB_FUNCTIONS, MUL_FUNCTIONS, DIV_FUNCTIONS, NEG_FUNCTIONS):
        if fn in family:
            return _arithmetic_kind(node, family, trains)
    if fn is operator.getitem:
        return Kind.SELECT
    if fn is getattr:
        name = node.args[1]
        if name not in ATTRIBUTE_KINDS:
            raise refuse(node, f"the tensor attribute '{name}' has no spiking equivalent")
        return ATTRIBUTE_KINDS[str(name)]
    if fn in INTERPOLATE_FUNCTIONS:
        return Kind.SELECT if arg(node, 4, "mode", "nearest") in NEAREST_MODES else Kind.LINEAR
    kind = FUNCTION_KINDS.get(fn)
    if kind is None and fn in FUNCTIONAL_LAYERS:
        raise refuse(
            node,
            "a functional convolution/linear/normalisation (or a custom subclass of an nn "
            "layer whose forward calls one) is not a layer the converter can give a bias split",
            "use the torch.nn modules (nn.Conv2d, nn.Linear, nn.BatchNorm2d, …)",
        )
    if kind is None:
        raise refuse(node, "this function has no exact spiking equivalent")
    dropout = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout)
    if fn in dropout and arg(node, 2, "training", True) is not False:
        raise refuse(
            node,
            "dropout with training=True drops values at random even in eval mode",
            "pass training=self.training (or use nn.Dropout)",
        )
    if fn in (F.max_pool1d, F.max_pool2d, F.max_pool3d) and arg(node, 6, "return_indices"):
        raise refuse(node, "max pooling that returns indices is not supported")
    if fn in (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d) and arg(
        node, 2, "return_indices"
    ):
        raise refuse(node, "max pooling that returns indices is not supported")
    if fn is F.pad and arg(node, 2, "mode", "constant") == "constant":
        value = arg(node, 3, "value", None)
        if value not in (None, 0, 0.0):
            raise refuse(
                node, f"padding with the constant {value} adds a constant", "pad with zeros"
            )
    return kind


def _method_kind(node: fx.Node, trains: set[fx.Node]) -> Kind:
    method = str(node.target)
    if method in RELU_LIKE_METHODS:
        raise _relu_refusal(node)
    if method in INPLACE_METHODS:
        raise refuse(
            node,
            "an in-place operation on a spike train",
            "write it out of place (y = x + z instead of x.add_(z))",
        )
    if method in ARITHMETIC_METHODS:
        return _arithmetic_kind(node, ARITHMETIC_METHODS[method], trains)
    kind = METHOD_KINDS.get(method)
    if kind is None:
        raise refuse(node, "this tensor method has no exact spiking equivalent")
    return kind


def classify(graph: fx.Graph, modules: Modules) -> dict[fx.Node, Kind]:
    """The :class:`Kind` of every node; raises :class:`ConversionError` for anything else.

    Needs no shapes: which values are trains follows from the data flow (a value computed
    from the input is a train unless it is read from a train's shape). Checks that need
    shapes (batch dims, layouts, codes) are the annotation pass's.
    """
    kinds: dict[fx.Node, Kind] = {}
    trains: set[fx.Node] = set()
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ConversionError(
            f"the model's forward takes {len(placeholders)} inputs; conversion needs exactly "
            "one (the image batch)"
        )
    for node in graph.nodes:
        dependent = [a for a in node.all_input_nodes if kinds[a] is not Kind.CONST]
        node_trains = {a for a in dependent if a in trains}
        if node.op == "placeholder":
            kind = Kind.INPUT
        elif node.op == "output":
            kind = Kind.OUTPUT
        elif not dependent and node.op != "placeholder":
            kind = Kind.CONST
        elif not node_trains:
            kind = Kind.SIZE  # computed from sizes (and constants) only
        elif node.op == "call_module":
            kind = _module_kind(node, modules)
        elif node.op == "call_function":
            kind = _function_kind(node, trains)
        elif node.op == "call_method":
            kind = _method_kind(node, trains)
        else:
            raise refuse(node, f"unexpected graph operation '{node.op}'")
        kinds[node] = kind
        if kind in TRAIN_KINDS:
            trains.add(node)
    return kinds
