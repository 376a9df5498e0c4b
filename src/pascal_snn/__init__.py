"""pascal-snn: exact ANN-to-SNN conversion with PASCAL (Ramesh & Srinivasan, TMLR 2025).

Train with :class:`QCFS` activations, then :func:`convert` the model: the PASC spiking network
gives the ANN's logits with T = L timesteps per layer. A ReLU model of your own (torchvision's
included): :func:`qcfsify` → :func:`load_relu_weights` → :func:`calibrate_thresholds` →
fine-tune → :func:`convert`. ``snn.save(path)`` writes a converted network as plain data;
:func:`load_snn` loads it.
"""

from pascal_snn.calibration import calibrate_thresholds
from pascal_snn.convert import Mode, PascNetwork, VanillaNetwork, convert
from pascal_snn.convert.serialize import load_snn
from pascal_snn.errors import (
    CheckpointError,
    ConfigError,
    ConversionError,
    DataError,
    PascalError,
)
from pascal_snn.qcfs import QCFS, qcfs_layers, set_levels
from pascal_snn.qcfsify import load_relu_weights, qcfs_sites, qcfsify

__version__ = "0.1.0"

__all__ = [
    "QCFS",
    "CheckpointError",
    "ConfigError",
    "ConversionError",
    "DataError",
    "Mode",
    "PascNetwork",
    "PascalError",
    "VanillaNetwork",
    "calibrate_thresholds",
    "convert",
    "load_relu_weights",
    "load_snn",
    "qcfs_layers",
    "qcfs_sites",
    "qcfsify",
    "set_levels",
]
