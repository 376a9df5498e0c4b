"""PASC conversion (SPEC §3): logits equal the ANN's; anything not exact is refused.

Float64 comparisons; dyadic weights and inputs where float32 must be exact (atol = 0).
"""

import copy
import os
import platform
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pascal_snn import QCFS, ConversionError, DataError, convert, qcfs_layers, set_levels
from pascal_snn.spiking import ChannelAffine, MatMulLayer, PascIF, VanillaIF
from tests.models_for_tests import FunctionalNet, ResidualMaxPoolNet, randomize_batchnorm


def random_levels(model: nn.Module, g: torch.Generator) -> list[int]:
    levels = torch.randint(1, 9, (len(qcfs_layers(model)),), generator=g).tolist()
    levels[int(torch.randint(len(levels), (1,), generator=g))] = 1  # always include L = 1
    set_levels(model, levels)
    return levels


def exact(model: nn.Module, *batches: torch.Tensor, tol: float = 1e-12) -> nn.Module:
    """Convert ``model`` (float64) and check logits and predictions on every batch."""
    model = model.double().eval()
    snn = convert(model, example_input=batches[0].double())
    for x in batches:
        with torch.no_grad():
            ann, out = model(x.double()), snn(x.double())
        assert out.shape == ann.shape
        scale = float(ann.abs().max()) + 1
        assert float((out - ann).abs().max()) <= tol * scale
        assert torch.equal(out.argmax(-1), ann.argmax(-1))
    return snn


