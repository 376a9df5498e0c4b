"""QCFS activation (SPEC §2): values, gradients, level handling, the inference path."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pascal_snn import QCFS, kernel, qcfs_layers, set_levels
from pascal_snn.qcfs import level_index, qcfs_inference


def spec_formula(z: np.ndarray, L: int, theta: float) -> np.ndarray:
    """h(z) = θ · clip(floor(z·L/θ + 1/2) / L, 0, 1), written independently in numpy."""
    return theta * np.clip(np.floor(z * L / theta + 0.5) / L, 0.0, 1.0)


@pytest.mark.parametrize("L", [1, 2, 3, 4, 7, 8, 16])
@pytest.mark.parametrize("theta", [8.0, 1.0, 0.3, 2.5])
def test_values_equal_spec_formula_on_boundaries_and_negatives(L, theta):
    spike = theta / L
    boundaries = (np.arange(-2, L + 3) - 0.5) * spike  # every level boundary and beyond
    grid = np.concatenate(
        [
            boundaries,
            np.nextafter(boundaries, np.inf),
            np.nextafter(boundaries, -np.inf),
            np.linspace(-3 * theta, 3 * theta, 1001),
            [-1e6, -1.0, 0.0, 1e6],
        ]
    )
    act = QCFS(L, theta).double()
    theta = float(act.theta.detach())  # the float32 parameter, widened
    got = act(torch.from_numpy(grid)).detach().numpy()
    np.testing.assert_array_equal(got, spec_formula(grid, L, theta))
    assert got.min() == 0.0 and got.max() == pytest.approx(theta)


def test_dyadic_boundaries_round_up():
    # θ* = 0.5: the input exactly on the boundary (k − ½)·θ* goes to level k.
    act = QCFS(4, 2.0).double()
    z = (torch.arange(1, 5, dtype=torch.float64) - 0.5) * 0.5
    assert act(z).tolist() == [0.5, 1.0, 1.5, 2.0]
    assert act(z - 1e-9).tolist() == [
        0.0,
        0.5,
        1.0,
        1.5,
    ]


def test_any_dtype_and_shape():
    act = QCFS(4, 8.0)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        x = torch.randn(2, 3, 4, 5, dtype=dtype) * 8
        y = act(x)
        assert y.dtype == dtype and y.shape == x.shape


def test_gradients_straight_through_floor():
    act = QCFS(4, 8.0).double()
    x = torch.tensor(
        [-3.0, -0.9, 0.1, 2.9, 5.0, 7.9, 9.0, 20.0], dtype=torch.float64, requires_grad=True
    )
    act(x).sum().backward()
    # d h / d z = θ·(L/θ)/L = 1 wherever the quantized value floor(z·L/θ + ½)/L lies in
    # [0, 1] (levels 0 and L included, as in the QCFS reference code); 0 outside.
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert act.theta.grad is not None and act.theta.grad.item() != 0.0


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", True, None])
def test_invalid_L_raises_naming_L(bad):
    with pytest.raises(ValueError, match="L"):
        QCFS(bad)
    act = QCFS(4)
    with pytest.raises(ValueError, match="L"):
        act.L = bad
    assert act.L == 4


def test_L_settable_and_saved_in_state_dict():
    act = QCFS(4, 8.0)
    act.L = 2
    other = QCFS(8, 1.0)
    other.load_state_dict(act.state_dict())
    assert other.L == 2 and other.theta.item() == 8.0


class OutOfOrder(nn.Module):
    """Registers its activations in an order different from the forward order."""

    def __init__(self):
        super().__init__()
        self.late = QCFS(2)
        self.early = QCFS(3)
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.late(self.fc(self.early(x)))


def test_qcfs_layers_in_forward_order_and_set_levels():
    model = OutOfOrder()
    assert [name for name, _ in qcfs_layers(model)] == ["early", "late"]
    assert set_levels(model, [5, 6]) == [5, 6]
    assert (model.early.L, model.late.L) == (5, 6)
    assert set_levels(model, 3) == [3, 3]
    with pytest.raises(ValueError, match="2 QCFS layers"):
        set_levels(model, [1, 2, 3])
    with pytest.raises(ValueError, match="L"):
        set_levels(model, [1, 0])
    with pytest.raises(ValueError, match="L"):
        set_levels(model, 1.5)
    assert (model.early.L, model.late.L) == (3, 3)


def test_level_index():
    h = torch.tensor([0.0, 2.0, 4.0, 8.0])
    assert level_index(h, 4, 8.0).tolist() == [0, 1, 2, 4]


def test_clamp_thresholds_keeps_theta_positive():
    from pascal_snn.qcfs import clamp_thresholds

    model = nn.Sequential(nn.Linear(2, 2), QCFS(4, 8.0), nn.Linear(2, 2), QCFS(2, 1.0))
    with torch.no_grad():
        model[1].theta.fill_(-3.0)
    clamp_thresholds(model, minimum=0.01)
    assert model[1].theta.item() == pytest.approx(0.01) and model[3].theta.item() == 1.0


@pytest.mark.parametrize("L", [1, 3, 4, 8])
def test_fused_gradients_equal_composed_autograd(L):
    """The fused backward equals autograd through the straight-through formula."""
    g = torch.Generator().manual_seed(L)
    x = (torch.randn(500, generator=g, dtype=torch.float64) * 6).requires_grad_()
    act = QCFS(L, 2.5).double()
    weights = torch.randn(500, generator=g, dtype=torch.float64)
    (act(x) * weights).sum().backward()

    x_ref = x.detach().clone().requires_grad_()
    theta = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    u = x_ref * L / theta + 0.5
    v = (u + (torch.floor(u) - u).detach()) / L  # floor, straight through
    inside = ((v >= 0) & (v <= 1)).to(v.dtype).detach()
    clipped = v * inside + (v.clamp(0, 1) - v * inside).detach()  # clip, gradient on [0, 1]
    (theta * clipped * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(act.theta.grad, theta.grad, rtol=1e-9, atol=1e-12)


# -- the inference path (no autograd) and the kernel -----------------------------------------
FLOATS = [torch.float32, torch.float64]
SPECIAL = [0.0, -0.0, 1e-45, -1e-45, 5e-324, 1e30, -1e30, math.inf, -math.inf, math.nan]


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values and sign bits, NaN where the other has NaN."""
    nan = a.isnan()
    if not torch.equal(nan, b.isnan()):
        return False
    a, b = a[~nan], b[~nan]
    return torch.equal(a, b) and torch.equal(a.signbit(), b.signbit())


