"""ANN → SNN conversion over the model's ``torch.fx`` graph (SPEC §3, §4).

The pipeline is fixed: copy and trace the model (QCFS kept as a leaf) → fold BatchNorm into
the preceding convolution/linear layer → walk the graph in order, giving every value either a
train length ``T`` (it carries spikes) or none (a shape, a size) → replace each operation by
its spiking form, refusing anything that would not be exact → wrap the result.

Nothing here depends on a list of known model classes: any model built from the supported
operations converts, and every layer's ``L`` is read from its QCFS module.
"""

from __future__ import annotations

import copy
import enum
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from pascal_snn.errors import ConversionError, DataError
from pascal_snn.graph import trace
from pascal_snn.qcfs import QCFS
from pascal_snn.spiking import (
    MatMulLayer,
    PascIF,
    VanillaIF,
    checked_reshape,
    sum_steps,
    train_add,
    train_cat,
)

__all__ = ["SUPPORTED", "Mode", "PascNetwork", "VanillaNetwork", "convert"]

SUPPORTED = (
    "supported: Conv1d/2d/3d and Linear (a BatchNorm right after them is folded in), "
    "BatchNorm, QCFS, AvgPool/AdaptiveAvgPool, MaxPool fed directly by a QCFS, Flatten, "
    "Dropout, Identity, residual add (+), torch.cat on a non-batch dim, multiplication or "
    "division by a number, and shape methods (size, view, reshape, flatten, mean over "
    "non-batch dims)"
)


class Mode(str, enum.Enum):
    """Conversion mode: PASC (exact at T = L) or the vanilla IF baseline of Bu et al."""

    PASC = "pasc"
    VANILLA = "vanilla"


MATMUL = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
PER_STEP = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.Flatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.Identity,
)
# Operations that keep a thermometer code a thermometer code (so MaxPool stays exact after them).
KEEPS_CODE = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity)
MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardtanh, nn.ELU)

ADD_FUNCTIONS: set[Any] = {operator.add, torch.add, operator.iadd}
SCALE_FUNCTIONS: set[Any] = {operator.mul, operator.truediv, torch.mul}
PER_STEP_FUNCTIONS: set[Any] = {
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.dropout,
}
MAXPOOL_FUNCTIONS: set[Any] = {F.max_pool1d, F.max_pool2d, F.max_pool3d}
RESHAPE_METHODS = {"view", "reshape", "flatten"}
SAFE_METHODS = {"contiguous", "clone", "detach"}
META_FUNCTIONS: set[Any] = {operator.getitem, getattr}


def _name(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"module '{node.target}' ({type(modules[str(node.target)]).__name__})"
    target = getattr(node.target, "__name__", str(node.target))
    return f"operation '{target}' (graph node '{node.name}')"


def _refuse(node: fx.Node, modules: dict[str, nn.Module], why: str) -> ConversionError:
    return ConversionError(f"cannot convert {_name(node, modules)}: {why}. {SUPPORTED}.")


def _set_module(root: nn.Module, target: str, module: nn.Module) -> None:
    parent_name, _, leaf = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, module)


def _start_dim(node: fx.Node) -> Any:
    """``start_dim`` of a flatten call (0 when not given, as in ``torch.flatten``)."""
    return node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)


def _fold_batchnorm(gm: fx.GraphModule) -> None:
    """Fold every BatchNorm whose only input is a conv/linear used nowhere else."""
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], BATCHNORM):
            continue
        (source,) = node.args[:1]
        if not (isinstance(source, fx.Node) and source.op == "call_module"):
            continue
        layer = modules[str(source.target)]
        bn = modules[node.target]
        if len(source.users) != 1 or not bn.track_running_stats:
            continue
        if isinstance(layer, nn.Linear):
            fused = fuse_linear_bn_eval(layer, bn)
        elif isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            fused = fuse_conv_bn_eval(layer, bn)
        else:
            continue
        _set_module(gm, str(source.target), fused)
        node.replace_all_uses_with(source)
        gm.graph.erase_node(node)
    gm.graph.lint()


