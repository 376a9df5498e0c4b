"""Saving a converted network as plain data, and loading it again (``snn.save``, ``load_snn``).

A saved network is what it was converted from — the traced ANN (``net.source``) — written as
data, plus what its conversion decided; loading rebuilds the traced ANN and converts it again
with the package's own :func:`~pascal_snn.convert.convert`, so a loaded network is never built
by any other code than a fresh one and gives bit-identical logits and spike counts.

The file is a ``torch.save`` of a dict of plain data — dicts, lists, str, int, float, bool,
None and tensors, no pickled class or function — so it loads with
``torch.load(path, weights_only=True, map_location="cpu")``. Format 1::

    kind          "pascal-snn/snn" (what the file is)
    format        1 (loading another version is refused, naming the versions read here)
    mode          "pasc" or "vanilla";  timesteps: int (vanilla) or None
    part_bytes    the network's part_bytes (int or None)
    input_shapes  the per-sample input shapes built, in build order;  current: the current one
    graph         {"name", "nodes": [{"name", "op", "target", "args", "kwargs"}, …]}
    modules       {qualified name: {"class", "kwargs", "state", "repr"}} per call_module target
    tensors       {qualified name: {"value", "parameter"}} per get_attr target outside them
    layers        per input shape: [{"name", "L", "theta", "t_in"}, …], the IF layers in
                  forward order (vanilla: L and t_in None)

Invariants. Graph values are encoded as plain data: node references ``{"__node__": name}``,
tuples, dicts, slices, Ellipsis, torch dtypes, devices, memory formats and sizes as one-key
dicts (``{"__tuple__": […]}`` …); anything else is refused at save time naming the node.
A function is stored as ``"namespace:name"`` and resolved only in torch,
torch.nn.functional, operator, math and builtins (``getattr`` alone), and only to a tensor
operation, an arithmetic operator, a math function or a function of the converter's table —
so a tampered file cannot name ``os.system``, ``torch.load`` or ``torch.save``;
attribute and method names starting with ``_`` are refused too. Loading resolves and checks
every name before the graph is built or anything in it runs. A module is a leaf of the trace
whose class is a ``torch.nn`` class (looked up by name in ``torch.nn``) or
:class:`~pascal_snn.qcfs.QCFS`; it is stored as its constructor's arguments (each read from
the module's attribute of the same name; ``bias`` as ``module.bias is not None``; device,
dtype and tensor-valued ones left to the state dict), its state dict and its ``repr``. Loading
constructs it (on the meta device where the class takes one), assigns the saved tensors (a
float64 model stays float64) and requires the same ``repr`` — an argument that was not read
back shows there. Loading then requires every input shape's IF layers (names, L, θ, T_in) to
equal the saved table. Spike statistics are measurements, not state: they are not saved.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import math
import operator
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import fx, nn

from pascal_snn.convert import convert
from pascal_snn.convert.network import ConvertedNetwork, PascNetwork, VanillaNetwork
from pascal_snn.convert.ops import FUNCTION_KINDS, INTERPOLATE_FUNCTIONS
from pascal_snn.errors import CheckpointError, ConfigError, ConversionError, PascalError
from pascal_snn.io import save_torch
from pascal_snn.qcfs import QCFS

__all__ = ["FORMAT", "FORMATS", "KIND", "load_snn", "network_data", "save_network"]

KIND = "pascal-snn/snn"
FORMAT = 1  # the version written
FORMATS = (1,)  # the versions read

Shape = tuple[int, ...]
T = TypeVar("T")

NAMESPACES: dict[str, Any] = {
    "torch": torch,
    "torch.nn.functional": F,
    "operator": operator,
    "math": math,
    "builtins": builtins,
}
OPERATORS = frozenset(
    {
        *("abs", "add", "and_", "eq", "floordiv", "ge", "getitem", "gt", "iadd", "ifloordiv"),
        *("imod", "imul", "invert", "isub", "itruediv", "le", "lshift", "lt", "matmul", "mod"),
        *("mul", "ne", "neg", "not_", "or_", "pos", "pow", "rshift", "sub", "truediv", "xor"),
    }
)
QCFS_CLASS = "pascal_snn.QCFS"
NN_PREFIX = "torch.nn."


# --- functions: stored by name, resolved from a fixed set ----------------------------------


@functools.cache
def _tensor_operations() -> frozenset[Any]:
    """torch's own list of functions that dispatch on tensors (``torch.overrides``): tensor
    operations, which read and write no files and no global state."""
    from torch.overrides import get_overridable_functions

    found = get_overridable_functions()
    functions = [f for ns in (torch, torch.functional, F) for f in found.get(ns, [])]
    return frozenset(functions) | frozenset(FUNCTION_KINDS) | INTERPOLATE_FUNCTIONS


def _allowed(namespace: str, name: str, fn: Any) -> bool:
    if name.startswith("_") or not callable(fn) or isinstance(fn, type):
        return False
    if namespace == "builtins":
        return name == "getattr"
    if namespace == "operator":
        return name in OPERATORS
    if namespace == "math":
        return inspect.isbuiltin(fn)
    return fn in _tensor_operations()


def _resolve(text: str) -> Any:
    """The function a stored ``"namespace:name"`` names, or None if it names none we allow."""
    namespace, _, name = text.partition(":")
    module = NAMESPACES.get(namespace)
    if module is None or not name.isidentifier():
        return None
    fn = getattr(module, name, None)
    return fn if _allowed(namespace, name, fn) else None


def _function_name(fn: Any, node: fx.Node) -> str:
    name = getattr(fn, "__name__", None)
    for namespace, module in NAMESPACES.items():
        found = getattr(module, name, None) if isinstance(name, str) else None
        if found is fn and isinstance(name, str) and _allowed(namespace, name, fn):
            return f"{namespace}:{name}"
    where = getattr(fn, "__module__", None) or "?"
    raise ConversionError(
        f"cannot save the network: graph node '{node.name}' calls {where}.{name or fn!r}, and "
        "a saved network may only call tensor operations of torch and torch.nn.functional, "
        "operator arithmetic, math functions and getattr; write the model with those"
    )


# --- values: plain data, with one-key dicts for what plain data lacks ----------------------


def _encode(value: Any, where: str) -> Any:
    """``value`` as plain data (see the module docstring); ConversionError naming ``where``
    for anything else."""
    if value is None or type(value) in (bool, int, float, str):  # not numpy or enum types
        return value
    if isinstance(value, fx.Node):
        return {"__node__": value.name}
    if isinstance(value, torch.Size):
        return {"__size__": [int(v) for v in value]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": [[k, _encode(v, where)] for k, v in value.items()]}
    if isinstance(value, slice):
        return {"__slice__": [_encode(v, where) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"__ellipsis__": None}
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, torch.memory_format):
        return {"__memory_format__": str(value).removeprefix("torch.")}
    raise ConversionError(
        f"cannot save the network: {where} holds a {type(value).__name__} ({value!r:.60}), "
        "which has no plain-data form (numbers, strings, tuples, lists, dicts, slices, dtypes "
        "and devices do)"
    )


class _Corrupt(Exception):
    """Raised inside loading; becomes a CheckpointError naming the file."""


def _need(condition: bool, what: str) -> None:
    if not condition:
        raise _Corrupt(what)


def _as(value: Any, kind: type[T], what: str) -> T:
    """``value`` if it is a ``kind``, else :class:`_Corrupt` saying ``what`` is bad."""
    if not isinstance(value, kind):
        raise _Corrupt(f"bad {what}")
    return value


def _qualified_name(text: Any) -> bool:
    """A module or attribute path fx may put into generated code (``features.0.weight``)."""
    return isinstance(text, str) and all(
        (part.isidentifier() or part.isdigit()) and not part.startswith("__")
        for part in text.split(".")
    )


def _torch_constant(name: Any, kind: type) -> Any:
    _need(isinstance(name, str) and name.isidentifier(), f"bad {kind.__name__} {name!r}")
    value = getattr(torch, name, None)
    _need(isinstance(value, kind), f"unknown {kind.__name__} {name!r}")
    return value


def _decode(value: Any, nodes: Mapping[str, fx.Node] | None = None) -> Any:
    """The inverse of :func:`_encode` (``nodes``: the graph's nodes so far, by name)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode(v, nodes) for v in value]
    _need(isinstance(value, dict) and len(value) == 1, f"bad value {value!r:.80}")
    (tag, inner), *_ = value.items()
    if tag == "__node__":
        _need(nodes is not None and inner in nodes, f"reference to unknown node {inner!r}")
        assert nodes is not None
        return nodes[inner]
    if tag == "__tuple__":
        _need(isinstance(inner, list), "bad tuple")
        return tuple(_decode(v, nodes) for v in inner)
    if tag == "__dict__":
        _need(isinstance(inner, list), "bad dict")
        pairs = [(k, _decode(v, nodes)) for k, v in inner]
        _need(all(isinstance(k, str) for k, _ in pairs), "bad dict key")
        return dict(pairs)
    if tag == "__slice__":
        _need(isinstance(inner, list) and len(inner) == 3, "bad slice")
        return slice(*(_decode(v, nodes) for v in inner))
    if tag == "__ellipsis__":
        return Ellipsis
    if tag == "__dtype__":
        return _torch_constant(inner, torch.dtype)
    if tag == "__memory_format__":
        return _torch_constant(inner, torch.memory_format)
    if tag == "__device__":
        _need(isinstance(inner, str), "bad device")
        return torch.device(inner)
    if tag == "__size__":
        _need(isinstance(inner, list) and all(type(v) is int for v in inner), "bad size")
        return torch.Size(inner)
    raise _Corrupt(f"unknown value tag {tag!r:.40}")


# --- the traced ANN: graph, modules, tensors ----------------------------------------------


def _check_names(node: fx.Node) -> None:
    """Attribute and method names a saved graph may use: none starting with ``_``."""
    if node.op == "call_method":
        name: Any = node.target
    elif node.op == "call_function" and node.target is getattr:
        name = node.args[1] if len(node.args) > 1 else None
    else:
        return
    if not isinstance(name, str) or name.startswith("_"):
        raise ConversionError(
            f"cannot save the network: graph node '{node.name}' reads the attribute or method "
            f"{name!r}; a saved network may use only public names (not starting with '_')"
        )


def _encode_graph(gm: fx.GraphModule) -> dict[str, Any]:
    nodes = []
    for node in gm.graph.nodes:
        _check_names(node)
        target = node.target
        if node.op == "call_function":
            target = _function_name(target, node)
        where = f"graph node '{node.name}'"
        nodes.append(
            {
                "name": node.name,
                "op": node.op,
                "target": str(target),
                "args": [_encode(a, where) for a in node.args],
                "kwargs": {k: _encode(v, where) for k, v in node.kwargs.items()},
            }
        )
    return {"name": type(gm).__name__, "nodes": nodes}


OPS = ("placeholder", "get_attr", "call_function", "call_method", "call_module", "output")


def _check_target(op: str, target: str, name: str) -> None:
    """Targets fx writes into the code it generates: names and paths only."""
    if op == "output":
        ok = target == "output"
    elif op in ("placeholder", "call_method"):
        ok = target.isidentifier()
    elif op in ("call_module", "get_attr"):
        ok = _qualified_name(target)
    else:
        ok = True
    _need(ok, f"graph node '{name}' has the target {target!r:.60}, which is not a name")


def _build_graph(record: Any) -> fx.Graph:
    items = _as(_as(record, dict, "graph").get("nodes"), list, "graph nodes")
    graph = fx.Graph()
    nodes: dict[str, fx.Node] = {}
    for item in items:
        item = _as(item, dict, "graph node")
        name = _as(item.get("name"), str, "node name")
        op, target = item.get("op"), _as(item.get("target"), str, f"target of node '{name}'")
        _need(name not in nodes and op in OPS, f"bad node '{name:.40}'")
        _check_target(str(op), target, name)
        if op == "call_function":
            fn = _resolve(target)
            if fn is None:
                raise _Corrupt(
                    f"graph node '{name}' calls '{target}', which is not a function a saved "
                    "network may call (refused; nothing was run)"
                )
            target = fn
        args = _as(item.get("args"), list, f"arguments of node '{name}'")
        kwargs = _as(item.get("kwargs"), dict, f"arguments of node '{name}'")
        _need(all(isinstance(k, str) and k.isidentifier() for k in kwargs), f"bad node '{name}'")
        node = graph.create_node(
            str(op),
            target,
            tuple(_decode(a, nodes) for a in args),
            {k: _decode(v, nodes) for k, v in kwargs.items()},
            name=name,
        )
        _need(node.name == name, f"node name {name!r:.40} is not a valid name")
        try:
            _check_names(node)
        except ConversionError as exc:
            raise _Corrupt(str(exc).replace("cannot save the network: ", "")) from None
        nodes[name] = node
    graph.lint()
    return graph


def _class_name(module: nn.Module, name: str) -> str:
    cls = type(module)
    if cls is QCFS:
        return QCFS_CLASS
    name_in_nn: str = cls.__name__
    if cls.__module__.startswith("torch.nn") and getattr(nn, name_in_nn, None) is cls:
        return NN_PREFIX + name_in_nn
    raise ConversionError(
        f"cannot save the network: module '{name}' is a {cls.__module__}.{cls.__qualname__}; "
        "a saved network holds torch.nn layers and pascal_snn.QCFS only"
    )


def _resolve_class(text: Any) -> type[nn.Module]:
    if text == QCFS_CLASS:
        return QCFS
    name = text.removeprefix(NN_PREFIX) if isinstance(text, str) else ""
    cls = getattr(nn, name, None) if text != name and name.isidentifier() else None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise _Corrupt(f"module class {text!r:.60} is not a torch.nn layer or pascal_snn.QCFS")
    return cls


def _parameters(cls: type) -> list[inspect.Parameter]:
    """The constructor's named parameters (not self, *args, **kwargs)."""
    ps = inspect.signature(cls).parameters.values()
    return [p for p in ps if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _encode_module(module: nn.Module, name: str) -> dict[str, Any]:
    """A leaf module as its class name, constructor arguments, state dict and repr."""
    cls_name = _class_name(module, name)
    kwargs: dict[str, Any] = {}
    for p in _parameters(type(module)):
        if p.name in ("device", "dtype"):
            continue
        if p.name == "bias":
            kwargs["bias"] = getattr(module, "bias", None) is not None
            continue
        missing = not hasattr(module, p.name)
        value = None if missing else getattr(module, p.name)
        if missing or isinstance(value, torch.Tensor):  # a tensor: the state dict holds it
            if p.default is p.empty:
                raise ConversionError(
                    f"cannot save the network: module '{name}' ({type(module).__name__}) "
                    f"has no attribute holding its constructor argument '{p.name}'"
                )
            continue
        kwargs[p.name] = _encode(value, f"module '{name}' argument '{p.name}'")
    return {
        "class": cls_name,
        "kwargs": kwargs,
        "state": module.state_dict(),
        "repr": repr(module),
    }


def _build_module(record: Any, name: str) -> nn.Module:
    _need(_qualified_name(name), f"bad module name {name!r:.60}")
    record = _as(record, dict, f"module '{name}'")
    cls = _resolve_class(record.get("class"))
    kwargs = _as(record.get("kwargs"), dict, f"arguments of module '{name}'")
    arguments = {str(k): _decode(v) for k, v in kwargs.items()}
    known = {p.name for p in _parameters(cls)}
    _need(set(arguments) <= known, f"module '{name}' has unknown arguments")
    if "device" in known:
        arguments["device"] = "meta"  # nothing allocated before the saved tensors come in
    module = cls(**arguments)
    state = _as(record.get("state"), dict, f"state of module '{name}'")
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        why = " ".join(str(exc).split())
        raise _Corrupt(f"the state of module '{name}' does not fit it ({why:.200})") from None
    left = [k for k, v in (*module.named_parameters(), *module.named_buffers()) if v.is_meta]
    _need(not left, f"module '{name}' lacks {', '.join(left)}")
    _need(
        repr(module) == record.get("repr"),
        f"module '{name}' rebuilds as {repr(module)!r:.80}, not as saved "
        f"({record.get('repr')!r:.80})",
    )
    return module


def _fetch(root: Any, target: str) -> Any:
    for part in target.split("."):
        root = getattr(root, part)
    return root


def _owner(target: str, modules: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(module, rest)`` when ``target`` lies inside one of ``modules``."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in modules:
            return prefix, ".".join(parts[i:])
    return None


def _encode_source(source: fx.GraphModule) -> dict[str, Any]:
    modules: dict[str, Any] = {}
    tensors: dict[str, Any] = {}
    for node in source.graph.nodes:
        target = str(node.target)
        if node.op == "call_module" and target not in modules:
            modules[target] = _encode_module(source.get_submodule(target), target)
    for node in source.graph.nodes:
        target = str(node.target)
        if node.op != "get_attr" or target in tensors or _owner(target, modules):
            continue
        value = _fetch(source, target)
        if not isinstance(value, torch.Tensor):
            raise ConversionError(
                f"cannot save the network: graph node '{node.name}' reads '{target}', a "
                f"{type(value).__name__}; a saved network reads tensors only"
            )
        tensors[target] = {
            "value": value.detach(),
            "parameter": isinstance(value, nn.Parameter),
        }
    return {"graph": _encode_graph(source), "modules": modules, "tensors": tensors}


def _build_source(data: Mapping[str, Any]) -> fx.GraphModule:
    graph = _build_graph(data.get("graph"))
    modules = _as(data.get("modules"), dict, "modules")
    tensors = _as(data.get("tensors"), dict, "tensors")
    root: dict[str, Any] = {name: _build_module(r, name) for name, r in modules.items()}
    for node in graph.nodes:
        target = str(node.target)
        if node.op == "call_module":
            _need(target in modules, f"graph node '{node.name}' calls unknown module {target!r}")
        elif node.op == "get_attr" and target not in root:
            owner = _owner(target, modules)
            if owner is not None:
                root[target] = _fetch(root[owner[0]], owner[1])
                _need(isinstance(root[target], torch.Tensor), f"'{target}' is not a tensor")
                continue
            record = _as(tensors.get(target), dict, f"tensor '{target}' of node '{node.name}'")
            value = _as(record.get("value"), torch.Tensor, f"tensor '{target}'")
            if record.get("parameter"):
                value = nn.Parameter(value, requires_grad=False)
            root[target] = value
    name = _as(data["graph"].get("name"), str, "graph name")
    _need(name.isidentifier(), "bad graph name")
    return fx.GraphModule(root, graph, name)


# --- the network ---------------------------------------------------------------------------


def _layer_table(net: ConvertedNetwork) -> list[list[dict[str, Any]]]:
    """Per built input shape, the IF layers in forward order: name, L, θ, T_in."""
    current = net.current_shape
    tables = []
    try:
        for shape in net.built_shapes():
            net.prepare(shape)
            if isinstance(net, PascNetwork):
                rows = [
                    {"name": n, "L": f.L, "theta": float(f.theta), "t_in": f.t_in}
                    for n, f in net.if_layers()
                ]
            else:
                assert isinstance(net, VanillaNetwork)
                rows = [
                    {"name": n, "L": None, "theta": float(f.theta), "t_in": None}
                    for n, f in net.if_layers()
                ]
            tables.append(rows)
    finally:
        if current is not None:
            net.prepare(current)
    return tables


def network_data(net: ConvertedNetwork) -> dict[str, Any]:
    """What :func:`save_network` writes (see the module docstring); raises
    :class:`ConversionError` for a network that cannot be written as data."""
    if isinstance(net, PascNetwork):
        mode, timesteps = "pasc", None
    elif isinstance(net, VanillaNetwork):
        mode, timesteps = "vanilla", int(net.timesteps)
    else:
        raise ConversionError(f"cannot save a {type(net).__name__}; save the network convert made")
    source = _encode_source(net.source)
    try:
        _build_graph(source["graph"])  # what loading will check: refuse now, not then
    except _Corrupt as exc:
        raise ConversionError(f"cannot save the network: {exc}") from None
    current = net.current_shape
    return {
        "kind": KIND,
        "format": FORMAT,
        "mode": mode,
        "timesteps": timesteps,
        "part_bytes": net.part_bytes,
        "input_shapes": [list(s) for s in net.built_shapes()],
        "current": None if current is None else list(current),
        **source,
        "layers": _layer_table(net),
    }


def save_network(net: ConvertedNetwork, path: str | os.PathLike[str]) -> None:
    """Write ``net`` to ``path`` (temporary file, then an atomic rename): ``net.save(path)``."""
    data = network_data(net)
    try:
        save_torch(path, data)
    except OSError as exc:
        raise ConfigError(
            f"cannot write '{path}' ({exc.strerror or exc}); choose another file"
        ) from None


def _read(file: Path) -> dict[str, Any]:
    if not file.is_file():
        what = "does not exist" if not file.exists() else "is not a file"
        raise CheckpointError(f"'{file}' {what}; give the file snn.save wrote")
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not zipfile.is_zipfile(file):
            raise CheckpointError(
                f"'{file}' is not a saved spiking network (not a PyTorch file, or a corrupt "
                "one); give the file snn.save wrote"
            ) from None
        raise CheckpointError(
            f"refusing to load '{file}': it holds pickled Python objects or code, and a saved "
            "spiking network is data only; give the file snn.save wrote"
        ) from None
    except Exception as exc:  # arbitrary bytes make the unpickler fail in any way
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"'{file}' is truncated or corrupt and cannot be read ({first}); save the network again"
        ) from None
    if isinstance(data, dict) and data.get("kind") == KIND:
        return data
    if isinstance(data, dict) and isinstance(data.get("format"), str) and "model" in data:
        raise CheckpointError(
            f"'{file}' is a training checkpoint, not a saved spiking network; convert it "
            "first (`pascal-snn convert --checkpoint FILE --out snn.pt`, or "
            "pascal_snn.convert(model).save(path))"
        )
    raise CheckpointError(
        f"'{file}' is not a saved pascal-snn spiking network (no kind {KIND!r}); give the file "
        "snn.save or `pascal-snn convert` wrote"
    )


def _shape(value: Any) -> Shape:
    _need(
        isinstance(value, list) and all(type(v) is int and v >= 0 for v in value),
        f"bad input shape {value!r:.60}",
    )
    return tuple(value)


def _floating_dtype(source: nn.Module) -> torch.dtype:
    for tensor in (*source.parameters(), *source.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def _rebuild(data: dict[str, Any], file: Path) -> PascNetwork | VanillaNetwork:
    mode, timesteps = data.get("mode"), data.get("timesteps")
    _need(mode in ("pasc", "vanilla"), f"bad mode {mode!r:.40}")
    mode = str(mode)
    _need(timesteps is None or type(timesteps) is int, "bad timesteps")
    part_bytes = data.get("part_bytes")
    _need(part_bytes is None or (type(part_bytes) is int and part_bytes > 0), "bad part_bytes")
    built = [_shape(s) for s in _as(data.get("input_shapes"), list, "input shapes")]
    current = None if data.get("current") is None else _shape(data.get("current"))
    _need(current is None or current in built, "the current shape was not built")
    tables = _as(data.get("layers"), list, "layer table")
    _need(len(tables) == len(built), "bad layer table")
    source = _build_source(data)
    dtype = _floating_dtype(source)
    try:
        example = torch.zeros((2, *built[0]), dtype=dtype) if built else None
        net = convert(source, mode, timesteps, example_input=example)
        for shape in built[1:]:
            net.prepare(shape)
    except PascalError as exc:
        raise CheckpointError(
            f"the network saved in '{file}' does not convert again ({exc}); the file was "
            "changed, or written by another pascal-snn version: convert the model again"
        ) from None
    if current is not None:
        net.prepare(current)
    net.part_bytes = part_bytes
    found = _layer_table(net)
    for shape, saved, rows in zip(built, tables, found):
        if saved != rows:
            raise CheckpointError(
                f"the network saved in '{file}' converts to other IF layers than it was saved "
                f"with (input shape {'x'.join(map(str, shape))}: saved {saved!r:.200}, now "
                f"{rows!r:.200}); the file was changed, or written by another pascal-snn "
                "version: convert the model again"
            )
    return net


def load_snn(path: str | os.PathLike[str]) -> PascNetwork | VanillaNetwork:
    """Load a network written by ``snn.save(path)`` (or ``pascal-snn convert``), in eval mode
    on the CPU, built for the input shapes it was saved with; its logits and spike counts are
    bit-identical to the saved network's.

    Raises :class:`~pascal_snn.errors.CheckpointError` for a missing, truncated, corrupt or
    foreign file (a training checkpoint included), a format version this package does not
    read, or a file whose graph names a function, class or attribute outside the fixed set a
    saved network may use (refused before anything in it runs).
    """
    file = Path(path)
    data = _read(file)
    version = data.get("format")
    if type(version) is not int or version not in FORMATS:
        supported = ", ".join(map(str, FORMATS))
        raise CheckpointError(
            f"'{file}' is a saved spiking network of format {version!r}, and this pascal-snn "
            f"reads format {supported}; load it with the pascal-snn version that wrote it, or "
            "convert the model again"
        )
    try:
        return _rebuild(data, file)
    except CheckpointError:
        raise
    except (_Corrupt, ConversionError) as exc:
        raise CheckpointError(
            f"'{file}' is corrupt or was changed: {exc}; save the network again"
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"'{file}' is corrupt or was changed ({type(exc).__name__}: {first:.200}); save "
            "the network again"
        ) from None