def as_written_before(x: torch.Tensor, theta: torch.Tensor, L: int) -> torch.Tensor:
    """The training forward as the fused autograd node computed it before the kernel."""
    v = torch.floor(x * L / theta + 0.5).div_(L)
    return theta * v.clamp_(0, 1)


@st.composite
def activation_case(draw):
    """(x, theta tensor, L): arbitrary floats, level boundaries and one ulp off, specials."""
    dtype = draw(st.sampled_from(FLOATS))
    L = draw(st.one_of(st.integers(1, 16), st.integers(17, 300)))
    theta = draw(st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False))
    th = torch.tensor(theta, dtype=torch.float32).to(dtype)  # the parameter is float32
    n = draw(st.integers(1, 700))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0, 1e3]))
    x = torch.randn(n, generator=g, dtype=torch.float64) * float(th) * scale
    k = torch.randint(-2, L + 3, (n,), generator=g).to(torch.float64)
    boundary = (k - 0.5) * float(th) / L
    pick = torch.rand(n, generator=g)
    x = torch.where(pick < 0.3, boundary, x).to(dtype)
    ulp = torch.nextafter(x, torch.full_like(x, math.inf if draw(st.booleans()) else -math.inf))
    x = torch.where((pick > 0.15) & (pick < 0.3), ulp, x)
    for _ in range(draw(st.integers(0, 3))):
        x[draw(st.integers(0, n - 1))] = draw(st.sampled_from(SPECIAL))
    return x, th, L


@given(activation_case())
def test_inference_path_equals_training_forward_bit_for_bit(case):
    x, th, L = case
    act = QCFS(L, 1.0).to(x.dtype)
    with torch.no_grad():
        act.theta.copy_(th)
    theta = act.theta.detach()
    expected = as_written_before(x, theta, L)
    trained = act(x.clone().requires_grad_())  # the autograd node's forward
    assert trained.grad_fn is not None
    with torch.no_grad():
        inferred = act(x)
    assert inferred.grad_fn is None
    with torch.inference_mode():
        assert same_bits(act(x), expected)
    assert same_bits(trained.detach(), expected)
    assert same_bits(inferred, expected)
    assert same_bits(qcfs_inference(x[::2], theta, L), expected[::2])  # not dense: torch path
    for k in kernel.variants():
        for threads in (1, 2, 3):
            got = kernel.qcfs_forward(x, float(theta), L, kernel.Tuning(k, threads, grain=1))
            assert got is not None and same_bits(got, expected), (k.isa, threads)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("L", [1, 3, 4, 8, 255])
