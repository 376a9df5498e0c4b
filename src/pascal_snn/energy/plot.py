"""Figures of an energy report: per-layer spike rates (paper Figure 4) and ANN/SNN energy.

Built on :class:`matplotlib.figure.Figure` with the Agg canvas: no pyplot, no global state.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pascal_snn.energy.report import EnergyReport
from pascal_snn.figures import save_figure

__all__ = ["energy_breakdown_figure", "save_figure", "spike_rate_figure"]


def _short(name: str) -> str:
    return name if len(name) <= 18 else "…" + name[-17:]


def spike_rate_figure(report: EnergyReport) -> Figure:
    """Input spike rate of every conv/linear layer fed by spikes, measured where available,
    with the assumed (analytic) rate as a dashed line."""
    layers = [x for x in report.layers if x.analytic.spike_rate is not None]
    fig = Figure(figsize=(max(6.0, 0.45 * len(layers) + 2), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = range(len(layers))
    measured = [None if x.measured is None else x.measured.spike_rate for x in layers]
    if any(m is not None for m in measured):
        ax.bar(xs, [m or 0.0 for m in measured], color="tab:blue", label="measured")
    ax.axhline(report.assumed_spike_rate, color="tab:red", ls="--", label="assumed (analytic)")
    ax.set_xticks(list(xs), [_short(x.name) for x in layers], rotation=60, ha="right")
    ax.set_xlabel("layer (conv/linear, input side)")
    ax.set_ylabel("spike rate (spikes per input neuron, all steps)")
    ax.set_title(f"Layerwise spike rate ({report.images} images)")
    ax.legend()
    return fig


def energy_breakdown_figure(report: EnergyReport, preset: str = "fp32") -> Figure:
    """Per-layer energy of the ANN against the SNN (measured rates if present, else analytic)."""
    layers = report.layers
    summary, source = (
        (report.analytic, "analytic") if report.measured is None else (report.measured, "measured")
    )
    models = [x.analytic if x.measured is None else x.measured for x in layers]
    fig = Figure(figsize=(max(6.0, 0.5 * len(layers) + 2), 4.0), layout="constrained")
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
    ax.set_xticks(xs, [_short(x.name) for x in layers], rotation=60, ha="right")
    ax.set_xlabel("layer")
    ax.set_ylabel(f"energy per image (µJ, {preset.upper()})")
    ratio = summary.energy_ratio[preset]
    ax.set_title(f"ANN vs SNN energy per layer (ANN/SNN = {ratio:.2f})")
    ax.legend()
    return fig
