"""Shapes of every graph value at two batch sizes, which locate the batch dimension.

The model's graph runs on an all-zero batch of ``B = 2`` and of ``B = 3`` images of one
per-sample shape, on the meta device (shapes only, no arithmetic, no copy of the weights) or,
where an operation has no meta kernel, on real zeros. A value whose shape differs between the
two runs depends on the batch; the annotation pass requires that dimension to be dim 0 and no
other. Two sizes, neither of them 1, because a batch of one hides every reshape that mixes
samples (``x.view(1, -1)``).

An input the model itself rejects becomes a :class:`DataError` carrying the model's message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.func import functional_call

from pascal_snn.errors import ConversionError, DataError
from pascal_snn.qcfs import QCFS

__all__ = ["BATCHES", "TensorShape", "propagate"]

BATCHES = (2, 3)


@dataclass(frozen=True)
class TensorShape:
    """A tensor value seen in a run: only its shape is kept."""

    shape: tuple[int, ...]


def summarize(value: Any) -> Any:
    """Tensors → :class:`TensorShape`; tuples/lists of values → tuples; anything else as is."""
    if isinstance(value, torch.Tensor):
        return TensorShape(tuple(value.shape))
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return tuple(summarize(v) for v in value)
    return value


def _meta(value: Any) -> Any:
    return torch.empty_like(value, device="meta") if isinstance(value, torch.Tensor) else value


class _Run(fx.Interpreter):
    """Runs ``graph`` over ``module``'s attributes and keeps a summary of every value."""

    def __init__(self, module: nn.Module, graph: fx.Graph, meta: bool) -> None:
        super().__init__(module, garbage_collect_values=True, graph=graph)
        self.meta = meta
        self.seen: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        self.seen[n] = summarize(out)
        return out

    def call_module(self, target: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        module = self.fetch_attr(str(target))
        if not self.meta:
            return module(*args, **kwargs)
        if isinstance(module, QCFS) and len(args) == 1 and isinstance(args[0], torch.Tensor):
            return torch.empty_like(args[0])  # elementwise; its meta kernels are slow
        state = {k: _meta(v) for k, v in (*module.named_parameters(), *module.named_buffers())}
        return functional_call(module, state, tuple(args), kwargs, strict=False)

    def get_attr(self, target: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        value = super().get_attr(target, args, kwargs)
        return _meta(value) if self.meta else value


def _run(module: nn.Module, graph: fx.Graph, x: torch.Tensor, meta: bool) -> dict[fx.Node, Any]:
    run = _Run(module, graph, meta)
    with torch.no_grad():
        run.run(x)
    return run.seen


def _reference(module: nn.Module) -> torch.Tensor | None:
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor
    return None


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"


def propagate(
    module: nn.Module,
    graph: fx.Graph,
    input_shape: Sequence[int],
    example: torch.Tensor | None = None,
) -> tuple[dict[fx.Node, Any], dict[fx.Node, Any]]:
    """Summaries of every node's value at batch sizes 2 and 3 (see the module docstring).

    ``input_shape`` is one sample's shape; ``example`` (optional) is a real input batch, used
    only to tell "the model rejects this input" from "the model depends on its batch size".
    """
    ref = _reference(module)
    dtype = example.dtype if example is not None else (ref.dtype if ref is not None else None)
    dtype = dtype or torch.float32
    device = example.device if example is not None else (ref.device if ref is not None else None)
    shape = tuple(int(s) for s in input_shape)

    def zeros(batch: int, dev: torch.device | str | None) -> torch.Tensor:
        return torch.zeros((batch, *shape), dtype=dtype, device=dev)

    try:
        first = _run(module, graph, zeros(BATCHES[0], "meta"), meta=True)
        return first, _run(module, graph, zeros(BATCHES[1], "meta"), meta=True)
    except Exception:  # an operation without a meta kernel, or the model rejects the input
        pass
    if example is not None:
        try:
            _run(module, graph, example, meta=False)
        except Exception as exc:  # the ANN's own error: the input does not fit the model
            raise DataError(
                f"an input batch of shape {tuple(example.shape)} does not fit the model, which "
                f"raises {_why(exc)}; give it inputs of the shape it was trained on"
            ) from exc
    runs = []
    for batch in BATCHES:
        try:
            runs.append(_run(module, graph, zeros(batch, device), meta=False))
        except Exception as exc:
            if example is None and batch == BATCHES[0]:
                raise DataError(
                    f"an input of shape {(batch, *shape)} does not fit the model, which "
                    f"raises {_why(exc)}; give the shape of one sample as the model expects it"
                ) from exc
            raise ConversionError(
                f"the model runs on a batch of "
                f"{example.shape[0] if example is not None and not runs else BATCHES[0]} "
                f"but fails on a batch of {batch} ({_why(exc)}); a converted network folds time "
                "steps into the batch dimension, so the model must accept any batch size "
                "(use x.size(0) or -1 instead of a fixed batch size)"
            ) from exc
    return runs[0], runs[1]
