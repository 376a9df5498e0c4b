"""Bring your own model: swap every ReLU / ReLU6 call site of any ``nn.Module`` for its own QCFS.

``qcfsify(model)`` traces a copy of the model with ``torch.fx`` (standard ``torch.nn`` layers
and QCFS kept as leaves) and rewrites the graph: every call of

- ``nn.ReLU`` (``inplace`` or not), ``F.relu``, ``F.relu_``, ``torch.relu``, ``torch.relu_``,
  ``Tensor.relu()``, ``Tensor.relu_()``  → ``QCFS(L, theta)``;
- ``nn.ReLU6``, ``nn.Hardtanh(0, 6)``, ``F.relu6``, ``F.hardtanh(x, 0, 6)``
  → ``QCFS(L, relu6_theta)`` (θ = 6 reproduces ReLU6's clip: ``h(z) → clip(z, 0, 6)`` as L → ∞)

becomes a call of a QCFS module of its own — per *call site*, so a ReLU module called twice
(torchvision's ``BasicBlock`` / ``Bottleneck`` call one ``self.relu`` two / three times)
becomes two QCFS layers with their own θ and L. Every other module keeps its qualified name,
so a ReLU model's ``state_dict`` loads into the result (:func:`load_relu_weights`).

**Names** (valid attribute paths, stable for a given architecture): each site has a base —
the ReLU module's path for a module call (``layer1.0.relu``), ``<calling module path>.relu``
(or ``.relu6``) for a functional or method call (just ``relu`` in the top-level forward) — and
takes, in forward order, the first of ``<base>``, ``<base>_2``, ``<base>_3``, … that no earlier
site and no other attribute uses. A ReLU module called three times becomes ``layer1.0.relu``,
``layer1.0.relu_2``, ``layer1.0.relu_3``.

**Refused** (:class:`~pascal_snn.errors.ConversionError`, listing *every* offending call with
its location; the input is untouched and nothing half-converted is returned): activations with
no QCFS counterpart (GELU, SiLU, Hardswish, Hardsigmoid, sigmoid gates, Tanh, LeakyReLU, ELU,
PReLU, Softmax, …), LayerNorm/GroupNorm/InstanceNorm/LocalResponseNorm, attention and recurrent
layers (they hide activations inside one leaf module), a ``forward`` that ``torch.fx`` cannot
trace, a ``forward`` whose graph depends on ``self.training`` (train and eval would run
different networks, e.g. GoogLeNet/Inception ``aux_logits=True``), and an in-place ReLU whose
input is still read through a view after it.

In-place ReLUs mutate their input; QCFS does not. Later readers of that input are rewired to
the QCFS output, so the rewritten graph computes what the original computed.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from pascal_snn.errors import CheckpointError, ConfigError, ConversionError
from pascal_snn.graph import QCFSTracer
from pascal_snn.qcfs import QCFS, validate_level

__all__ = [
    "DEFAULT_THETA",
    "RELU6_THETA",
    "SiteInfo",
    "SiteKind",
    "load_relu_weights",
    "qcfs_sites",
    "qcfsify",
]

DEFAULT_THETA = 8.0  # SPEC §2: the QCFS reference code's initial threshold
RELU6_THETA = 6.0  # QCFS with θ = 6 saturates where ReLU6 clips
META_KEY = "pascal_snn.qcfs_sites"  # GraphModule.meta survives deepcopy; no global state


class SiteKind(str, enum.Enum):
    """What a QCFS call site replaced: a ReLU or a ReLU6 (clip at 6)."""

    RELU = "relu"
    RELU6 = "relu6"


@dataclasses.dataclass(frozen=True)
class SiteInfo:
    """One replaced call site: its QCFS name, what it was, and where it was in the model."""

    name: str
    kind: SiteKind
    origin: str  # e.g. "module 'layer1.0.relu' (ReLU), call 2" or "F.relu in 'features'"


# --------------------------------------------------------------------------- what is what
_RELU_FUNCTIONS: set[Any] = {F.relu, torch.relu, torch.relu_, F.relu_}
_RELU6_FUNCTIONS: set[Any] = {F.relu6}
_RELU_METHODS = {"relu", "relu_"}
_INPLACE_FUNCTIONS: set[Any] = {torch.relu_, F.relu_}

_UNSUPPORTED_MODULES: tuple[type[nn.Module], ...] = (
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.LogSigmoid,
    nn.Tanh,
    nn.Tanhshrink,
    nn.Hardtanh,  # other than (0, 6): checked after ReLU6
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GLU,
    nn.PReLU,
    nn.RReLU,
    nn.Threshold,
    nn.Softplus,
    nn.Softsign,
    nn.Softshrink,
    nn.Hardshrink,
    nn.Softmax,
    nn.Softmin,
    nn.Softmax2d,
    nn.LogSoftmax,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.CrossMapLRN2d,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.MultiheadAttention,
    nn.Transformer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.RNNBase,
    nn.RNNCellBase,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
_UNSUPPORTED_NAMES = [
    "gelu",
    "silu",
    "mish",
    "hardswish",
    "hardsigmoid",
    "sigmoid",
    "sigmoid_",
    "logsigmoid",
    "tanh",
    "tanh_",
    "tanhshrink",
    "hardtanh",
    "hardtanh_",
    "leaky_relu",
    "leaky_relu_",
    "elu",
    "elu_",
    "celu",
    "celu_",
    "selu",
    "selu_",
    "glu",
    "prelu",
    "rrelu",
    "rrelu_",
    "threshold",
    "threshold_",
    "softplus",
    "softsign",
    "softshrink",
    "hardshrink",
    "softmax",
    "softmin",
    "log_softmax",
    "layer_norm",
    "group_norm",
    "instance_norm",
    "local_response_norm",
    "rms_norm",
    "scaled_dot_product_attention",
    "exp",
    "exp_",
]
_UNSUPPORTED_FUNCTIONS: set[Any] = {
    fn
    for space in (F, torch)
    for name in _UNSUPPORTED_NAMES
    if (fn := getattr(space, name, None)) is not None
}
_UNSUPPORTED_METHODS = set(_UNSUPPORTED_NAMES)


def _hardtanh_bounds(node: fx.Node) -> tuple[Any, Any]:
    args = list(node.args[1:3])
    lo = args[0] if len(args) > 0 else node.kwargs.get("min_val", -1.0)
    hi = args[1] if len(args) > 1 else node.kwargs.get("max_val", 1.0)
    return lo, hi


def _is_relu6_bounds(lo: Any, hi: Any) -> bool:
    return isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo == 0 and hi == 6


def _scope(node: fx.Node) -> str:
    """Qualified name of the module whose ``forward`` made this call ('' for the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, _ = list(stack.values())[-1]
    return str(path)


def _where(node: fx.Node, modules: Mapping[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"module '{node.target}' ({type(modules[str(node.target)]).__name__})"
    what = node.target if node.op == "call_method" else getattr(node.target, "__name__", "?")
    kind = "method ." if node.op == "call_method" else "function "
    scope = _scope(node)
    inside = f"in '{scope}'" if scope else "in the top-level forward"
    return f"{kind}{what}() {inside} (graph node '{node.name}')"


@dataclasses.dataclass
class _Site:
    node: fx.Node
    kind: SiteKind
    base: str  # name before de-duplication
    inplace: bool
    source: fx.Node  # the pre-activation
    origin: str


def _classify(
    node: fx.Node, modules: Mapping[str, nn.Module], calls: dict[str, int]
) -> _Site | tuple[str, str] | None:
    """A ReLU/ReLU6 site, a refusal ``(location, what)``, or None for anything else."""
    if node.op == "call_module":
        module = modules[str(node.target)]
        path = str(node.target)
        kind: SiteKind | None = None
        if isinstance(module, nn.ReLU):
            kind = SiteKind.RELU
        elif isinstance(module, nn.Hardtanh) and _is_relu6_bounds(module.min_val, module.max_val):
            kind = SiteKind.RELU6  # nn.ReLU6 is Hardtanh(0, 6)
        elif isinstance(module, _UNSUPPORTED_MODULES):
            return _where(node, modules), type(module).__name__
        if kind is None:
            return None
        calls[path] = calls.get(path, 0) + 1
        origin = f"{_where(node, modules)}, call {calls[path]}"
        inplace = bool(getattr(module, "inplace", False))
        source = node.args[0]
        assert isinstance(source, fx.Node)  # an activation module is called on a tensor
        return _Site(node, kind, path, inplace, source, origin)
    if node.op not in ("call_function", "call_method"):
        return None
    target = node.target
    kind = None
    inplace = False
    if node.op == "call_method":
        if target in _RELU_METHODS:
            kind, inplace = SiteKind.RELU, target == "relu_"
        elif target in _UNSUPPORTED_METHODS:
            return _where(node, modules), str(target)
    elif target in _RELU_FUNCTIONS:
        kind = SiteKind.RELU
        inplace = target in _INPLACE_FUNCTIONS or _inplace_arg(node)
    elif target in _RELU6_FUNCTIONS:
        kind, inplace = SiteKind.RELU6, _inplace_arg(node)
    elif target in (F.hardtanh, F.hardtanh_) and _is_relu6_bounds(*_hardtanh_bounds(node)):
        kind = SiteKind.RELU6
        inplace = target is F.hardtanh_ or bool(
            node.args[3] if len(node.args) > 3 else node.kwargs.get("inplace", False)
        )
    elif target in _UNSUPPORTED_FUNCTIONS:
        return _where(node, modules), getattr(target, "__name__", str(target))
    if kind is None:
        return None
    source = _input_of(node)
    if not isinstance(source, fx.Node):
        return None  # a constant: nothing of the model's data flows through it
    scope = _scope(node)
    op = "relu6" if kind is SiteKind.RELU6 else "relu"
    base = f"{scope}.{op}" if scope else op
    return _Site(node, kind, base, inplace, source, _where(node, modules))


def _input_of(node: fx.Node) -> Any:
    """The activation's input (its first argument; ``self`` of a method call)."""
    return node.args[0] if node.args else node.kwargs.get("input")


def _inplace_arg(node: fx.Node) -> bool:
    value = node.args[1] if len(node.args) > 1 else node.kwargs.get("inplace", False)
    return bool(value)


_VIEW_METHODS = {
    "view",
    "view_as",
    "reshape",
    "reshape_as",
    "flatten",
    "unflatten",
    "transpose",
    "permute",
    "squeeze",
    "unsqueeze",
    "expand",
    "expand_as",
    "narrow",
    "select",
    "t",
    "chunk",
    "split",
    "unbind",
    "contiguous",
    "__getitem__",
    "as_strided",
    "detach",
    "movedim",
}
_VIEW_FUNCTIONS: set[Any] = {
    torch.flatten,
    torch.reshape,
    torch.transpose,
    torch.permute,
    torch.squeeze,
    torch.unsqueeze,
    torch.narrow,
    torch.select,
    torch.chunk,
    torch.split,
    torch.unbind,
    torch.movedim,
    torch.t,
    torch.detach,
}


def _is_view(node: fx.Node) -> bool:
    import operator

    if node.op == "call_method":
        return str(node.target) in _VIEW_METHODS
    if node.op == "call_function":
        return node.target in _VIEW_FUNCTIONS or node.target is operator.getitem
    return False


def _alias_group(node: fx.Node) -> set[fx.Node]:
    """``node`` and every value that may share its storage through view-like operations."""
    root = node
    while _is_view(root) and root.args and isinstance(root.args[0], fx.Node):
        root = root.args[0]
    group: set[fx.Node] = set()
    todo = [root]
    while todo:
        n = todo.pop()
        if n in group:
            continue
        group.add(n)
        todo.extend(u for u in n.users if _is_view(u))
    return group


def _rewire_inplace(site: _Site, order: Mapping[fx.Node, int]) -> None:
    """Make readers of an in-place ReLU's input after it read the (new) activation instead.

    Refused when the input is also read after the site through another view of the same
    storage (created before the site): that reader saw the mutation and cannot be rewired.
    """
    at = order[site.node]
    aliased = [
        a
        for a in _alias_group(site.source) - {site.source, site.node}
        if order.get(a, at) < at and any(order.get(u, -1) > at for u in a.users)
    ]
    if aliased:
        raise ConversionError(
            f"qcfsify: the in-place {site.origin} writes into a tensor that is read again "
            f"through the view(s) {', '.join(sorted(a.name for a in aliased))} after it; QCFS "
            "is not in-place, so that reading would change. Make this ReLU out-of-place "
            "(inplace=False, F.relu) and call qcfsify again"
        )
    for user in [u for u in site.source.users if order[u] > at]:
        user.replace_input_with(site.source, site.node)


# --------------------------------------------------------------------------- the rewrite
def _trace(model: nn.Module) -> fx.Graph:
    try:
        return QCFSTracer().trace(model)
    except Exception as exc:  # fx raises many types for data-dependent control flow
        raise ConversionError(
            f"qcfsify: {type(model).__name__} could not be traced with torch.fx "
            f"({type(exc).__name__}: {_first_line(exc)}); QCFS swapping needs a forward() "
            "without data-dependent Python control flow (see torch.fx's limitations), or "
            "write the model with pascal_snn.QCFS in place of ReLU yourself"
        ) from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _check_mode_independent(model: nn.Module, eval_graph: fx.Graph) -> None:
    """Refuse a forward whose traced graph differs between train and eval mode."""
    model.train(True)
    train_graph = _trace(model)
    model.train(False)
    a = train_graph.python_code("self").src.splitlines()
    b = eval_graph.python_code("self").src.splitlines()
    if a == b:
        return
    diff = next((f"train: {x.strip()!r} / eval: {y.strip()!r}" for x, y in zip(a, b) if x != y), "")
    raise ConversionError(
        f"qcfsify: {type(model).__name__}.forward runs a different graph in train and eval "
        f"mode (it branches on self.training; first difference {diff or 'in length'}). A "
        "rewritten graph would freeze one of them; build the model so that both modes run the "
        "same layers (e.g. GoogLeNet / Inception v3 with aux_logits=False, DenseNet with "
        "drop_rate=0, dropout as an nn.Dropout module instead of F.dropout(training=...))"
    )


def _resolve_levels(levels: int | Sequence[int] | Mapping[str, int], names: list[str]) -> list[int]:
    if isinstance(levels, Mapping):
        unknown = sorted(set(levels) - set(names))
        missing = [n for n in names if n not in levels]
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing: {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown: {', '.join(unknown)}")
            raise ConfigError(
                f"qcfsify: L as a dict needs one entry per QCFS site ({'; '.join(parts)}); "
                f"the sites are: {', '.join(names)}"
            )
        return [validate_level(levels[n], f"L[{n!r}]") for n in names]
    if isinstance(levels, Sequence) and not isinstance(levels, str):
        values = [validate_level(v, f"L[{i}]") for i, v in enumerate(levels)]
        if len(values) != len(names):
            raise ConfigError(
                f"qcfsify: got {len(values)} levels but the model has {len(names)} ReLU/ReLU6 "
                f"call sites; give one int or exactly {len(names)} values (forward order)"
            )
        return values
    try:
        return [validate_level(levels)] * len(names)
    except ValueError as exc:
        raise ConfigError(f"qcfsify: {exc}") from None


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"qcfsify: {name} must be a number > 0, got {value!r}")
    number = float(value)
    if not (number > 0 and number != float("inf")):
        raise ConfigError(f"qcfsify: {name} must be a finite number > 0, got {value!r}")
    return number


def _free_name(gm: fx.GraphModule, base: str, taken: set[str], replaced: nn.Module | None) -> str:
    """The first of ``base``, ``base_2``, ``base_3``, … unused in ``gm`` and not yet taken."""
    parent_path, _, leaf = base.rpartition(".")
    try:
        parent: nn.Module | None = gm.get_submodule(parent_path) if parent_path else gm
    except AttributeError:
        parent = None  # the container does not exist yet: every name is free there
    k = 1
    while True:
        name = leaf if k == 1 else f"{leaf}_{k}"
        full = f"{parent_path}.{name}" if parent_path else name
        current = getattr(parent, name, None) if parent is not None else None
        in_use = (current is not None and current is not replaced) or (
            parent is not None and current is None and hasattr(type(parent), name)
        )
        if full not in taken and not in_use:
            return full
        k += 1


def _float_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.get_default_dtype(), torch.device("cpu")


def qcfsify(
    model: nn.Module,
    L: int | Sequence[int] | Mapping[str, int] = 4,
    theta: float = DEFAULT_THETA,
    relu6_theta: float = RELU6_THETA,
) -> fx.GraphModule:
    """A copy of ``model`` with each ReLU / ReLU6 call site replaced by its own ``QCFS``.

    Args:
        model: any ``nn.Module`` that ``torch.fx`` can trace; never modified.
        L: one quantization step for every new QCFS, a list (forward order of the new QCFS
            layers) or a dict by site name (every site named; see the module docstring).
        theta: initial θ of ReLU sites (SPEC default 8.0; :func:`calibrate_thresholds` sets
            real values from data).
        relu6_theta: initial θ of ReLU6 sites; 6 makes QCFS saturate where ReLU6 clips.

    Returns an ``fx.GraphModule`` in ``model``'s train/eval mode whose non-activation
    submodules keep their qualified names (and parameters, as copies); new θ take the dtype
    and device of the model's first floating parameter. :func:`qcfs_sites` lists the sites.

    Invariant: as ``L → ∞`` with θ above every pre-activation the result computes ``model``
    (QCFS → ReLU); with θ = 6 a ReLU6 site → ``clip(z, 0, 6)``.

    Raises :class:`ConversionError` (listing every unsupported activation with its location,
    an untraceable forward, a mode-dependent graph) or :class:`ConfigError` (bad ``L``/θ).
    """
    theta = _positive("theta", theta)
    relu6_theta = _positive("relu6_theta", relu6_theta)
    if not isinstance(model, nn.Module):
        raise ConversionError(f"qcfsify needs an nn.Module, got {type(model).__name__}")
    training = model.training
    work = copy.deepcopy(model)
    work.train(False)
    graph = _trace(work)
    modules = dict(work.named_modules())

    calls: dict[str, int] = {}
    sites: list[_Site] = []
    refused: list[tuple[str, str]] = []
    for node in graph.nodes:
        found = _classify(node, modules, calls)
        if isinstance(found, tuple):
            refused.append(found)
        elif found is not None:
            sites.append(found)
    if refused:
        kinds: dict[str, int] = {}
        for _, what in refused:
            kinds[what] = kinds.get(what, 0) + 1
        summary = ", ".join(f"{what} ×{n}" for what, n in kinds.items())
        listed = "\n  - ".join(where for where, _ in refused)
        raise ConversionError(
            f"qcfsify: {type(model).__name__} has {len(refused)} operation(s) with no QCFS "
            f"counterpart ({summary}); only ReLU and ReLU6 can be swapped for QCFS, and a "
            f"spiking network has no exact form of these:\n  - {listed}\nReplace them with "
            "ReLU (and retrain or fine-tune the ReLU model), or pick an architecture without them"
        )
    _check_mode_independent(work, graph)
    if not sites:
        raise ConversionError(
            f"qcfsify: {type(model).__name__} has no ReLU or ReLU6 call to replace (found "
            f"{sum(isinstance(m, QCFS) for m in modules.values())} QCFS module(s) already)"
        )

    gm = fx.GraphModule(work, graph, type(model).__name__)
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    gm_modules = dict(gm.named_modules())
    taken: set[str] = set()
    names: list[str] = []
    for site in sites:
        replaced = gm_modules.get(str(site.node.target)) if site.node.op == "call_module" else None
        name = _free_name(gm, site.base, taken, replaced)
        taken.add(name)
        names.append(name)
    levels = _resolve_levels(L, names)

    for site in sites:
        if site.inplace:
            _rewire_inplace(site, order)
    dtype, device = _float_dtype_device(work)
    infos: dict[str, SiteInfo] = {}
    for site, name, level in zip(sites, names, levels):
        init = relu6_theta if site.kind is SiteKind.RELU6 else theta
        qcfs = QCFS(level, init).to(device=device, dtype=dtype)
        gm.add_submodule(name, qcfs)
        with gm.graph.inserting_before(site.node):
            new = gm.graph.call_module(name, (_input_of(site.node),))
        new.meta = dict(site.node.meta)
        site.node.replace_all_uses_with(new)
        gm.graph.erase_node(site.node)
        infos[name] = SiteInfo(name, site.kind, site.origin)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    # sites of an earlier qcfsify (a qcfsified model qcfsified again) keep their record
    known = {**qcfs_sites(model), **infos}
    gm.meta[META_KEY] = {
        str(node.target): known[str(node.target)]
        for node in gm.graph.nodes
        if node.op == "call_module" and str(node.target) in known
    }
    return gm.train(training)


def qcfs_sites(model: nn.Module) -> dict[str, SiteInfo]:
    """The call sites :func:`qcfsify` replaced (name → :class:`SiteInfo`).

    Forward order for a model qcfsified as a whole; qcfsified submodules follow with their
    path as prefix. Empty for a model that did not come from ``qcfsify`` (e.g. one written
    with QCFS modules directly).
    """
    out: dict[str, SiteInfo] = {}
    for prefix, module in model.named_modules():
        meta = getattr(module, "meta", None)
        found = meta.get(META_KEY) if isinstance(meta, Mapping) else None
        if not isinstance(found, Mapping):
            continue
        for name, info in found.items():
            full = f"{prefix}.{name}" if prefix else str(name)
            out.setdefault(full, dataclasses.replace(info, name=full))
    return out


# --------------------------------------------------------------------------- ReLU weights
def load_relu_weights(
    model: nn.Module,
    state_dict: Mapping[str, Any] | str | os.PathLike[str],
    strict: bool = True,
) -> list[str]:
    """Load a plain ReLU model's ``state_dict`` into its qcfsified copy ``model`` (in place).

    ``state_dict`` is a mapping name → tensor (``torch.save(relu_model.state_dict(), path)``)
    or the path of such a file, read with ``torch.load(weights_only=True)``. Every key of
    ``model`` except the QCFS entries (``*.theta``, ``*._extra_state``: a ReLU model has
    none; they are loaded if present) must be present with the same shape; a DataParallel
    ``module.`` prefix on every key is removed. ``strict=False`` ignores keys the model does
    not have (e.g. GoogLeNet's ``aux1.*`` when built with ``aux_logits=False``) and returns
    them; missing keys are always an error.

    Raises :class:`CheckpointError` naming the missing / unexpected / mis-shaped keys; the
    model is changed only when everything matches. Values are copied into the model's own
    parameters, so its dtype and device are kept.
    """
    source = "ReLU state_dict"
    if isinstance(state_dict, (str, os.PathLike)):
        source = f"ReLU weights '{os.fspath(state_dict)}'"
        state_dict = _read_state_dict(state_dict)
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{source}: expected a mapping name → tensor, got {type(state_dict)}")
    bad = [k for k, v in state_dict.items() if not isinstance(k, str) or not _tensorish(v)]
    if bad:
        shown = ", ".join(map(str, bad[:6]))
        raise CheckpointError(
            f"{source} is not a plain state_dict (entries {shown} are not tensors; a training "
            "checkpoint?); save relu_model.state_dict() itself and load that"
        )
    own = model.state_dict()
    incoming = dict(state_dict)
    if (
        incoming
        and all(k.startswith("module.") for k in incoming)
        and not any(k.startswith("module.") for k in own)
    ):
        incoming = {k[len("module.") :]: v for k, v in incoming.items()}
    qcfs_keys = {
        f"{prefix}.{leaf}" if prefix else leaf
        for prefix, m in model.named_modules()
        if isinstance(m, QCFS)
        for leaf in ("theta", "_extra_state")
    }
    missing = [k for k in own if k not in incoming and k not in qcfs_keys]
    unexpected = [k for k in incoming if k not in own]
    shapes = [
        f"{k} {tuple(incoming[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in incoming
        and isinstance(own[k], torch.Tensor)
        and isinstance(incoming[k], torch.Tensor)
        and own[k].shape != incoming[k].shape
    ]
    problems = [("missing", missing), ("shape", shapes)]
    if strict:
        problems.insert(1, ("unexpected", unexpected))
    parts = [f"{label}: {_shown(keys)}" for label, keys in problems if keys]
    if parts:
        hint = "" if strict or not unexpected else f" (ignored as unexpected: {_shown(unexpected)})"
        raise CheckpointError(
            f"{source} does not match the qcfsified model ({'; '.join(parts)}){hint}; it must "
            "come from the same architecture, class count and input channels (the QCFS "
            "copy keeps every non-activation module's name)"
        )
    merged = {k: v for k, v in own.items() if k not in incoming}
    merged.update({k: v for k, v in incoming.items() if k in own})
    model.load_state_dict(merged, strict=True)
    return [] if strict else unexpected


def _tensorish(value: object) -> bool:
    return isinstance(value, (torch.Tensor, Mapping))  # extra_state: a dict


def _shown(keys: Iterable[str]) -> str:
    keys = list(keys)
    return ", ".join(keys[:8]) + (f", … ({len(keys)} in all)" if len(keys) > 8 else "")


def _read_state_dict(path: str | os.PathLike[str]) -> Any:
    file = os.fspath(path)
    if not os.path.isfile(file):
        raise CheckpointError(f"ReLU weights '{file}' do not exist or are not a file")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # untrusted bytes: any failure is the file's fault
        raise CheckpointError(
            f"cannot read ReLU weights '{file}' as a plain state_dict with weights_only=True "
            f"({_first_line(exc)}); save it with torch.save(relu_model.state_dict(), path)"
        ) from None
