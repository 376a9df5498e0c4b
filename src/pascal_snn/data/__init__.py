"""Data sets: built-in digits, MNIST / Fashion-MNIST (IDX), CIFAR-10/100, ImageNet, synthetic.

``build_datasets(name, ...) -> (train, test, DatasetInfo)``; items are ``(float32 [C, H, W],
int label)``. See docs/data.md for where each data set is looked for and how to get it.
"""

from pascal_snn.data.arrays import ArrayDataset
from pascal_snn.data.cifar import load_batch
from pascal_snn.data.idx import read_idx, write_idx
from pascal_snn.data.info import DatasetInfo
from pascal_snn.data.registry import DATASETS, add_data_arguments, build_datasets
from pascal_snn.data.synthetic import synthetic_datasets

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DatasetInfo",
    "add_data_arguments",
    "build_datasets",
    "load_batch",
    "read_idx",
    "synthetic_datasets",
    "write_idx",
]
