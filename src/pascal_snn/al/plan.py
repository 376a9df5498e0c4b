"""From a trained model to a per-layer L plan: AL metric → clusters → levels (Algorithm 3).

Shared by ``pascal-snn al``, adaptive training (Algorithm 4) and the demo.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pascal_snn.al.clustering import assign_levels, cluster
from pascal_snn.al.stats import LayerStats, as_alpha
from pascal_snn.al.streaming import LayerResult, Variant, default_alpha, layer_metrics
from pascal_snn.data.info import dataset_size
from pascal_snn.errors import ConfigError, DataError

__all__ = ["AL_FORMAT", "ALPlan", "ALReport", "plan_levels"]

AL_FORMAT = "pascal-snn/al/1"


@dataclass(frozen=True)
class ALPlan:
    """AL results per layer (with cluster labels), the new per-layer L, and how they were made."""

    layers: tuple[LayerResult, ...]
    levels: tuple[int, ...]
    variant: Variant
    alpha: float
    num_images: int
    cluster_levels: tuple[int, ...]
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the content of ``al.json``)."""
        return {
            "format": AL_FORMAT,
            "num_images": self.num_images,
            "seed": self.seed,
            "variant": self.variant.value,
            "alpha": self.alpha,
            "clusters": len(self.cluster_levels),
            "cluster_levels": sorted(self.cluster_levels),
            "levels": list(self.levels),
            "layers": [
                {
                    "name": r.name,
                    "L": r.L,
                    "histogram": list(r.histogram),
                    "agreement": r.stats.agreement,
                    "skewness": r.stats.skewness,
                    "kurtosis": r.stats.kurtosis,
                    "metric": r.stats.metric,
                    "constant": r.stats.constant,
                    "n": r.stats.n,
                    "S": r.stats.S,
                    "cluster": r.cluster,
                    "new_L": new,
                }
                for r, new in zip(self.layers, self.levels)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ALPlan:
        """Read :meth:`as_dict`'s form back (``al.json``; non-finite floats may be strings)."""
        if data.get("format") != AL_FORMAT:
            raise DataError(f"not an AL report (format {data.get('format')!r}, want {AL_FORMAT!r})")
        try:
            layers = tuple(
                LayerResult(
                    name=str(x["name"]),
                    L=int(x["L"]),
                    histogram=tuple(int(v) for v in x["histogram"]),
                    stats=LayerStats(
                        agreement=float(x["agreement"]),
                        skewness=float(x["skewness"]),
                        kurtosis=float(x["kurtosis"]),
                        metric=float(x["metric"]),
                        constant=bool(x["constant"]),
                        n=int(x["n"]),
                        S=int(x["S"]),
                    ),
                    cluster=None if x["cluster"] is None else int(x["cluster"]),
                )
                for x in data["layers"]
            )
            levels = tuple(int(v) for v in data["levels"])
            if levels != tuple(int(x["new_L"]) for x in data["layers"]):
                raise ValueError("levels and the layers' new_L disagree")
            return cls(
                layers=layers,
                levels=levels,
                variant=Variant.parse(data["variant"]),
                alpha=float(data["alpha"]),
                num_images=int(data["num_images"]),
                cluster_levels=tuple(int(v) for v in data["cluster_levels"]),
                seed=int(data["seed"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"the AL report is incomplete or malformed ({exc})") from None


@dataclass(frozen=True)
class ALReport:
    """The content of ``al.json``: the plan and where it came from (checkpoint, data set)."""

    checkpoint: str
    dataset: str
    plan: ALPlan

    def as_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "dataset": self.dataset, **self.plan.as_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ALReport:
        return cls(str(data.get("checkpoint")), str(data.get("dataset")), ALPlan.from_dict(data))


def _check_separates(metrics: Sequence[float], cluster_levels: Sequence[int]) -> None:
    """Refuse a plan the metric gives no grounds for: several levels offered, and every layer
    with the same finite metric. One cluster would then hold every layer and, as the most
    tolerant, take the smallest L; with L = 4 and the paper's α every layer whose five levels
    each hold α of its outputs has A = 0, so M = 0 (ResNet-18 on Fashion-MNIST: all 17 layers,
    and training at L = 1 collapsed). Equal +inf metrics (every layer constant) do justify it."""
    distinct = set(metrics)
    if len(set(cluster_levels)) < 2 or len(distinct) != 1:
        return
    (value,) = distinct
    if value == math.inf:
        return
    why = (
        " (every level of every layer holds at least α of the layer's outputs, so every "
        "agreement A is 0)"
        if value == 0
        else ""
    )
    raise ConfigError(
        f"the AL metric does not separate the layers: all {len(metrics)} have M = {value:g}"
        f"{why}, so the plan would put every layer at L = {min(cluster_levels)} with no sign "
        "that any tolerates it. Give the metric room: a larger agreement threshold (pascal-snn "
        "al --alpha, train --al-alpha, e.g. 0.1), the reference code's statistic (al --variant "
        "reference-code, train --al-variant reference-code), or a base model trained with more "
        "levels (e.g. --levels 8)"
    )


def plan_levels(
    model: nn.Module,
    train_set: Dataset[Any],
    cluster_levels: Sequence[int] = (1, 2, 4),
    num_images: int = 3000,
    alpha: float | Fraction | None = None,
    variant: Variant | str = Variant.PAPER,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str | None = None,
    wrap: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> ALPlan:
    """AL metric over ``num_images`` training images (seeded shuffle), clusters, per-layer L.

    The highest-metric cluster gets the smallest L (SPEC §5.2). Raises ``DataError`` when the
    metric cannot be computed and ``ConfigError`` when the layers cannot be clustered, or when
    every layer has the same finite metric (no grounds to give any layer a smaller L).
    ``wrap`` may wrap the batches (e.g. to show progress).
    """
    variant = Variant.parse(variant)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=generator)
    batches: Iterable[Any] = loader if wrap is None else wrap(loader)
    try:
        results = layer_metrics(model, batches, num_images, alpha, variant, device)
    except ValueError as exc:
        raise DataError(f"cannot compute the AL metric: {exc}") from exc
    metrics = [r.stats.metric for r in results]
    _check_separates(metrics, cluster_levels)
    try:
        labels = cluster(metrics, len(cluster_levels))
        new_levels = assign_levels(metrics, list(cluster_levels))
    except ValueError as exc:
        raise ConfigError(f"cannot cluster the layers: {exc} (see --clusters)") from exc
    if alpha is not None:
        used_alpha = float(as_alpha(alpha))
    elif variant is Variant.PAPER:
        used_alpha = float(default_alpha(len(results)))
    else:
        used_alpha = 1 / 5
    return ALPlan(
        layers=tuple(replace(r, cluster=c) for r, c in zip(results, labels)),
        levels=tuple(new_levels),
        variant=variant,
        alpha=used_alpha,
        num_images=min(num_images, dataset_size(train_set)),
        cluster_levels=tuple(cluster_levels),
        seed=seed,
    )
