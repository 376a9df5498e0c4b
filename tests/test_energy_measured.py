"""Operations counted on a real run of the converted network (SPEC §6)."""

import itertools
import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pascal_snn import QCFS, convert
from pascal_snn.energy import count_acs, energy_report, layer_table, measure
from pascal_snn.energy.plot import energy_breakdown_figure, save_figure, spike_rate_figure
from pascal_snn.io import write_json
from pascal_snn.spiking import MatMulLayer
from tests.models_for_tests import FunctionalNet, ResidualMaxPoolNet, randomize_batchnorm


def brute_force_conv_acs(x, conv: nn.Conv2d) -> int:
    """Σ over outputs of the non-zero inputs in their receptive field, in plain loops."""
    n, c_in, h, w = x.shape
    kh, kw = conv.kernel_size
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    g = conv.groups
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    per_group_in, per_group_out = c_in // g, conv.out_channels // g
    nz = (x != 0).tolist()
    total = 0
    for b, co, oy, ox in itertools.product(
        range(n), range(conv.out_channels), range(h_out), range(w_out)
    ):
        group = co // per_group_out
        for ci in range(group * per_group_in, (group + 1) * per_group_in):
            for ky, kx in itertools.product(range(kh), range(kw)):
                iy, ix = oy * sh - ph + ky * dh, ox * sw - pw + kx * dw
                if 0 <= iy < h and 0 <= ix < w and nz[b][ci][iy][ix]:
                    total += 1
    return total


def brute_force_linear_acs(x, fc: nn.Linear) -> int:
    return sum(1 for row in (x != 0).tolist() for v in row for _ in range(fc.out_features) if v)


