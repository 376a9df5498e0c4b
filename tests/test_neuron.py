"""The IF neurons (SPEC §3.2, §4): exact against the exact-arithmetic level and bit for bit
against the reference.

Part 1, exact arithmetic: Σ_t out[t] = QCFS(Σ_t X[t]) with a thermometer output. Inputs are
built on a dyadic grid with θ* = θ/L dyadic, so every floating-point operation of both the
neuron and QCFS is exact; the comparisons are then exact (atol = 0), including inputs exactly
on level boundaries (k − ½)·θ*.

Part 2, the fast PASC neuron (pasc_if, pasc_if_train, PascIF) equals the reference bit for bit.
Inputs are arbitrary floats (not only dyadic grids): float32 and float64 trains, thresholds in
either dtype, values on and next to level boundaries (k − ½)·θ*, signed zeros, subnormals,
huge values and non-finite values. Every comparison is exact: counts, output trains (with
``torch.equal`` on the float values and their sign bits) and every statistic — for the default
path, the torch path, and every C-kernel variant this CPU runs (base, SSE4.2, AVX2, AVX-512)
at 1, 2 and 3 threads with the per-thread work floor removed, so small inputs are split too.

Part 3, the vanilla IF neuron: the in-place step (kernel and torch path) equals
``vanilla_if_step`` bit for bit.
"""

import math
from fractions import Fraction
from math import floor

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pascal_snn import QCFS, kernel
from pascal_snn.neuron import (
    _exact_sum,
    _pasc_if_torch,
    _pasc_if_train_torch,
    _spike_value,
    if_train_totals,
    pasc_if,
    pasc_if_reference,
    pasc_if_train,
    stage2_steps,
    thermometer,
    vanilla_if_step,
    vanilla_if_step_,
)
from pascal_snn.qcfs import level_index
from pascal_snn.spiking import PascIF, VanillaIF


# -- part 1: exact arithmetic --------------------------------------------------------------------
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


# -- part 2: the fast PASC neuron equals the reference bit for bit -------------------------------
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


def fused_add_paths(a, b, spike, L):
    """``(label, train, totals)`` of the neuron reading ``a + b`` itself: the default path,
    the torch fallback and every kernel variant, each also writing over ``a`` when it may."""
    steps = stage2_steps(a.shape[0], L)
    yield "default", *if_train_totals(a, spike, L, y=b)
    work = a.clone()
    if a.shape[0] >= L:
        yield "default over a", *if_train_totals(work, spike, L, out=work[:L], y=b)
    train, c = _pasc_if_train_torch(a + b, spike, L)
    yield "torch", train, (c.excitatory, c.inhibitory, c.output)
    for tuning in tunings():
        got = kernel.pasc_if(a, spike, L, steps, True, False, tuning, y=b)
        assert got is not None  # same dtype and layout: the kernel runs
        yield f"kernel {tuning.kernels.isa} × {tuning.threads}", got[0], got[2]
        if a.shape[0] >= L:
            work = a.clone()
            got = kernel.pasc_if(work, spike, L, steps, True, False, tuning, out=work[:L], y=b)
            assert got is not None and got[0].data_ptr() == work.data_ptr()
            yield f"kernel {tuning.kernels.isa} × {tuning.threads} over a", got[0], got[2]


@given(train_case(special=True, max_n=600), st.integers(0, 2**31 - 1))
def test_a_fused_residual_add_equals_the_neuron_on_the_sum(case, seed):
    """PascIF(a, b) (a residual add fused into the neuron) gives, bit for bit, the train and
    totals of the neuron on the stored sum a + b, on every path, near level boundaries."""
    x, theta, L = case
    g = torch.Generator().manual_seed(seed)
    a = (torch.randn(x.shape, generator=g, dtype=torch.float64) * x.abs().mean()).to(x.dtype)
    b = x - a  # a + b lies on or near the boundaries train_case placed x on
    ref, c_ref = pasc_if_reference(a + b, theta, L)
    spike = _spike_value(theta, L, x.dtype)
    expected = thermometer_reference(ref, L, (theta / L).to(x.dtype))
    for label, train, totals in fused_add_paths(a, b, spike, L):
        assert torch.equal(train, expected), label
        assert torch.equal(train.signbit(), expected.signbit()), label
        assert tuple(int(t) for t in totals) == (
            int(c_ref.excitatory),
            int(c_ref.inhibitory),
            int(c_ref.output),
        ), label


