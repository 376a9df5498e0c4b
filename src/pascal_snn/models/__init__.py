"""The model zoo: QCFS networks by name (``create``), and loading of reference-code weights.

Every model has ``conv/linear → [BatchNorm] → QCFS`` blocks, a plain linear classifier, and
converts with :func:`pascal_snn.convert`.
"""

from pascal_snn.models.registry import create, names
from pascal_snn.models.small import digits_cnn, mnist_cnn
from pascal_snn.models.vgg import VGG, vgg16

__all__ = ["VGG", "create", "digits_cnn", "mnist_cnn", "names", "vgg16"]
