"""Bar chart of the AL metric per layer, coloured by cluster (the paper's Figure 1).

Uses :class:`matplotlib.figure.Figure` with the Agg canvas directly: no pyplot, no global state.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence

from pascal_snn.al.streaming import LayerResult
from pascal_snn.io import atomic_write_bytes

__all__ = ["metric_figure_png", "save_metric_plot"]

# The y-axis turns logarithmic when the positive finite metrics span this factor or more.
_LOG_RANGE = 30.0


def metric_figure_png(
    results: Sequence[LayerResult],
    new_levels: Sequence[int] | None = None,
    title: str | None = None,
    ylabel: str = "AL metric M = A·(g²+1)·K",
) -> bytes:
    """PNG bytes of the bar chart. Constant layers (M = inf) are hatched bars at the top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from pascal_snn.figures import layer_axis

    if not results:
        raise ValueError("no layers to plot")
    metrics = [r.stats.metric for r in results]
    finite = [m for m in metrics if math.isfinite(m)]
    positive = [m for m in finite if m > 0]
    log = bool(positive) and max(positive) / min(positive) >= _LOG_RANGE
    top = max(finite) if finite else 1.0
    inf_height = top * (3.0 if log else 1.15) if top > 0 else 1.0

    fig = Figure(figsize=(max(6.0, 0.45 * len(results) + 2.0), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    palette = [f"C{i}" for i in range(10)]
    labels = [r.cluster for r in results]
    clusters = sorted({c for c in labels if c is not None})
    for i, (m, c) in enumerate(zip(metrics, labels)):
        color = "C7" if c is None else palette[c % len(palette)]
        if math.isinf(m):
            ax.bar(i, inf_height, color=color, hatch="//", edgecolor="black", alpha=0.6)
            ax.annotate("∞", (i, inf_height), ha="center", va="bottom", fontsize=9)
        elif math.isnan(m):
            ax.annotate("NaN", (i, 0), ha="center", va="bottom", fontsize=8)
        else:
            ax.bar(i, m, color=color, edgecolor="black", linewidth=0.5)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=min(positive) / 2)
    layer_axis(ax, [r.name for r in results], "IF (QCFS) layer, forward order")
    ax.set_ylabel(ylabel + (" (log scale)" if log else ""))
    ax.set_title(title or "Adaptive Layerwise metric per layer")
    handles = []
    for c in clusters:
        text = f"cluster {c}"
        if new_levels is not None:
            members = [lv for lv, lab in zip(new_levels, labels) if lab == c]
            if members:
                text += f" → L = {members[0]}"
        handles.append(Patch(facecolor=palette[c % len(palette)], edgecolor="black", label=text))
    if any(math.isinf(m) for m in metrics):
        handles.append(Patch(facecolor="white", hatch="//", edgecolor="black", label="constant"))
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def save_metric_plot(
    path: str | os.PathLike[str],
    results: Sequence[LayerResult],
    new_levels: Sequence[int] | None = None,
    title: str | None = None,
    ylabel: str = "AL metric M = A·(g²+1)·K",
) -> None:
    """Write :func:`metric_figure_png` to ``path`` atomically."""
    atomic_write_bytes(path, metric_figure_png(results, new_levels, title, ylabel))
