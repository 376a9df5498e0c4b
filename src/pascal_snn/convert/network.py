"""Converted networks: the traced ANN plus one rewritten graph per per-sample input shape.

Shapes decide what is exact (which dim is the batch, how a BatchNorm lies, which elements a
max pooling window mixes), so a network annotates and rewrites its graph for each per-sample
input shape it meets: at conversion time for ``example_input``, otherwise on the first call
with that shape (cached; a new shape gets its own build). Every check that needs no shape runs
in :func:`pascal_snn.convert.convert` itself.

On the CPU a batch runs in *parts*: consecutive groups of images. A PASC train of T steps for
B images is T·B images, so without parts every tensor would be T times the ANN's. A PASC part
holds ⌈B/T⌉ images (T the network's longest train), so each convolution sees about B
image-steps per call, as the ANN's does, and PASC's tensors are no larger than the ANN's: its
peak memory does not grow with T. Two bounds on a part's largest tensor take precedence: it
holds at least ``part_bytes`` (4 MiB) where the batch allows, so small batches are not cut
into tiny calls, and at most ``2·part_bytes`` beyond that, so the blocks stay on glibc's heap
(below). The vanilla network, which holds one step at a time, runs parts whose largest tensor
holds at most ``part_bytes``. Before the parts run,
:func:`hint_heap` lets glibc keep part-sized blocks on its heap, so they are reused instead of
returned to the OS and faulted back on every part (BENCHMARKS.md §8). Every operation of a
converted network is per sample (the converter refuses anything that mixes the batch), so
parts change no value except where a BLAS library picks another kernel for another batch
size (not seen on the CPU for parts of 8 images or more; a batch of one image can differ in
the last bit, as it does for the ANN).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import torch
from torch import fx, nn

from pascal_snn.convert.annotate import Annotation, annotate
from pascal_snn.convert.pasc import rewrite_pasc
from pascal_snn.convert.vanilla import rewrite_vanilla, split_prefix
from pascal_snn.errors import DataError
from pascal_snn.spiking import MatMulLayer, PascIF, VanillaIF, refuse_tracing

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


PART_BYTES = 4 << 20  # default ``part_bytes`` (see ConvertedNetwork.part_bytes)
HEAP_HINT_MAX = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems


def hint_heap(tensor_bytes: int) -> None:
    """Allocate and free one untouched block of ``4·tensor_bytes`` (at most 32 MiB), where
    ``tensor_bytes`` is the size of a part's largest tensor.

    glibc's malloc serves a block this large with ``mmap`` and, when it is freed, raises its
    *dynamic* mmap threshold to the block's size and its heap-trim threshold to twice that:
    its documented heuristic for programs that free large blocks, applied whenever any code
    frees a tensor this large. Afterwards the part-sized tensors of a forward are carved from
    the heap and stay mapped between parts and forwards, instead of the heap top being
    returned to the OS after each part and page-faulted back by the next (VGG-16, batch 64,
    in a fresh process: 12,160 minor faults per forward without it, under 256 with it;
    BENCHMARKS.md §8). No value
    changes; the block's pages are never touched, so it costs at most two system calls. It
    sets no allocator option (``mallopt``), and other allocators are free to ignore it."""
    size = min(4 * tensor_bytes, HEAP_HINT_MAX)
    if size > 0:
        block = torch.empty(size, dtype=torch.uint8)
        del block


def _key(shape: Shape) -> str:
    return "x".join(str(s) for s in shape) or "scalar"


def _longest(annotation: Annotation) -> int:
    """The longest train of the annotated graph (1 when it has none)."""
    lengths = [node.meta["pascal"].t for node in annotation.graph.nodes if "pascal" in node.meta]
    return max([t for t in lengths if t is not None], default=1)


def _largest(annotation: Annotation, steps: bool) -> int:
    """Elements per image of the largest value in the annotated graph (times its train length
    when ``steps``: a PASC train; the vanilla network holds one step at a time)."""
    largest = 1
    for node in annotation.graph.nodes:
        i = node.meta.get("pascal")
        if i is None:
            continue
        shapes = [i.shape] if i.shape is not None else list(i.parts or ())
        for shape in shapes:
            size = math.prod(shape) * ((i.t or 1) if steps else 1)
            largest = max(largest, size)
    return largest


class ConvertedNetwork(nn.Module):
    """What both networks share: the traced ANN (``source``) and the builds per input shape."""

    def __init__(
        self, source: fx.GraphModule, annotations: dict[Shape, Annotation] | None = None
    ) -> None:
        super().__init__()
        self.source = source
        self.builds = nn.ModuleDict()
        # per input shape; the annotation does not depend on the mode, so a PASC and a vanilla
        # network of one trace may share this dict (PascNetwork.vanilla)
        self._annotations: dict[Shape, Annotation] = {} if annotations is None else annotations
        self._current: Shape | None = None
        self._largest: dict[Shape, int] = {}  # per input shape: see images_per_part
        self._longest: dict[Shape, int] = {}  # per input shape: the longest train
        self.part_bytes: int | None = PART_BYTES
        """On the CPU, the bytes of a part's largest tensor: a PASC part holds between this and
        twice this when its batch allows, a vanilla part at most this (see the module
        docstring); None runs every batch whole. Other devices run batches whole."""

    def _build(self, annotation: Annotation) -> nn.Module:
        raise NotImplementedError

    def _steps_in_tensors(self) -> bool:
        """True when a value of train length T is one tensor of T steps (PASC)."""
        raise NotImplementedError

    def parts(self, x: torch.Tensor) -> Sequence[torch.Tensor]:
        """The batch ``x`` as the parts that run one after another (``(x,)`` if one part);
        on the CPU it first hints the heap to keep part-sized memory (:func:`hint_heap`)."""
        n = self.images_per_part(x)
        if self.part_bytes is not None and x.device.type == "cpu":
            hint_heap(max(self.part_bytes, n * self._largest_bytes(x)))
        return (x,) if n >= x.shape[0] else torch.split(x, n)

    def _largest_bytes(self, x: torch.Tensor) -> int:
        """Bytes per image of the largest tensor a batch like ``x`` makes."""
        size = x.element_size() if x.is_floating_point() else 4
        return self._largest[tuple(x.shape[1:])] * size

    def images_per_part(self, x: torch.Tensor) -> int:
        """How many images of the batch ``x`` run together (all of them off the CPU)."""
        images = max(int(x.shape[0]), 1)
        if self.part_bytes is None or x.device.type != "cpu":
            return images
        per_image = self._largest_bytes(x)
        n = self.part_bytes // per_image
        if self._steps_in_tensors():  # toward the ANN's batch of image-steps per call
            longest = self._longest[tuple(x.shape[1:])]
            n = max(n, min(-(-images // longest), 2 * self.part_bytes // per_image))
        return min(images, max(1, n))

    def prepare(self, input_shape: Sequence[int], example: torch.Tensor | None = None) -> None:
        """Annotate and rewrite for inputs of per-sample shape ``input_shape`` (once per shape)
        and make that build the current one; ``example`` only words the errors."""
        shape = tuple(int(s) for s in input_shape)
        key = _key(shape)
        if key not in self.builds:
            with torch.no_grad():
                annotation = self._annotations.get(shape)
                if annotation is None:
                    annotation = annotate(self.source, shape, example)
                build = self._build(annotation).eval()
            self._annotations[shape] = annotation
            self._largest[shape] = _largest(annotation, self._steps_in_tensors())
            self._longest[shape] = _longest(annotation)
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
        refuse_tracing()  # before anything reads the input's shape as Python numbers
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

    def built_shapes(self) -> list[Shape]:
        """The per-sample input shapes this network has built layers for, in build order."""
        return list(self._largest)

    @property
    def current_shape(self) -> Shape | None:
        """The per-sample input shape of the current build (None before the first input)."""
        return self._current

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write this network to ``path`` as plain data (atomically); load it again with
        :func:`pascal_snn.load_snn`. The format is described in
        :mod:`pascal_snn.convert.serialize`; spike statistics are not saved."""
        from pascal_snn.convert.serialize import save_network  # it imports this module

        save_network(self, path)

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

    def _steps_in_tensors(self) -> bool:
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        build = self._for(x)
        parts = self.parts(x)
        if len(parts) == 1:
            out: torch.Tensor = build(x)
            return out
        return torch.cat([build(part) for part in parts])

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

    def vanilla(self, timesteps: int) -> VanillaNetwork:
        """The vanilla IF baseline of the same ANN, sharing this network's trace and its
        annotation per input shape (so no conversion step runs twice)."""
        net = VanillaNetwork(self.source, timesteps, self._annotations)
        if self._current is not None:
            net.prepare(self._current)
        return net.eval()


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


