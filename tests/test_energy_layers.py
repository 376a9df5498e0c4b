"""Layer table (SPEC §6): shapes and ANN MACs of every conv/linear layer, in forward order."""

import pytest
import torch
from torch import nn

from pascal_snn import QCFS, convert
from pascal_snn.energy import LayerRow, layer_table, topology, total_macs
from tests.models_for_tests import FunctionalNet, ResidualMaxPoolNet, randomize_batchnorm


class Assorted(nn.Module):
    """Strides, padding, groups, dilation, a Conv1d and a linear on [B, N, F]; modules are
    registered in the opposite order to the one the forward calls them in."""

    def __init__(self):
        super().__init__()
        self.tokens = nn.Linear(6, 7)
        self.conv1d = nn.Conv1d(4, 6, 3, padding=2, dilation=2)
        self.grouped = nn.Conv2d(6, 4, (3, 2), stride=(2, 1), padding=(1, 0), groups=2)
        self.stem = nn.Conv2d(3, 6, 5, stride=2, padding=1)
        self.act = QCFS(2, 1.0)

    def forward(self, x):
        y = self.act(self.grouped(self.act(self.stem(x))))  # [B, 4, 3, 5] for a 13×13 input
        y = self.act(self.conv1d(y.flatten(2)))  # [B, 6, 15]
        return self.tokens(y.view(y.size(0), 15, 6))  # [B, 15, 7]


def test_rows_follow_the_formulas_in_forward_order():
    rows = layer_table(Assorted(), (3, 13, 13))
    # stem: 13 → (13 + 2 − 5)//2 + 1 = 6; grouped: H (6 + 2 − 3)//2 + 1 = 3, W 6 − 2 + 1 = 5
    assert rows == [
        LayerRow("stem", "conv", 3, 6, 5, 5, 6, 6, 1, 3 * 6 * 25 * 36),
        LayerRow("grouped", "conv", 6, 4, 3, 2, 3, 5, 2, 6 * 4 * 6 * 15 // 2),
        LayerRow("conv1d", "conv", 4, 6, 1, 3, 1, 15, 1, 4 * 6 * 3 * 15),
        LayerRow("tokens", "linear", 6, 7, 1, 1, 15, 1, 1, 6 * 7 * 15),
    ]
    assert rows[1].fan_in == 3 * 3 * 2
    assert total_macs(rows) == sum(r.macs for r in rows)


def test_conv3d_folds_depth_into_height():
    model = nn.Sequential(nn.Conv3d(2, 3, (2, 3, 3), padding=(0, 1, 1)), QCFS(), nn.Flatten())
    (row,) = layer_table(model, (2, 4, 5, 5))
    assert (row.k_h, row.k_w, row.h_out, row.w_out) == (6, 3, 15, 5)
    assert row.macs == 2 * 3 * (2 * 3 * 3) * (3 * 5 * 5)


@pytest.mark.parametrize(
    ("factory", "shape"), [(ResidualMaxPoolNet, (1, 8, 8)), (FunctionalNet, (3, 8, 8))]
)
def test_converted_network_has_the_anns_rows_and_keeps_its_counters(factory, shape):
    model = factory().eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(0))
    net = convert(model)
    net(torch.rand(3, *shape))
    before = {name: (int(m.output_spikes), int(m.samples)) for name, m in net.if_layers()}
    ann_rows, snn_rows = layer_table(model, shape), layer_table(net, shape)
    # a standalone BatchNorm (FunctionalNet's post_bn) is a per-channel affine map, no layer
    assert snn_rows == ann_rows
    after = {name: (int(m.output_spikes), int(m.samples)) for name, m in net.if_layers()}
    assert after == before  # the shape trace is not counted as a measurement
    assert [r.name for r in snn_rows] == [link.name for link in topology(net).links]


def test_model_mode_is_restored():
    model = ResidualMaxPoolNet().train()
    layer_table(model, (1, 8, 8))
    assert model.training


# Paper Appendix A.5 (CIFAR, 32×32) and A.6 (ImageNet, 224×224), per layer.
VGG16_CIFAR = [
    1_769_472, 37_748_736, 18_874_368, 37_748_736, 18_874_368, 37_748_736, 37_748_736,
    18_874_368, 37_748_736, 37_748_736, 9_437_184, 9_437_184, 9_437_184, 2_097_152, 16_777_216,
]  # fmt: skip
VGG16_IMAGENET = [
    86_704_128, 1_849_688_064, 924_844_032, 1_849_688_064, 924_844_032, 1_849_688_064,
    1_849_688_064, 924_844_032, 1_849_688_064, 1_849_688_064, 462_422_016, 462_422_016,
    462_422_016, 102_760_448, 16_777_216, 4_096_000,
]  # fmt: skip