@given(
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    kernel=st.integers(1, 3),
    size=st.integers(3, 7),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_count_acs_equals_brute_force_on_random_spikes(
    stride, padding, dilation, groups, kernel, size, density, seed
):
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(4, 6, kernel, stride, padding, dilation, groups)
    x = (torch.rand(2, 4, size, size, generator=g) < density).float() * 0.5
    if size + 2 * padding < dilation * (kernel - 1) + 1:
        return  # no output
    assert count_acs(conv, x) == brute_force_conv_acs(x, conv)


class TinyNet(nn.Module):
    """Image → conv (stride 2, padding 1) → IF → conv (stride 2, padding 1) → IF → linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, stride=2, padding=1)
        self.act1 = QCFS(3, 1.0)
        self.conv2 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.act2 = QCFS(2, 1.0)
        self.fc = nn.Linear(4 * 2 * 2, 5)

    def forward(self, x):
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.fc(x.flatten(1))


def _capture_inputs(net):
    seen: dict[str, list[torch.Tensor]] = {}
    handles = [
        m.register_forward_hook(lambda m, i, o, name=name: seen.setdefault(name, []).append(i[0]))
        for name, m in net.matmul_layers()
    ]
    return seen, handles


def test_measured_acs_equal_brute_force_on_a_real_run():
    torch.manual_seed(0)
    model = TinyNet().eval()
    images = torch.rand(7, 1, 7, 7) * 2
    net = convert(model, example_input=images)
    seen, handles = _capture_inputs(net)
    m = measure(net, [(images[:4], None), (images[4:], None)])
    for h in handles:
        h.remove()
    ops = {layer.name: layer for layer in m.layers}
    assert m.images == 7
    assert ops["conv1"].input == "image" and ops["conv1"].acs == 0
    assert ops["conv1"].macs == 7 * layer_table(model, (1, 7, 7))[0].macs  # dense, one step
    conv2_in = torch.cat(seen["conv2"])  # [3 steps · 7 images folded in each batch]
    fc_in = torch.cat(seen["fc"])
    assert conv2_in.count_nonzero() > 0 and fc_in.count_nonzero() > 0
    assert ops["conv2"].acs == brute_force_conv_acs(conv2_in, model.conv2)
    assert ops["fc"].acs == brute_force_linear_acs(fc_in, model.fc)
    assert ops["conv2"].bias_adds == 3 * 7 * 4 * 2 * 2  # every output, every step
    assert m.acs == ops["conv2"].acs + ops["fc"].acs


def test_spike_rates_come_from_the_if_outputs():
    torch.manual_seed(1)
    images = torch.rand(6, 1, 7, 7) * 2
    net = convert(TinyNet().eval(), example_input=images)
    outputs: dict[str, list[torch.Tensor]] = {}
    for name, layer in net.if_layers():
        layer.register_forward_hook(
            lambda m, i, o, name=name: outputs.setdefault(name, []).append(o)
        )
    m = measure(net, [images])
    ops = {layer.name: layer for layer in m.layers}
    for layer, source in (("conv2", "act1"), ("fc", "act2")):
        spikes = sum(int(o.count_nonzero()) for o in outputs[source])
        neurons = outputs[source][0][0].numel()
        assert ops[layer].spike_rate == spikes / (6 * neurons)
    assert ops["conv1"].spike_rate is None
    for n, (_, layer) in zip(m.neurons, net.if_layers(), strict=True):
        assert n.updates == tuple(int(u) for u in layer.updates)
        assert n.inhibitory == int(layer.inhibitory) and n.images == 6


class AddFeedsConv(nn.Module):
    """A conv fed directly by the sum of two IF outputs (no neuron after the add)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
        self.act1 = QCFS(4, 1.0)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.act2 = QCFS(2, 1.0)
        self.conv3 = nn.Conv2d(2, 2, 3, padding=1)
        self.act3 = QCFS(2, 1.0)
        self.fc = nn.Linear(2 * 16, 3)

    def forward(self, x):
        a = self.act1(self.conv1(x))
        b = self.act2(self.conv2(a))
        return self.fc(self.act3(self.conv3(a + b)).flatten(1))


def test_an_add_of_two_if_outputs_counts_both():
    torch.manual_seed(2)
    net = convert(AddFeedsConv().eval())
    m = measure(net, [torch.rand(5, 1, 4, 4) * 2])
    by = {n.name: n for n in m.neurons}
    conv3 = next(layer for layer in m.layers if layer.name == "conv3")
    assert conv3.input == "spikes"
    spikes = by["act1"].output_spikes + by["act2"].output_spikes
    assert by["act1"].output_spikes > 0 and by["act2"].output_spikes > 0
    assert conv3.spike_rate == spikes / (5 * by["act1"].neurons)


def test_num_images_truncates_the_last_batch():
    net = convert(TinyNet().eval())
    batches = [(torch.rand(4, 1, 7, 7), torch.zeros(4)) for _ in range(3)]
    m = measure(net, batches, num_images=6)
    assert m.images == 6
    assert all(n.images == 6 for n in m.neurons)
    assert all(layer.images == 6 for layer in m.layers)


@pytest.mark.parametrize(
    ("factory", "shape"), [(ResidualMaxPoolNet, (1, 8, 8)), (FunctionalNet, (3, 8, 8))]
)
def test_report_of_a_measured_run(factory, shape, tmp_path):
    model = factory().eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(3))
    loader = [(torch.rand(4, *shape) * 2, torch.zeros(4)) for _ in range(2)]
    typed = energy_report(model, loader, num_images=7)
    write_json(tmp_path / "energy.json", typed.as_dict())
    report = json.loads((tmp_path / "energy.json").read_text())  # the JSON form, read back
    assert report["images"] == typed.images == 7
    assert report["input_shape"] == list(shape)
    measured = report["measured"]
    # counted energy: first-layer MACs and counted ACs against the ANN's MACs
    fp32 = measured["counted_energy_pj"]["fp32"]
    assert fp32["ann"] == pytest.approx(report["totals"]["ann_macs"] * 4.6)
    assert fp32["snn"] == pytest.approx(
        measured["macs_per_image"] * 4.6 + measured["acs_per_image"] * 0.9
    )
    assert report["layers"][0]["input"] == "image"
    assert report["layers"][0]["measured"]["spike_rate"] is None
    assert report["analytic"]["b"] == 0.75
    assert len(report["neurons"]) == 4
    assert [n["name"] for n in report["neurons"]] == [n.name for n in typed.neurons]
    for fig, name in (
        (spike_rate_figure(typed), "a.png"),
        (energy_breakdown_figure(typed), "b.png"),
    ):
        save_figure(fig, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_measure_needs_a_converted_network_and_images():
    with pytest.raises(TypeError):
        measure(TinyNet(), [torch.rand(1, 1, 7, 7)])  # type: ignore[arg-type]
    from pascal_snn.errors import DataError

    with pytest.raises(DataError):
        measure(convert(TinyNet().eval()), [])


def test_hooks_are_removed_after_measuring():
    net = convert(TinyNet().eval())
    measure(net, [torch.rand(2, 1, 7, 7)])
    assert all(not m._forward_hooks for m in net.modules() if isinstance(m, MatMulLayer))
