"""The fast PASC neuron (pasc_if, pasc_if_train, PascIF) equals the reference bit for bit.

Inputs are arbitrary floats (not only dyadic grids): float32 and float64 trains, thresholds in
either dtype, values on and next to level boundaries (k − ½)·θ*, signed zeros, subnormals,
huge values and non-finite values. Every comparison is exact: counts, output trains (with
``torch.equal`` on the float values and their sign bits) and every statistic — for the default
path, the torch path, and every C-kernel variant this CPU runs (base, SSE4.2, AVX2, AVX-512)
at 1, 2 and 3 threads with the per-thread work floor removed, so small inputs are split too.
"""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pascal_snn import kernel
from pascal_snn.neuron import (
    _exact_sum,
    _pasc_if_torch,
    _pasc_if_train_torch,
    _spike_value,
    pasc_if,
    pasc_if_reference,
    pasc_if_train,
    stage2_steps,
    thermometer,
)
from pascal_snn.spiking import PascIF

DTYPES = st.sampled_from([torch.float32, torch.float64])
SPECIAL = [0.0, -0.0, 1e-45, -1e-45, 5e-324, 1e30, -1e30, math.inf, -math.inf, math.nan]


@st.composite
def train_case(draw, special: bool, max_L: int = 12, max_t: int = 12, max_n: int = 24):
    """(x [T_in, n], theta tensor, L): random floats, boundary sums and (optionally) specials."""
    dtype = draw(DTYPES)
    theta_dtype = draw(st.sampled_from([dtype, torch.float32]))
    L = draw(st.integers(1, max_L))
    t_in = draw(st.integers(1, max_t))
    theta = draw(st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False))
    spike = float((torch.tensor(theta, dtype=theta_dtype) / L).to(dtype))
    n = draw(st.integers(1, max_n))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0, 50.0]))
    x = torch.randn(t_in, n, generator=g, dtype=torch.float64) * spike * scale
    for j in range(n):  # push some neurons' sums onto (or one ulp off) a level boundary
        kind = draw(st.sampled_from(["random", "boundary", "ulp", "zero"]))
        if kind == "zero":
            x[:, j] = 0.0
        elif kind != "random":
            k = draw(st.integers(-2, L + 2))
            x[-1, j] += (k - 0.5) * spike - float(x[:, j].sum())
            if kind == "ulp":
                x[-1, j] = math.nextafter(float(x[-1, j]), draw(st.sampled_from([-1, 1])) * 1e300)
    x = x.to(dtype)
    if special:
        for _ in range(draw(st.integers(1, 4))):
            x[draw(st.integers(0, t_in - 1)), draw(st.integers(0, n - 1))] = draw(
                st.sampled_from(SPECIAL)
            )
    return x, torch.tensor(theta, dtype=theta_dtype), L


def thermometer_reference(count, L, spike):
    """The thermometer code as first written: an integer comparison per step, then a scale."""
    steps = torch.arange(L).view(L, *([1] * count.dim()))
    return (steps < count.unsqueeze(0)).to(spike.dtype) * spike


def tunings():
    """Every kernel variant at 1, 2 and 3 threads, splitting even the smallest inputs."""
    return [kernel.Tuning(k, threads, grain=1) for k in kernel.variants() for threads in (1, 2, 3)]


def all_paths(x, theta, L):
    """``(label, count int64, train, counts)`` of every implementation that runs ``x`` here."""
    spike = _spike_value(theta, L, x.dtype)
    fast, c_fast = pasc_if(x, theta, L)
    train, c_train = pasc_if_train(x, theta, L)
    yield "default", fast, train, (c_fast, c_train)
    torch_count, c_torch = _pasc_if_torch(x, spike, L)
    torch_train, c_torch_train = _pasc_if_train_torch(x, spike, L)
    yield "torch", torch_count, torch_train, (c_torch, c_torch_train)
    for tuning in tunings():
        got = kernel.pasc_if(x, spike, L, stage2_steps(x.shape[0], L), True, True, tuning)
        if got is None:  # a dtype or layout the kernel declines: the default path used torch
            continue
        k_train, k_count, totals = got
        label = f"kernel {tuning.kernels.isa} × {tuning.threads}"
        yield label, k_count, k_train, (totals,)


def assert_counts(c, c_ref, label):
    if isinstance(c, tuple):  # the kernel's (excitatory, inhibitory, output) totals
        assert c == (int(c_ref.excitatory), int(c_ref.inhibitory), int(c_ref.output)), label
        return
    assert int(c.excitatory) == int(c_ref.excitatory), label
    assert int(c.inhibitory) == int(c_ref.inhibitory), label
    assert int(c.output) == int(c_ref.output), label
    assert (c.updates_stage1, c.updates_stage2, c.updates_stage3) == (
        c_ref.updates_stage1,
        c_ref.updates_stage2,
        c_ref.updates_stage3,
    ), label


def assert_same(x, theta, L, kernel_runs=None):
    """Every path equals the reference; ``kernel_runs`` (default: float32/64) says whether the
    kernel variants must have run too (False: a layout the kernel declines)."""
    ref, c_ref = pasc_if_reference(x, theta, L)
    spike = (theta / L).to(x.dtype)
    expected = thermometer_reference(ref, L, spike)
    assert torch.equal(thermometer(ref, L, spike), expected)
    assert int(c_ref.output) == int(ref.sum())
    paths = 0
    for label, count, train, counts in all_paths(x, theta, L):
        paths += 1
        assert count.dtype == torch.int64, label
        assert torch.equal(count, ref), label
        assert train.dtype == x.dtype, label
        assert torch.equal(train, expected), label
        assert torch.equal(train.signbit(), expected.signbit()), label  # −0.0 only as θ*·0
        for c in counts:
            assert_counts(c, c_ref, label)
    if kernel_runs is None:
        kernel_runs = x.dtype in (torch.float32, torch.float64)
    assert paths == 2 + (3 * len(kernel.variants()) if kernel_runs else 0)