def busy(model: nn.Module, x: torch.Tensor) -> None:
    """Assert every QCFS call of ``model`` on ``x`` uses at least two levels (not vacuous)."""
    seen: list[int] = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o: seen.append(o.unique().numel()))
        for m in model.modules()
        if isinstance(m, QCFS)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert seen and min(seen) >= 2, seen


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("factory", "shape"), [(ResidualMaxPoolNet, (1, 8, 8)), (FunctionalNet, (3, 8, 8))]
)
def test_float64_logits_equal_ann(factory, shape, seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = factory()
    randomize_batchnorm(model, g)
    random_levels(model, g)
    model = model.double().eval()
    x = torch.rand(64, *shape, generator=g, dtype=torch.float64) * 2
    snn = convert(model)
    with torch.no_grad():
        ann_out, snn_out = model(x), snn(x)
    assert (ann_out - snn_out).abs().max().item() <= 1e-9
    assert torch.equal(ann_out.argmax(1), snn_out.argmax(1))


class DyadicNet(nn.Module):
    """Weights, biases, thresholds and inputs on coarse dyadic grids: float32 is exact."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.act1 = QCFS(4, 2.0)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.act2 = QCFS(2, 1.0)
        self.pool = nn.MaxPool2d(2)
        self.act3 = QCFS(8, 4.0)
        self.fc = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        a = self.act1(self.conv1(x))
        b = self.pool(self.act2(self.conv2(a))) + F.avg_pool2d(a, 2)
        return self.fc(torch.flatten(self.act3(b), 1))


def dyadic(model: nn.Module, g: torch.Generator) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randint(-2, 3, m.weight.shape, generator=g) / 4.0)
                m.bias.copy_(torch.randint(-4, 5, m.bias.shape, generator=g) / 8.0)
    return model.eval()


def test_dyadic_float32_exact_with_many_boundary_hits():
    g = torch.Generator().manual_seed(0)
    model = dyadic(DyadicNet(), g)
    x = torch.randint(0, 5, (128, 1, 8, 8), generator=g) / 4.0
    hits = []

    def count_boundaries(module, inputs, output):
        z = inputs[0] / (module.theta / module.L) - 0.5
        hits.append(int((z == z.round()).sum()))

    handles = [a.register_forward_hook(count_boundaries) for _, a in qcfs_layers(model)]
    with torch.no_grad():
        ann_out = model(x)
    for h in handles:
        h.remove()
    snn_out = convert(model)(x)
    assert sum(hits) > 1000, hits  # the inputs really sit on level boundaries
    assert torch.equal(ann_out, snn_out)


def test_input_model_untouched_and_l_read_from_modules():
    model = ResidualMaxPoolNet(levels=(3, 1, 5, 2)).train()
    before = copy.deepcopy(model.state_dict())
    snn = convert(model, example_input=torch.rand(2, 1, 8, 8))
    assert model.training
    assert all(
        torch.equal(before[k], v) for k, v in model.state_dict().items() if torch.is_tensor(v)
    )
    assert sum(isinstance(m, QCFS) for m in model.modules()) == 4
    ifs = snn.if_layers()
    assert [(n, m.L, m.t_in, m.from_image) for n, m in ifs] == [
        ("act1", 3, 1, True),  # fed by the image: Algorithm 2
        ("act2", 1, 3, False),
        ("act3", 5, 3, False),  # add of trains of lengths 1 (conv3 path) and 3 (pooled act1)
        ("act4", 2, 5, False),
    ]
    assert [(n, m.t_in) for n, m in snn.matmul_layers()] == [
        ("conv1", 1),
        ("conv2", 3),
        ("conv3", 1),
        ("fc1", 5),
        ("fc2", 2),
    ]
    assert not any(p.requires_grad for p in snn.parameters())
    with pytest.raises(RuntimeError, match="inference"):
        snn.train()


def test_layers_are_built_on_the_first_call_when_no_example_is_given():
    snn = convert(ResidualMaxPoolNet().eval())
    with pytest.raises(RuntimeError, match="example_input"):
        snn.if_layers()
    snn(torch.rand(3, 1, 8, 8))
    assert [n for n, _ in snn.if_layers()] == ["act1", "act2", "act3", "act4"]


def test_batchnorm_folded_and_bias_split_at_conversion_time():
    model = ResidualMaxPoolNet().eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(1))
    snn = convert(model, example_input=torch.rand(2, 1, 8, 8))
    # the input layer computes exactly what the ANN computes: its own conv, bn1 not folded in
    conv1 = dict(snn.matmul_layers())["conv1"]
    assert conv1.t_in == 1 and conv1.op.weight is snn.source.conv1.weight
    assert conv1.op.bias is snn.source.conv1.bias
    assert snn.graph.get_submodule("bn1") is snn.source.bn1
    conv2 = dict(snn.matmul_layers())["conv2"]
    assert isinstance(conv2, MatMulLayer) and conv2.t_in == 4
    # folded bias c = β − γ·μ/σ, split over the 4 input steps
    bn = model.bn2
    c = bn.bias - bn.weight * bn.running_mean / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(conv2.op.bias, c / 4)
    assert conv2.op.weight is not model.conv2.weight  # folded: its own weights


def test_spike_statistics_accumulate_and_reset():
    torch.manual_seed(0)
    model = ResidualMaxPoolNet().double().eval()
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    snn = convert(model, example_input=x)
    captured = {}
    _, layer = snn.if_layers()[1]
    layer.register_forward_hook(lambda m, i, o: captured.update(out=o))
    snn(x)
    out = captured["out"]
    assert int(layer.output_spikes) == int((out != 0).sum())
    assert set(out.unique().tolist()) <= {0.0, float(layer.spike)}
    assert int(layer.samples) == 5 and layer.neurons == 8 * 8 * 8
    n = 5 * layer.neurons
    assert layer.updates.tolist() == [
        layer.t_in * n,
        (max(layer.t_in, layer.L) - 1) * n,
        layer.L * n,
    ]
    assert int(layer.output_spikes) <= int(layer.excitatory)  # clamp(exc − inh, 0, L) ≤ exc
    snn(x)
    assert int(layer.samples) == 10
    snn.reset_stats()
    assert all(int(m.samples) == 0 and int(m.excitatory) == 0 for _, m in snn.if_layers())


def test_float32_and_float64_networks_follow_input_dtype():
    model = FunctionalNet().eval()
    snn = convert(model)
    x = torch.rand(4, 3, 8, 8)
    assert snn(x).dtype == torch.float32
    assert snn.double()(x.double()).dtype == torch.float64


def test_bad_inputs_to_the_network_get_the_anns_own_message():
    snn = convert(ResidualMaxPoolNet().eval())
    with pytest.raises(DataError, match="NaN or infinite"):
        snn(torch.full((2, 1, 8, 8), float("nan")))
    with pytest.raises(DataError, match=r"shape \(2, 3, 8, 8\).*channels"):
        snn(torch.rand(2, 3, 8, 8))
    with pytest.raises(DataError, match="shape"):
        convert(ResidualMaxPoolNet().eval(), example_input=torch.rand(2, 1, 10, 10))
    with pytest.raises(DataError, match="batch"):
        snn(torch.tensor(1.0))


def test_a_new_input_shape_gets_its_own_build():
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), QCFS(3, 1.0), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 2)
    )
    model[0].bias.data.fill_(0.3)
    snn = exact(model, torch.rand(2, 1, 6, 6), torch.rand(3, 1, 6, 6))
    exact_again = snn(torch.rand(4, 1, 9, 7).double())
    assert exact_again.shape == (4, 2) and len(snn.builds) == 2


# -- refusals ---------------------------------------------------------------------------------
class WithReLU(nn.Module):
    def __init__(self, functional=False):
        super().__init__()
        self.functional = functional
        self.fc1, self.act, self.relu, self.fc2 = (
            nn.Linear(4, 4),
            QCFS(),
            nn.ReLU(),
            nn.Linear(4, 2),
        )

    def forward(self, x):
        x = self.act(self.fc1(x))
        return self.fc2(F.relu(x) if self.functional else self.relu(x))


class Custom(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.conv, self.act = nn.Conv2d(1, 2, 3), QCFS()
        self.conv2 = nn.Conv2d(2, 2, 1)
        self.pool, self.norm = nn.MaxPool2d(2), nn.LayerNorm(2)

    def forward(self, x):
        y = self.conv(x)
        if self.kind == "maxpool-after-conv":
            return self.act(self.pool(self.conv2(self.act(y)))).flatten(1)
        if self.kind == "layernorm":
            return self.norm(self.act(y).mean((2, 3)))
        if self.kind == "custom-op":
            return torch.sigmoid(self.act(y)).flatten(1)
        if self.kind == "index-batch":
            return self.act(y)[0].flatten(1)
        if self.kind == "sum-batch":
            return self.act(y).sum(-4, keepdim=True).flatten(1)
        if self.kind == "product":
            return (self.act(y) * self.act(y)).flatten(1)
        if self.kind == "inplace":
            z = self.act(y)
            return z.add_(1.0).flatten(1)
        raise AssertionError


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        (WithReLU(), r"module 'relu' \(ReLU\).*ReLU-like.*QCFS"),
        (WithReLU(functional=True), r"'relu'.*ReLU-like.*QCFS"),
        (Custom("maxpool-after-conv"), r"module 'pool' \(MaxPool2d\).*thermometer code"),
        (Custom("layernorm"), r"module 'norm' \(LayerNorm\).*no exact spiking equivalent"),
        (Custom("custom-op"), r"'sigmoid'.*supported: "),
        (Custom("index-batch"), r"'getitem'.*whole batch"),
        (Custom("sum-batch"), r"'\.sum\(\)'.*dim -4 is the batch dimension.*dims >= 1"),
        (Custom("product"), r"'mul'.*product of two spike trains"),
        (Custom("inplace"), r"'\.add_\(\)'.*in-place.*out of place"),
        (nn.Sequential(nn.Linear(2, 2)), "no QCFS layer"),
    ],
)
def test_unsupported_models_are_refused_naming_the_culprit(model, pattern):
    with pytest.raises(ConversionError, match=pattern):
        convert(
            model,
            example_input=torch.rand(2, 1, 6, 6) if isinstance(model, Custom) else torch.rand(2, 4),
        )


def test_untraceable_model_and_bad_arguments():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = QCFS()

        def forward(self, x):
            return self.act(x) if x.sum() > 0 else x

    with pytest.raises(ConversionError, match="traced"):
        convert(Branchy())
    with pytest.raises(ConversionError, match="mode"):
        convert(DyadicNet(), mode="fast")
    with pytest.raises(ConversionError, match="timesteps"):
        convert(DyadicNet(), mode="vanilla")
    with pytest.raises(ConversionError, match="timesteps"):
        convert(DyadicNet(), timesteps=4)


@pytest.mark.parametrize("theta", [0.0, -1.0, float("nan")])
def test_non_positive_threshold_is_refused_with_the_reason(theta):
    model = nn.Sequential(nn.Linear(3, 3), QCFS(4, 1.0), nn.Linear(3, 2))
    model[1].theta.data.fill_(theta)
    with pytest.raises(ConversionError, match=r"theta.*not > 0.*positive"):
        convert(model)  # a shape-free check: refused before any input


# -- the reproducers ------------------------------------------------------------------
class SharedQCFS(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 3)
        self.act = QCFS(4, 2.0)

    def forward(self, x):
        return self.l3(self.act(self.l2(self.act(self.l1(x)))))


@pytest.mark.parametrize("batch", [4, 5])
def test_a_qcfs_called_twice_becomes_two_if_layers(batch):
    torch.manual_seed(batch)
    model = SharedQCFS()
    model.act.theta.data.fill_(0.5)
    x = torch.randn(batch, 8) * 3
    busy(model.double(), x.double())
    snn = exact(model, x, torch.randn(batch + 2, 8) * 3)
    assert [(n, m.t_in, m.L) for n, m in snn.if_layers()] == [("act", 1, 4), ("act#2", 4, 4)]
    assert snn(x.double()).shape == (batch, 3)


class SharedLinear(nn.Module):
    """One Linear called at T_in = 1 (the image) and at T_in = 4."""

    def __init__(self):
        super().__init__()
        self.fc, self.act, self.act2 = nn.Linear(8, 8), QCFS(4, 1.0), QCFS(3, 2.0)

    def forward(self, x):
        return self.fc(self.act2(self.fc(self.act(self.fc(x)))))


def test_a_linear_called_at_two_train_lengths_gets_two_bias_splits():
    torch.manual_seed(0)
    model = SharedLinear()
    model.fc.bias.data.uniform_(0.5, 1.0)
    x = torch.randn(6, 8) * 2
    snn = exact(model, x)
    layers = snn.matmul_layers()
    assert [(n, m.t_in) for n, m in layers] == [("fc", 1), ("fc#2", 4), ("fc#3", 3)]
    weights = {id(m.op.weight) for _, m in layers}
    assert len(weights) == 1  # one weight tensor shared by the three call sites
    torch.testing.assert_close(layers[1][1].op.bias, snn.source.fc.bias / 4)


@pytest.mark.parametrize(("channels", "batch", "L"), [(16, 4, 4), (12, 5, 3)])
def test_standalone_batchnorm1d_on_batch_by_channels(channels, batch, L):
    """T·B = C used to read [T·B, C] as one unbatched sample."""
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(channels)
    randomize_batchnorm(nn.Sequential(bn), torch.Generator().manual_seed(2))
    model = nn.Sequential(
        nn.Linear(10, channels), QCFS(L, 2.0), bn, QCFS(L, 2.0), nn.Linear(channels, 3)
    )
    x = torch.randn(batch, 10) * 3
    snn = exact(model, x)
    assert any(isinstance(m, ChannelAffine) for m in snn.graph.modules())


@pytest.mark.parametrize(("c", "f"), [(5, 6), (6, 6)])
def test_linear_then_batchnorm1d_on_three_dims_normalises_channels(c, f):
    """Linear → BatchNorm1d on [B, C, F]: BN is on C (dim 1), the linear's outputs are F."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.fc, self.bn = QCFS(4, 2.0), nn.Linear(f, f), nn.BatchNorm1d(c)
            self.q2, self.head = QCFS(3, 2.0), nn.Linear(c * f, 3)

        def forward(self, x):
            return self.head(self.q2(self.bn(self.fc(self.q(x)))).flatten(1))

    model = M()
    randomize_batchnorm(model, torch.Generator().manual_seed(0))
    x = torch.randn(4, c, f) * 3
    snn = exact(model, x)
    fc = dict(snn.matmul_layers())["fc"]
    assert fc.t_in == 4 and not hasattr(fc.op, "running_mean")
    assert any(isinstance(m, ChannelAffine) for m in snn.graph.modules())  # not folded


class BatchDim(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind, self.fc, self.q, self.head = kind, nn.Linear(6, 6), QCFS(4, 2.0), nn.Linear(6, 3)
        self.flat = nn.Flatten(0)

    def forward(self, x):
        y = self.q(self.fc(x))
        if self.kind == "sum(-2)":
            y = y.sum(-2, keepdim=True)
        elif self.kind == "cat(-2)":
            y = torch.cat([y, y], dim=-2)
        elif self.kind == "Flatten(0)":
            y = self.flat(y).view(-1, 6)
        elif self.kind == "view(1, -1)":
            y = y.view(1, -1).view(-1, 6)
        elif self.kind == "transpose(0, 1)":
            y = y.transpose(0, 1).transpose(0, 1)
        elif self.kind == "flip(-2)":
            y = y.flip(-2)
        elif self.kind == "x[:1]":
            y = y[:1]
        elif self.kind == "chunk":
            y = y.chunk(2)[0]
        return self.head(y)


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("sum(-2)", r"'\.sum\(\)'.*dim -2 is the batch dimension"),
        ("cat(-2)", r"'cat'.*dim -2 is the batch dimension"),
        ("Flatten(0)", r"'flat' \(Flatten\).*does not keep the batch as dim 0"),
        ("view(1, -1)", r"'\.view\(\)'.*does not keep the batch as dim 0"),
        ("transpose(0, 1)", r"'transpose'.*batch dimension"),
        ("flip(-2)", r"'\.flip\(\)'.*batch dimension"),
        ("x[:1]", r"'getitem'.*whole batch"),
        ("chunk", r"'\.chunk\(\)'.*dim 0 is the batch"),
    ],
)
@pytest.mark.parametrize("batch", [1, 4])
def test_any_operation_on_the_batch_dim_is_refused(kind, pattern, batch):
    with pytest.raises(ConversionError, match=pattern):
        convert(BatchDim(kind).eval(), example_input=torch.randn(batch, 6))


