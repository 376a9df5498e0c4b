"""Figures of an energy report: per-layer spike rates (paper Figure 4) and ANN/SNN energy.

Built on :class:`matplotlib.figure.Figure` with the Agg canvas: no pyplot, no global state.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pascal_snn.energy.report import EnergyReport
from pascal_snn.figures import layer_axis, levels_text, save_figure

__all__ = ["energy_breakdown_figure", "save_figure", "spike_rate_figure"]


def _levels(report: EnergyReport) -> str:
    return levels_text([neuron.L for neuron in report.latency.neurons])


def spike_rate_figure(report: EnergyReport, title: str | None = None) -> Figure:
    """Spike rate of every IF layer's spikes as the next conv/linear layer receives them
    (spikes per receiving neuron over all steps; measured where available), with the assumed
    (analytic) rate as a dashed line. Bars are named after the IF (QCFS) layers that emit the
    spikes, as in the AL metric's figure. ``title`` defaults to one naming the per-layer L."""
    layers = [x for x in report.layers if x.analytic.spike_rate is not None]
    fig = Figure(figsize=(max(7.0, 0.45 * len(layers) + 3), 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = range(len(layers))
    measured = [None if x.measured is None else x.measured.spike_rate for x in layers]
    if any(m is not None for m in measured):
        ax.bar(xs, [m or 0.0 for m in measured], color="tab:blue", label="measured")
    ax.axhline(report.assumed_spike_rate, color="tab:red", ls="--", label="assumed (analytic)")
    ax.set_ylim(0, 1.12 * max([report.assumed_spike_rate, *(m or 0.0 for m in measured)]))
    layer_axis(ax, ["+".join(x.sources) or x.name for x in layers], "IF layer (its spikes)")
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ax.set_ylabel("spike rate (spikes per neuron, all steps)")
    images = f"{report.images} images" if report.images else "analytic"
    ax.set_title(title or f"Layerwise spike rate ({images})\n{_levels(report)}", fontsize=11)
    # beside the axes, so it never hides the assumed-rate line or a bar
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def energy_breakdown_figure(
    report: EnergyReport, preset: str = "fp32", title: str | None = None
) -> Figure:
    """Per-layer energy of the ANN against the SNN (measured rates if present, else analytic),
    on a log scale so that the small layers (the classifier) stay visible."""
    layers = report.layers
    summary, source = (
        (report.analytic, "analytic") if report.measured is None else (report.measured, "measured")
    )
    models = [x.analytic if x.measured is None else x.measured for x in layers]
    fig = Figure(figsize=(max(7.0, 0.5 * len(layers) + 3), 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.4
    xs = list(range(len(layers)))
    ann = [m.energy_pj[preset].ann / 1e6 for m in models]
    snn = [m.energy_pj[preset].snn / 1e6 for m in models]
    ax.bar([x - width / 2 for x in xs], ann, width, label="ANN (MAC)", color="tab:gray")
    ax.bar(
        [x + width / 2 for x in xs], snn, width, label=f"SNN ({source} rates)", color="tab:green"
    )
    positive = [v for v in (*ann, *snn) if v > 0]
    if positive:
        ax.set_yscale("log")
        ax.set_ylim(bottom=min(positive) / 3, top=max(positive) * 3)
    layer_axis(ax, [x.name for x in layers], "conv/linear layer")
    ax.set_ylabel(f"energy per image (µJ, {preset.upper()}, log scale)")
    ratio = summary.energy_ratio[preset]
    ax.set_title(
        title or f"ANN vs SNN energy per layer (ANN/SNN = {ratio:.2f})\n{_levels(report)}",
        fontsize=11,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig
