"""The input layer as the paper's Algorithm 2 (SPEC §3.2, revised decision).

An IF layer fed by the real-valued image (T_in = 1) computes its level with the ANN's own QCFS
formula, so its spike counts equal the ANN's levels bit for bit in every dtype, even within an
ulp of a level boundary, where Algorithm 1's membrane arithmetic (θ*/2 + x, then compare)
rounds differently. Its spike statistics stay Algorithm 1's.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pascal_snn import QCFS, convert
from pascal_snn.neuron import pasc_if_input, pasc_if_reference, pasc_if_train
from pascal_snn.qcfs import level_index


def adversarial(theta: float, L: int, dtype: torch.dtype, n: int, g: torch.Generator):
    """Inputs within a few ulps of the level boundaries (k − ½)·θ/L, k = −1 … L + 1."""
    k = torch.randint(-1, L + 2, (n,), generator=g).to(torch.float64)
    boundary = ((k - 0.5) * theta / L).to(dtype)
    ulps = torch.randint(-4, 5, (n,), generator=g).to(dtype)
    return boundary + ulps * torch.finfo(dtype).eps * boundary.abs().clamp(min=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_levels_equal_the_anns_bit_for_bit_near_boundaries(dtype):
    g = torch.Generator().manual_seed(0)
    algorithm1_differs = 0
    for _ in range(40):
        L = int(torch.randint(1, 17, (1,), generator=g))
        theta = float(torch.empty(1).uniform_(0.01, 10, generator=g))
        qcfs = QCFS(L, theta).to(dtype)
        x = adversarial(theta, L, dtype, 300, g)
        with torch.no_grad():
            ann = level_index(qcfs(x), L, qcfs.theta.to(dtype))
        train, _ = pasc_if_input(x.unsqueeze(0), qcfs.theta.detach(), L)
        assert torch.equal((train != 0).sum(0), ann)
        one, _ = pasc_if_train(x.unsqueeze(0), qcfs.theta.detach(), L)
        algorithm1_differs += int(((one != 0).sum(0) != ann).sum())
    if dtype == torch.float32:
        assert algorithm1_differs > 0  # the inputs are adversarial enough to matter


@given(
    L=st.integers(1, 16),
    theta=st.floats(1e-3, 100),
    values=st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=20),
)
def test_statistics_are_algorithm_1s(L, theta, values):
    """Away from boundaries the two agree on everything: counts, spikes, updates."""
    x = torch.tensor(values, dtype=torch.float64).unsqueeze(0)
    t = torch.tensor(theta, dtype=torch.float64)
    u = x * L / t + 0.5
    x = x[:, (u - u.round()).abs().squeeze(0) > 1e-6]  # no ties: both compute one level
    if x.numel() == 0:
        return
    train, counts = pasc_if_input(x, t, L)
    count, reference = pasc_if_reference(x, t, L)
    assert torch.equal((train != 0).sum(0), count)
    assert set(train.unique().tolist()) <= {0.0, float(t / L)}
    for field in ("excitatory", "inhibitory", "output"):
        assert int(getattr(counts, field)) == int(getattr(reference, field)), field
    for field in ("updates_stage1", "updates_stage2", "updates_stage3"):
        assert getattr(counts, field) == getattr(reference, field), field


def test_the_converted_input_layer_matches_the_float32_ann_exactly():
    g = torch.Generator().manual_seed(1)
    theta, L = 0.37, 7
    model = nn.Sequential(nn.Flatten(), QCFS(L, theta), nn.Linear(64, 4)).eval()
    x = adversarial(theta, L, torch.float32, 8 * 64, g).reshape(8, 1, 8, 8)
    levels = {}
    model[1].register_forward_hook(
        lambda m, i, o: levels.update(ann=level_index(o, L, m.theta.to(o.dtype)))
    )
    snn = convert(model, example_input=x)
    (_name, layer), *_ = snn.if_layers()
    assert layer.from_image and layer.t_in == 1
    layer.register_forward_hook(
        lambda m, i, o: levels.update(snn=(o != 0).reshape(L, 8, 64).sum(0))
    )
    with torch.no_grad():
        ann, out = model(x), snn(x)
    assert torch.equal(levels["snn"], levels["ann"])
    assert int(layer.samples) == 8 and int(layer.output_spikes) == int(levels["ann"].sum())
    assert float((out - ann).abs().max()) < 1e-5


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    view = {torch.float32: torch.int32, torch.float64: torch.int64}[a.dtype]
    return a.dtype == b.dtype and torch.equal(a.view(view), b.view(view))


SPECIAL = [0.0, -0.0, 1e-45, -1e-45, 5e-324, 1e30, -1e30, float("inf"), float("-inf")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_equals_torch_bit_for_bit_on_every_variant(dtype):
    """The input layer's C kernel and its torch path: the same train (bits, sign of zero) and
    the same totals, near boundaries and on special values, at 1–3 threads per variant."""
    from pascal_snn import kernel
    from pascal_snn.neuron import _input_train_torch, _spike_value

    g = torch.Generator().manual_seed(2)
    variants = 0
    for case in range(30):
        L = int(torch.randint(1, 17, (1,), generator=g))
        theta = torch.tensor(float(torch.empty(1).uniform_(0.01, 10, generator=g)))
        x = adversarial(float(theta), L, dtype, 1500, g).reshape(1, 3, 500)
        x[0, 0, : len(SPECIAL)] = torch.tensor(SPECIAL, dtype=dtype)
        if case % 2:
            x = x.transpose(1, 2)  # a step in another dense layout
        train, totals = _input_train_torch(x, theta, L)
        spike = _spike_value(theta, L, dtype)
        for tuning in [kernel.Tuning(k, t, grain=1) for k in kernel.variants() for t in (1, 2, 3)]:
            got = kernel.pasc_input(x[0], float(theta.to(dtype)), L, spike, tuning)
            assert got is not None
            variants += 1
            assert same_bits(got[0], train), (tuning, L)
            assert got[0].stride()[1:] == x.stride()[1:]
            assert got[1] == tuple(int(v) for v in totals), (tuning, L)
    assert variants == 30 * 3 * len(kernel.variants())


def test_nan_input_is_left_to_torch():
    from pascal_snn import kernel
    from pascal_snn.neuron import _input_train_torch

    x = torch.tensor([[0.3, float("nan"), 2.0]])
    theta = torch.tensor(1.0)
    assert kernel.pasc_input(x[0], 1.0, 4, 0.25) is None
    # and so is an L whose block sums could overflow the kernel's 32-bit lanes
    assert kernel.pasc_input(torch.tensor([0.3]), 1.0, 1 << 21, 2**-21) is None
    train, counts = pasc_if_input(x, theta, 4)
    expected, totals = _input_train_torch(x, theta, 4)
    assert same_bits(train, expected) and int(counts.excitatory) == int(totals[0])