def test_flatten_first_mlp_takes_the_images_it_was_built_for():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), QCFS(4, 2.0), nn.Linear(32, 10))
    exact(model, torch.rand(2, 1, 28, 28), torch.rand(3, 1, 28, 28))


class HeadFirst(nn.Module):
    """The classifier is registered before the convolutions that feed it."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4 * 6 * 6, 3)
        self.conv = nn.Conv2d(3, 4, 3)
        self.q = QCFS(4, 1.0)

    def forward(self, x):
        return self.head(self.q(self.conv(x)).flatten(1))


class ViewBeforeConv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.q, self.head = nn.Conv1d(1, 4, 3), QCFS(4, 1.0), nn.Linear(4 * 14, 3)

    def forward(self, x):
        b = x.size(0)
        return self.head(self.q(self.conv(x.view(b, 1, -1))).view(b, -1))


@pytest.mark.parametrize(
    ("model", "shape"), [(HeadFirst(), (3, 8, 8)), (ViewBeforeConv1d(), (4, 4))]
)
def test_valid_inputs_are_accepted_whatever_the_registration_order(model, shape):
    torch.manual_seed(0)
    snn = exact(model, torch.rand(2, *shape), torch.rand(1, *shape), torch.rand(5, *shape))
    with pytest.raises(DataError, match="does not fit the model"):
        snn(torch.rand(2, 5, 8, 8).double())


# -- thermometer codes and max pooling --------------------------------------------------------
class CodeThenPool(nn.Module):
    """conv → QCFS → (something) → MaxPool2d → linear."""

    def __init__(self, kind, second=(4, 2.0)):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.q, self.q2 = QCFS(4, 2.0), QCFS(*second)
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.head = nn.LazyLinear(3)  # its input size depends on the kind

    def forward(self, x):
        y = self.conv(x)
        a = self.q(y)
        if self.kind == "flatten":
            a = self.flat(a).view(a.size(0), 4, 8, 8)
        elif self.kind == "scale":
            a = a * 0.5
        elif self.kind == "negative":
            a = a * -0.5
        elif self.kind == "cat-c":
            a = torch.cat([a, self.q2(y)], 1)
        elif self.kind == "cat-w":
            a = torch.cat([a, self.q2(y)], -1)
        elif self.kind == "cat-w-odd":  # 7 + 8 columns: a pooling window straddles the seam
            a = torch.cat([a[..., 1:], self.q2(y)], -1)
        elif self.kind == "pad":
            a = F.pad(a, (1, 1, 1, 1))
        elif self.kind == "conv":
            a = self.q(self.conv(x)) + 0.0 * a  # an add: not a code
        return self.head(self.pool(a).flatten(1))


def _materialise(model: nn.Module, shape) -> nn.Module:
    """Run once so that lazy layers get their sizes."""
    with torch.no_grad():
        model.eval()(torch.zeros(2, *shape))
    return model


@pytest.mark.parametrize(
    ("kind", "second"),
    [
        ("flatten", (4, 2.0)),
        ("scale", (4, 2.0)),
        ("cat-c", (3, 0.7)),  # SqueezeNet's Fire: windows lie in one channel
        ("cat-w", (3, 0.7)),  # 8 + 8 columns: no pooling window straddles the seam
        ("cat-w-odd", (4, 2.0)),  # one spike value on both sides of the seam
        ("cat-w-odd", (8, 4.0)),  # different θ and L, same θ/L
        ("pad", (4, 2.0)),  # zero padding: the empty code of every spike value
    ],
)
def test_max_pooling_is_exact_on_thermometer_codes(kind, second):
    torch.manual_seed(0)
    model = _materialise(CodeThenPool(kind, second), (1, 8, 8))
    x = torch.randn(6, 1, 8, 8) * 2
    busy(model.double(), x.double())
    exact(model, x)


@pytest.mark.parametrize(
    ("kind", "second", "pattern"),
    [
        ("negative", (4, 2.0), "not a thermometer code"),
        ("cat-w-odd", (3, 0.7), "mixes values"),  # two spike values in one window
        ("conv", (4, 2.0), "not a thermometer code"),
    ],
)
def test_max_pooling_of_anything_else_is_refused(kind, second, pattern):
    model = _materialise(CodeThenPool(kind, second), (1, 8, 8))
    with pytest.raises(ConversionError, match=rf"module 'pool' \(MaxPool2d\).*{pattern}"):
        convert(model, example_input=torch.rand(2, 1, 8, 8))
    vanilla = convert(model, "vanilla", timesteps=2)  # the baseline runs it anyway
    assert vanilla(torch.rand(2, 1, 8, 8)).shape == (2, 3)


def test_max_pooling_of_the_image_is_exact():
    """A train of length 1 is a plain value: max pooling before any IF layer is exact."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.MaxPool2d(2), QCFS(4, 1.0), nn.Flatten(), nn.Linear(27, 2)
    )
    exact(model, torch.randn(4, 1, 8, 8))


def test_constants_added_to_trains_are_split_over_the_steps():
    torch.manual_seed(0)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.q, self.q2, self.head = (
                nn.Linear(5, 5),
                QCFS(5, 2.0),
                QCFS(3, 1.0),
                nn.Linear(5, 2),
            )

        def forward(self, x):
            y = self.q((x - 0.5) / 0.25)  # normalising the image: plain values
            y = self.q2(1.5 - self.fc(y) + y.size(1) / 10)
            return self.head(y + 0.25)

    exact(M(), torch.randn(5, 5))


# -- the vanilla baseline ---------------------------------------------------------------------
def test_vanilla_prefix_means_match_separate_runs():
    torch.manual_seed(0)
    model = ResidualMaxPoolNet().double().eval()
    x = torch.rand(16, 1, 8, 8, dtype=torch.float64)
    vanilla = convert(model, mode="vanilla", timesteps=12)
    prefix = vanilla.prefix_logits(x)
    assert prefix.shape == (12, 16, 10)
    torch.testing.assert_close(prefix[-1], vanilla(x), rtol=0, atol=0)
    for t in (1, 5):
        short = convert(model, mode="vanilla", timesteps=t)
        torch.testing.assert_close(prefix[t - 1], short(x), rtol=0, atol=1e-12)
    assert not any(isinstance(m, PascIF) for m in vanilla.modules())


