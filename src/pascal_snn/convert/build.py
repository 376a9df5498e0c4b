"""What both rewrites share: copying the annotated graph and giving it its modules.

A rewritten graph keeps every node the mode leaves as it is (pooling, reshapes, constants…),
calling the ANN's own module objects; a call site that becomes a spiking layer gets a module
of its own under the call site's name (``act``, ``act#2``), sharing the ANN's parameters.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import fx, nn

from pascal_snn.convert.annotate import Annotation, copy_graph

__all__ = ["Rewrite", "share"]


def share(module: nn.Module) -> nn.Module:
    """A new module object that shares ``module``'s parameters, buffers and children.

    Its dicts (parameters, hooks, …) are its own, so replacing its bias or hooking it leaves
    ``module`` alone.
    """
    clone: nn.Module = copy.copy(module)
    clone.__dict__ = {
        k: (type(v)(v) if isinstance(v, (dict, set)) else v) for k, v in module.__dict__.items()
    }
    return clone


def fetch(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


class Rewrite:
    """A copy of an annotated graph, and the attributes its new GraphModule will hold."""

    def __init__(self, source: fx.GraphModule, annotation: Annotation) -> None:
        self.source = source
        self.graph = copy_graph(annotation.graph)
        self.modules: dict[str, nn.Module] = dict(source.named_modules())
        self.root: dict[str, Any] = {}
        self.placed: set[fx.Node] = set()

    def module(self, node: fx.Node) -> nn.Module:
        return self.modules[str(node.target)]

    def keep(self, node: fx.Node) -> None:
        """Leave ``node`` as the ANN has it (its module or attribute comes along)."""
        if node.op == "call_module":
            self.place(node, self.module(node))
        elif node.op == "get_attr":
            target = "attr__" + str(node.target).replace(".", "__")
            self.root[target] = fetch(self.source, str(node.target))
            node.target = target
            self.placed.add(node)

    def place(self, node: fx.Node, module: nn.Module) -> None:
        """Call ``module`` at this node, registered under the node's call-site name."""
        site = node.meta.get("pascal_site")
        assert isinstance(site, str)
        self.root[site] = module
        node.target = site
        self.placed.add(node)

    def call(self, node: fx.Node, fn: Any, *args: Any) -> None:
        """Turn ``node`` into ``fn(*args)``."""
        node.op, node.target, node.args, node.kwargs = "call_function", fn, args, {}

    def finish(self) -> fx.GraphModule:
        """The GraphModule: dead nodes (e.g. sizes only reshapes read) removed, no gradients."""
        for node in self.graph.nodes:
            if node.op in ("call_module", "get_attr") and node not in self.placed:
                self.keep(node)
        self.graph.lint()
        name = type(self.source).__name__
        gm = fx.GraphModule(self.root, self.graph, name)
        gm.graph.eliminate_dead_code()
        gm.recompile()
        gm.delete_all_unused_submodules()
        gm.requires_grad_(False)
        return gm.eval()
