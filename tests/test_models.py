"""Model zoo (SPEC §7): registry, QCFS layers in forward order, MAC totals of the paper's
Appendix A.5/A.6, exact PASC conversion of every zoo model, loading reference-code weights."""

from __future__ import annotations

import re
from collections import OrderedDict

import pytest
import torch
from torch import nn

from pascal_snn import QCFS, CheckpointError, ConfigError, convert, qcfs_layers, set_levels
from pascal_snn.models import create, load_reference_weights, names

# (name, builder kwargs, input shape [C, H, W]) — every zoo model and its stems/heads/pools.
ZOO = [
    ("cnn6", {}, (1, 28, 28)),
    ("digits_cnn", {}, (1, 8, 8)),
    ("mnist_cnn", {}, (1, 28, 28)),
    ("vgg16", {}, (3, 32, 32)),
    ("vgg16", {"head": "imagenet", "pool": "max"}, (3, 32, 32)),
    ("resnet18", {}, (3, 32, 32)),
    ("resnet18", {"stem": "imagenet"}, (3, 32, 32)),
    ("resnet34", {}, (3, 32, 32)),
    ("resnet34", {"stem": "imagenet"}, (3, 32, 32)),
]
QCFS_COUNT = {
    "cnn6": 6,
    "digits_cnn": 4,
    "mnist_cnn": 4,
    "vgg16": 15,
    "resnet18": 17,
    "resnet34": 33,
}
W = 0.0625  # width of the models in the reference-weight tests
IDS = [f"{n}-{'-'.join(kw.values()) or 'default'}" for n, kw, _ in ZOO]


def small(name: str, kw: dict, shape: tuple[int, ...], classes: int = 10, **extra) -> nn.Module:
    width = {"cnn6": 0.5, "digits_cnn": 0.25, "mnist_cnn": 0.25, "vgg16": 0.125}.get(name, 0.0625)
    return create(name, classes, in_channels=shape[0], width=width, **kw, **extra)


def test_names_lists_every_model():
    assert names() == ["cnn6", "digits_cnn", "mnist_cnn", "resnet18", "resnet34", "vgg16"]


@pytest.mark.parametrize(("name", "kw", "shape"), ZOO, ids=IDS)
def test_builds_runs_forward_and_backward(name, kw, shape):
    torch.manual_seed(0)
    model = small(name, kw, shape, classes=7, L=4)
    out = model(torch.rand(3, *shape))
    assert out.shape == (3, 7)
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


# VGG-16 follows the reference layout (no BatchNorm in the classifier, θ = 8): at
# initialisation every classifier QCFS outputs level 0, so gradients reach the features only
# because the QCFS clip passes gradient at its bounds, as the reference code's did.
@pytest.mark.parametrize(
    ("name", "kw", "shape"),
    ZOO,
    ids=IDS,
)
def test_gradients_reach_the_first_layer_at_init(name, kw, shape):
    torch.manual_seed(0)
    model = small(name, kw, shape, L=4)
    model(torch.randn(8, *shape)).square().mean().backward()
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert float(first.weight.grad.abs().sum()) > 0
    assert any(float(m.theta.grad) != 0 for _, m in qcfs_layers(model))


@pytest.mark.parametrize(("name", "kw", "shape"), ZOO, ids=IDS)
def test_qcfs_layers_in_forward_order_and_per_layer_levels(name, kw, shape):
    model = small(name, kw, shape).eval()
    layers = qcfs_layers(model)
    assert len(layers) == QCFS_COUNT[name]
    called: list[str] = []
    names_of = {id(m): n for n, m in model.named_modules()}
    hooks = [
        m.register_forward_hook(lambda mod, i, o: called.append(names_of[id(mod)]))
        for _, m in layers
    ]
    with torch.no_grad():
        model(torch.rand(1, *shape))
    for h in hooks:
        h.remove()
    assert called == [n for n, _ in layers]

    levels = [(i % 7) + 1 for i in range(len(layers))]
    model = small(name, kw, shape, L=levels)
    assert [m.L for _, m in qcfs_layers(model)] == levels
    n = len(layers)
    with pytest.raises(ValueError, match=f"exactly {n} values"):
        small(name, kw, shape, L=levels[:-1])


