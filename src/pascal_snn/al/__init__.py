"""Adaptive Layerwise (AL) quantization: per-layer statistics, clustering, level assignment.

- :func:`histogram_stats` — SPEC §5.1 statistics (A, g, K, M) of one level histogram.
- :func:`layer_metrics` — stream level histograms of every QCFS layer over a data set.
- :func:`cluster`, :func:`assign_levels` — exact 1-D k-means and the per-layer L (SPEC §5.2).
- :func:`plan_levels` — all of it from a trained model and training images in one call.
- :func:`reference_histogram_stats` — the public reference code's variant of the metric.
"""

from pascal_snn.al.clustering import assign_levels, cluster, segment_cost
from pascal_snn.al.plan import ALPlan, plan_levels
from pascal_snn.al.plot import metric_figure_png, save_metric_plot
from pascal_snn.al.reference_variant import (
    REFERENCE_BINS,
    rebin_levels,
    reference_histogram_stats,
)
from pascal_snn.al.stats import LayerStats, histogram_stats
from pascal_snn.al.streaming import (
    LayerResult,
    Variant,
    default_alpha,
    layer_metrics,
    level_histograms,
)

__all__ = [
    "REFERENCE_BINS",
    "ALPlan",
    "LayerResult",
    "LayerStats",
    "Variant",
    "assign_levels",
    "cluster",
    "default_alpha",
    "histogram_stats",
    "layer_metrics",
    "level_histograms",
    "metric_figure_png",
    "plan_levels",
    "rebin_levels",
    "reference_histogram_stats",
    "save_metric_plot",
    "segment_cost",
]