def _run_steps(build: _VanillaBuild, x: torch.Tensor, at: list[int]) -> torch.Tensor:
    """One run of ``at[-1]`` steps from rest: the mean output over steps 1 … t for t in ``at``."""
    build.reset()
    total: torch.Tensor | None = None
    means: list[torch.Tensor] = []
    try:
        image_part = build.prefix(x)
        for t in range(1, at[-1] + 1):
            out = build.step(*image_part)
            total = out if total is None else total + out
            if t == at[len(means)]:
                means.append(total / t)
    finally:
        build.reset()
    return torch.stack(means)


class VanillaNetwork(ConvertedNetwork):
    """The QCFS-paper SNN baseline: plain IF neurons, ``timesteps`` steps, image every step.

    ``forward(x)`` returns the mean of the output over the steps; :meth:`prefix_logits`
    returns, from one run, the mean over the first ``t`` steps for every ``t ≤ T``.
    """

    def __init__(
        self,
        source: fx.GraphModule,
        timesteps: int,
        annotations: dict[Shape, Annotation] | None = None,
    ) -> None:
        super().__init__(source, annotations)
        self.timesteps = timesteps

    def _build(self, annotation: Annotation) -> nn.Module:
        prefix, step = split_prefix(rewrite_vanilla(self.source, annotation))
        return _VanillaBuild(prefix, step)

    def _steps_in_tensors(self) -> bool:
        return False

    def prefix_logits(self, x: torch.Tensor, timesteps: int | None = None) -> torch.Tensor:
        """``[T, B, classes]``: row ``t−1`` is the mean output over steps ``1 … t``."""
        steps = timesteps or self.timesteps
        return self.logits_at(x, range(1, steps + 1))

    def logits_at(self, x: torch.Tensor, steps: Iterable[int]) -> torch.Tensor:
        """``[len(steps), B, classes]``: the mean output over steps ``1 … t`` for each ``t`` of
        ``steps`` (from one run of ``max(steps)`` steps; rows equal those of
        :meth:`prefix_logits`)."""
        given = list(steps)
        at = sorted({int(t) for t in given})
        if not at or at[0] < 1:
            raise ValueError(f"steps must be integers >= 1, got {given}")
        build = self._for(x)
        assert isinstance(build, _VanillaBuild)
        parts = self.parts(x)
        if len(parts) == 1:
            return _run_steps(build, x, at)
        return torch.cat([_run_steps(build, part, at) for part in parts], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prefix_logits(x)[-1]

    def _stepped(self) -> fx.GraphModule:
        build = self.current()
        assert isinstance(build, _VanillaBuild)
        return build.step

    def if_layers(self) -> list[tuple[str, VanillaIF]]:
        """Vanilla IF layers in forward order, one per QCFS call site."""
        return self._in_order(VanillaIF)