@pytest.mark.parametrize(
    ("classes", "head", "shape", "per_layer", "total"),
    [
        (10, "cifar", (3, 32, 32), [*VGG16_CIFAR, 40_960], 332_111_872),
        (100, "cifar", (3, 32, 32), [*VGG16_CIFAR, 409_600], 332_480_512),
        (1000, "imagenet", (3, 224, 224), VGG16_IMAGENET, 15_470_264_320),
    ],
)
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_vgg16_matches_paper_tables(classes, head, shape, per_layer, total, pool):
    from pascal_snn.models import create

    model = create("vgg16", classes, head=head, pool=pool)
    rows = layer_table(model, shape)
    assert [r.macs for r in rows] == per_layer
    assert total_macs(rows) == total


# Paper Appendix A.7 (ResNet-18, CIFAR, 32×32). Rows marked False do not follow from the
# architecture (see docs/energy.md): the paper used too small an output size for them.
RESNET18_A7 = [
    ("stem.0", 1_769_472, True),
    ("layer1.0.conv1", 37_748_736, True),
    ("layer1.0.conv2", 37_748_736, True),
    ("layer1.1.conv1", 37_748_736, True),
    ("layer1.1.conv2", 37_748_736, True),
    ("layer2.0.conv1", 18_874_368, True),
    ("layer2.0.conv2", 9_437_184, False),
    ("layer2.0.shortcut.0", 2_097_152, True),
    ("layer2.1.conv1", 9_437_184, False),
    ("layer2.1.conv2", 9_437_184, False),
    ("layer3.0.conv1", 4_718_592, False),
    ("layer3.0.conv2", 2_359_296, False),
    ("layer3.0.shortcut.0", 524_288, False),
    ("layer3.1.conv1", 2_359_296, False),
    ("layer3.1.conv2", 2_359_296, False),
    ("layer4.0.conv1", 1_179_648, False),
    ("layer4.0.conv2", 589_824, False),
    ("layer4.0.shortcut.0", 262_144, False),
    ("layer4.1.conv1", 589_824, False),
    ("layer4.1.conv2", 589_824, False),
    ("fc", 5_120, True),
]


def test_resnet18_cifar_true_counts_and_the_paper_rows_that_match():
    from pascal_snn.models import create

    rows = layer_table(create("resnet18", 10, stem="cifar"), (3, 32, 32))
    assert [r.name for r in rows] == [name for name, _, _ in RESNET18_A7]
    for row, (_, paper, agrees) in zip(rows, RESNET18_A7, strict=True):
        assert (row.macs == paper) is agrees, row
        # every 3×3 conv after the first stage does C·C·9·H·W = 37,748,736 (or half: stride 2)
        expected = row.c_in * row.c_out * row.k_h * row.k_w * row.h_out * row.w_out
        assert row.macs == expected
    assert sum(paper for _, paper, _ in RESNET18_A7) == 217_584_640  # the paper's total
    assert total_macs(rows) == 555_422_720
    rows100 = layer_table(create("resnet18", 100, stem="cifar"), (3, 32, 32))
    assert total_macs(rows100) == 555_422_720 - 5_120 + 51_200


class SharedCalls(nn.Module):
    """One conv and one QCFS, each called at two places."""

    def __init__(self):
        super().__init__()
        self.stem, self.conv, self.act = (
            nn.Conv2d(1, 4, 3, padding=1),
            nn.Conv2d(4, 4, 3, padding=1),
            QCFS(2, 1.0),
        )
        self.fc = nn.Linear(4 * 16, 3)

    def forward(self, x):
        x = self.act(self.stem(x))
        x = self.act(self.conv(x)) + self.conv(x)
        return self.fc(x.flatten(1))


def test_each_call_site_is_a_row_a_link_and_a_neuron():
    from pascal_snn.energy import energy_report

    model = SharedCalls().eval()
    rows = layer_table(model, (1, 4, 4))
    assert [r.name for r in rows] == ["stem", "conv", "conv#2", "fc"]
    topo = topology(model, (1, 4, 4))
    assert [(link.name, link.input, link.t_in) for link in topo.links] == [
        ("stem", "image", 1),
        ("conv", "spikes", 2),
        ("conv#2", "spikes", 2),
        ("fc", "real", 2),
    ]
    assert topo.link("conv").sinks == ("act#2",) and topo.levels == {"act": 2, "act#2": 2}
    net = convert(model, example_input=torch.rand(2, 1, 4, 4))
    assert [r.name for r in layer_table(net, (1, 4, 4))] == [r.name for r in rows]
    report = energy_report(model, [torch.rand(3, 1, 4, 4)])
    assert [layer.row.name for layer in report.layers] == ["stem", "conv", "conv#2", "fc"]
    assert [n.name for n in report.neurons] == ["act", "act#2"]