def _batchnorm_as_conv(bn: nn.Module) -> nn.Module:
    """A standalone eval-mode BatchNorm as a depthwise 1×1 convolution (per-channel affine)."""
    dims = {nn.BatchNorm1d: 1, nn.BatchNorm2d: 2, nn.BatchNorm3d: 3}[type(bn)]
    conv_cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    c = bn.num_features
    weight = bn.weight.detach() if bn.affine else torch.ones_like(bn.running_var)
    bias = bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean)
    conv = conv_cls(c, c, 1, groups=c, bias=True, device=weight.device, dtype=weight.dtype)
    scale = weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.data = scale.view(c, 1, *([1] * dims))
    conv.bias.data = bias - bn.running_mean * scale
    return conv


class _Walker:
    """Gives every graph node its train length and rewrites it into its spiking form."""

    def __init__(self, gm: fx.GraphModule, mode: Mode) -> None:
        self.gm = gm
        self.mode = mode
        self.modules = dict(gm.named_modules())
        self.length: dict[fx.Node, int | None] = {}  # T of a train, None for a non-train value
        self.coded: set[fx.Node] = set()  # nodes whose value is a thermometer code (IF output)

    def t(self, arg: Any) -> int | None:
        return self.length.get(arg) if isinstance(arg, fx.Node) else None

    def trains_in(self, node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if self.length.get(a) is not None]

    def run(self) -> None:
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ConversionError(
                f"the model's forward takes {len(placeholders)} inputs; conversion needs "
                "exactly one (the image batch)"
            )
        for node in list(self.gm.graph.nodes):
            handler: Callable[[fx.Node], int | None] = getattr(self, f"_{node.op}")
            self.length[node] = handler(node)

    # -- node kinds ---------------------------------------------------------------------------
    def _placeholder(self, node: fx.Node) -> int:
        return 1  # the image is a train of length 1

    def _get_attr(self, node: fx.Node) -> None:
        return None

    def _output(self, node: fx.Node) -> None:
        (result,) = node.args
        t = self.t(result)
        if t is None:
            raise ConversionError(
                "the model's output does not depend on its input as a single tensor; "
                "conversion needs forward() to return one logits tensor"
            )
        if self.mode is Mode.PASC:
            with self.gm.graph.inserting_before(node):
                total = self.gm.graph.call_function(sum_steps, (result, t))
            node.args = (total,)
        return None

    def _call_module(self, node: fx.Node) -> int | None:
        module = self.modules[str(node.target)]
        trains = self.trains_in(node)
        if not trains:
            return None
        t_in = self.length[trains[0]]
        assert t_in is not None
        if isinstance(module, QCFS):
            return self._qcfs(node, module, t_in)
        if isinstance(module, MATMUL):
            if self.mode is Mode.PASC:
                op = copy.deepcopy(module)
                if op.bias is not None:
                    op.bias.data = op.bias.data / t_in
                _set_module(self.gm, str(node.target), MatMulLayer(op, t_in))
            return t_in
        if isinstance(module, BATCHNORM):
            if module.running_mean is None or module.running_var is None:
                raise _refuse(
                    node,
                    self.modules,
                    "a BatchNorm without running statistics "
                    "normalises with batch statistics, which spikes cannot reproduce",
                )
            if self.mode is Mode.PASC:
                conv = _batchnorm_as_conv(module)
                conv.bias.data = conv.bias.data / t_in
                _set_module(self.gm, str(node.target), MatMulLayer(conv, t_in))
            return t_in
        if isinstance(module, PER_STEP):
            if isinstance(module, KEEPS_CODE) and trains[0] in self.coded:
                self.coded.add(node)
            return t_in
        if isinstance(module, MAXPOOL):
            return self._maxpool(node, trains[0], t_in)
        if isinstance(module, RELU_LIKE):
            raise _refuse(
                node,
                self.modules,
                "a ReLU-like activation is left in the model; "
                "replace it with pascal_snn.QCFS and train (or fine-tune) again",
            )
        raise _refuse(node, self.modules, "this layer has no exact spiking equivalent")

    def _qcfs(self, node: fx.Node, module: QCFS, t_in: int) -> int:
        theta = module.theta.detach()
        if not bool(torch.isfinite(theta)) or float(theta) <= 0:
            raise _refuse(node, self.modules, f"its threshold theta={float(theta)} is not > 0")
        if self.mode is Mode.PASC:
            _set_module(self.gm, str(node.target), PascIF(theta, module.L, t_in))
            self.coded.add(node)
            return module.L
        _set_module(self.gm, str(node.target), VanillaIF(theta))
        self.coded.add(node)
        return t_in

    def _maxpool(self, node: fx.Node, source: fx.Node, t_in: int) -> int:
        if self.mode is Mode.PASC and source not in self.coded:
            raise _refuse(
                node,
                self.modules,
                f"MaxPool is exact only on the output of a QCFS/IF neuron, but its input is "
                f"'{source.name}'; put a QCFS right before it or use AvgPool",
            )
        self.coded.add(node)
        return t_in

    def _call_function(self, node: fx.Node) -> int | None:
        fn = node.target
        trains = self.trains_in(node)
        if not trains:
            return None  # arithmetic on sizes and shapes
        if fn in ADD_FUNCTIONS:
            return self._add(node)
        if fn in SCALE_FUNCTIONS:
            return self._scale(node)
        if fn is torch.cat:
            return self._cat(node)
        if fn in (torch.flatten, torch.reshape):
            if fn is torch.flatten and _start_dim(node) == 0:
                raise _refuse(node, self.modules, "flatten must start at dim 1 or later")
            if fn is torch.reshape:
                node.target = checked_reshape
                node.args = (node.args[0], "reshape", *node.args[1:])
            return self.t(node.args[0])
        if fn in PER_STEP_FUNCTIONS:
            return self.t(node.args[0])
        if fn in MAXPOOL_FUNCTIONS:
            source = node.args[0]
            assert isinstance(source, fx.Node)
            return self._maxpool(node, source, self.length[source] or 1)
        if fn in META_FUNCTIONS:
            if fn is getattr and node.args[1] in ("shape", "dtype", "device"):
                return None
            raise _refuse(node, self.modules, "indexing a spike train would mix time steps")
        if fn in (F.relu, torch.relu, F.relu6, F.leaky_relu, F.gelu, F.silu):
            raise _refuse(
                node,
                self.modules,
                "a ReLU-like activation is left in the model; "
                "replace it with pascal_snn.QCFS and train (or fine-tune) again",
            )
        raise _refuse(node, self.modules, "this function has no exact spiking equivalent")

    def _call_method(self, node: fx.Node) -> int | None:
        method = str(node.target)
        trains = self.trains_in(node)
        if not trains:
            return None
        source = node.args[0]
        if method == "size" or method == "dim":
            return None
        if method in RESHAPE_METHODS:
            if method == "flatten" and _start_dim(node) == 0:
                raise _refuse(node, self.modules, "flatten must start at dim 1 or later")
            if method != "flatten":
                node.target = checked_reshape
                node.op = "call_function"
                node.args = (source, method, *node.args[1:])
            return self.t(source)
        if method in SAFE_METHODS:
            if source in self.coded:
                self.coded.add(node)
            return self.t(source)
        if method in ("mean", "sum"):
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            dims = (dims,) if isinstance(dims, int) else dims
            if not dims or any(not isinstance(d, int) or d == 0 for d in dims):
                raise _refuse(node, self.modules, f"{method} must name its dims, none of them 0")
            return self.t(source)
        if method in ("add", "add_", "__add__"):
            return self._add(node)
        if method in ("mul", "div", "mul_", "div_"):
            return self._scale(node)
        if method in ("relu", "relu_"):
            raise _refuse(
                node,
                self.modules,
                "a ReLU is left in the model; replace it with "
                "pascal_snn.QCFS and train (or fine-tune) again",
            )
        raise _refuse(node, self.modules, "this tensor method has no exact spiking equivalent")

    # -- shared rules -------------------------------------------------------------------------
    def _add(self, node: fx.Node) -> int:
        a, b = node.args[:2]
        t_a, t_b = self.t(a), self.t(b)
        if t_a is None or t_b is None or node.kwargs.get("alpha", 1) != 1 or len(node.args) > 2:
            raise _refuse(
                node,
                self.modules,
                "only the sum of two spike trains is supported "
                "(adding a constant would need it split over time steps)",
            )
        if self.mode is Mode.PASC:
            node.op, node.target = "call_function", train_add
            node.args, node.kwargs = (a, b, t_a, t_b), {}
            return max(t_a, t_b)
        return t_a

    def _scale(self, node: fx.Node) -> int:
        a, b = node.args[:2]
        fn = node.target
        scalar = (int, float)
        if self.t(a) is not None and isinstance(b, scalar):
            return self.length[a]  # type: ignore[index, return-value]
        if (
            fn in (operator.mul, torch.mul, "mul", "mul_")
            and self.t(b) is not None
            and isinstance(a, scalar)
        ):
            return self.length[b]  # type: ignore[index, return-value]
        raise _refuse(node, self.modules, "a spike train may only be scaled by a plain number")

    def _cat(self, node: fx.Node) -> int:
        tensors = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        lengths = [self.t(x) for x in tensors]  # type: ignore[union-attr]
        if dim == 0 or any(t is None for t in lengths):
            raise _refuse(node, self.modules, "torch.cat needs spike trains only and dim != 0")
        if self.mode is Mode.PASC:
            node.target = train_cat
            node.args, node.kwargs = (list(tensors), lengths, dim), {}  # type: ignore[arg-type]
        return max(lengths)  # type: ignore[type-var]


