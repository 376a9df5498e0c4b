"""qcfsify: every ReLU/ReLU6 call site becomes its own QCFS; the rest of the model is kept."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from pascal_snn import (
    QCFS,
    CheckpointError,
    ConfigError,
    ConversionError,
    convert,
    load_relu_weights,
    qcfs_layers,
    qcfs_sites,
    qcfsify,
)
from pascal_snn.qcfsify import SiteKind
from tests.models_for_tests import randomize_batchnorm

HUGE_L = 2**40  # with θ = 1e4 one level is ~1e-8: QCFS ≈ ReLU to float64 precision


class Block(nn.Module):
    """A submodule whose activation is written in forward (a functional call in a scope)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class AllForms(nn.Module):
    """Every way of writing ReLU / ReLU6, each after its own convolution."""

    def __init__(self, c: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3 if i == 0 else c, c, 1) for i in range(12)])
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)  # called twice
        self.relu6 = nn.ReLU6(inplace=True)
        self.clip = nn.Hardtanh(0.0, 6.0)
        self.block = Block(c)
        self.fc = nn.Linear(c * 16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.convs
        x = self.relu(self.bn(c[0](x)))  # relu
        x = F.relu(c[1](x), inplace=True)  # relu_2
        x = torch.relu(c[2](x))  # relu_3
        x = torch.relu_(c[3](x))  # relu_4
        x = F.relu_(c[4](x))  # relu_5
        x = c[5](x).relu()  # relu_6
        x = c[6](x).relu_()  # relu_7
        x = self.relu(c[7](x))  # relu_8 (second call of self.relu)
        x = F.relu6(c[8](x))  # relu6_2: "relu6" is the path of the module self.relu6
        x = F.hardtanh(c[9](x), 0.0, 6.0)  # relu6_3
        x = self.relu6(c[10](x))  # relu6 (its own path)
        x = self.clip(c[11](x))  # clip
        x = self.block(x)  # block.relu
        return self.fc(torch.flatten(x, 1))


NAMES = [
    "relu",
    "relu_2",
    "relu_3",
    "relu_4",
    "relu_5",
    "relu_6",
    "relu_7",
    "relu_8",
    "relu6_2",
    "relu6_3",
    "relu6",
    "clip",
    "block.relu",
]


def _relu_model(seed: int = 0) -> nn.Module:
    """AllForms with weights that keep the signal alive through 13 activations."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = AllForms()
    randomize_batchnorm(model, g)
    with torch.no_grad():
        for conv in model.modules():
            if isinstance(conv, nn.Conv2d):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.9)
                conv.bias.copy_(torch.rand(conv.bias.shape, generator=g))
    return model.double().eval()


def _same(a: object, b: object) -> bool:
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_every_form_becomes_its_own_qcfs_with_readable_names():
    model = _relu_model()
    q = qcfsify(model, L=3)
    assert isinstance(q, fx.GraphModule)
    layers = qcfs_layers(q)
    sites = qcfs_sites(q)
    names = [name for name, _ in layers]
    assert names == NAMES
    assert list(sites) == names  # forward order in both
    kinds = {n: s.kind for n, s in sites.items()}
    assert {n for n, k in kinds.items() if k is SiteKind.RELU6} == {
        "relu6",
        "relu6_2",
        "relu6_3",
        "clip",
    }
    assert all(layer.L == 3 for _, layer in layers)
    thetas = {n: float(layer.theta.detach()) for n, layer in layers}
    assert thetas["relu"] == 8.0 and thetas["clip"] == 6.0 and thetas["relu6_3"] == 6.0
    assert layers[0][1].theta.dtype == torch.float64  # θ follows the model's dtype
    assert not any(isinstance(m, (nn.ReLU, nn.Hardtanh)) for m in q.modules())
    for node in q.graph.nodes:  # no ReLU left anywhere in the graph
        assert node.target not in (F.relu, torch.relu, torch.relu_, F.relu6, F.hardtanh)
        assert node.op != "call_method" or node.target not in ("relu", "relu_")
    assert "module 'relu' (ReLU), call 2" in sites["relu_8"].origin
    assert "in 'block'" in sites["block.relu"].origin


def test_function_is_kept_with_huge_theta_and_levels():
    model = _relu_model()
    x = torch.randn(4, 3, 4, 4, dtype=torch.float64) * 3
    before = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        expected = model(x.clone())
        q = qcfsify(model, L=HUGE_L, theta=1e4, relu6_theta=6.0)
        got = q(x.clone())
    assert (got - expected).abs().max().item() <= 1e-6 * expected.abs().max().item()
    # θ = 6 at ReLU6 sites reproduced the clip: a large θ there changes the output
    with torch.no_grad():
        unclipped = qcfsify(model, L=HUGE_L, theta=1e4, relu6_theta=1e4)(x.clone())
    assert (unclipped - expected).abs().max().item() > 1e-3
    # the input model is untouched: same modules, same tensors, same mode
    assert all(_same(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model.relu, nn.ReLU) and not model.training


def test_parameters_are_copies_with_the_same_names():
    model = _relu_model()
    q = qcfsify(model)
    own = q.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(own[key], value)
    with torch.no_grad():
        q.get_submodule("convs.0").weight.add_(1.0)
    assert not torch.equal(q.get_submodule("convs.0").weight, model.convs[0].weight)
    extra = sorted(set(own) - set(model.state_dict()))
    assert extra == sorted([f"{n}.theta" for n in NAMES] + [f"{n}._extra_state" for n in NAMES])


def test_train_mode_is_kept_and_batchnorm_follows_it():
    model = _relu_model().train()
    q = qcfsify(model)
    assert q.training and q.bn.training
    q.eval()
    assert not q.bn.training and model.training


def test_levels_as_list_and_dict_and_errors():
    model = _relu_model()
    q = qcfsify(model, L=list(range(1, 14)))
    assert [layer.L for _, layer in qcfs_layers(q)] == list(range(1, 14))
    by_name = {n: i + 1 for i, n in enumerate(reversed(NAMES))}
    q = qcfsify(model, L=by_name)
    assert {n: layer.L for n, layer in qcfs_layers(q)} == by_name
    with pytest.raises(ConfigError, match="exactly 13 values"):
        qcfsify(model, L=[4, 4])
    with pytest.raises(ConfigError, match=r"missing: .*block\.relu.*unknown: nope"):
        qcfsify(model, L={"relu": 2, "nope": 3})
    with pytest.raises(ConfigError, match=">= 1"):
        qcfsify(model, L=0)
    with pytest.raises(ConfigError, match="theta"):
        qcfsify(model, theta=-1.0)


def test_qcfsified_model_converts_exactly():
    model = _relu_model(seed=1)
    g = torch.Generator().manual_seed(1)
    q = qcfsify(model, L=[int(v) for v in torch.randint(1, 6, (13,), generator=g)], theta=2.0)
    x = torch.rand(8, 3, 4, 4, generator=g, dtype=torch.float64) * 4
    snn = convert(q)
    with torch.no_grad():
        ann_out, snn_out = q(x), snn(x)
    assert (ann_out - snn_out).abs().max().item() <= 1e-9 * max(1.0, ann_out.abs().max().item())
    assert [n for n, _ in snn.if_layers()] == [n for n, _ in qcfs_layers(q)]


class Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.act = nn.SiLU()
        self.norm = nn.LayerNorm(4)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv(x))
        y = self.act(y) * torch.sigmoid(y)
        y = F.gelu(y) + y.tanh()
        return self.norm(y.mean((2, 3))).softmax(1)


def test_unsupported_activations_are_all_listed_and_nothing_changes():
    model = Gated()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ConversionError) as info:
        qcfsify(model)
    text = str(info.value)
    for where in (
        "module 'act' (SiLU)",
        "function sigmoid()",
        "function gelu()",
        "method .tanh()",
        "module 'norm' (LayerNorm)",
        "method .softmax()",
    ):
        assert where in text
    assert "6 operation(s)" in text and "SiLU ×1" in text
    assert isinstance(model.relu, nn.ReLU)
    assert all(_same(before[k], v) for k, v in model.state_dict().items())


def test_untraceable_mode_dependent_and_empty_models_are_refused():
    class Branchy(nn.Module):
        def forward(self, x):
            return F.relu(x) if x.sum() > 0 else x

    class ModeDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return F.dropout(F.relu(self.conv(x)), 0.5, training=self.training)

    with pytest.raises(ConversionError, match=r"could not be traced with torch\.fx"):
        qcfsify(Branchy())
    with pytest.raises(ConversionError, match="different graph in train and eval"):
        qcfsify(ModeDependent())
    with pytest.raises(ConversionError, match="no ReLU or ReLU6"):
        qcfsify(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Flatten()))
    with pytest.raises(ConversionError, match=r"nn\.Module"):
        qcfsify(torch.relu)  # type: ignore[arg-type]


class InplaceReuse(nn.Module):
    """An in-place ReLU whose input is read again afterwards (sees the mutated values)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.conv(x)
        z = self.relu(y)
        return z + y  # y was mutated: this is 2·relu(conv(x))


class InplaceThroughView(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        v = y.view(y.size(0), -1)
        y.relu_()
        return v.sum(1)  # reads the mutation through a view made before it


def test_inplace_relu_readers_are_rewired_or_refused():
    torch.manual_seed(0)
    model = InplaceReuse().double().eval()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    q = qcfsify(model, L=HUGE_L, theta=1e4)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(expected, 2 * torch.relu(model.conv(x)))
        assert (q(x) - expected).abs().max().item() <= 1e-7
    with pytest.raises(ConversionError, match=r"in-place .*view\(s\) view"):
        qcfsify(InplaceThroughView())


def test_existing_qcfs_is_kept_and_shared_relu_modules_split():
    shared = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(3, 3, 1), QCFS(2, 1.0), nn.Conv2d(3, 3, 1), shared)
    model.add_module("again", shared)  # registered twice, called twice
    q = qcfsify(model, L=5)
    # fx names a module registered twice by its first path; its two calls are two sites
    assert [(n, layer.L) for n, layer in qcfs_layers(q)] == [("1", 2), ("3", 5), ("3_2", 5)]
    assert set(qcfs_sites(q)) == {"3", "3_2"}


def test_qcfsify_again_keeps_the_earlier_sites():
    inner = qcfsify(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU6()), L=2)
    outer = qcfsify(nn.Sequential(inner, nn.Conv2d(3, 3, 1), nn.ReLU()), L=3)
    sites = qcfs_sites(outer)
    assert list(sites) == ["0.1", "2"]
    assert sites["0.1"].kind is SiteKind.RELU6 and sites["2"].kind is SiteKind.RELU
    assert [layer.L for _, layer in qcfs_layers(outer)] == [2, 3]


