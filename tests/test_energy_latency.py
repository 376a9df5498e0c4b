"""End-to-end latency of a layer-by-layer PASC schedule (SPEC §3.5)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pascal_snn import QCFS, convert
from pascal_snn.energy import chain_latency, energy_report, if_delay, latency
from tests.models_for_tests import FunctionalNet, ResidualMaxPoolNet


def chain(levels):
    layers: list[nn.Module] = [nn.Conv2d(1, 2, 3, padding=1)]
    for i, L in enumerate(levels):
        layers.append(QCFS(L, 1.0))
        if i == 1:
            layers.append(nn.AvgPool2d(2))  # per step: no delay
        layers.append(nn.Conv2d(2, 2, 3, padding=1))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).eval()


def test_if_delay_is_stage1_plus_stage2():
    assert if_delay(1, 4) == 4  # image in: 1 + (4 − 1)
    assert if_delay(4, 4) == 7
    assert if_delay(8, 2) == 15  # stage 2 runs max(T_in, L) − 1 = 7 steps


def test_uniform_vgg16_latency_dwarfs_t_norm():
    from pascal_snn.models import create

    model = create("vgg16", 10, L=4)
    lat = latency(model, (3, 32, 32))
    assert lat.total_steps == chain_latency([4] * 15) == 4 + 14 * 7 + 4  # 106 neuron steps
    report = energy_report(model, input_shape=(3, 32, 32))
    assert report.latency.total_steps == 106
    assert report.analytic.t_norm is not None and report.analytic.t_norm < 5


@given(st.lists(st.integers(1, 9), min_size=1, max_size=6))
def test_chain_latency_matches_the_graph_for_per_layer_steps(levels):
    model = chain(levels)
    lat = latency(model, (1, 8, 8) if len(levels) > 1 else (1, 4, 4))  # pooled once if > 1
    assert lat.total_steps == chain_latency(levels)
    assert [t.L for t in lat.neurons] == levels
    assert [t.t_in for t in lat.neurons] == [1, *levels[:-1]]
    assert lat.output_length == levels[-1]


def test_chain_latency_by_hand():
    # L = [2, 5, 1]: starts 0 → 2 (1+1) → 2+2+4 = 8 → 8+5+4 = 17; output lasts 1
    assert chain_latency([2, 5, 1]) == 18


@pytest.mark.parametrize(
    ("factory", "shape"), [(ResidualMaxPoolNet, (1, 8, 8)), (FunctionalNet, (3, 8, 8))]
)
def test_converted_network_and_ann_agree(factory, shape):
    model = factory().eval()
    net = convert(model)
    net(torch.rand(1, *shape))
    lat_net, lat_ann = latency(net), latency(model, shape)
    assert lat_net == lat_ann
    t_in = {name: m.t_in for name, m in net.if_layers()}
    assert {t.name: t.t_in for t in lat_net.neurons} == t_in


def test_residual_add_waits_for_both_branches():
    # ResidualMaxPoolNet, L = (4, 2, 1, 3): act1 starts at 4 (lasts 4); act2 at 4+4+3 = 11
    # (lasts 2); the add joins act2's branch (starts 11) with pool(act1) (4 steps): it starts at
    # 11 with length 4; act3 (L=1) at 11+4+3 = 18; act4 (t_in 1, L=3) at 18+1+2 = 21; end 24.
    lat = latency(ResidualMaxPoolNet(levels=(4, 2, 1, 3)), (1, 8, 8))
    assert [(t.name, t.input_start, t.t_in, t.output_start) for t in lat.neurons] == [
        ("act1", 0, 1, 4),
        ("act2", 4, 4, 11),
        ("act3", 11, 4, 18),
        ("act4", 18, 1, 21),
    ]
    assert lat.total_steps == 24
