"""Exact 1-D k-means of the layers' AL metrics and the per-layer L it gives (SPEC §5.2).

Optimal 1-D k-means clusters are contiguous runs of the sorted values, so a dynamic program
over the sorted values finds the global optimum (Grønlund et al. 2018; Wang & Song 2011,
Ckmeans.1d.dp):

    D[m][j] = min_{i ≤ j} D[m−1][i−1] + SSE(v_i … v_j),    D[1][j] = SSE(v_1 … v_j)

in O(k·n²) time, which is nothing for a network's few hundred layers. Conventions:

- equal metrics always share a cluster (the DP runs on the distinct values, weighted by their
  multiplicity); with fewer than k distinct values only that many clusters are formed;
- ``+inf`` (a constant layer) forms the highest cluster on its own, or joins it when k = 1;
  the finite values are clustered into the remaining k − 1 clusters;
- labels run from 0 (highest mean metric) upwards; :func:`assign_levels` gives cluster c the
  c-th smallest level, so a higher metric never gets a larger L.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pascal_snn.qcfs import validate_level

__all__ = ["assign_levels", "cluster", "segment_cost"]


def _check_metrics(metrics: Sequence[float]) -> list[float]:
    values = [float(v) for v in metrics]
    if not values:
        raise ValueError("no metrics given; need one AL metric per layer")
    for i, v in enumerate(values):
        if math.isnan(v) or v == -math.inf:
            raise ValueError(f"metric of layer {i} is {v}; metrics must be finite or +inf")
    return values


def segment_cost(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Within-cluster sum of squared deviations ``Σ w·(v − mean)²`` (inf if any value is inf)."""
    v = np.asarray(values, dtype=np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    if v.size == 0:
        return 0.0
    if not np.all(np.isfinite(v)):
        return 0.0 if np.all(v == v[0]) else math.inf
    mean = float(np.sum(w * v) / np.sum(w))
    return float(np.sum(w * (v - mean) ** 2))


def _cost_matrix(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``cost[i, j]`` = SSE of ``values[i..j]`` (inclusive), inf for ``j < i``."""
    n = values.size
    cost = np.full((n, n), np.inf)
    for i in range(n):
        d = values[i:] - values[i]  # shift by the segment's first value: little cancellation
        w = weights[i:]
        W = np.cumsum(w)
        s1 = np.cumsum(w * d)
        s2 = np.cumsum(w * d * d)
        cost[i, i:] = np.maximum(s2 - s1 * s1 / W, 0.0)
    return cost


def _optimal_segments(values: np.ndarray, weights: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Optimal split of sorted ``values`` into ``k`` contiguous segments ``[start, end)``."""
    n = values.size
    cost = _cost_matrix(values, weights)
    D = cost[0].copy()  # one segment covering 0..j
    back: list[np.ndarray] = []
    for _ in range(1, k):
        # cand[i − 1, j] = D[i − 1] + cost[i, j]: the last segment is i..j.
        cand = D[:-1, None] + cost[1:, :]
        arg = np.argmin(cand, axis=0)  # first minimum: deterministic ties
        D = cand[arg, np.arange(n)]
        back.append(arg + 1)
    segments = []
    end = n
    for arg in reversed(back):
        start = int(arg[end - 1])
        segments.append((start, end))
        end = start
    segments.append((0, end))
    return segments[::-1]


def cluster(metrics: Sequence[float], k: int) -> list[int]:
    """Exact 1-D k-means labels of ``metrics``; label 0 is the cluster with the highest mean.

    Raises ValueError for k < 1, k > number of layers, or a NaN / −inf metric.
    """
    values = _check_metrics(metrics)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"the number of clusters must be an integer >= 1, got {k!r}")
    if k > len(values):
        raise ValueError(
            f"cannot split {len(values)} layers into {k} clusters; use at most {len(values)}"
        )
    has_inf = math.inf in values
    if k == 1:
        return [0] * len(values)
    label_of: dict[float, int] = {}
    offset = 0
    if has_inf:
        label_of[math.inf] = 0
        offset = 1
    finite = sorted({v for v in values if v != math.inf})
    if finite:
        distinct = np.asarray(finite, dtype=np.float64)
        weights = np.asarray([values.count(v) for v in finite], dtype=np.float64)
        groups = min(k - offset, distinct.size)
        segments = _optimal_segments(distinct, weights, groups)
        for rank, (start, end) in enumerate(segments):
            for v in finite[start:end]:
                label_of[v] = offset + (groups - 1 - rank)
    return [label_of[v] for v in values]


def assign_levels(metrics: Sequence[float], levels: Sequence[int] = (1, 2, 4)) -> list[int]:
    """Per-layer L: cluster the metrics into ``len(levels)`` groups, highest metric → smallest L.

    ``levels`` are sorted ascending; cluster c (0 = highest mean metric) gets ``levels[c]``.
    Raises ValueError for an empty ``levels``, a level that is not an integer ≥ 1, or any
    error of :func:`cluster`.
    """
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
        raise ValueError(f"levels must be a non-empty sequence of integers >= 1, got {levels!r}")
    ordered = sorted(validate_level(v, f"levels[{i}]") for i, v in enumerate(levels))
    return [ordered[c] for c in cluster(metrics, len(ordered))]