def test_vanilla_runs_the_image_part_once_and_equals_stepping_the_whole_graph():
    torch.manual_seed(0)
    model = ResidualMaxPoolNet().eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(0))
    x = torch.rand(8, 1, 8, 8)
    steps = 6
    # the baseline by hand: QCFS → IF neurons in a copy, the whole ANN once per step
    stepped = copy.deepcopy(model)
    for name, q in qcfs_layers(stepped):
        parent, _, leaf = name.rpartition(".")
        setattr(stepped.get_submodule(parent) if parent else stepped, leaf, VanillaIF(q.theta))
    with torch.no_grad():
        expected = sum(stepped(x) for _ in range(steps)) / steps
    vanilla = convert(model, "vanilla", timesteps=steps)
    calls = []
    vanilla(x)
    first = vanilla.current().prefix.get_submodule("conv1")
    first.register_forward_hook(lambda m, i, o: calls.append(1))
    assert torch.equal(vanilla(x), expected)  # bit for bit
    assert len(calls) == 1  # the image-only conv ran once, not once per step
    assert [n for n, _ in vanilla.if_layers()] == ["act1", "act2", "act3", "act4"]


def test_vanilla_gives_every_call_site_its_own_neuron():
    vanilla = convert(SharedQCFS().eval(), "vanilla", timesteps=4)
    vanilla(torch.randn(3, 8))
    layers = vanilla.if_layers()
    assert [n for n, _ in layers] == ["act", "act#2"] and layers[0][1] is not layers[1][1]


