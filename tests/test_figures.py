"""The figures: the legend never covers the assumed-rate line, uniform and adaptive plots have
distinct titles, small layers stay visible (log scale), and every plot names its layers the
same way (full module names, same slant)."""

import torch

from pascal_snn.al import LayerResult, LayerStats, metric_figure_png
from pascal_snn.energy import energy_report
from pascal_snn.energy.plot import energy_breakdown_figure, spike_rate_figure
from pascal_snn.models import create


def _report(levels):
    torch.manual_seed(0)
    model = create("digits_cnn", num_classes=10, in_channels=1, L=levels, width=0.25).eval()
    return energy_report(model, [(torch.rand(16, 1, 8, 8), torch.zeros(16))])


def _ticks(fig):
    ax = fig.axes[0]
    return [(t.get_text(), t.get_rotation()) for t in ax.get_xticklabels()]


def test_spike_rate_legend_sits_outside_the_axes_and_titles_name_the_levels():
    uniform, adaptive = _report(4), _report([2, 1, 2, 4])
    fig = spike_rate_figure(uniform)
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes: covers no line, no bar
    assert ax.get_ylim()[1] > uniform.assumed_spike_rate  # the 0.75 line is inside the plot
    title_u, title_a = ax.get_title(), spike_rate_figure(adaptive).axes[0].get_title()
    assert "L = 4" in title_u and "per-layer L = 2,1,2,4" in title_a and title_u != title_a


def test_energy_breakdown_is_log_scaled_so_the_classifier_shows():
    report = _report(4)
    fig = energy_breakdown_figure(report)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    classifier = [p.get_height() for p in ax.patches][len(report.layers) - 1]  # ANN, last layer
    assert classifier > ax.get_ylim()[0]  # above the bottom of the axes: visible


def test_every_plot_names_layers_the_same_way():
    report = _report(4)
    rates = _ticks(spike_rate_figure(report))
    energy = _ticks(energy_breakdown_figure(report))
    assert [name for name, _ in energy] == [x.name for x in report.layers]
    assert [name for name, _ in rates] == [n.name for n in report.neurons]  # the IF layers
    stats = LayerStats(0.5, 1.0, 3.0, 6.0, False, 100, 2)
    results = [LayerResult(n.name, n.L, (1, 2), stats, 0) for n in report.neurons]
    import io

    from matplotlib.image import imread

    assert imread(io.BytesIO(metric_figure_png(results, [4] * 4))).shape[2] in (3, 4)
    assert {rotation for _, rotation in rates + energy} == {45.0}
