"""PASC conversion (SPEC §3): logits equal the ANN's; unsupported models are refused."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pascal_snn import QCFS, ConversionError, DataError, convert, qcfs_layers, set_levels
from pascal_snn.spiking import MatMulLayer, PascIF
from tests.models_for_tests import FunctionalNet, ResidualMaxPoolNet, randomize_batchnorm


def random_levels(model: nn.Module, g: torch.Generator) -> list[int]:
    levels = torch.randint(1, 9, (len(qcfs_layers(model)),), generator=g).tolist()
    levels[int(torch.randint(len(levels), (1,), generator=g))] = 1  # always include L = 1
    set_levels(model, levels)
    return levels


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


def test_dyadic_float32_exact_with_many_boundary_hits():
    g = torch.Generator().manual_seed(0)
    model = DyadicNet().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randint(-2, 3, m.weight.shape, generator=g) / 4.0)
                m.bias.copy_(torch.randint(-4, 5, m.bias.shape, generator=g) / 8.0)
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
    snn = convert(model)
    assert model.training
    assert all(
        torch.equal(before[k], v) for k, v in model.state_dict().items() if torch.is_tensor(v)
    )
    assert sum(isinstance(m, QCFS) for m in model.modules()) == 4
    ifs = snn.if_layers()
    assert [(n, m.L, m.t_in) for n, m in ifs] == [
        ("act1", 3, 1),
        ("act2", 1, 3),
        ("act3", 5, 3),  # add of trains of lengths 1 (conv3 path) and 3 (pooled act1)
        ("act4", 2, 5),
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


def test_batchnorm_folded_and_bias_split_at_conversion_time():
    model = ResidualMaxPoolNet().eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(1))
    snn = convert(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in snn.modules())
    conv2 = dict(snn.matmul_layers())["conv2"]
    assert isinstance(conv2, MatMulLayer) and conv2.t_in == 4
    # folded bias c = β − γ·μ/σ, split over the 4 input steps
    bn = model.bn2
    c = bn.bias - bn.weight * bn.running_mean / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(conv2.op.bias, c / 4)


def test_spike_statistics_accumulate_and_reset():
    torch.manual_seed(0)
    model = ResidualMaxPoolNet().double().eval()
    snn = convert(model)
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
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


def test_bad_inputs_to_the_network():
    snn = convert(ResidualMaxPoolNet().eval())
    with pytest.raises(DataError, match="NaN or infinite"):
        snn(torch.full((2, 1, 8, 8), float("nan")))
    with pytest.raises(DataError, match="expects"):
        snn(torch.rand(2, 3, 8, 8))


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
        self.pool, self.norm = nn.MaxPool2d(2), nn.LayerNorm(2)

    def forward(self, x):
        y = self.conv(x)
        if self.kind == "maxpool-after-conv":
            return self.act(self.pool(y)).flatten(1)
        if self.kind == "layernorm":
            return self.norm(self.act(y).mean((2, 3)))
        if self.kind == "custom-op":
            return torch.sigmoid(self.act(y)).flatten(1)
        if self.kind == "add-constant":
            return (self.act(y) + 1.0).flatten(1)
        if self.kind == "index-time":
            return self.act(y)[0].flatten(1)
        raise AssertionError


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        (WithReLU(), r"module 'relu' \(ReLU\).*QCFS"),
        (WithReLU(functional=True), r"'relu'.*QCFS"),
        (Custom("maxpool-after-conv"), r"module 'pool' \(MaxPool2d\).*exact only"),
        (Custom("layernorm"), r"module 'norm' \(LayerNorm\)"),
        (Custom("custom-op"), r"'sigmoid'"),
        (Custom("add-constant"), r"'add'.*constant"),
        (Custom("index-time"), r"'getitem'"),
        (nn.Sequential(nn.Linear(2, 2)), "no QCFS layer"),
    ],
)
def test_unsupported_models_are_refused_naming_the_culprit(model, pattern):
    with pytest.raises(ConversionError, match=pattern) as info:
        convert(model)
    assert "supported" in str(info.value) or "no QCFS" in str(info.value)


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


def test_vanilla_maxpool_anywhere_but_relu_refused():
    assert convert(Custom("maxpool-after-conv"), mode="vanilla", timesteps=2) is not None
    with pytest.raises(ConversionError):
        convert(WithReLU(), mode="vanilla", timesteps=2)
