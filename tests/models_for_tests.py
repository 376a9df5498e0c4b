"""Small models that are not in the zoo, written the way users write them."""

import torch
import torch.nn.functional as F
from torch import nn

from pascal_snn import QCFS


def randomize_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm random affine parameters and running statistics."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=generator) * 2 - 1)
            m.running_var.copy_(torch.rand(c, generator=generator) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=generator) * 1.5 + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=generator) * 2 - 1)


class ResidualMaxPoolNet(nn.Module):
    """A residual add of trains of different lengths and a MaxPool fed by an IF neuron."""

    def __init__(self, levels=(4, 2, 1, 3), channels=8, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = QCFS(levels[0], 2.0)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = QCFS(levels[1], 1.5)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act3 = QCFS(levels[2], 3.0)
        self.fc1 = nn.Linear(channels * 16, 32)
        self.bn_fc = nn.BatchNorm1d(32)
        self.act4 = QCFS(levels[3], 2.5)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x):
        a = self.act1(self.bn1(self.conv1(x)))
        b = self.pool(self.act2(self.bn2(self.conv2(a))))
        c = self.act3(self.conv3(b) + self.pool(a))  # trains of lengths L1 and L0 meet here
        h = self.act4(self.bn_fc(self.fc1(c.view(c.size(0), -1))))
        return self.fc2(h)


class FunctionalNet(nn.Module):
    """Functional style: F.avg_pool2d, torch.cat, a standalone BatchNorm, scaling, Dropout."""

    def __init__(self, levels=(2, 4, 1, 8), classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), QCFS(levels[0], 1.0))
        self.left = nn.Sequential(nn.Conv2d(6, 4, 1), nn.BatchNorm2d(4), QCFS(levels[1], 2.0))
        self.right = nn.Sequential(nn.Conv2d(6, 4, 3, padding=1), QCFS(levels[2], 1.0))
        self.post_bn = nn.BatchNorm2d(8)  # after a concat: not foldable, an affine layer
        self.act = QCFS(levels[3], 4.0)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(8 * 2 * 2, classes)

    def forward(self, x):
        s = self.stem(x)
        y = torch.cat([self.left(s), self.right(s)], dim=1)
        y = self.act(self.post_bn(F.avg_pool2d(y, 2)) * 0.5)
        y = torch.flatten(self.drop(y), 1)
        return self.head(y)
