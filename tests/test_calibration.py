"""θ calibration: percentiles of positive pre-activations, streamed with bounded memory."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pascal_snn import (
    QCFS,
    ConfigError,
    DataError,
    calibrate_thresholds,
    qcfs_layers,
    qcfsify,
)
from pascal_snn.calibration import LogHistogram


def _sample(kind: str, n: int, g: torch.Generator) -> torch.Tensor:
    if kind == "exponential":
        return torch.empty(n, dtype=torch.float64).exponential_(generator=g)
    if kind == "lognormal":  # spans ~20 octaves
        return torch.exp(torch.randn(n, generator=g, dtype=torch.float64) * 3)
    if kind == "ties":  # many equal values: order statistics sit on bucket edges
        return torch.randint(1, 5, (n,), generator=g).to(torch.float64) / 4
    return torch.rand(n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["exponential", "lognormal", "ties", "uniform"])
@pytest.mark.parametrize("n", [1, 2, 7, 1000, 20000])
def test_histogram_quantile_within_stated_bound_of_torch_quantile(kind, n):
    g = torch.Generator().manual_seed(n)
    values = _sample(kind, n, g)
    hist = LogHistogram()
    for chunk in values.split(97):  # streamed, with non-positive and non-finite noise
        hist.update(torch.cat([chunk, -chunk, torch.zeros(3), torch.tensor([math.nan])]))
    assert hist.count == n
    for q in (0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0):
        ref = torch.quantile(values, q).item()
        assert abs(hist.quantile(q) - ref) <= hist.relative_error * ref, q  # type: ignore[operator]
    assert hist.relative_error < 0.004


@given(st.lists(st.floats(1e-6, 1e6), min_size=1, max_size=60), st.floats(0.0, 1.0))
def test_histogram_quantile_property(values, q):
    data = torch.tensor(values, dtype=torch.float64)
    hist = LogHistogram()
    hist.update(data)
    ref = torch.quantile(data, q).item()
    assert abs(hist.quantile(q) - ref) <= hist.relative_error * ref  # type: ignore[operator]


def test_histogram_state_is_bounded_and_empty_is_none():
    hist = LogHistogram()
    size = hist.nbytes
    assert hist.quantile(0.5) is None
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        hist.update(torch.randn(10_000, generator=g))
    assert hist.nbytes == size == 2**15 * 8 + 16  # 256 KiB of counts, whatever was seen
    assert hist.count == pytest.approx(250_000, rel=0.01)
    with pytest.raises(ValueError):
        hist.quantile(1.5)


class TwoLayer(nn.Module):
    """conv → ReLU → conv → ReLU6 → linear: pre-activations are easy to compute by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu6 = nn.ReLU6()
        self.fc = nn.Linear(4 * 16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu6(self.conv2(self.relu(self.conv1(x)))).flatten(1))


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    relu_model = TwoLayer()
    with torch.no_grad():
        relu_model.conv2.weight.mul_(30)  # pre-activations beyond 6 at the ReLU6
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(10, 2, 4, 4, generator=g) * 2
    return relu_model, images


def _batches(images: torch.Tensor, size: int = 3):
    return [(images[i : i + size], torch.zeros(len(images[i : i + size]))) for i in range(0, 10, 3)]


def _expected(relu_model: TwoLayer, images: torch.Tensor, p: float) -> tuple[float, float]:
    with torch.no_grad():
        z1 = relu_model.conv1(images)
        z2 = relu_model.conv2(torch.relu(z1))
    q1 = torch.quantile(z1[z1 > 0].double(), p / 100).item()
    q2 = torch.quantile(z2[z2 > 0].double(), p / 100).item()
    return q1, q2


def test_calibration_sets_percentiles_of_the_relu_networks_pre_activations():
    relu_model, images = _setup()
    q = qcfsify(relu_model, L=2, theta=0.5)  # θ/L before calibration must not matter
    before = {k: v.clone() for k, v in q.state_dict().items() if k.endswith(("weight", "bias"))}
    result = calibrate_thresholds(q, _batches(images), num_images=7, percentile=99.0)
    q1, q2 = _expected(relu_model, images[:7], 99.0)  # the first 7 images only
    assert result.images == 7 and result.percentile == 99.0
    assert [layer.name for layer in result.layers] == ["relu", "relu6"]
    assert [layer.name for layer in result.layers] == [n for n, _ in qcfs_layers(q)]
    first, second = result.layers
    assert q2 > 6  # the ReLU6 site is capped at 6, its ReLU never exceeded it
    assert abs(first.theta - q1) <= LogHistogram().relative_error * q1
    assert (first.source, second.source, second.theta) == ("percentile", "relu6-capped", 6.0)
    assert float(q.relu.theta.detach()) == pytest.approx(first.theta, rel=1e-6)
    assert first.positives == int((relu_model.conv1(images[:7]) > 0).sum())
    assert result.thetas() == {"relu": first.theta, "relu6": 6.0}
    # only θ changed; the mode is restored and the hooks are gone
    assert all(torch.equal(v, q.state_dict()[k]) for k, v in before.items())
    assert q.training  # a fresh module is in train mode: calibration ran in eval, restored it
    assert all(not m._forward_hooks for m in q.modules())


