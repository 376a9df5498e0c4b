"""Tracing models into ``torch.fx`` graphs with QCFS kept as a leaf module."""

from __future__ import annotations

from torch import fx, nn

from pascal_snn.qcfs import QCFS


class QCFSTracer(fx.Tracer):
    """An fx tracer that keeps QCFS (and every standard ``torch.nn`` layer) as one call."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, QCFS) or super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model``; raises whatever fx raises for untraceable code."""
    tracer = QCFSTracer()
    graph = tracer.trace(model)
    name = model.__class__.__name__
    return fx.GraphModule(tracer.root, graph, name)


def forward_module_order(model: nn.Module) -> list[str] | None:
    """Qualified names of the leaf modules in the order the forward pass calls them.

    Returns None if the model cannot be traced symbolically.
    """
    try:
        graph = QCFSTracer().trace(model)
    except Exception:  # untraceable user code: callers fall back to registration order
        return None
    seen: dict[str, None] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            seen.setdefault(str(node.target), None)
    return list(seen)


def is_module(node: fx.Node, modules: dict[str, nn.Module], kind: type | tuple[type, ...]) -> bool:
    """True if ``node`` calls a submodule that is an instance of ``kind``."""
    return node.op == "call_module" and isinstance(modules.get(str(node.target)), kind)


__all__ = ["QCFSTracer", "forward_module_order", "is_module", "trace"]