@given(train_case(special=False))
def test_fast_neuron_equals_reference_on_arbitrary_floats(case):
    assert_same(*case)


@given(train_case(special=True))
def test_fast_neuron_equals_reference_with_special_values(case):
    assert_same(*case)


@settings(max_examples=40)
@given(train_case(special=True, max_L=300, max_t=40))
def test_large_L_and_long_trains(case):
    assert_same(*case)


@settings(max_examples=25)
@given(train_case(special=True, max_L=16, max_n=3000))
def test_many_neurons_split_over_threads(case):
    # thousands of neurons: several 512-neuron blocks, split unevenly over 2 and 3 threads
    assert_same(*case)


@given(DTYPES, st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_non_contiguous_trains(dtype, t_in, L, seed):
    g = torch.Generator().manual_seed(seed)
    base = (torch.randn(t_in, 4, 6, 5, 3, generator=g, dtype=torch.float64) * 3).to(dtype)
    theta = torch.tensor(2.5, dtype=dtype)
    channels_last = base.permute(0, 1, 4, 2, 3)  # [T, B, C, H, W], each step channels-last
    assert_same(channels_last, theta, L)
    assert_same(base[:, :, ::2], theta, L, kernel_runs=False)  # steps with gaps: torch
    assert_same(base.transpose(0, 1).contiguous().transpose(0, 1), theta, L, kernel_runs=t_in == 1)
    train, _ = pasc_if_train(channels_last, theta, L)
    if kernel.available():  # the kernel keeps each step's layout for the next layer
        assert train.stride()[1:] == channels_last.stride()[1:]


@given(DTYPES, st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_multidimensional_trains(dtype, t_in, L, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(t_in, 2, 3, 4, 5, generator=g, dtype=torch.float64) * 2).to(dtype)
    assert_same(x, torch.tensor(3.0, dtype=dtype), L)


def test_stage2_stops_early_only_when_nothing_changes():
    # all neurons settle after one stage-2 step; the remaining 14 steps must change nothing
    x = torch.tensor([[2.4, -0.3, 0.2], [0.0, 0.0, 0.0]], dtype=torch.float64)
    assert stage2_steps(2, 16) == 15
    assert_same(x, torch.tensor(16.0, dtype=torch.float64), 16)
    # one neuron keeps emitting inhibitory spikes for every stage-2 step
    x = torch.tensor([[-100.0, 0.2]], dtype=torch.float32)
    _, c_ref = pasc_if_reference(x, torch.tensor(4.0), 4)
    assert int(c_ref.inhibitory) == 3
    assert_same(x, torch.tensor(4.0), 4)


@given(DTYPES, st.sampled_from([0.0, -0.0, -1.0, -7.5]), st.integers(1, 5), st.integers(0, 99))
def test_non_positive_threshold_follows_the_reference(dtype, theta, L, seed):
    # not a valid QCFS threshold, but the algorithm is defined for it: a neuron with
    # mem < θ* ≤ 0 counts as firing, never as inhibitory
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(3, 8, generator=g, dtype=torch.float64) * 4).to(dtype)
    assert_same(x, torch.tensor(theta, dtype=dtype), L)


@given(st.sampled_from([torch.float16, torch.bfloat16]), st.integers(1, 5), st.integers(0, 999))
def test_half_precision_trains(dtype, L, seed):
    # counters are float32 here (float16 holds integers exactly only up to 2048)
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(3, 40, generator=g) * 3).to(dtype)
    assert_same(x, torch.tensor(2.7), L)


def test_empty_train():
    x = torch.zeros(3, 0)
    train, c = pasc_if_train(x, torch.tensor(1.0), 2)
    assert train.shape == (2, 0)
    assert int(c.excitatory) == int(c.inhibitory) == int(c.output) == 0


def test_exact_totals_past_the_float32_mantissa():
    # 2^24 + 3 is not a float32 number: a float32 accumulator cannot return it
    ones = torch.ones(2**24 + 3)
    assert int(_exact_sum(ones, ones.numel())) == 2**24 + 3
    assert _exact_sum(ones, ones.numel()).dtype == torch.int64


def test_module_statistics_and_train_match_reference():
    g = torch.Generator().manual_seed(0)
    layer = PascIF(torch.tensor(2.5), L=3, t_in=2)
    batches = [torch.randn(2 * 5, 4, 3, generator=g) * 2 for _ in range(3)]
    exc = inh = out = 0
    for folded in batches:
        y = layer(folded)
        steps = folded.reshape(2, 5, 4, 3)
        ref, c = pasc_if_reference(steps, layer.theta, 3)
        assert torch.equal(y, thermometer_reference(ref, 3, layer.spike).flatten(0, 1))
        exc, inh, out = exc + int(c.excitatory), inh + int(c.inhibitory), out + int(c.output)
    assert (int(layer.excitatory), int(layer.inhibitory), int(layer.output_spikes)) == (
        exc,
        inh,
        out,
    )
    assert int(layer.samples) == 15 and layer.neurons == 12
    assert layer.updates.tolist() == [2 * 12 * 15, 2 * 12 * 15, 3 * 12 * 15]
