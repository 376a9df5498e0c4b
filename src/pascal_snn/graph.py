"""Tracing models into ``torch.fx`` graphs with QCFS kept as a leaf module.

The tracer itself lives in :mod:`pascal_snn.qcfs` with the order of QCFS layers it computes,
so this module depends on :mod:`pascal_snn.qcfs` and not the other way round.
"""

from __future__ import annotations

from torch import fx, nn

from pascal_snn.qcfs import QCFSTracer, forward_module_order


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model``; raises whatever fx raises for untraceable code."""
    tracer = QCFSTracer()
    graph = tracer.trace(model)
    name = model.__class__.__name__
    return fx.GraphModule(tracer.root, graph, name)


def is_module(node: fx.Node, modules: dict[str, nn.Module], kind: type | tuple[type, ...]) -> bool:
    """True if ``node`` calls a submodule that is an instance of ``kind``."""
    return node.op == "call_module" and isinstance(modules.get(str(node.target)), kind)


__all__ = ["QCFSTracer", "forward_module_order", "is_module", "trace"]