def test_create_options_and_errors():
    with pytest.raises(ConfigError, match="cnn6, digits_cnn, mnist_cnn, resnet18, resnet34, vgg16"):
        create("vgg17", 10)
    # None kwargs are dropped: builder defaults apply (AvgPool, CIFAR head / stem).
    vgg = create("vgg16", 10, width=0.125, head=None, pool=None, in_channels=None, L=None)
    assert any(isinstance(m, nn.AvgPool2d) for m in vgg.modules())
    assert vgg.classifier[0].in_features == 64  # CIFAR head: 512·width after 1×1
    assert vgg.features[0].in_channels == 3
    assert all(m.L == 4 for _, m in qcfs_layers(vgg))
    res = create("resnet18", 10, width=0.125, stem=None)
    assert res.stem[0].kernel_size == (3, 3)
    maxvgg = create("vgg16", 10, width=0.125, pool="max")
    assert not any(isinstance(m, nn.AvgPool2d) for m in maxvgg.features)
    with pytest.raises(ConfigError, match="head"):
        create("vgg16", 10, head="tiny")
    with pytest.raises(ConfigError, match="stem"):
        create("resnet18", 10, stem="7x7")
    with pytest.raises(ConfigError, match="does not take option"):
        create("resnet18", 10, pool="max")
    with pytest.raises(ConfigError, match="width"):
        create("digits_cnn", 10, width=0)
    with pytest.raises(ConfigError, match="num_classes"):
        create("digits_cnn", 0)
    for bad in (0, -2, 1.5, "4", True):
        with pytest.raises(ValueError, match="L"):
            create("digits_cnn", 10, L=bad)
    with pytest.raises(ValueError, match="exactly 4"):
        create("digits_cnn", 10, L=[1, 2, 3, 4, 5])


def test_width_multiplies_channels_and_keeps_at_least_one():
    vgg = create("vgg16", 100, in_channels=5, width=0.25)
    convs = [m for m in vgg.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32] + [64] * 3 + [128] * 6
    assert convs[0].in_channels == 5
    assert vgg.classifier[-1].out_features == 100
    tiny = create("resnet18", 10, width=0.001)
    assert {m.out_channels for m in tiny.modules() if isinstance(m, nn.Conv2d)} == {1}


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs of one sample: conv C_i·C_o·K_h·K_w·H_o·W_o (per group), linear C_i·C_o."""
    total = 0

    def hook(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_out = module.in_channels // module.groups * kh * kw
            total += per_out * module.out_channels * out.shape[2] * out.shape[3]
        else:
            total += module.in_features * module.out_features

    hooks = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    model(x)
    for h in hooks:
        h.remove()
    return total


@pytest.mark.parametrize(
    ("name", "kw", "classes", "side", "macs"),
    [
        ("vgg16", {}, 10, 32, 332_111_872),  # Appendix A.5, CIFAR-10
        ("vgg16", {}, 100, 32, 332_480_512),  # Appendix A.5, CIFAR-100
        ("vgg16", {"pool": "max"}, 10, 32, 332_111_872),
        ("vgg16", {"head": "imagenet"}, 1000, 224, 15_470_264_320),  # Appendix A.6
        # ResNet-18 CIFAR-10 with the 3×3 stem, counted from the architecture: the paper's
        # Appendix A.7 total (217,584,640) comes from rows that undercount several convs
        # (e.g. 128→128 3×3 at 16×16 is 37,748,736 MACs, the table says 9,437,184).
        ("resnet18", {}, 10, 32, 555_422_720),
        ("resnet34", {"stem": "imagenet"}, 1000, 224, 3_663_761_408),  # torchvision's 3.66 G
    ],
)
def test_mac_totals_at_full_width(name, kw, classes, side, macs):
    with torch.device("meta"):
        model = create(name, classes, **kw).eval()
        x = torch.empty(1, 3, side, side)
    assert count_macs(model, x) == macs


def randomize(model: nn.Module, x: torch.Tensor, g: torch.Generator) -> list[int]:
    """Random BN statistics, random per-layer L (one of them 1), thresholds set from data."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.5)
    n = len(qcfs_layers(model))
    levels = torch.randint(1, 9, (n,), generator=g).tolist()
    levels[int(torch.randint(n, (1,), generator=g))] = 1
    set_levels(model, levels)

    # θ = 90th percentile of the layer's input (times a random factor), so every layer both
    # fires and saturates on this batch instead of being all-zero deep in the network.
    def calibrate(module: QCFS, inputs: tuple) -> None:
        factor = 0.8 + 0.6 * float(torch.rand(1, generator=g))
        module.theta.data.fill_(abs(float(inputs[0].quantile(0.9))) * factor + 1e-3)

    hooks = [m.register_forward_pre_hook(calibrate) for _, m in qcfs_layers(model)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return levels


@pytest.mark.parametrize(("name", "kw", "shape"), ZOO, ids=IDS)
def test_pasc_conversion_float64_equals_ann(name, kw, shape):
    g = torch.Generator().manual_seed(sum(map(ord, name + str(kw))))
    torch.manual_seed(g.initial_seed())
    model = small(name, kw, shape).double().eval()
    x = torch.rand(8, *shape, generator=g, dtype=torch.float64) * 4 - 2
    levels = randomize(model, x, g)
    distinct: list[int] = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o: distinct.append(o.unique().numel()))
        for _, m in qcfs_layers(model)
    ]
    with torch.no_grad():
        ann = model(x)
    for h in hooks:
        h.remove()
    assert all(d >= 2 for d in distinct)  # no layer is constant: the comparison is not vacuous
    assert float(ann.std(0).max()) > 0

    snn = convert(model, example_input=x)
    assert [layer.L for _, layer in snn.if_layers()] == levels
    with torch.no_grad():
        out = snn(x)
    assert (out - ann).abs().max().item() <= 1e-9
    assert torch.equal(out.argmax(1), ann.argmax(1))


