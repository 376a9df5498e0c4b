"""Stream the level histograms of every QCFS layer over a data set (SPEC §5.1, Alg. 3 step 2).

A forward hook on each QCFS counts the level indices ``k = round(h·L/θ)`` of its outputs with
``torch.bincount`` into ``L + 1`` int64 counters on the model's device: memory O(L) per layer,
never the activations. The model runs under ``no_grad`` in eval mode and is left exactly as it
was (every module's training flag, no hooks), also when the loader or the model raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

import torch
from torch import nn

from pascal_snn.al.reference_variant import reference_histogram_stats
from pascal_snn.al.stats import LayerStats, as_alpha, histogram_stats
from pascal_snn.errors import DataError
from pascal_snn.qcfs import QCFS, level_index, qcfs_layers

__all__ = ["LayerResult", "Variant", "default_alpha", "layer_metrics", "level_histograms"]


class Variant(str, Enum):
    """Which AL statistic: the paper's definition (default) or the public reference code's."""

    PAPER = "paper"
    REFERENCE_CODE = "reference-code"

    @classmethod
    def parse(cls, value: object) -> Variant:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(v.value for v in cls)
            raise ValueError(f"unknown AL variant {value!r}; choose one of: {choices}") from None


@dataclass(frozen=True)
class LayerResult:
    """AL result of one QCFS layer: its name, L, level histogram, statistics and cluster."""

    name: str
    L: int
    histogram: tuple[int, ...]
    stats: LayerStats
    cluster: int | None = None


def default_alpha(num_layers: int) -> Fraction:
    """The paper's agreement threshold ``α = 1/(2·N_layers)`` (Figure 1)."""
    return Fraction(1, 2 * num_layers)


def _images_of(batch: object) -> torch.Tensor:
    images = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(images, torch.Tensor):
        raise DataError(
            f"the loader must yield (images, labels) batches of tensors, got {type(images)!r}"
        )
    return images


def _model_device(model: nn.Module) -> torch.device:
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return torch.device("cpu")


def level_histograms(
    model: nn.Module,
    loader: Iterable[object],
    num_images: int = 3000,
    device: torch.device | str | None = None,
) -> tuple[list[tuple[str, QCFS]], list[list[int]], int]:
    """Level histograms of every QCFS layer over the first ``num_images`` images of ``loader``.

    Returns ``(layers, histograms, images)``: the ``(name, QCFS)`` pairs in forward order, one
    list of ``L + 1`` counts per layer, and the number of images actually run (fewer than
    ``num_images`` when the loader runs out; the last batch is truncated to fit). Images go to
    ``device`` (default: the model's device); the model itself is not moved.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"num_images must be an integer >= 1, got {num_images!r}")
    layers = qcfs_layers(model)
    if not layers:
        raise ValueError("the model has no QCFS layers; the AL metric needs QCFS activations")
    target = torch.device(device) if device is not None else _model_device(model)
    levels = [layer.L for _, layer in layers]
    counters: list[torch.Tensor | None] = [None] * len(layers)

    def make_hook(slot: int, name: str, L: int) -> Callable[..., None]:
        def hook(module: QCFS, inputs: object, output: torch.Tensor) -> None:
            if module.L != L:
                raise RuntimeError(f"QCFS layer '{name}' changed L from {L} to {module.L}")
            theta = module.theta.detach().to(output.dtype)
            idx = level_index(output.detach(), L, theta).flatten()
            if idx.numel() == 0:
                return
            lo, hi = torch.aminmax(idx)  # one pass for both bounds
            if int(lo) < 0 or int(hi) > L:
                raise ValueError(
                    f"QCFS layer '{name}' produced level indices outside 0..{L} "
                    f"(theta = {float(theta):.4g}); its threshold must be finite and non-zero"
                )
            counts = torch.bincount(idx, minlength=L + 1)
            current = counters[slot]
            counters[slot] = counts if current is None else current + counts

        return hook

    modes = [(m, m.training) for m in model.modules()]
    handles = []
    images_seen = 0
    try:
        for slot, ((name, layer), L) in enumerate(zip(layers, levels)):
            handles.append(layer.register_forward_hook(make_hook(slot, name, L)))
        model.eval()
        with torch.no_grad():
            for batch in loader:
                images = _images_of(batch)
                take = min(int(images.shape[0]), num_images - images_seen)
                if take <= 0:
                    continue
                model(images[:take].to(target))
                images_seen += take
                if images_seen >= num_images:
                    break
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    if images_seen == 0:
        raise DataError("the data loader yielded no images; the AL metric needs at least one")
    histograms = [
        [0] * (L + 1) if c is None else [int(v) for v in c.cpu().tolist()]
        for c, L in zip(counters, levels)
    ]
    return layers, histograms, images_seen


def layer_metrics(
    model: nn.Module,
    loader: Iterable[object],
    num_images: int = 3000,
    alpha: float | Fraction | None = None,
    variant: Variant | str = Variant.PAPER,
    device: torch.device | str | None = None,
) -> list[LayerResult]:
    """AL statistics of every QCFS layer in forward order (paper Algorithm 3).

    ``alpha`` defaults to ``1/(2·N_layers)`` for the paper's variant and to the reference
    code's ``1/5`` for ``variant="reference-code"``. Items of ``loader`` are ``(images,
    labels)`` batches. A layer that saw fewer than 4 outputs raises ValueError naming it.
    """
    variant = Variant.parse(variant)
    if alpha is not None:
        alpha = as_alpha(alpha)  # fail before running the data
    layers, histograms, _ = level_histograms(model, loader, num_images, device)
    if variant is Variant.PAPER and alpha is None:
        alpha = default_alpha(len(layers))
    results = []
    for (name, layer), hist in zip(layers, histograms):
        try:
            if variant is Variant.PAPER:
                assert alpha is not None  # the paper's default was set above
                stats = histogram_stats(hist, alpha)
            else:
                stats = reference_histogram_stats(hist, alpha)
        except ValueError as exc:
            raise ValueError(f"QCFS layer '{name}': {exc}") from exc
        results.append(LayerResult(name, layer.L, tuple(hist), stats))
    return results