def test_kernel_gradients_equal_torch_path(dtype, L):
    """The backward recomputed in one kernel pass = the torch path's (x not dense there)."""
    g = torch.Generator().manual_seed(L)
    act = QCFS(L, 2.5).to(dtype)
    wide = torch.randn(64, 2 * 300, generator=g, dtype=torch.float64).to(dtype) * 4
    wide[0, :8] = (torch.arange(8, dtype=dtype) - 0.5) * 2.5 / L  # boundaries
    dense = wide[:, ::2].contiguous().requires_grad_()
    strided = wide.clone()[:, ::2].requires_grad_()  # the kernel declines: torch fallback
    weights = torch.randn(64, 300, generator=g, dtype=torch.float64).to(dtype)
    grads = []
    for x in (dense, strided):
        act.theta.grad = None
        y = act(x)
        assert len(y.grad_fn.saved_tensors) == 2  # x and θ only: nothing of the forward's size
        (y * weights).sum().backward()
        grads.append((x.grad.clone(), act.theta.grad.clone()))
    (gx, gt), (gx_torch, gt_torch) = grads
    assert torch.equal(gx, gx_torch)  # grad·m: exact
    rtol = 1e-5 if dtype == torch.float32 else 1e-12  # two totals, summed in another order
    torch.testing.assert_close(gt, gt_torch, rtol=rtol, atol=1e-6)
    for k in kernel.variants():
        for threads in (1, 3):
            tuning = kernel.Tuning(k, threads, grain=1)
            theta = float(act.theta.detach())
            got = kernel.qcfs_backward(weights, dense.detach(), theta, L, tuning)
            assert got is not None and torch.equal(got[0], gx), (k.isa, threads)


def test_training_path_only_when_a_gradient_is_wanted():
    act = QCFS(4, 2.0)
    x = torch.randn(10)
    assert act(x).grad_fn is not None  # θ requires grad: the autograd node, θ gets a gradient
    act.theta.requires_grad_(False)
    assert act(x).grad_fn is None  # nothing requires grad: the inference path
    assert act(x.requires_grad_()).grad_fn is not None
    with torch.no_grad():
        assert act(x).grad_fn is None


def test_channels_last_and_half_precision_inference():
    act = QCFS(4, 3.0)
    x = torch.randn(2, 3, 5, 4) * 3
    cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        y, y_cl = act(x), act(cl)
        assert torch.equal(y, y_cl) and y_cl.is_contiguous(memory_format=torch.channels_last)
        for dtype in (torch.float16, torch.bfloat16):
            h = x.to(dtype)
            assert torch.equal(act(h), as_written_before(h, act.theta.to(dtype), 4))


@pytest.fixture
def traces(monkeypatch):
    """A list that grows by one entry per torch.fx trace."""
    from torch import fx

    calls: list[int] = []
    original = fx.Tracer.trace

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(fx.Tracer, "trace", counting)
    return calls


def test_qcfs_layers_traces_once_per_structure(traces):
    """The forward order is traced once and kept on the model until its module tree changes."""
    calls = traces
    model = OutOfOrder()
    for _ in range(3):
        assert [name for name, _ in qcfs_layers(model)] == ["early", "late"]
        set_levels(model, [2, 3])
    assert len(calls) == 1
    model.fc = nn.Sequential(nn.Linear(4, 4))  # a new module tree: traced again
    assert [name for name, _ in qcfs_layers(model)] == ["early", "late"]
    assert len(calls) == 2
    import copy
    import pickle

    twin = copy.deepcopy(model)  # same tree: the copy keeps the order
    assert [name for name, _ in qcfs_layers(twin)] == ["early", "late"] and len(calls) == 2
    assert [n for n, _ in qcfs_layers(pickle.loads(pickle.dumps(twin)))] == ["early", "late"]


class Untraceable(nn.Module):
    """Data-dependent control flow: fx cannot trace it; registration order is the answer."""

    def __init__(self):
        super().__init__()
        self.first, self.second = QCFS(2), QCFS(3)

    def forward(self, x):
        if x.sum() > 0:
            return self.second(self.first(x))
        return self.first(x)


def test_qcfs_layers_falls_back_to_registration_order_once(traces):
    calls = traces
    model = Untraceable()
    for _ in range(2):
        assert [name for name, _ in qcfs_layers(model)] == ["first", "second"]
    assert len(calls) == 1  # the failed trace is not retried while the tree is the same


def test_qcfs_does_not_import_graph():
    """No import cycle: graph.py imports qcfs.py, never the other way (not even locally)."""
    import ast
    import inspect

    import pascal_snn.qcfs as module

    tree = ast.parse(inspect.getsource(module))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "pascal_snn" in imported  # (from pascal_snn import kernel): the walk sees imports
    assert not any(name and name.startswith("pascal_snn.graph") for name in imported)