# -- reference-code weights ---------------------------------------------------------------------
# The test writes, from one of our models, the state dict the QCFS/PASCAL reference code would
# hold for the same network (their key names, their [1]-shaped thresholds), then loads it into a
# fresh model. The renaming below is written out independently of the loader.


def _bn(prefix: str, bn: nn.BatchNorm2d) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.clone() for k, v in bn.state_dict().items()}


def reference_vgg16(model: nn.Module, threshold: str = "thresh") -> OrderedDict:
    """QCFS reference VGG-16: layer1..5 = [Conv, BN, IF, Dropout]* + pool; classifier
    [Flatten, Linear, IF, Dropout, Linear, IF, Dropout, Linear]."""
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    acts = [m for m in model.features if isinstance(m, QCFS)]
    stages = [2, 2, 3, 3, 3]
    i = 0
    for s, count in enumerate(stages, 1):
        for j in range(count):
            sd[f"layer{s}.{4 * j}.weight"] = convs[i].weight.detach().clone()
            sd[f"layer{s}.{4 * j}.bias"] = convs[i].bias.detach().clone()
            sd.update(_bn(f"layer{s}.{4 * j + 1}", bns[i]))
            sd[f"layer{s}.{4 * j + 2}.{threshold}"] = acts[i].theta.detach().reshape(1).clone()
            i += 1
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    head_acts = [m for m in model.classifier if isinstance(m, QCFS)]
    for idx, lin in zip((1, 4, 7), linears):
        sd[f"classifier.{idx}.weight"] = lin.weight.detach().clone()
        sd[f"classifier.{idx}.bias"] = lin.bias.detach().clone()
        if idx < 7:
            act = head_acts[(idx - 1) // 3]
            sd[f"classifier.{idx + 1}.{threshold}"] = act.theta.detach().reshape(1).clone()
    return sd


def reference_resnet(model: nn.Module, threshold: str = "thresh") -> OrderedDict:
    """QCFS reference ResNet: conv1 = [Conv, BN, IF]; convK_x.b.residual_function =
    [Conv, BN, IF, Conv, BN], .shortcut = [Conv, BN] or empty, then .act (IF, 'thresh') or
    .relu (MyFloor, 'up'); fc."""
    act_name = "act" if threshold == "thresh" else "relu"
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    sd["conv1.0.weight"] = model.stem[0].weight.detach().clone()
    sd.update(_bn("conv1.1", model.stem[1]))
    sd[f"conv1.2.{threshold}"] = model.stem[2].theta.detach().reshape(1).clone()
    for k, stage in enumerate((model.layer1, model.layer2, model.layer3, model.layer4), 2):
        for b, block in enumerate(stage):
            p = f"conv{k}_x.{b}"
            sd[f"{p}.residual_function.0.weight"] = block.conv1.weight.detach().clone()
            sd.update(_bn(f"{p}.residual_function.1", block.bn1))
            sd[f"{p}.residual_function.2.{threshold}"] = (
                block.act1.theta.detach().reshape(1).clone()
            )
            sd[f"{p}.residual_function.3.weight"] = block.conv2.weight.detach().clone()
            sd.update(_bn(f"{p}.residual_function.4", block.bn2))
            if isinstance(block.shortcut, nn.Sequential):
                sd[f"{p}.shortcut.0.weight"] = block.shortcut[0].weight.detach().clone()
                sd.update(_bn(f"{p}.shortcut.1", block.shortcut[1]))
            sd[f"{p}.{act_name}.{threshold}"] = block.act2.theta.detach().reshape(1).clone()
    sd["fc.weight"] = model.fc.weight.detach().clone()
    sd["fc.bias"] = model.fc.bias.detach().clone()
    return sd


def trained_like(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2 + 1.0)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.num_batches_tracked.fill_(seed)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "kw", "layout", "threshold"),
    [
        ("vgg16", {}, reference_vgg16, "thresh"),
        ("vgg16", {"head": "imagenet"}, reference_vgg16, "up"),
        ("resnet18", {}, reference_resnet, "thresh"),
        ("resnet34", {}, reference_resnet, "up"),
    ],
)
def test_load_reference_weights_reproduces_the_network(name, kw, layout, threshold):
    source = trained_like(create(name, 10, width=W, **kw), seed=3)
    sd = layout(source, threshold)
    assert ("layer1.0.weight" if name == "vgg16" else "conv2_x.0.residual_function.0.weight") in sd
    # A DDP checkpoint: 'module.' prefix, wrapped in {'state_dict': ...}.
    wrapped = {"state_dict": OrderedDict((f"module.{k}", v) for k, v in sd.items()), "epoch": 7}
    target = create(name, 10, width=W, L=4, **kw).eval()
    mapping = load_reference_weights(target, wrapped)
    assert len(mapping) == len({k.rpartition(".")[0] for k in sd})
    loaded = target.state_dict()
    for key, value in source.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(loaded[key], value), key
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