LAYOUTS = [  # (input shape, layer, BatchNorm) for [B, C], [B, C, L], [B, C, H, W], [B, C, D, H, W]
    ((6,), lambda: nn.Linear(6, 5), nn.BatchNorm1d),
    ((3, 7), lambda: nn.Conv1d(3, 5, 3), nn.BatchNorm1d),
    ((3, 5, 5), lambda: nn.Conv2d(3, 5, 3), nn.BatchNorm2d),
    ((2, 4, 4, 4), lambda: nn.Conv3d(2, 5, 3), nn.BatchNorm3d),
]


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize(("shape", "layer", "norm"), LAYOUTS)
def test_batchnorm_on_every_layout_folded_or_standalone(shape, layer, norm, fold):
    """After an IF layer (T_in = 3): folded into the layer, or a per-channel affine map."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.q0, self.layer, self.bn, self.q1 = QCFS(3, 1.0), layer(), norm(5), QCFS(4, 1.0)
            self.head = nn.LazyLinear(2)

        def forward(self, x):
            y = self.layer(self.q0(x))
            y = self.bn(y) if fold else self.bn(y * 1.0)  # the scaling keeps it standalone
            return self.head(self.q1(y).flatten(1))

    model = _materialise(M(), shape)
    randomize_batchnorm(model, torch.Generator().manual_seed(0))
    x = torch.randn(5, *shape) * 2
    snn = exact(model, x)
    assert dict(snn.matmul_layers())["layer"].t_in == 3
    standalone = any(isinstance(m, ChannelAffine) for m in snn.graph.modules())
    assert standalone is not fold


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="hint_heap acts on glibc's malloc heuristics",
)
def test_parts_run_without_page_faults_once_the_heap_is_hinted():
    """A batch run in parts reuses part-sized heap blocks: the second forward faults no new
    pages in (before hint_heap, glibc trimmed the heap top after every part and each part
    faulted its tensors back: 12,160 minor faults on this forward). In a fresh process, so no
    earlier test has already raised glibc's thresholds."""
    import subprocess
    import sys

    script = """
import resource, torch
from pascal_snn import convert
from pascal_snn.models import create
torch.manual_seed(0)
snn = convert(create("vgg16", 10, in_channels=3, L=4, width=0.25).eval())
x = torch.rand(64, 3, 32, 32)
with torch.no_grad():
    first = snn(x)
    assert snn.images_per_part(x) < 64  # several parts of 4 MiB tensors
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = snn(x)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
assert torch.equal(first, second)
print(faults)
"""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    faults = int(done.stdout.split()[-1])
    assert faults < 256, faults


