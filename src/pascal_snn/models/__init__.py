"""The model zoo: QCFS networks by name (``create``), and loading of reference-code weights.

Every model has ``conv/linear → [BatchNorm] → QCFS`` blocks, a plain linear classifier, and
converts with :func:`pascal_snn.convert`.
"""

from pascal_snn.models.reference import load_reference_weights
from pascal_snn.models.registry import create, names
from pascal_snn.models.resnet import BasicBlock, ResNet, resnet18, resnet34
from pascal_snn.models.small import digits_cnn, mnist_cnn
from pascal_snn.models.vgg import VGG, vgg16

__all__ = [
    "VGG",
    "BasicBlock",
    "ResNet",
    "create",
    "digits_cnn",
    "load_reference_weights",
    "mnist_cnn",
    "names",
    "resnet18",
    "resnet34",
    "vgg16",
]