def test_result_survives_deepcopy_and_state_dict_round_trip():
    q = qcfsify(_relu_model(), L=2)
    clone = copy.deepcopy(q)
    assert list(qcfs_sites(clone)) == list(qcfs_sites(q))
    other = qcfsify(_relu_model(seed=3), L=2)
    other.load_state_dict(q.state_dict())
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(other(x), q(x))


# --------------------------------------------------------------------------- ReLU weights
def test_load_relu_weights_from_state_dict_and_file(tmp_path):
    trained = _relu_model(seed=5)
    q = qcfsify(_relu_model(seed=6), L=HUGE_L, theta=1e4)
    path = tmp_path / "relu.pt"
    torch.save(trained.state_dict(), path)
    assert load_relu_weights(q, path) == []
    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        assert (q(x) - trained(x)).abs().max().item() <= 1e-6
    assert all(float(layer.theta.detach()) in (1e4, 6.0) for _, layer in qcfs_layers(q))  # θ kept
    # DataParallel's prefix is removed
    q2 = qcfsify(_relu_model(seed=6))
    load_relu_weights(q2, {f"module.{k}": v for k, v in trained.state_dict().items()})
    assert torch.equal(q2.fc.weight, trained.fc.weight)


def test_load_relu_weights_mismatch_names_keys_and_changes_nothing(tmp_path):
    q = qcfsify(_relu_model(), L=2)
    before = copy.deepcopy(q.state_dict())
    state = _relu_model(seed=2).state_dict()
    state.pop("fc.bias")
    state["extra.weight"] = torch.zeros(1)
    state["fc.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as info:
        load_relu_weights(q, state)
    text = str(info.value)
    assert "missing: fc.bias" in text and "unexpected: extra.weight" in text
    assert "fc.weight (3, 3) vs model (5, 64)" in text
    assert all(_same(before[k], v) for k, v in q.state_dict().items())
    # strict=False ignores (and returns) unexpected keys only
    state = _relu_model(seed=2).state_dict()
    state["aux.weight"] = torch.zeros(1)
    assert load_relu_weights(q, state, strict=False) == ["aux.weight"]
    with pytest.raises(CheckpointError, match="not a plain state_dict"):
        load_relu_weights(q, {"model": state, "epoch": 3})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_relu_weights(q, tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="do not exist"):
        load_relu_weights(q, tmp_path / "missing.pt")
