"""Architecture coverage: torchvision models → qcfsify → calibrate → convert, exact in float64.

Random weights with randomised BatchNorm statistics (BN is not the identity), per-layer L drawn
from 1…8, θ calibrated on random images (so neurons fire at several levels — checked), tiny
inputs. The converted network must give the qcfsified ANN's logits (relative 1e-9) and
predictions, or the model must be refused with the reason. VGG / AlexNet classifiers are
reduced from 4096 to 64 hidden units (the only change to torchvision's layouts) to keep the
test fast; everything else is torchvision's architecture as built.

Every model here converts exactly; ``inception_v3`` (slow) too.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from pascal_snn import ConversionError, calibrate_thresholds, convert, qcfs_layers, qcfsify
from tests.models_for_tests import randomize_batchnorm

# name: (builder options, input size)
EXACT = {
    "resnet18": ({}, 32),
    "resnet50": ({}, 32),
    "vgg11_bn": ({}, 32),
    "mobilenet_v2": ({}, 32),
    "densenet121": ({}, 32),
    "squeezenet1_1": ({}, 32),  # torch.cat of two IF outputs, then MaxPool
    "shufflenet_v2_x0_5": ({}, 32),  # channel shuffle: view / transpose / view
    "googlenet": ({"aux_logits": False, "init_weights": True}, 32),
    "regnet_x_400mf": ({}, 32),
    "mnasnet0_5": ({}, 32),
    "alexnet": ({}, 64),  # 63×63 is the smallest input its three max-pools accept
}


def _shrink_classifier(model: nn.Module) -> None:
    """VGG/AlexNet: hidden linear layers 4096 → 64 (same layout: Linear-ReLU-Dropout ×2)."""
    classifier = model.classifier
    assert isinstance(classifier, nn.Sequential)
    first, second, last = [i for i, m in enumerate(classifier) if isinstance(m, nn.Linear)]
    classifier[first] = nn.Linear(classifier[first].in_features, 64)
    classifier[second] = nn.Linear(64, 64)
    classifier[last] = nn.Linear(64, classifier[last].out_features)


def _relu_model(name: str, options: dict, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None, num_classes=10, **options)
    if name.startswith(("vgg", "alexnet")):
        _shrink_classifier(model)
    with torch.no_grad():
        randomize_batchnorm(model, torch.Generator().manual_seed(seed))
    return model.double().eval()


def _levels_seen(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[set[int], int]]:
    """Per QCFS layer: the level indices k = round(h·L/θ) its outputs took, and its L."""
    seen: dict[str, tuple[set[int], int]] = {}

    def record(name: str):
        def hook(module, inputs, output):
            k = torch.round(output * module.L / module.theta.detach()).long()
            seen[name] = (set(k.unique().tolist()), module.L)

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in qcfs_layers(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize(
    ("name", "options", "size"), [(name, *value) for name, value in EXACT.items()], ids=list(EXACT)
)
def test_converts_exactly_in_float64(name, options, size):
    relu_model = _relu_model(name, options)
    g = torch.Generator().manual_seed(1)
    count = len(qcfs_layers(qcfsify(relu_model)))
    levels = torch.randint(1, 9, (count,), generator=g).tolist()
    model = qcfsify(relu_model, L=levels)
    images = torch.rand(8, 3, size, size, generator=g, dtype=torch.float64)
    calibrate_thresholds(model, [images], num_images=8, percentile=99.0)
    x = torch.rand(2, 3, size, size, generator=g, dtype=torch.float64)

    seen = _levels_seen(model, x)  # the test is not vacuous: neurons fire at several levels
    assert all(len(ks) >= 2 for ks, _ in seen.values())
    graded = [any(0 < k < L for k in ks) for ks, L in seen.values() if L > 1]
    assert sum(graded) >= 0.8 * len(graded)

    snn = convert(model)
    with torch.no_grad():
        ann_out, snn_out = model(x), snn(x)
    assert len(snn.if_layers()) == count
    scale = ann_out.abs().max().item()
    assert (ann_out - snn_out).abs().max().item() <= 1e-9 * scale
    assert torch.equal(ann_out.argmax(1), snn_out.argmax(1))


@pytest.mark.slow
def test_inception_v3_converts_exactly_in_float64():
    relu_model = _relu_model("inception_v3", {"aux_logits": False, "init_weights": True})
    g = torch.Generator().manual_seed(1)
    model = qcfsify(relu_model, L=4)
    images = torch.rand(4, 3, 75, 75, generator=g, dtype=torch.float64)  # its minimum size
    calibrate_thresholds(model, [images], num_images=4, percentile=99.0)
    x = images[:2]
    snn = convert(model)
    with torch.no_grad():
        ann_out, snn_out = model(x), snn(x)
    assert (ann_out - snn_out).abs().max().item() <= 1e-9 * ann_out.abs().max().item()


# name: (what is refused, where the first one is)
REFUSED = {
    "efficientnet_b0": ("SiLU", "module 'features.0.2' (SiLU)"),
    "mobilenet_v3_small": ("Hardswish", "module 'features.0.2' (Hardswish)"),
    "regnet_y_400mf": ("Sigmoid", "'trunk_output.block1.block1-0.f.se.scale_activation' (Sigmoid)"),
    "convnext_tiny": ("GELU", "module 'features.1.0.block.2' (LayerNorm)"),
    "vit_b_16": ("LayerNorm", "(MultiheadAttention)"),
    "swin_t": ("GELU", "module 'features.0.2' (LayerNorm)"),
    "maxvit_t": ("GELU", "module 'stem.0.2' (GELU)"),
}


@pytest.mark.parametrize(("name", "what", "where"), [(n, *v) for n, v in REFUSED.items()])
def test_refused_with_the_reason_and_location(name, what, where):
    try:
        with torch.device("meta"):  # architecture only: no memory, no initialisation cost
            model = torchvision.models.get_model(name, weights=None, num_classes=10)
    except NotImplementedError:  # a builder that reads tensor values (RegNet's widths)
        model = torchvision.models.get_model(name, weights=None, num_classes=10)
    with pytest.raises(ConversionError) as info:
        qcfsify(model)
    text = str(info.value)
    assert f"{what} ×" in text and where in text
    assert "only ReLU and ReLU6 can be swapped" in text
