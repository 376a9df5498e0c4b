"""``torchvision:<name>`` models: built by torchvision, adapted, qcfsified, trained, reloaded."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import fx, nn

from pascal_snn import ConfigError, convert, load_relu_weights, qcfs_layers, qcfs_sites
from pascal_snn.checkpoint import load_model, save_checkpoint
from pascal_snn.models import create
from pascal_snn.models.torchvision_models import names
from tests.models_for_tests import randomize_batchnorm


def test_names_are_torchvisions_classification_models():
    available = names()
    assert {"resnet18", "mobilenet_v2", "densenet121", "googlenet"} <= set(available)
    assert not any(n.startswith(("fcn", "deeplab", "raft", "r3d", "fasterrcnn")) for n in available)


def test_resnet_cifar_stem_and_one_input_channel():
    torch.manual_seed(0)
    model = create("torchvision:resnet18", num_classes=7, in_channels=1, stem="cifar")
    assert isinstance(model, fx.GraphModule)
    conv1 = model.get_submodule("conv1")
    assert isinstance(conv1, nn.Conv2d)
    assert (conv1.in_channels, conv1.kernel_size, conv1.stride) == (1, (3, 3), (1, 1))
    assert isinstance(model.get_submodule("maxpool"), nn.Identity)
    assert len(qcfs_layers(model)) == 17  # stem + two per BasicBlock, per call site
    out = model.eval()(torch.rand(2, 1, 8, 8))
    assert out.shape == (2, 7)
    # every non-activation parameter keeps torchvision's name
    reference = torchvision.models.resnet18(num_classes=7).state_dict()
    own = model.state_dict()
    assert set(reference) <= set(own)
    assert {k for k in own if k not in reference} == {
        f"{n}.{leaf}" for n, _ in qcfs_layers(model) for leaf in ("theta", "_extra_state")
    }


def test_densenet_cifar_stem_and_other_families_refuse_it():
    model = create("torchvision:densenet121", num_classes=10, stem="cifar")
    conv0 = model.get_submodule("features.conv0")
    assert isinstance(conv0, nn.Conv2d) and conv0.stride == (1, 1) and conv0.kernel_size == (3, 3)
    assert isinstance(model.get_submodule("features.pool0"), nn.Identity)
    with pytest.raises(ConfigError, match="stem='cifar' is defined for the ResNet family"):
        create("torchvision:vgg11", num_classes=10, stem="cifar")
    with pytest.raises(ConfigError, match="stem must be"):
        create("torchvision:resnet18", num_classes=10, stem="tiny")


def test_first_conv_takes_the_data_sets_channels_and_relu6_sites():
    model = create("torchvision:mobilenet_v2", num_classes=3, in_channels=2)
    first = model.get_submodule("features.0.0")
    assert isinstance(first, nn.Conv2d) and first.in_channels == 2 and first.stride == (2, 2)
    sites = qcfs_sites(model)
    assert len(sites) == 35 and all(s.kind.value == "relu6" for s in sites.values())
    assert all(float(layer.theta.detach()) == 6.0 for _, layer in qcfs_layers(model))
    assert model.eval()(torch.rand(2, 2, 32, 32)).shape == (2, 3)


def test_aux_heads_off_by_default_and_string_options():
    model = create("torchvision:googlenet", num_classes=10)
    assert not any(name.startswith("aux") for name, _ in model.named_modules())
    with pytest.raises(ConfigError, match="different graph in train and eval"):
        create("torchvision:googlenet", num_classes=10, aux_logits="true")
    model = create("torchvision:resnet18", num_classes=10, zero_init_residual="True")
    bn2 = model.get_submodule("layer1.0.bn2")
    assert isinstance(bn2, nn.BatchNorm2d) and float(bn2.weight.detach().abs().sum()) == 0.0


def test_levels_theta_and_errors():
    levels = [1 + i % 8 for i in range(26)]
    model = create("torchvision:squeezenet1_1", num_classes=10, L=levels, theta=3)
    assert [layer.L for _, layer in qcfs_layers(model)] == levels
    assert all(float(layer.theta.detach()) == 3.0 for _, layer in qcfs_layers(model))
    for kwargs, pattern in (
        ({"name": "torchvision:resnet19"}, "did you mean torchvision:resnet18"),
        ({"name": "torchvision:resnet18", "weights": "DEFAULT"}, "random weights"),
        ({"name": "torchvision:resnet18", "width": 0.5}, "no width multiplier"),
        ({"name": "torchvision:resnet18", "foo": 1}, r"does not take option\(s\) foo"),
        ({"name": "torchvision:resnet18", "L": [4, 4]}, "exactly 17 values"),
        ({"name": "torchvision:efficientnet_b0"}, r"(?s)SiLU ×49.*'features\.0\.2' \(SiLU\)"),
        ({"name": "torchvision:mobilenet_v3_small"}, "Hardswish ×"),
        ({"name": "nope"}, "torchvision:<name>"),
    ):
        with pytest.raises(ConfigError, match=pattern):
            create(num_classes=10, **kwargs)


def test_torchvision_relu_weights_load_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    relu_model = torchvision.models.resnet18(num_classes=10)
    randomize_batchnorm(relu_model, torch.Generator().manual_seed(0))
    relu_model.eval()
    torch.save(relu_model.state_dict(), tmp_path / "relu.pt")
    # huge θ and L: the QCFS copy with the ReLU weights computes the ReLU model
    model = create("torchvision:resnet18", num_classes=10, L=2**40, theta=1e4).double().eval()
    load_relu_weights(model, tmp_path / "relu.pt")
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = relu_model.double()(x)
        assert (model(x) - expected).abs().max().item() <= 1e-6 * expected.abs().max().item()

    small = create("torchvision:resnet18", num_classes=10, L=2, in_channels=1, stem="cifar")
    levels = [layer.L for _, layer in qcfs_layers(small)]
    arch = {
        "name": "torchvision:resnet18",
        "num_classes": 10,
        "in_channels": 1,
        "width": None,
        "kwargs": {"stem": "cifar"},
    }
    state = {"model": small.state_dict(), "arch": arch, "levels": levels}
    save_checkpoint(tmp_path / "c.pt", state)
    loaded, _ = load_model(tmp_path / "c.pt")
    y = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(y), small.eval()(y))
    snn = convert(loaded, example_input=y)
    assert len(snn.if_layers()) == 17


@pytest.mark.slow
def test_train_command_path_with_a_torchvision_model(tmp_path):
    from pascal_snn.config import RunConfig
    from pascal_snn.data import DATASETS, DataSplits, synthetic_datasets
    from pascal_snn.training import train

    train_set, test_set = synthetic_datasets(num_train=56, num_test=16)
    data = DataSplits.from_sets(train_set, test_set, DATASETS["synthetic"], val_images=8)
    config = RunConfig(
        out=str(tmp_path / "run"),
        dataset="synthetic",
        model="torchvision:resnet18",
        model_kwargs={"stem": "cifar"},
        epochs=1,
        batch_size=16,
        lr=0.01,
        val_images=8,
    )
    torch.set_num_threads(1)
    train(config, splits=data)
    model, state = load_model(tmp_path / "run" / "best.pt")
    assert state["arch"]["name"] == "torchvision:resnet18"
    assert len(qcfs_layers(model)) == 17
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(convert(model)(x), model(x), atol=1e-4)