def test_reference_names_map_to_the_expected_modules():
    model = create("resnet18", 10, width=W)
    source = trained_like(create("resnet18", 10, width=W), seed=5)
    mapping = load_reference_weights(model, reference_resnet(source))
    assert mapping["stem.0"] == "conv1.0"
    assert mapping["stem.2"] == "conv1.2"
    assert mapping["layer2.0.shortcut.0"] == "conv3_x.0.shortcut.0"
    assert mapping["layer4.1.act2"] == "conv5_x.1.act"
    assert mapping["fc"] == "fc"
    sd = reference_resnet(source)
    theta = sd["conv4_x.1.residual_function.2.thresh"]
    assert torch.equal(model.layer3[1].act1.theta.detach().reshape(1), theta)


def test_reference_mismatch_is_a_clear_error_and_changes_nothing():
    source = trained_like(create("vgg16", 100, width=W), seed=1)
    sd = reference_vgg16(source)
    model = create("vgg16", 10, width=W)
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    with pytest.raises(CheckpointError, match=r"classifier\.7.*\(100, 256\)") as err:
        load_reference_weights(model, sd)
    assert "expected weight (10, 256)" in str(err.value)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())

    # The reference ResNets keep the 3×3 stem: loading into the 7×7 stem says so.
    res = reference_resnet(trained_like(create("resnet18", 10, width=W), seed=2))
    with pytest.raises(CheckpointError, match="stem='cifar'"):
        load_reference_weights(create("resnet18", 10, width=W, stem="imagenet"), res)

    # Wrong architecture: counts differ.
    with pytest.raises(CheckpointError, match="layers with weights or thresholds"):
        load_reference_weights(create("resnet34", 10, width=W), res)

    # A plain-ReLU checkpoint has no thresholds: refused unless strict=False.
    relu = OrderedDict((k, v) for k, v in res.items() if not re.search(r"\.(thresh|up)$", k))
    with pytest.raises(CheckpointError, match="no activation thresholds"):
        load_reference_weights(create("resnet18", 10, width=W), relu)
    loose = create("resnet18", 10, width=W)
    load_reference_weights(loose, relu, strict=False)
    assert all(m.theta.item() == 8.0 for _, m in qcfs_layers(loose))
    assert torch.equal(loose.fc.weight, res["fc.weight"])

    with pytest.raises(CheckpointError, match="neither convolution"):
        load_reference_weights(model, {"encoder.attn.in_proj_weight": torch.zeros(3, 3, 3)})
    with pytest.raises(CheckpointError, match="state dict"):
        load_reference_weights(model, [1, 2])  # type: ignore[arg-type]


def test_reference_weights_round_trip_through_torch_load(tmp_path):
    source = trained_like(create("vgg16", 10, width=W), seed=4)
    path = tmp_path / "ref.pth"
    torch.save(reference_vgg16(source, "up"), path)
    model = create("vgg16", 10, width=W)
    load_reference_weights(model, torch.load(path, weights_only=True))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), source(x))
    assert torch.equal(model.features[2].theta, source.features[2].theta)