class Adds(nn.Module):
    """Residual adds of every kind a neuron can read: fusable and not."""

    def __init__(self, c: int = 6) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(2, c, 3, padding=1)
        self.act0 = QCFS(4, 2.0)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.act1 = QCFS(4, 1.5)  # conv + shortcut: fused, the train written over the conv's
        self.conv2 = nn.Conv2d(c, c, 1)
        self.act2 = QCFS(4, 2.5)  # shortcut + conv (the fresh operand second): fused
        self.act3 = QCFS(4, 3.0)  # a sum someone else reads too: not fused
        self.act4 = QCFS(4, 2.0)  # x + x: not fused
        self.act5 = QCFS(4, 2.0)  # a difference: not fused
        self.act6 = QCFS(2, 1.0)  # trains of lengths 4 and 2 (padded): not fused
        self.fc = nn.Linear(c * 16, 5)

    def forward(self, x):
        a = self.act0(self.conv0(x))
        b = self.act1(self.bn1(self.conv1(a)) + a)
        c = self.act2(b + self.conv2(b))
        s = c + a
        d = self.act3(s) + s
        e = self.act4(d + d)
        f = self.act5(e - c)
        g = self.act6(F.avg_pool2d(self.act6(f), 1) + f)
        return self.fc(g.flatten(1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_residual_adds_read_by_one_neuron_are_fused_and_exact(dtype):
    """The converter fuses exactly the adds it may (two trains of the neuron's T_in that only
    the neuron reads): those layers get two inputs, and every neuron's count still equals the
    ANN's level on every image, bit for bit."""
    from pascal_snn.qcfs import level_index

    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    model = Adds()
    randomize_batchnorm(model, g)
    model = model.to(dtype).eval()
    x = (torch.rand(32, 2, 4, 4, generator=g) * 2).to(dtype)
    snn = convert(model, example_input=x[:1])
    two_inputs = {
        str(n.target) for n in snn.graph.graph.nodes if n.op == "call_module" and len(n.args) == 2
    }
    assert two_inputs == {"act1", "act2"}
    levels: list[torch.Tensor] = []
    counts: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(
            lambda m, i, o: levels.append(level_index(o, m.L, m.theta.to(o.dtype)))
        )
        for m in model.modules()
        if isinstance(m, QCFS)
    ]
    hooks += [
        m.register_forward_hook(
            lambda m, i, o: counts.append((o.reshape(m.L, -1, *o.shape[1:]) != 0).sum(0))
        )
        for _, m in snn.if_layers()
    ]
    with torch.no_grad():
        ann_out, snn_out = model(x), snn(x)
    for h in hooks:
        h.remove()
    assert len(levels) == len(counts) == 8
    for level, count in zip(levels, counts):
        assert torch.equal(level, count)
    assert len({int(c.max()) for c in counts}) > 1  # trains with spikes, not all silent
    assert torch.equal(ann_out.argmax(1), snn_out.argmax(1))


class BroadcastAdd(nn.Module):
    """A train plus a per-channel train broadcast over space, read by one neuron."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(1, c, 3, padding=1)
        self.act0 = QCFS(4, 2.0)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.act1 = QCFS(4, 1.5)
        self.fc = nn.Linear(c * 36, 3)

    def forward(self, x):
        a = self.act0(self.conv0(x))
        context = F.adaptive_avg_pool2d(a, 1)  # [B, C, 1, 1]
        b = self.act1(self.conv1(a) + context)
        return self.fc(b.flatten(1))


def test_a_broadcast_add_is_not_fused_and_stays_exact():
    torch.manual_seed(4)
    model = BroadcastAdd().double().eval()
    x = torch.rand(16, 1, 6, 6, dtype=torch.float64) * 2
    busy(model, x)
    snn = exact(model, x)
    assert not any(n.op == "call_module" and len(n.args) == 2 for n in snn.graph.graph.nodes), (
        "a broadcast add was fused"
    )