def _expected_input(model: nn.Module) -> tuple[int, int] | None:
    """(ndim, channels) the first conv/linear layer expects, for a clear input-shape error."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return module.weight.dim(), module.in_channels
        if isinstance(module, nn.Linear):
            return -1, module.in_features
    return None


def check_input(x: torch.Tensor, expected: tuple[int, int] | None) -> None:
    """Raise :class:`DataError` for an input batch that cannot be right for the model."""
    if not torch.isfinite(x).all():
        raise DataError(
            "the input batch holds NaN or infinite values; spiking networks need "
            "finite inputs (check the data and its normalisation)"
        )
    if expected is None:
        return
    ndim, channels = expected
    if ndim == -1:
        ok = x.dim() >= 2 and x.shape[-1] == channels
    else:
        ok = x.dim() == ndim and x.shape[1] == channels
    if not ok:
        want = f"[batch, {channels}, ...] with {ndim} dims" if ndim > 0 else f"[..., {channels}]"
        raise DataError(
            f"input batch of shape {tuple(x.shape)} does not fit the model, which expects {want}"
        )


class PascNetwork(nn.Module):
    """A PASC spiking network; ``forward(x)`` returns logits equal to the ANN's.

    ``graph`` is the rewritten ``torch.fx`` module (``print(net.graph.code)`` shows it).
    """

    def __init__(
        self, graph: fx.GraphModule, expected_input: tuple[int, int] | None, output_steps: int
    ) -> None:
        super().__init__()
        self.graph = graph
        self.expected_input = expected_input
        self.output_steps = output_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.expected_input)
        return self.graph(x)

    def if_layers(self) -> list[tuple[str, PascIF]]:
        """PASC IF layers in forward order (the QCFS names of the ANN)."""
        return _in_order(self.graph, PascIF)

    def matmul_layers(self) -> list[tuple[str, MatMulLayer]]:
        """Convolution/linear layers in forward order (the ANN's names)."""
        return _in_order(self.graph, MatMulLayer)

    def reset_stats(self) -> None:
        for _, layer in self.if_layers():
            layer.reset_stats()

    def train(self, mode: bool = True) -> PascNetwork:
        if mode:
            raise RuntimeError("a converted spiking network is for inference only")
        return super().train(False)


class VanillaNetwork(nn.Module):
    """The QCFS-paper SNN baseline: plain IF neurons, ``timesteps`` steps, image every step.

    ``forward(x)`` returns the mean of the output over the steps; :meth:`prefix_logits`
    returns, from one run, the mean over the first ``t`` steps for every ``t ≤ T``.
    """

    def __init__(
        self, net: nn.Module, timesteps: int, expected_input: tuple[int, int] | None
    ) -> None:
        super().__init__()
        self.net = net
        self.timesteps = timesteps
        self.expected_input = expected_input

    def _reset(self) -> None:
        for module in self.net.modules():
            if isinstance(module, VanillaIF):
                module.reset()

    def prefix_logits(self, x: torch.Tensor, timesteps: int | None = None) -> torch.Tensor:
        """``[T, B, classes]``: row ``t−1`` is the mean output over steps ``1 … t``."""
        check_input(x, self.expected_input)
        steps = timesteps or self.timesteps
        self._reset()
        total = None
        means = []
        try:
            for t in range(1, steps + 1):
                out = self.net(x)
                total = out if total is None else total + out
                means.append(total / t)
        finally:
            self._reset()
        return torch.stack(means)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prefix_logits(x)[-1]

    def train(self, mode: bool = True) -> VanillaNetwork:
        if mode:
            raise RuntimeError("a converted spiking network is for inference only")
        return super().train(False)


def _in_order(gm: fx.GraphModule, kind: type) -> list[tuple[str, Any]]:
    out = []
    for node in gm.graph.nodes:
        if node.op == "call_module":
            module = gm.get_submodule(str(node.target))
            if isinstance(module, kind):
                out.append((str(node.target), module))
    return out


def convert(
    model: nn.Module, mode: Mode | str = Mode.PASC, timesteps: int | None = None
) -> PascNetwork | VanillaNetwork:
    """Convert a QCFS-trained ANN into a spiking network; ``model`` itself is not changed.

    ``mode="pasc"``: logits equal the ANN's (up to float rounding) with T = L per layer.
    ``mode="vanilla"``: the plain IF baseline, run for ``timesteps`` steps.
    Raises :class:`ConversionError` naming any operation that has no exact spiking form.
    """
    try:
        mode = Mode(mode)
    except ValueError:
        raise ConversionError(f"mode must be 'pasc' or 'vanilla', got {mode!r}") from None
    if mode is Mode.VANILLA:
        if (
            timesteps is None
            or isinstance(timesteps, bool)
            or not isinstance(timesteps, int)
            or timesteps < 1
        ):
            raise ConversionError(f"vanilla conversion needs timesteps >= 1, got {timesteps!r}")
    elif timesteps is not None:
        raise ConversionError("timesteps applies to mode='vanilla' only; PASC runs T = L per layer")
    if not any(isinstance(m, QCFS) for m in model.modules()):
        raise ConversionError(
            "the model has no QCFS layer; train it with pascal_snn.QCFS "
            "activations before converting"
        )
    ann = copy.deepcopy(model).eval()
    try:
        gm = trace(ann)
    except Exception as exc:  # fx raises several types for data-dependent control flow
        raise ConversionError(
            f"the model could not be traced with torch.fx ({type(exc).__name__}: {exc}); "
            "conversion needs a forward() without data-dependent Python control flow"
        ) from exc
    expected = _expected_input(ann)
    ann.requires_grad_(False)
    with torch.no_grad():
        if mode is Mode.PASC:
            _fold_batchnorm(gm)
        walker = _Walker(gm, mode)
        walker.run()
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
    if mode is Mode.PASC:
        out_node = next(n for n in gm.graph.nodes if n.op == "output")
        steps = out_node.args[0].args[1]
        return PascNetwork(gm, expected, steps).eval()
    return VanillaNetwork(gm, timesteps, expected).eval()  # type: ignore[arg-type]