def test_a_fused_add_needs_its_operands_alike_and_out_apart():
    a, b = torch.randn(4, 10), torch.randn(4, 10)
    assert kernel.pasc_if(a, 0.5, 4, 3, True, False, y=b[:, :5]) is None  # other shape
    assert kernel.pasc_if(a, 0.5, 4, 3, True, False, y=b.double()) is None  # other dtype
    assert kernel.pasc_if(a, 0.5, 4, 3, True, False, y=b.T.contiguous().T) is None  # layout
    if kernel.available():
        with pytest.raises(ValueError, match="out overlaps y"):
            kernel.pasc_if(a, 0.5, 4, 3, True, False, out=b, y=b)
    train, _ = if_train_totals(a, 0.5, 4, y=b.T.contiguous().T)  # torch path: the same train
    assert torch.equal(train, if_train_totals(a + b, 0.5, 4)[0])


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


# -- part 3: the vanilla IF neuron ---------------------------------------------------------------
def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal as bit patterns (−0.0 ≠ 0.0, NaN = NaN of the same payload)."""
    view = {torch.float32: torch.int32, torch.float64: torch.int64}[a.dtype]
    return a.dtype == b.dtype and torch.equal(a.view(view), b.view(view))


def vanilla_paths(mem: torch.Tensor, x: torch.Tensor, theta: float):
    """``(label, spikes, mem after)`` of every in-place implementation that runs here."""
    m = mem.clone()
    yield "default", vanilla_if_step_(m, x, torch.tensor(theta)), m
    m = mem.clone()
    th = torch.tensor(theta).to(x.dtype)  # θ as a float32 parameter, cast to the train's dtype
    m.add_(x)
    spikes = (m >= th).to(x.dtype).mul_(th)
    m.sub_(spikes)
    yield "torch ops in place", spikes, m
    for tuning in tunings():
        m = mem.clone()
        got = kernel.vanilla_if(x, m, float(th), tuning=tuning)
        if got is not None:
            yield f"kernel {tuning.kernels.isa} × {tuning.threads}", got, m


@given(DTYPES, st.floats(1e-3, 1e3), st.integers(1, 300), st.integers(0, 2**31 - 1))
def test_vanilla_step_in_place_equals_reference_bit_for_bit(dtype, theta, n, seed):
    g = torch.Generator().manual_seed(seed)
    mem = (torch.randn(n, generator=g, dtype=torch.float64) * theta).to(dtype)
    x = (torch.randn(n, generator=g, dtype=torch.float64) * theta).to(dtype)
    for values in ([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-45], [-0.0, 0.0, theta]):
        k = min(n, len(values))
        x[:k] = torch.tensor(values[:k], dtype=dtype)
        mem[-k:] = torch.tensor(values[:k], dtype=dtype).flip(0)
    spikes_ref, mem_ref = vanilla_if_step(mem.clone(), x, torch.tensor(theta))
    labels = []
    for label, spikes, after in vanilla_paths(mem, x, theta):
        labels.append(label)
        assert same_bits(spikes, spikes_ref), label
        assert same_bits(after, mem_ref), label
    assert len(labels) == 2 + 3 * len(kernel.variants())


def test_vanilla_layer_runs_equal_the_pure_steps():
    """VanillaIF keeps its membrane between forwards, starts at θ/2 after reset, and gives the
    spikes of ``vanilla_if_step`` chained, in float32 and float64, on any layout."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        layer = VanillaIF(torch.tensor(1.3))
        steps = [(torch.randn(4, 3, 5, 6, generator=g) * 2).to(dtype) for _ in range(9)]
        steps = [s.contiguous(memory_format=torch.channels_last) for s in steps[:5]] + steps[5:]
        mem = None
        for x in steps:
            spikes, mem = vanilla_if_step(mem, x, layer.theta)
            assert same_bits(layer(x), spikes)
        layer.reset()
        spikes, _ = vanilla_if_step(None, steps[0], layer.theta)
        assert same_bits(layer(steps[0]), spikes)


def test_vanilla_kernel_can_write_over_its_input():
    x = torch.randn(1000) * 3
    mem = torch.full_like(x, 0.5)
    spikes, mem_ref = vanilla_if_step(mem.clone(), x.clone(), torch.tensor(1.0))
    if kernel.available():
        got = kernel.vanilla_if(x, mem, 1.0, out=x)
        assert got is not None and got.data_ptr() == x.data_ptr()
        assert same_bits(x, spikes) and same_bits(mem, mem_ref)
