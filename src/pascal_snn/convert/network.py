"""Converted networks: the traced ANN plus one rewritten graph per per-sample input shape.

Shapes decide what is exact (which dim is the batch, how a BatchNorm lies, which elements a
max pooling window mixes), so a network annotates and rewrites its graph for each per-sample
input shape it meets: at conversion time for ``example_input``, otherwise on the first call
with that shape (cached; a new shape gets its own build). Every check that needs no shape runs
in :func:`pascal_snn.convert.convert` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from torch import fx, nn

from pascal_snn.convert.annotate import Annotation, annotate
from pascal_snn.convert.pasc import rewrite_pasc
from pascal_snn.convert.vanilla import rewrite_vanilla, split_prefix
from pascal_snn.errors import DataError
from pascal_snn.spiking import MatMulLayer, PascIF, VanillaIF

__all__ = ["ConvertedNetwork", "PascNetwork", "VanillaNetwork", "check_input"]

Shape = tuple[int, ...]
M = TypeVar("M", bound=nn.Module)


def check_input(x: torch.Tensor) -> None:
    """Raise :class:`DataError` for an input batch no network can take."""
    if not isinstance(x, torch.Tensor) or x.dim() == 0:
        raise DataError("a converted network takes one tensor whose dim 0 is the batch")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise DataError(
            "the input batch holds NaN or infinite values; spiking networks need "
            "finite inputs (check the data and its normalisation)"
        )


def _key(shape: Shape) -> str:
    return "x".join(str(s) for s in shape) or "scalar"


class ConvertedNetwork(nn.Module):
    """What both networks share: the traced ANN (``source``) and the builds per input shape."""

    def __init__(self, source: fx.GraphModule) -> None:
        super().__init__()
        self.source = source
        self.builds = nn.ModuleDict()
        self._annotations: dict[Shape, Annotation] = {}
        self._current: Shape | None = None

    def _build(self, annotation: Annotation) -> nn.Module:
        raise NotImplementedError

    def prepare(self, input_shape: Sequence[int], example: torch.Tensor | None = None) -> None:
        """Annotate and rewrite for inputs of per-sample shape ``input_shape`` (once per shape)
        and make that build the current one; ``example`` only words the errors."""
        shape = tuple(int(s) for s in input_shape)
        key = _key(shape)
        if key not in self.builds:
            with torch.no_grad():
                annotation = annotate(self.source, shape, example)
                build = self._build(annotation).eval()
            self._annotations[shape] = annotation
            self.builds[key] = build
        self._current = shape

    def annotation(self, input_shape: Sequence[int] | None = None) -> Annotation:
        """The annotated graph for ``input_shape`` (default: the current one)."""
        if input_shape is not None:
            self.prepare(input_shape)
        return self._annotations[self._shape()]

    def _shape(self) -> Shape:
        if self._current is None:
            raise RuntimeError(
                "this network has not seen an input yet, so its layers are not built (they "
                "depend on the input's shape): call it on a batch once, or pass "
                "example_input to pascal_snn.convert"
            )
        return self._current

    def current(self) -> nn.Module:
        """The build of the current input shape."""
        return self.builds[_key(self._shape())]

    def _for(self, x: torch.Tensor) -> nn.Module:
        check_input(x)
        shape = tuple(x.shape[1:])
        if self._current != shape:
            self.prepare(shape, x)
        return self.current()

    def _stepped(self) -> fx.GraphModule:
        """The rewritten graph whose modules are the spiking layers."""
        raise NotImplementedError

    def _in_order(self, kind: type[M]) -> list[tuple[str, M]]:
        gm = self._stepped()
        out = []
        for node in gm.graph.nodes:
            if node.op == "call_module":
                module = gm.get_submodule(str(node.target))
                if isinstance(module, kind):
                    out.append((str(node.target), module))
        return out

    def train(self: Any, mode: bool = True) -> Any:
        if mode:
            raise RuntimeError("a converted spiking network is for inference only")
        return super().train(False)


class PascNetwork(ConvertedNetwork):
    """A PASC spiking network; ``forward(x)`` returns logits equal to the ANN's.

    ``graph`` is the rewritten ``torch.fx`` module of the current input shape
    (``print(net.graph.code)`` shows it).
    """

    def _build(self, annotation: Annotation) -> nn.Module:
        return rewrite_pasc(self.source, annotation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self._for(x)(x)
        return out

    @property
    def graph(self) -> fx.GraphModule:
        build = self.current()
        assert isinstance(build, fx.GraphModule)
        return build

    def _stepped(self) -> fx.GraphModule:
        return self.graph

    @property
    def output_steps(self) -> int:
        """Length of the last train (the steps summed into the logits)."""
        out = next(n for n in self.graph.graph.nodes if n.op == "output")
        steps: int = out.args[0].args[1]
        return steps

    def if_layers(self) -> list[tuple[str, PascIF]]:
        """PASC IF layers in forward order, one per QCFS call site (``act``, ``act#2``, …)."""
        return self._in_order(PascIF)

    def matmul_layers(self) -> list[tuple[str, MatMulLayer]]:
        """Convolution/linear layers in forward order, one per call site."""
        return self._in_order(MatMulLayer)

    def reset_stats(self) -> None:
        for module in self.builds.modules():
            if isinstance(module, PascIF):
                module.reset_stats()


class _VanillaBuild(nn.Module):
    """The image-only prefix (once per batch) and one time step of the rest."""

    def __init__(self, prefix: fx.GraphModule, step: fx.GraphModule) -> None:
        super().__init__()
        self.prefix = prefix
        self.step = step

    def reset(self) -> None:
        for module in self.step.modules():
            if isinstance(module, VanillaIF):
                module.reset()


class VanillaNetwork(ConvertedNetwork):
    """The QCFS-paper SNN baseline: plain IF neurons, ``timesteps`` steps, image every step.

    ``forward(x)`` returns the mean of the output over the steps; :meth:`prefix_logits`
    returns, from one run, the mean over the first ``t`` steps for every ``t ≤ T``.
    """

    def __init__(self, source: fx.GraphModule, timesteps: int) -> None:
        super().__init__(source)
        self.timesteps = timesteps

    def _build(self, annotation: Annotation) -> nn.Module:
        prefix, step = split_prefix(rewrite_vanilla(self.source, annotation))
        return _VanillaBuild(prefix, step)

    def prefix_logits(self, x: torch.Tensor, timesteps: int | None = None) -> torch.Tensor:
        """``[T, B, classes]``: row ``t−1`` is the mean output over steps ``1 … t``."""
        build = self._for(x)
        assert isinstance(build, _VanillaBuild)
        steps = timesteps or self.timesteps
        build.reset()
        total: torch.Tensor | None = None
        means = []
        try:
            image_part = build.prefix(x)
            for t in range(1, steps + 1):
                out = build.step(*image_part)
                total = out if total is None else total + out
                means.append(total / t)
        finally:
            build.reset()
        return torch.stack(means)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prefix_logits(x)[-1]

    def _stepped(self) -> fx.GraphModule:
        build = self.current()
        assert isinstance(build, _VanillaBuild)
        return build.step

    def if_layers(self) -> list[tuple[str, VanillaIF]]:
        """Vanilla IF layers in forward order, one per QCFS call site."""
        return self._in_order(VanillaIF)
