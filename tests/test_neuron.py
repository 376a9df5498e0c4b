"""The PASC IF neuron (SPEC §3.2): Σ_t out[t] = QCFS(Σ_t X[t]), thermometer output.

Inputs are built on a dyadic grid with θ* = θ/L dyadic, so every floating-point operation of
both the neuron and QCFS is exact; the comparisons are then exact (atol = 0), including inputs
exactly on level boundaries (k − ½)·θ*.
"""

from fractions import Fraction
from math import floor

import torch
from hypothesis import given
from hypothesis import strategies as st

from pascal_snn import QCFS
from pascal_snn.neuron import pasc_if, pasc_if_reference, stage2_steps, thermometer
from pascal_snn.qcfs import level_index


@st.composite
def neuron_case(draw):
    """(x [T_in, n], theta, L) with dyadic spike value and inputs, boundaries included."""
    L = draw(st.integers(1, 16))
    t_in = draw(st.integers(1, 16))
    spike = draw(st.integers(1, 63)) * 2.0 ** draw(st.integers(-4, 2))
    theta = L * spike  # exact: L·spike has at most 10 significant bits
    unit = spike / 2 ** draw(st.integers(0, 3))
    n = draw(st.integers(1, 12))
    rows = []
    for _ in range(n):
        kind = draw(st.sampled_from(["random", "boundary", "large", "tiny"]))
        steps = [draw(st.integers(-40, 40)) * unit for _ in range(t_in)]
        if kind == "boundary":  # make Σ X land exactly on (k − ½)·θ*
            k = draw(st.integers(-3, L + 3))
            steps[-1] += (k - 0.5) * spike - sum(steps)
        elif kind == "large":
            steps[draw(st.integers(0, t_in - 1))] += draw(st.sampled_from([-1, 1])) * 1000 * spike
        elif kind == "tiny":
            steps = [0.0] * t_in
        rows.append(steps)
    x = torch.tensor(rows, dtype=torch.float64).T.contiguous()  # [T_in, n]
    return x, theta, L


@given(neuron_case())
def test_output_sums_to_qcfs_of_input_sum_exactly(case):
    x, theta, L = case
    spike = theta / L
    count, _ = pasc_if(x, torch.tensor(theta, dtype=torch.float64), L)
    out = thermometer(count, L, torch.tensor(spike, dtype=torch.float64))
    assert out.shape == (L, *x.shape[1:])
    # every output value is 0 or θ*, and the train is a thermometer code (1…1 0…0)
    assert set(out.unique().tolist()) <= {0.0, spike}
    fired = out > 0
    assert torch.equal(fired, fired.cummin(dim=0).values)
    # the integer level equals the exact-arithmetic level and the ANN's level
    total = x.sum(0)
    exact = [
        min(max(floor(Fraction(float(s)) / Fraction(spike) + Fraction(1, 2)), 0), L)
        for s in total.tolist()
    ]
    assert count.tolist() == exact
    act = QCFS(L, theta).double()
    with torch.no_grad():
        ann = act(total)
    assert torch.equal(count, level_index(ann, L, act.theta))
    # Σ_t out[t] = QCFS(Σ_t X[t]) with atol = 0
    assert torch.equal(out.sum(0), count.to(torch.float64) * spike)
    if L & (L - 1) == 0:  # k/L is exact for powers of two: the ANN value itself matches
        assert torch.equal(out.sum(0), ann)


@given(
    st.integers(1, 16),
    st.integers(1, 16),
    st.floats(0.05, 20.0),
    st.sampled_from([torch.float32, torch.float64]),
    st.integers(0, 2**31 - 1),
)
def test_fast_neuron_equals_reference_bit_for_bit(t_in, L, theta, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(t_in, 3, 5, generator=g, dtype=torch.float64) * theta).to(dtype)
    th = torch.tensor(theta, dtype=dtype)
    fast, c_fast = pasc_if(x, th, L)
    ref, c_ref = pasc_if_reference(x, th, L)
    assert torch.equal(fast, ref)
    assert int(c_fast.excitatory) == int(c_ref.excitatory)
    assert int(c_fast.inhibitory) == int(c_ref.inhibitory)
    assert int(c_fast.output) == int(c_ref.output) == int(ref.sum())
    assert (c_fast.updates_stage1, c_fast.updates_stage2, c_fast.updates_stage3) == (
        t_in * 15,
        stage2_steps(t_in, L) * 15,
        L * 15,
    )


def test_spike_bookkeeping_by_hand():
    # θ* = 1, L = 2, T_in = 3, inputs 3, −1, −1 (Σ = 1 → level 1). Stage 1: mem 0.5 → 3.5
    # fires (2.5) → 1.5 fires (0.5) → −0.5. Stage 2 (2 steps): inhibitory spike → 0.5, then idle.
    x = torch.tensor([[3.0], [-1.0], [-1.0]], dtype=torch.float64)
    count, c = pasc_if_reference(x, torch.tensor(2.0, dtype=torch.float64), 2)
    assert count.tolist() == [1]
    assert (int(c.excitatory), int(c.inhibitory), int(c.output)) == (2, 1, 1)


def test_negative_total_gives_silence_and_large_total_saturates():
    x = torch.tensor([[-5.0, 50.0]], dtype=torch.float64)
    count, _ = pasc_if(x, torch.tensor(4.0, dtype=torch.float64), 4)
    assert count.tolist() == [0, 4]


def test_thermometer_code():
    count = torch.tensor([0, 2, 3])
    out = thermometer(count, 3, torch.tensor(0.5))
    assert out.T.tolist() == [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.5, 0.5]]
