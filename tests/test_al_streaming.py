"""Streaming level histograms over a data set (SPEC §5.1) and the metric plot."""

import copy
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from pascal_snn import QCFS, DataError
from pascal_snn.al import (
    LayerResult,
    histogram_stats,
    layer_metrics,
    level_histograms,
    metric_figure_png,
    reference_histogram_stats,
    save_metric_plot,
)
from pascal_snn.al.stats import LayerStats


class Net(nn.Module):
    """Conv/BN/QCFS, a Dropout, a QCFS that is called twice, and a linear QCFS layer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act1 = QCFS(4, 1.5)
        self.drop = nn.Dropout(0.5)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = QCFS(3, 0.7)
        self.fc = nn.Linear(4 * 6 * 6, 10)
        self.act3 = QCFS(8, 2.0)
        self.head = nn.Linear(10, 3)

    def forward(self, x):
        x = self.drop(self.act1(self.bn(self.conv(x))))
        x = self.act2(self.conv2(x))
        x = self.act2(x - 0.2)  # the same module twice: both outputs count
        return self.head(self.act3(self.fc(x.flatten(1))))


def make_net():
    torch.manual_seed(0)
    net = Net().double()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net


def make_batches(sizes, seed=1):
    g = torch.Generator().manual_seed(seed)
    images = [torch.randn(b, 1, 6, 6, generator=g, dtype=torch.float64) for b in sizes]
    return [(x, torch.zeros(len(x), dtype=torch.long)) for x in images]


def stored_output_histograms(model, batches, num_images):
    """Run the same truncated batches, keep every QCFS output, count levels afterwards."""
    model = copy.deepcopy(model).eval()
    layers = [model.act1, model.act2, model.act3]
    outputs = {id(m): [] for m in layers}
    handles = [
        m.register_forward_hook(lambda mod, i, o: outputs[id(mod)].append(o.clone()))
        for m in layers
    ]
    seen = 0
    with torch.no_grad():
        for images, _ in batches:
            take = min(len(images), num_images - seen)
            if take <= 0:
                break
            model(images[:take])
            seen += take
    for h in handles:
        h.remove()
    hists = []
    for m in layers:
        h = torch.cat([o.flatten() for o in outputs[id(m)]]).detach().numpy()
        k = np.round(h * m.L / m.theta.item()).astype(np.int64)
        hists.append(np.bincount(k, minlength=m.L + 1).tolist())
    return hists, seen


def snapshot(model):
    return (
        {k: copy.deepcopy(v) for k, v in model.state_dict().items()},
        [(name, m.training) for name, m in model.named_modules()],
        [
            (name, len(m._forward_hooks), len(m._forward_pre_hooks))
            for name, m in model.named_modules()
        ],
    )


def assert_restored(model, before):
    state, modes, hooks = before
    after_state, after_modes, after_hooks = snapshot(model)
    assert after_modes == modes
    assert after_hooks == hooks
    assert state.keys() == after_state.keys()
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, after_state[key]), key
        else:
            assert value == after_state[key], key
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(("sizes", "num_images"), [([7, 7, 7, 7], 17), ([5, 3], 100), ([4], 1)])
def test_histograms_equal_counting_stored_outputs(sizes, num_images):
    model = make_net()
    batches = make_batches(sizes)
    expected, seen = stored_output_histograms(model, batches, num_images)
    layers, hists, images = level_histograms(model, batches, num_images)
    assert [name for name, _ in layers] == ["act1", "act2", "act3"]
    assert images == seen == min(num_images, sum(sizes))
    assert hists == expected
    # Every output counted once per call: act2 runs twice per image.
    assert [sum(h) for h in hists] == [images * 4 * 36, 2 * images * 4 * 36, images * 10]


def test_layer_metrics_results_and_default_alpha():
    model = make_net()
    batches = make_batches([8, 8, 8])
    _, hists, _ = level_histograms(model, batches, 20)
    results = layer_metrics(model, batches, num_images=20)
    assert [r.name for r in results] == ["act1", "act2", "act3"]
    assert [r.L for r in results] == [4, 3, 8]
    assert all(r.cluster is None for r in results)
    for r, h in zip(results, hists):
        assert r.histogram == tuple(h)
        assert r.stats == histogram_stats(h, Fraction(1, 6))  # α = 1/(2·3 layers)
    other = layer_metrics(model, batches, num_images=20, alpha=0.25)
    assert [r.stats for r in other] == [histogram_stats(h, 0.25) for h in hists]
    ref = layer_metrics(model, batches, num_images=20, variant="reference-code")
    assert [r.stats for r in ref] == [reference_histogram_stats(h) for h in hists]


def test_model_is_restored_exactly():
    model = make_net()
    model.train()
    model.drop.eval()  # mixed flags must survive
    user_hook = model.act1.register_forward_hook(lambda *a: None)
    x = make_batches([3], seed=5)[0][0]
    model.eval()
    ref_out = model(x).detach().clone()
    model.train()
    model.drop.eval()
    before = snapshot(model)
    layer_metrics(model, make_batches([6, 6]), num_images=10)
    assert_restored(model, before)
    assert len(model.act1._forward_hooks) == 1  # the user's hook stays
    user_hook.remove()
    model.eval()
    assert torch.equal(model(x), ref_out)


def test_model_is_restored_when_the_loader_fails():
    model = make_net().train()
    before = snapshot(model)

    def failing_loader():
        yield from make_batches([4, 4])
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        layer_metrics(model, failing_loader(), num_images=100)
    assert_restored(model, before)


def test_model_is_restored_when_a_layer_is_broken():
    model = make_net().train()
    with torch.no_grad():
        model.act2.theta.zero_()  # θ = 0: levels are undefined
    before = snapshot(model)
    with pytest.raises(ValueError, match="act2"):
        layer_metrics(model, make_batches([4]), num_images=4)
    assert_restored(model, before)


def test_stops_after_num_images():
    calls = []

    def loader():
        for images, labels in make_batches([5, 5, 5, 5]):
            calls.append(len(images))
            yield images, labels

    _, hists, images = level_histograms(make_net(), loader(), num_images=10)
    assert images == 10 and calls == [5, 5]
    assert sum(hists[2]) == 10 * 10


def test_bad_arguments():
    model = make_net()
    batches = make_batches([4])

    def untouchable():
        raise AssertionError("the loader must not be read")
        yield

    with pytest.raises(ValueError, match="variant"):
        layer_metrics(model, untouchable(), variant="bogus")
    with pytest.raises(ValueError):
        layer_metrics(model, untouchable(), alpha=2.0)
    with pytest.raises(ValueError):
        layer_metrics(model, untouchable(), num_images=0)
    with pytest.raises(ValueError, match="no QCFS"):
        layer_metrics(nn.Sequential(nn.Linear(2, 2)), batches)
    with pytest.raises(DataError):
        layer_metrics(model, [], num_images=5)
    with pytest.raises(DataError):
        layer_metrics(model, [("not a tensor", 0)], num_images=5)


def test_layer_that_never_runs_is_named():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.used = QCFS(2, 1.0)
            self.unused = QCFS(2, 1.0)

        def forward(self, x):
            return self.used(self.fc(x))

    model = Skips()
    batches = [(torch.randn(3, 4), torch.zeros(3))]
    with pytest.raises(ValueError, match="unused"):
        layer_metrics(model, batches, num_images=3)


def _result(name, metric, cluster):
    stats = LayerStats(1.0, 0.0, 3.0, metric, math.isinf(metric), 100, 1)
    return LayerResult(name, 4, (1, 2, 3, 4, 90), stats, cluster)


@pytest.mark.parametrize(
    "metrics", [[1.0, 3.0, 2.5, math.inf], [0.5, 500.0, 0.0, 20.0], [math.inf, math.inf]]
)
def test_metric_plot_is_a_png(tmp_path, metrics):
    import matplotlib._pylab_helpers as helpers

    results = [_result(f"layer{i}", m, i % 2) for i, m in enumerate(metrics)]
    png = metric_figure_png(results, new_levels=[1 + i % 2 for i in range(len(metrics))])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    path = tmp_path / "al_metric.png"
    save_metric_plot(path, results)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert helpers.Gcf.get_num_fig_managers() == 0  # no pyplot state
    with pytest.raises(ValueError):
        metric_figure_png([])


# -- the level histogram kernel ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [1, 4, 16, 17, 300, 1024, 1025, 3000])
def test_histogram_kernel_equals_bincount_of_level_index(dtype, L):
    """Every variant and thread count, every counting scheme (L ≤ 16, ≤ 1024, larger)."""
    from pascal_snn import kernel
    from pascal_snn.qcfs import level_index

    g = torch.Generator().manual_seed(L)
    theta = torch.tensor(2.7, dtype=dtype)
    act = QCFS(L, 2.7).to(dtype)
    with torch.no_grad():
        h = act(torch.randn(5000, generator=g, dtype=dtype) * 3)  # outputs on the levels
        h[:7] = (torch.arange(7, dtype=dtype) % L + 0.5) * theta / L  # halfway: round to even
    expected = torch.bincount(level_index(h, L, theta), minlength=L + 1)
    for k in kernel.variants():
        for threads in (1, 2, 3):
            hist = torch.zeros(L + 1, dtype=torch.int64)
            tuning = kernel.Tuning(k, threads, grain=1)
            assert kernel.level_histogram(h, float(theta), L, hist, tuning) == 0
            assert torch.equal(hist, expected), (k.isa, threads)
            bad = torch.cat([h, torch.tensor([-theta, 2 * theta, math.nan], dtype=dtype)])
            assert kernel.level_histogram(bad, float(theta), L, hist, tuning) == 3
            assert torch.equal(hist, 2 * expected), (k.isa, threads)


def test_histogram_of_outputs_outside_the_levels_raises_on_every_path():
    model = nn.Sequential(nn.Linear(4, 6), QCFS(4, 2.0))
    with torch.no_grad():
        model[1].theta.fill_(math.nan)
    data = [(torch.randn(3, 4), torch.zeros(3))]
    with pytest.raises(ValueError, match=r"outside 0\.\.4"):
        level_histograms(model, data, 3)
    with pytest.raises(ValueError, match=r"outside 0\.\.4"):
        level_histograms(model.half(), [(x.half(), y) for x, y in data], 3)  # torch path


def test_a_metric_that_separates_no_layer_is_refused():
    """Every level of every layer holds at least α of the outputs: A = 0, M = 0 for all layers.
    A plan from that would put every layer at the smallest L; it is refused, naming why."""
    from torch.utils.data import TensorDataset

    from pascal_snn.al import plan_levels
    from pascal_snn.errors import ConfigError

    identity = nn.Linear(8, 8)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(8))
        identity.bias.zero_()
    model = nn.Sequential(QCFS(1, 1.0), identity, QCFS(1, 1.0))
    data = TensorDataset(torch.rand(400, 8, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ConfigError, match="does not separate the layers: all 2 have M = 0"):
        plan_levels(model, data, cluster_levels=(1, 2), num_images=400)
    # one level offered: nothing to choose, no refusal
    assert plan_levels(model, data, cluster_levels=(1,), num_images=400).levels == (1, 1)
