"""Models the way users write them (in no zoo), and torchvision's own blocks and models.

Each converts exactly in float64 (logits within 1e-12·scale, same predictions), with every
QCFS call busy on at least two levels so the comparison is not vacuous — or is refused for a
reason the test names.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pascal_snn import QCFS, ConversionError, convert
from tests.models_for_tests import randomize_batchnorm
from tests.test_convert import busy, exact


def calibrate(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every QCFS θ from its input on ``x`` (a high quantile, so levels are used)."""

    def pre(module: QCFS, inputs: tuple[torch.Tensor]) -> None:
        z = inputs[0].detach().flatten().double()
        module.theta.data.fill_(max(float(z.quantile(0.9)), 1e-2))

    hooks = [m.register_forward_pre_hook(pre) for m in model.modules() if isinstance(m, QCFS)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return model


def check(model: nn.Module, x: torch.Tensor, *more: torch.Tensor) -> nn.Module:
    torch.manual_seed(0)
    randomize_batchnorm(model, torch.Generator().manual_seed(0))
    model = calibrate(model.double().eval(), x.double())
    busy(model, x.double())
    return exact(model, x, *more)


class AudioNet(nn.Module):
    """1-D convolutions over a waveform."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 8, 9, stride=2, padding=4),
            nn.BatchNorm1d(8),
            QCFS(4),
            nn.MaxPool1d(2),
            nn.Conv1d(8, 8, 5, padding=2, bias=False),
            nn.BatchNorm1d(8),
            QCFS(2),
            nn.AdaptiveAvgPool1d(4),
        )
        self.classifier = nn.Linear(32, 5)

    def forward(self, x):
        return self.classifier(self.features(x).view(x.size(0), -1))


class VideoNet(nn.Module):
    """3-D convolutions, 3-D pooling, global max pooling of IF outputs."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1, self.q1 = nn.Conv3d(2, 4, 3, padding=1), nn.BatchNorm3d(4), QCFS(3)
        self.pool = nn.AvgPool3d((1, 2, 2))
        self.c2, self.q2 = nn.Conv3d(4, 6, 3, padding=1), QCFS(5)
        self.gmp = nn.AdaptiveMaxPool3d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.pool(self.q1(self.b1(self.c1(x))))
        return self.fc(torch.flatten(self.gmp(self.q2(self.c2(x))), 1))


class TiedMLP(nn.Module):
    """One hidden block applied three times (weights tied across depth)."""

    def __init__(self):
        super().__init__()
        self.inp, self.q0 = nn.Linear(10, 16), QCFS(4)
        self.block = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), QCFS(3))
        self.drop, self.out = nn.Dropout(0.2), nn.Linear(16, 4)

    def forward(self, x):
        h = self.q0(self.inp(x))
        for _ in range(3):
            h = h + self.block(h)
        return self.out(self.drop(h))


class UNetish(nn.Module):
    """Down with average pooling, up with nearest upsampling, skip by concatenation."""

    def __init__(self):
        super().__init__()
        self.enc, self.q1 = nn.Conv2d(1, 4, 3, padding=1), QCFS(4)
        self.mid, self.q2 = nn.Conv2d(4, 4, 3, padding=1), QCFS(6)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec, self.q3 = nn.Conv2d(8, 4, 3, padding=1), QCFS(3)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        e = self.q1(self.enc(x))
        m = self.q2(self.mid(F.avg_pool2d(e, 2)))
        d = self.q3(self.dec(torch.cat([self.up(m), e], dim=1)))
        return self.head(d).mean((2, 3))


