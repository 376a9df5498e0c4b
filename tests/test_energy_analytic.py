"""The paper's energy model (§4.2, A.4): r', r_E, T_norm, T_eff, Table 3 energy ratios."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pascal_snn import QCFS
from pascal_snn.energy import (
    FP32,
    INT8,
    LayerRow,
    energy_ratio,
    energy_report,
    layer_energy,
    op_fractions,
    r_e,
    r_prime,
    t_eff,
    t_norm,
    timesteps,
)


def conv(c_in, k=3, groups=1, name="c"):
    return LayerRow(name, "conv", c_in, 8, k, k, 4, 4, groups, c_in * 8 * k * k * 16 // groups)


def linear(c_in, name="fc"):
    return LayerRow(name, "linear", c_in, 8, 1, 1, 1, 1, 1, c_in * 8)


def test_presets_are_horowitz_45nm():
    assert (FP32.e_mac_pj, FP32.e_ac_pj) == (4.6, 0.9)
    assert (INT8.e_mac_pj, INT8.e_ac_pj) == (0.23, 0.03)


@pytest.mark.parametrize(
    ("b", "c", "fp32", "int8"),
    [  # paper Table 3, all rows
        (0.66, 0.005, 7.49, 11.03),
        (0.62, 0.005, 7.96, 11.70),
        (0.73, 0.006, 6.76, 9.94),
        (0.86, 0.008, 5.72, 8.38),
        (0.91, 0.008, 5.42, 7.95),
    ],
)
def test_energy_ratio_reproduces_table3(b, c, fp32, int8):
    assert round(energy_ratio(1.0, b, c, "fp32"), 2) == fp32
    assert round(energy_ratio(1.0, b, c, "int8"), 2) == int8
    assert energy_ratio(1.0, b, c, INT8) == energy_ratio(1.0, b, c, "int8")


def test_energy_ratio_rejects_bad_input():
    with pytest.raises(ValueError, match="preset"):
        energy_ratio(1.0, 0.5, 0.1, "fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="c"):
        energy_ratio(1.0, 0.5, 1.5)


def test_r_prime_conv_and_linear():
    assert r_prime(conv(64), 0.75) == pytest.approx(1 / (64 * 9 * 0.75), rel=1e-15)
    assert r_prime(linear(4096), 0.5) == pytest.approx(1 / (4096 * 0.5), rel=1e-15)
    # a grouped conv sums C_i/groups inputs per output
    assert r_prime(conv(64, groups=4), 1.0) == pytest.approx(1 / (16 * 9), rel=1e-15)
    assert r_prime(conv(64), 0.0) == math.inf
    with pytest.raises(ValueError):
        r_prime(conv(64), -0.1)


@given(r=st.floats(0, 1e3, allow_subnormal=False), L=st.integers(1, 64))
def test_r_e_formula_and_bounds(r, L):
    got = r_e(r, L)
    assert got == pytest.approx((1 + (5 * L - 2) * r) / (1 + L * r), rel=1e-12)
    assert 1.0 - 1e-12 <= got <= (5 * L - 2) / L + 1e-12  # between no IF cost and IF only


def test_r_e_limits():
    assert r_e(0.0, 4) == 1.0
    assert r_e(math.inf, 4) == 18 / 4
    assert r_e(1.0, 1) == 2.0  # (1 + 3) / (1 + 1)


def test_t_eff_uses_every_layer_and_refuses_mismatched_lengths():
    # 20 layers: more than any per-QCFS-layer list (15 for VGG-16) a zip could pair them with.
    rows = [conv(3)] + [conv(64)] * 15 + [linear(512)] * 4
    rates = [0.75] * 20
    steps = [2, 1] * 8 + [8, 8, 8, 16]  # the expensive layers are the last ones
    ts = timesteps(rows, rates, steps)
    expected = [
        (1 + (5 * L - 2) * rp) / (1 + L * rp) * L
        for rp, L in ((1 / (row.fan_in * 0.75), L) for row, L in zip(rows, steps, strict=True))
    ]
    assert ts.t_eff == pytest.approx(sum(expected) / 20, rel=1e-12)
    assert ts.t_eff > 3.0  # truncating to the first 15 layers would give < 1.7
    assert ts.t_norm is None  # T_norm needs one step for all layers
    with pytest.raises(ValueError, match="one value per layer"):
        t_eff(ts.r_es, steps[:15])
    with pytest.raises(ValueError, match="one value per layer"):
        timesteps(rows, rates[:15], steps)
    with pytest.raises(ValueError):
        t_norm([], 4)


def test_uniform_steps_give_t_norm_equal_t_eff():
    rows = [conv(3), conv(64), linear(256)]
    ts = timesteps(rows, [0.75] * 3, [4] * 3)
    assert ts.t_norm == pytest.approx(ts.t_eff, rel=1e-15)
    assert ts.t_norm == pytest.approx(t_norm(ts.r_es, 4), rel=1e-15)


def test_op_fractions_mean_and_mac_weighted():
    rows = [conv(3, name="first"), conv(64, name="a"), linear(512, name="b")]
    rates = [None, 0.5, 1.0]
    total = sum(r.macs for r in rows)
    mean = op_fractions(rows, rates)
    assert (mean.a, mean.b) == (1.0, 0.75)
    assert mean.c == rows[0].macs / total
    weighted = op_fractions(rows, rates, "macs")
    assert weighted.b == pytest.approx((rows[1].macs * 0.5 + rows[2].macs) / (total - rows[0].macs))
    # the MAC-weighted ratio is exactly E_ANN / E_SNN of the per-layer estimate
    energies = layer_energy(rows, rates, preset="fp32")
    exact = sum(e.ann_pj for e in energies) / sum(e.snn_pj for e in energies)
    assert weighted.ratio("fp32") == pytest.approx(exact, rel=1e-12)
    assert energies[0].snn_macs == rows[0].macs and energies[0].snn_acs == 0
    assert energies[2].snn_acs == rows[2].macs * 1.0


def _vgg16(classes, head, L):
    from pascal_snn.models import create

    return create("vgg16", classes, head=head, L=L)


@pytest.mark.parametrize(
    ("classes", "head", "shape", "L", "t_norm_", "c"),
    [
        (10, "cifar", (3, 32, 32), 4, 4.19, 0.005),  # paper: 4.21
        (100, "cifar", (3, 32, 32), 8, 8.73, 0.005),  # paper: 8.79
        (1000, "imagenet", (3, 224, 224), 16, 18.37, 0.006),  # paper: 18.37
    ],
)
def test_vgg16_t_norm_from_the_model(classes, head, shape, L, t_norm_, c):
    report = energy_report(_vgg16(classes, head, L), input_shape=shape)
    analytic = report.analytic
    assert len(report.layers) == 16  # 13 conv + 3 linear, all of them in the mean
    assert analytic.t_norm is not None and round(analytic.t_norm, 2) == t_norm_
    assert analytic.t_eff == pytest.approx(analytic.t_norm, rel=1e-12)
    assert round(analytic.c, 3) == c
    assert report.measured is None


@pytest.mark.parametrize(
    ("name", "classes", "stem", "shape", "layers", "t_norm_", "latency"),
    [  # paper: 8.22 (ResNet-18 CIFAR-10), 8.17 (ResNet-34 ImageNet); see docs/energy.md
        ("resnet18", 10, "cifar", (3, 32, 32), 21, 9.02, 256),
        ("resnet34", 1000, "imagenet", (3, 224, 224), 37, 8.50, 496),
        ("resnet34", 1000, "cifar", (3, 224, 224), 37, 8.67, 496),
    ],
)
def test_resnet_t_norm_from_the_model(name, classes, stem, shape, layers, t_norm_, latency):
    from pascal_snn.models import create

    report = energy_report(create(name, classes, stem=stem, L=8), input_shape=shape)
    assert len(report.layers) == layers  # shortcut convs included
    assert report.analytic.t_norm is not None and round(report.analytic.t_norm, 2) == t_norm_
    assert report.latency.total_steps == latency


def test_a_layer_feeding_no_neuron_uses_its_input_length():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), QCFS(2), nn.Flatten(), nn.Linear(16, 8), QCFS(8), nn.Linear(8, 3)
    )
    report = energy_report(model, input_shape=(1, 4, 4))
    assert [x.L for x in report.layers] == [2, 8, 8]
    assert [x.t_in for x in report.layers] == [1, 2, 8]
    assert report.analytic.t_norm is None
    assert report.as_dict()["totals"] == {
        "layers": 3,
        "ann_macs": report.ann_macs,
        "uniform_L": None,
    }
