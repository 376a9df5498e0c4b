"""Data sets: built-in digits, MNIST / Fashion-MNIST (IDX), CIFAR-10/100, ImageNet, synthetic.

``build_datasets(name, ...) -> (train, test, DatasetInfo)``; items are ``(float32 [C, H, W],
int label)``. ``build_splits`` adds the seeded validation split that training selects on.
See docs/data.md for where each data set is looked for and how to get it.
"""

from pascal_snn.data.arrays import ArrayDataset
from pascal_snn.data.cifar import load_batch
from pascal_snn.data.idx import read_idx, write_idx
from pascal_snn.data.info import DatasetInfo, LoadedData, Loader, dataset_size
from pascal_snn.data.registry import DATASETS, LOADERS, build_datasets
from pascal_snn.data.splits import DataSplits, build_splits, split_indices
from pascal_snn.data.synthetic import synthetic_datasets

__all__ = [
    "DATASETS",
    "LOADERS",
    "ArrayDataset",
    "DataSplits",
    "DatasetInfo",
    "LoadedData",
    "Loader",
    "build_datasets",
    "build_splits",
    "dataset_size",
    "load_batch",
    "read_idx",
    "split_indices",
    "synthetic_datasets",
    "write_idx",
]