def test_relu6_below_six_fixed_theta_and_determinism():
    relu_model, images = _setup()
    with torch.no_grad():
        relu_model.conv2.weight.div_(64)  # now the ReLU6 pre-activations stay below 6
    q = qcfsify(relu_model)
    a = calibrate_thresholds(q, _batches(images), num_images=10)
    b = calibrate_thresholds(q, _batches(images), num_images=10)
    assert a == b  # deterministic for a given image order
    _, q2 = _expected(relu_model, images, 99.9)
    assert q2 < 6 and abs(a.layers[1].theta - q2) <= LogHistogram().relative_error * q2
    fixed = calibrate_thresholds(q, _batches(images), num_images=10, relu6_theta=6.0)
    assert fixed.layers[1].theta == 6.0 and fixed.layers[1].source == "relu6-fixed"
    assert fixed.layers[0].theta == a.layers[0].theta


def test_upstream_qcfs_uses_the_quantized_outputs_and_model_mode_is_restored():
    relu_model, images = _setup()
    q = qcfsify(relu_model, L=1, theta=0.25).train()
    result = calibrate_thresholds(q, _batches(images), num_images=10, upstream="qcfs")
    assert q.training
    with torch.no_grad():
        z2 = relu_model.conv2(QCFS(1, 0.25)(relu_model.conv1(images)))
    ref = torch.quantile(z2[z2 > 0].double(), 0.999).item()
    assert abs(result.layers[1].theta - min(ref, 6.0)) <= LogHistogram().relative_error * ref


def test_dtype_and_device_follow_the_model():
    relu_model, images = _setup()
    q = qcfsify(relu_model.double())
    result = calibrate_thresholds(q, [images.float()], num_images=10)  # float32 batches
    assert q.relu.theta.dtype == torch.float64 and result.images == 10
    if torch.cuda.is_available():
        q = qcfsify(relu_model.float()).cuda()
        on_gpu = calibrate_thresholds(q, [images], num_images=10)
        assert q.relu.theta.device.type == "cuda"
        assert on_gpu.layers[0].theta == pytest.approx(result.layers[0].theta, rel=1e-5)


def test_dead_layer_keeps_theta_with_a_warning():
    relu_model, images = _setup()
    with torch.no_grad():
        relu_model.conv1.weight.zero_()
        relu_model.conv1.bias.fill_(-1.0)
    q = qcfsify(relu_model, theta=3.0)
    with pytest.warns(RuntimeWarning, match="no positive pre-activation in relu"):
        result = calibrate_thresholds(q, [images], num_images=10)
    assert result.layers[0].source == "unchanged" and result.layers[0].theta == 3.0


def test_bad_arguments_are_clear_errors():
    relu_model, images = _setup()
    q = qcfsify(relu_model)
    for kwargs, pattern in (
        ({"num_images": 0}, "num_images"),
        ({"num_images": 5, "percentile": 0}, "percentile"),
        ({"num_images": 5, "percentile": 100.5}, "percentile"),
        ({"num_images": 5, "relu6_theta": -6.0}, "relu6_theta"),
        ({"num_images": 5, "upstream": "relu6"}, "upstream"),
    ):
        with pytest.raises(ConfigError, match=pattern):
            calibrate_thresholds(q, [images], **kwargs)
    with pytest.raises(ConfigError, match="qcfsify"):
        calibrate_thresholds(nn.Sequential(nn.Linear(2, 2)), [images], num_images=2)
    with pytest.raises(DataError, match="no images"):
        calibrate_thresholds(q, [], num_images=2)
    with pytest.raises(DataError, match="image tensor"):
        calibrate_thresholds(q, [{"image": images}], num_images=2)