class SharedBlockNet(nn.Module):
    """A conv–BN–QCFS block called twice: BatchNorm cannot fold into a shared conv."""

    def __init__(self):
        super().__init__()
        self.stem, self.q = nn.Conv2d(3, 6, 3, padding=1), QCFS(4)
        self.block = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), QCFS(2))
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.q(self.stem(x))
        x = self.block(self.block(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Tokens(nn.Module):
    """[B, N, F] tokens: linear on features, BatchNorm1d over the N tokens, mean over tokens."""

    def __init__(self):
        super().__init__()
        self.embed, self.q1 = nn.Linear(6, 8), QCFS(4)
        self.norm = nn.BatchNorm1d(5)
        self.mix, self.q2 = nn.Linear(8, 8), QCFS(3)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        t = self.q1(self.embed(x))
        t = self.q2(self.mix(self.norm(t)))
        return self.head(t.mean(1))


class TransposeNet(nn.Module):
    """Channels and time swapped around a linear layer ([B, C, L] → [B, L, C])."""

    def __init__(self):
        super().__init__()
        self.conv, self.q1 = nn.Conv1d(3, 4, 3, padding=1), QCFS(4)
        self.fc, self.q2 = nn.Linear(4, 4), QCFS(5)
        self.head = nn.Linear(4 * 10, 2)

    def forward(self, x):
        y = self.q1(self.conv(x)).transpose(1, 2)
        y = self.q2(self.fc(y)).transpose(-1, -2).contiguous()
        return self.head(y.reshape(y.shape[0], -1))


class DepthwiseResidual(nn.Module):
    """MobileNet style: pointwise → depthwise → pointwise, residual add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), QCFS(4))
        self.block = nn.Sequential(
            nn.Conv2d(8, 16, 1, bias=False),
            nn.BatchNorm2d(16),
            QCFS(4),
            nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
            nn.BatchNorm2d(16),
            QCFS(4),
            nn.Conv2d(16, 8, 1, bias=False),
            nn.BatchNorm2d(8),
        )
        self.q, self.fc = QCFS(8), nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        x = self.q(x + self.block(x))
        return self.fc(x.mean([2, 3]))


class DenseNetish(nn.Module):
    """Features concatenated as they grow (a list passed to torch.cat)."""

    def __init__(self):
        super().__init__()
        self.stem, self.q0 = nn.Conv2d(1, 4, 3, padding=1), QCFS(4)
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(4 + 2 * i), nn.Conv2d(4 + 2 * i, 2, 3, padding=1), QCFS(i + 2)
            )
            for i in range(3)
        )
        self.pool, self.fc = nn.MaxPool2d(2), nn.Linear(10 * 4 * 4, 3)

    def forward(self, x):
        features = [self.q0(self.stem(x))]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return self.fc(self.pool(torch.cat(features, 1)).flatten(1))


class Normalised(nn.Module):
    """The image normalised inside forward with buffers; then a plain conv net."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1))
        self.conv, self.q = nn.Conv2d(3, 4, 3), QCFS(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = (x - self.mean) / self.std
        return self.fc(self.q(self.conv(x)).amax((2, 3)))


class MultiScale(nn.Module):
    """Two branches of different L concatenated on channels, then max pooled (Fire-like)."""

    def __init__(self):
        super().__init__()
        self.squeeze, self.q = nn.Conv2d(2, 4, 1), QCFS(4)
        self.e1, self.q1 = nn.Conv2d(4, 3, 1), QCFS(2)
        self.e3, self.q3 = nn.Conv2d(4, 3, 3, padding=1), QCFS(7)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x):
        s = self.q(self.squeeze(x))
        y = torch.cat([self.q1(self.e1(s)), self.q3(self.e3(s))], 1)
        return self.fc(self.pool(y).flatten(1))


class ChannelShuffle(nn.Module):
    """ShuffleNet's split, shuffle and concat, written as in torchvision."""

    def __init__(self):
        super().__init__()
        self.stem, self.q = nn.Conv2d(3, 8, 3, padding=1), QCFS(4)
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), QCFS(3))
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = self.q(self.stem(x))
        x1, x2 = x.chunk(2, dim=1)
        x = torch.cat((x1, self.branch(x2)), dim=1)
        b, c, h, w = x.size()
        x = x.view(b, 2, c // 2, h, w)
        x = torch.transpose(x, 1, 2).contiguous().view(b, -1, h, w)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


USER_MODELS = [
    (AudioNet, (1, 64)),
    (VideoNet, (2, 4, 6, 6)),
    (TiedMLP, (10,)),
    (UNetish, (1, 8, 8)),
    (SharedBlockNet, (3, 6, 6)),
    (Tokens, (5, 6)),
    (TransposeNet, (3, 10)),
    (DepthwiseResidual, (3, 8, 8)),
    (DenseNetish, (1, 8, 8)),
    (Normalised, (3, 7, 7)),
    (MultiScale, (2, 8, 8)),
    (ChannelShuffle, (3, 6, 6)),
]


@pytest.mark.parametrize(
    ("factory", "shape"), USER_MODELS, ids=lambda v: getattr(v, "__name__", "")
)
def test_user_models_convert_exactly(factory, shape):
    g = torch.Generator().manual_seed(0)
    check(factory(), torch.randn(6, *shape, generator=g) * 2, torch.randn(1, *shape, generator=g))


class SqueezeExcite(nn.Module):
    """x · gate(x): a product of two spike trains."""

    def __init__(self):
        super().__init__()
        self.conv, self.q = nn.Conv2d(3, 4, 3), QCFS(4)
        self.gate, self.qg = nn.Linear(4, 4), QCFS(2)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y = self.q(self.conv(x))
        g = self.qg(self.gate(y.mean((2, 3))))
        return self.fc((y * g[:, :, None, None]).mean((2, 3)))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv, self.q = nn.Linear(4, 12), QCFS(4)

    def forward(self, x):
        q, k, v = self.q(self.qkv(x)).chunk(3, -1)
        return (torch.softmax(q @ k.transpose(1, 2), -1) @ v).mean(1)


@pytest.mark.parametrize(
    ("model", "shape", "pattern"),
    [
        (SqueezeExcite(), (3, 6, 6), "product of two spike trains"),
        (Attention(), (5, 4), "'matmul'.*no exact spiking equivalent"),
    ],
)
def test_user_models_that_are_not_exact_are_refused(model, shape, pattern):
    with pytest.raises(ConversionError, match=pattern):
        convert(model, example_input=torch.randn(2, *shape))


# -- torchvision --------------------------------------------------------------------------------
torchvision = pytest.importorskip("torchvision")


def relu_to_qcfs(model: nn.Module, L: int = 4) -> nn.Module:
    """Test helper: every nn.ReLU / nn.ReLU6 child becomes a QCFS (one per module)."""
    for name, child in model.named_children():
        if isinstance(child, (nn.ReLU, nn.ReLU6)):
            setattr(model, name, QCFS(L))
        else:
            relu_to_qcfs(child, L)
    return model


def test_torchvision_basic_block_calls_its_relu_twice():
    from torchvision.models.resnet import BasicBlock

    block = relu_to_qcfs(BasicBlock(6, 6))
    model = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1), QCFS(4), block, nn.Flatten(), nn.LazyLinear(3)
    )
    model(torch.zeros(1, 2, 5, 5))
    snn = check(model, torch.randn(4, 2, 5, 5) * 2)
    assert [n for n, _ in snn.if_layers()] == ["1", "2.relu", "2.relu#2"]


def test_torchvision_bottleneck_with_downsample():
    from torchvision.models.resnet import Bottleneck

    down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
    block = relu_to_qcfs(Bottleneck(8, 4, stride=2, downsample=down))
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), QCFS(4), block)
    head = nn.Sequential(model, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    snn = check(head, torch.randn(3, 3, 6, 6) * 2)
    assert [n for n, _ in snn.if_layers()][-3:] == ["0.3.relu", "0.3.relu#2", "0.3.relu#3"]


@pytest.mark.parametrize(
    ("name", "size"),
    [("resnet18", 32), ("squeezenet1_1", 48), ("shufflenet_v2_x0_5", 32), ("mobilenet_v2", 32)],
)
def test_torchvision_models_with_qcfs_convert_exactly(name, size):
    torch.manual_seed(0)
    model = relu_to_qcfs(getattr(torchvision.models, name)(num_classes=10))
    x = torch.randn(2, 3, size, size)
    randomize_batchnorm(model, torch.Generator().manual_seed(0))
    model = calibrate(model.double().eval(), x.double())
    exact(model, x)
