"""Data sets: every loader on small stand-ins written in the real on-disk formats.

Digits is the real scikit-learn data; MNIST / Fashion-MNIST use IDX files written here;
CIFAR uses python-pickle batches written here (including a Python-2-style array pickle, like
the official files); ImageNet uses a folder of tiny PNGs. Downloads are replaced by fakes.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import pickle
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torchvision.datasets import utils as tv_utils

from pascal_snn.commands.args import add_data_arguments
from pascal_snn.data import (
    DATASETS,
    ArrayDataset,
    DatasetInfo,
    build_datasets,
    load_batch,
    read_idx,
    synthetic_datasets,
    write_idx,
)
from pascal_snn.data import mnist as mnist_module
from pascal_snn.data.cifar import CIFAR_SOURCES
from pascal_snn.data.mnist import IDX_FILES
from pascal_snn.errors import ConfigError, DataError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Default folders under ~/.cache/pascal-snn resolve into this test's tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _shifts(image: torch.Tensor, pad: int, flip: bool = False) -> list[torch.Tensor]:
    """Every zero-filled shift of ``image`` [C, H, W] by at most ``pad`` pixels (and flips)."""
    height, width = image.shape[-2:]
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
    views = [
        padded[..., dy : dy + height, dx : dx + width]
        for dy in range(2 * pad + 1)
        for dx in range(2 * pad + 1)
    ]
    return views + [view.flip(-1) for view in views] if flip else views


def _matches_one(candidate: torch.Tensor, options: list[torch.Tensor], atol: float = 0) -> bool:
    return any(torch.allclose(candidate, option, rtol=0, atol=atol) for option in options)


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_spec_defaults():
    assert set(DATASETS) == {
        "digits",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "cifar100",
        "imagenet",
        "synthetic",
    }
    assert all(isinstance(info, DatasetInfo) and info.name == n for n, info in DATASETS.items())
    # SPEC §7 / paper A.8
    assert (DATASETS["cifar10"].lr, DATASETS["cifar100"].lr, DATASETS["imagenet"].lr) == (
        0.1,
        0.02,
        0.1,
    )
    assert DATASETS["cifar10"].weight_decay == DATASETS["cifar100"].weight_decay == 5e-4
    assert DATASETS["imagenet"].weight_decay == 1e-4
    models = {n: info.default_model for n, info in DATASETS.items()}
    assert models == {
        "digits": "digits_cnn",
        "mnist": "mnist_cnn",
        "fashion-mnist": "mnist_cnn",
        "cifar10": "vgg16",
        "cifar100": "vgg16",
        "imagenet": "resnet34",
        "synthetic": "digits_cnn",
    }
    shapes = {n: (i.num_classes, i.in_channels, i.image_size) for n, i in DATASETS.items()}
    assert shapes["cifar100"] == (100, 3, 32) and shapes["imagenet"] == (1000, 3, 224)
    assert shapes["digits"] == shapes["synthetic"] == (10, 1, 8)
    assert shapes["mnist"] == shapes["fashion-mnist"] == (10, 1, 28)
    with pytest.raises(TypeError):
        DATASETS["new"] = DATASETS["digits"]  # read-only: no global mutable state


def test_unknown_name_and_bad_image_size_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown data set 'svhn'.*digits.*synthetic"):
        build_datasets("svhn")
    with pytest.raises(ConfigError, match="positive"):
        build_datasets("synthetic", image_size=0)


def test_add_data_arguments_defaults_and_values():
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    args = parser.parse_args([])
    assert (args.dataset, args.data_dir, args.download, args.image_size) == (
        "digits",
        None,
        False,
        None,
    )
    args = parser.parse_args(
        ["--dataset", "fashion-mnist", "--data-dir", "/x", "--download", "--image-size", "32"]
    )
    assert (args.dataset, args.data_dir, args.download, args.image_size) == (
        "fashion-mnist",
        "/x",
        True,
        32,
    )
    for bad in (["--dataset", "svhn"], ["--image-size", "0"], ["--image-size", "big"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_array_dataset_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="labels"):
        ArrayDataset(torch.zeros(3, 1, 4, 4), torch.zeros(2))


# ----------------------------------------------------------------------------- digits


def test_digits_split_sizes_shapes_ranges_and_determinism():
    from sklearn.datasets import load_digits

    train, test, info = build_datasets("digits", augment=False)
    assert (len(train), len(test)) == (1437, 360)
    assert (info.num_classes, info.in_channels, info.image_size, info.data_dir) == (10, 1, 8, None)
    image, label = test[0]
    assert image.dtype == torch.float32 and image.shape == (1, 8, 8) and type(label) is int
    test_images = torch.stack([test[i][0] for i in range(len(test))])
    assert test_images.min() == 0.0 and test_images.max() == 1.0  # 0..16 scaled by 1/16
    assert torch.equal(test_images * 16, (test_images * 16).round())

    again_train, again_test, _ = build_datasets("digits", augment=False)
    assert torch.equal(train.images, again_train.images)
    assert torch.equal(test.labels, again_test.labels)

    # train + test is a partition of the 1,797 images (as multisets of (pixels, label) rows)
    data = load_digits()
    rows = np.concatenate([data.data, data.target[:, None]], axis=1).astype(np.int64)
    ours = np.concatenate(
        [
            np.concatenate([ds.images.flatten(1).numpy(), ds.labels[:, None].numpy()], axis=1)
            for ds in (train, test)
        ]
    ).astype(np.int64)
    assert rows.shape == ours.shape == (1797, 65)
    same = np.array_equal(rows[np.lexsort(rows.T[::-1])], ours[np.lexsort(ours.T[::-1])])
    assert same  # the same rows, each as often


def test_digits_split_is_stratified():
    from sklearn.datasets import load_digits

    _, test, _ = build_datasets("digits")
    totals = np.bincount(load_digits().target, minlength=10)
    in_test = np.bincount(test.labels.numpy(), minlength=10)
    assert np.all(np.abs(in_test - 0.2 * totals) <= 1)


def test_digits_augmentation_is_a_shift_of_at_most_one_pixel():
    plain, _, _ = build_datasets("digits", augment=False)
    augmented, _, _ = build_datasets("digits", augment=True)
    torch.manual_seed(0)
    moved = 0
    for index in range(0, 200, 5):
        image = augmented[index][0]
        assert _matches_one(image, _shifts(plain[index][0], 1))
        moved += not torch.equal(image, plain[index][0])
    assert moved > 10  # it does augment


def test_digits_padding_and_its_errors():
    plain, _, _ = build_datasets("digits", augment=False)
    train, _, info = build_datasets("digits", augment=False, image_size=13)
    assert info.image_size == 13 and train[0][0].shape == (1, 13, 13)
    big = train[0][0]
    assert torch.equal(big[:, 2:10, 2:10], plain[0][0])  # (13 - 8) // 2 = 2 before, 3 after
    assert big.sum() == plain[0][0].sum()  # the border is all zero
    with pytest.raises(ConfigError, match="smaller than the 8×8 images of digits"):
        build_datasets("digits", image_size=7)
    with pytest.raises(ConfigError, match="no --data-dir"):
        build_datasets("digits", data_dir="/tmp")


# ----------------------------------------------------------------------------- IDX / MNIST


def _write_mnist(folder: Path, n_train: int = 12, n_test: int = 6, gz: bool = True) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    arrays["train-images-idx3-ubyte.gz"][0] = 255  # reach the top of the range
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(array, folder / (name if gz else name.removesuffix(".gz")))
    return arrays


@given(
    hnp.arrays(
        dtype=st.sampled_from(["u1", "i1", ">i2", "<i4", "f4", ">f8"]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    st.booleans(),
)
def test_idx_round_trip(tmp_path_factory, array, compress):
    path = tmp_path_factory.mktemp("idx") / "a.idx"
    write_idx(array, path, compress=compress)
    back = read_idx(path)
    assert back.shape == array.shape and back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)


@given(st.data())
def test_idx_any_truncation_is_a_data_error_naming_the_file(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("cut")
    whole = folder / "whole.idx.gz"
    write_idx(np.arange(60, dtype=np.uint8).reshape(3, 4, 5), whole)
    raw = gzip.decompress(whole.read_bytes())
    cut = data.draw(st.integers(0, len(raw) - 1))
    compress = data.draw(st.booleans())
    path = folder / "cut-file.gz"
    path.write_bytes(gzip.compress(raw[:cut]) if compress else raw[:cut])
    with pytest.raises(DataError, match=r"cut-file\.gz"):
        read_idx(path)
    gz_cut = data.draw(st.integers(2, len(whole.read_bytes()) - 1))
    path.write_bytes(whole.read_bytes()[:gz_cut])  # a truncated gzip stream
    with pytest.raises(DataError, match=r"cut-file\.gz"):
        read_idx(path)


def test_idx_bad_magic_and_trailing_bytes(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x07")
    with pytest.raises(DataError, match=r"'.*bad.idx' is not an IDX file \(magic number 0100"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x07")  # unknown type code
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07\x07")  # one byte too many
    with pytest.raises(DataError, match=r"holds 10 bytes but its header .* says 9"):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_folder(tmp_path, gz):
    arrays = _write_mnist(tmp_path / "m", gz=gz)
    train, test, info = build_datasets("mnist", data_dir=tmp_path / "m", augment=False)
    assert (len(train), len(test), info.data_dir) == (12, 6, str(tmp_path / "m"))
    assert info.classes == tuple("0123456789") and info.image_size == 28
    image, label = train[0]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28) and type(label) is int
    assert image.max() == 1.0 and image.min() >= 0.0
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte.gz"][3]).float() / 255
    assert torch.equal(test[3][0][0], expected)
    assert [test[i][1] for i in range(6)] == [5, 4, 3, 2, 1, 0]


def test_mnist_torchvision_layout_and_padding(tmp_path):
    _write_mnist(tmp_path / "root" / "MNIST" / "raw")
    plain, _, _ = build_datasets("mnist", data_dir=tmp_path / "root", augment=False)
    train, test, info = build_datasets(
        "mnist", data_dir=tmp_path / "root", augment=False, image_size=32
    )
    assert info.image_size == 32 and info.data_dir == str(tmp_path / "root" / "MNIST" / "raw")
    assert train[0][0].shape == test[0][0].shape == (1, 32, 32)
    assert torch.equal(train[1][0][:, 2:30, 2:30], plain[1][0])
    assert train[1][0].sum() == plain[1][0].sum()
    with pytest.raises(ConfigError, match="smaller than the 28×28 images of mnist"):
        build_datasets("mnist", data_dir=tmp_path / "root", image_size=27)


def test_mnist_augmentation_shifts_by_up_to_two_pixels(tmp_path):
    _write_mnist(tmp_path)
    plain, _, _ = build_datasets("mnist", data_dir=tmp_path, augment=False, image_size=32)
    augmented, test, _ = build_datasets("mnist", data_dir=tmp_path, image_size=32)
    torch.manual_seed(1)
    moved = 0
    for index in range(len(plain)):
        image = augmented[index][0]
        assert _matches_one(image, _shifts(plain[index][0], 2))
        moved += not torch.equal(image, plain[index][0])
    assert moved >= 6
    assert test.transform is None


def test_mnist_missing_and_wrong_files(tmp_path):
    with pytest.raises(DataError) as missing:
        build_datasets("mnist", data_dir=tmp_path / "nowhere")
    text = str(missing.value)
    assert str(tmp_path / "nowhere") in text and "--download" in text and "--data-dir" in text
    with pytest.raises(DataError, match=r"cache/pascal-snn/mnist' \(no such folder\)"):
        build_datasets("mnist")  # default folder, here under the test's XDG_CACHE_HOME

    _write_mnist(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"partial' \(lacks t10k-labels-idx1-ubyte.gz\)"):
        build_datasets("mnist", data_dir=tmp_path / "partial")


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("train-images-idx3-ubyte.gz", np.zeros((12, 8, 8), np.uint8), "shape \\(N, 28, 28\\)"),
        ("train-images-idx3-ubyte.gz", np.zeros((12, 28, 28), ">i4"), "expected\\s+uint8"),
        ("train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8), "expected\\s+12 uint8 labels"),
        ("t10k-labels-idx1-ubyte.gz", np.full(6, 10, np.uint8), "label 10, expected labels"),
    ],
)
def test_mnist_wrong_contents_name_the_file(tmp_path, name, array, message):
    _write_mnist(tmp_path)
    write_idx(array, tmp_path / name)
    with pytest.raises(DataError, match=message) as error:
        build_datasets("mnist", data_dir=tmp_path)
    assert name in str(error.value)


def test_mnist_corrupt_gzip_names_the_file(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz"):
        build_datasets("mnist", data_dir=tmp_path)


@pytest.fixture
def debian_folder(tmp_path, monkeypatch) -> Path:
    """Stands in for /usr/share/datasets/fashion-mnist (which this machine may have)."""
    system = tmp_path / "usr-share"
    source = mnist_module.SOURCES["fashion-mnist"]
    replaced = dataclasses.replace(source, system_folders=(system,))
    monkeypatch.setitem(mnist_module.SOURCES, "fashion-mnist", replaced)
    return system


def test_fashion_mnist_default_folders_and_error(tmp_path, debian_folder):
    system = debian_folder
    with pytest.raises(DataError) as missing:
        build_datasets("fashion-mnist")
    text = str(missing.value)
    assert str(system) in text and str(tmp_path / "cache" / "pascal-snn" / "fashion-mnist") in text
    assert "apt-get install dataset-fashion-mnist" in text and "--download" in text

    _write_mnist(tmp_path / "cache" / "pascal-snn" / "fashion-mnist")  # the cache is 2nd choice
    _, _, info = build_datasets("fashion-mnist")
    assert info.data_dir == str(tmp_path / "cache" / "pascal-snn" / "fashion-mnist")
    _write_mnist(system)
    train, _, info = build_datasets("fashion-mnist", image_size=32)
    assert info.data_dir == str(system) and info.classes[9] == "Ankle boot"
    assert train[0][0].shape == (1, 32, 32) and info.default_model == "mnist_cnn"


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_files_read():
    train, test, info = build_datasets("fashion-mnist", augment=False)
    assert (len(train), len(test), info.data_dir) == (60000, 10000, str(DEBIAN_FASHION))
    assert torch.equal(torch.bincount(test.labels), torch.full((10,), 1000))
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255


def test_mnist_download_fetches_each_missing_file(tmp_path, monkeypatch, debian_folder):
    stand_in = _write_mnist(tmp_path / "source")
    calls = []

    def fake_download_url(url, root, filename, md5):
        calls.append((url, filename, md5))
        write_idx(stand_in[filename], Path(root) / filename)

    monkeypatch.setattr(tv_utils, "download_url", fake_download_url)
    target = tmp_path / "target"
    _write_mnist(target)
    (target / "train-images-idx3-ubyte.gz").unlink()
    train, _, info = build_datasets("mnist", data_dir=target, download=True)
    assert [c[1] for c in calls] == ["train-images-idx3-ubyte.gz"]
    assert calls[0][0].endswith("/train-images-idx3-ubyte.gz") and len(calls[0][2]) == 32
    assert len(train) == 12 and info.data_dir == str(target)

    calls.clear()
    _, _, info = build_datasets("fashion-mnist", download=True)  # nothing there: all four
    assert sorted(c[1] for c in calls) == sorted(IDX_FILES)
    assert info.data_dir == str(tmp_path / "cache" / "pascal-snn" / "fashion-mnist")


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    def offline(url, root, filename, md5):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(DataError, match=r"could not download 'train-images-idx3-ubyte\.gz'"):
        build_datasets("mnist", data_dir=tmp_path, download=True)


# ----------------------------------------------------------------------------- CIFAR


class _Py2Array:
    """Pickles like the official (Python 2) CIFAR files: array bytes as a latin-1 string."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        a = self.array
        state = (1, a.shape, a.dtype, False, a.tobytes().decode("latin1"))
        return _reconstruct, (np.ndarray, (0,), b"b"), state


def _dump(obj, path: Path, protocol: int = 2) -> None:
    raw = pickle.dumps(obj, protocol=protocol)
    if protocol == 2:  # the official files name numpy's pre-2.0 module
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(raw)


def _write_cifar(root: Path, name: str, per_file: int = 4) -> dict[str, np.ndarray]:
    source = CIFAR_SOURCES[name]
    folder = root / source.folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    written = {}
    for index, filename in enumerate((*source.train_files, *source.test_files)):
        data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        labels = [(index + i) % source.num_classes for i in range(per_file)]
        written[filename] = data
        if index % 2 == 0:  # Python-2 style, str keys
            batch = {"data": _Py2Array(data), source.label_key: labels, "batch_label": "x"}
            _dump(batch, folder / filename, protocol=2)
        else:  # Python-3 style, bytes keys, protocol 5
            _dump({b"data": data, source.label_key.encode(): labels}, folder / filename, 5)
    names = [f"name{i}".encode() for i in range(source.num_classes)]
    _dump({source.names_key: names}, folder / source.meta_file)
    return written


def _denormalise(image: torch.Tensor, name: str) -> torch.Tensor:
    source = CIFAR_SOURCES[name]
    mean, std = torch.tensor(source.mean)[:, None, None], torch.tensor(source.std)[:, None, None]
    return image * std + mean


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_from_standard_batches(tmp_path, name):
    written = _write_cifar(tmp_path, name)
    source = CIFAR_SOURCES[name]
    train, test, info = build_datasets(name, data_dir=tmp_path, augment=False)
    assert (len(train), len(test)) == (4 * len(source.train_files), 4)
    assert info.num_classes == source.num_classes and info.in_channels == 3
    assert info.classes[:2] == ("name0", "name1") and info.default_model == "vgg16"
    assert info.data_dir == str(tmp_path / source.folder)
    image, label = train[0]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32) and type(label) is int
    # second training file, row 1: rows are R plane, G plane, B plane of 32×32
    raw = torch.from_numpy(written[source.train_files[-1]][1].reshape(3, 32, 32)).float() / 255
    first_of_last = 4 * (len(source.train_files) - 1) + 1
    torch.testing.assert_close(_denormalise(train[first_of_last][0], name), raw, rtol=0, atol=1e-6)
    assert train[first_of_last][1] == (len(source.train_files) - 1 + 1) % source.num_classes
    test_raw = torch.from_numpy(written[source.test_files[0]][2].reshape(3, 32, 32)) / 255
    torch.testing.assert_close(_denormalise(test[2][0], name), test_raw, rtol=0, atol=1e-6)


def test_cifar_folder_itself_padding_and_augmentation(tmp_path):
    _write_cifar(tmp_path, "cifar10")
    batches = tmp_path / "cifar-10-batches-py"
    plain, _, _ = build_datasets("cifar10", data_dir=batches, augment=False, image_size=36)
    assert plain[0][0].shape == (3, 36, 36)
    small, _, _ = build_datasets("cifar10", data_dir=batches, augment=False)
    assert torch.allclose(
        _denormalise(plain[0][0], "cifar10")[:, 2:34, 2:34],
        _denormalise(small[0][0], "cifar10"),
        rtol=0,
        atol=1e-6,
    )
    augmented, _, _ = build_datasets("cifar10", data_dir=batches)
    torch.manual_seed(0)
    flipped = 0
    for index in range(len(augmented)):
        image = _denormalise(augmented[index][0], "cifar10")
        original = _denormalise(small[index][0], "cifar10")
        assert _matches_one(image, _shifts(original, 4, flip=True), atol=1e-6)
        flipped += not _matches_one(image, _shifts(original, 4), atol=1e-6)
    assert 0 < flipped < len(augmented)


def test_cifar_missing_and_incomplete(tmp_path):
    with pytest.raises(DataError) as missing:
        build_datasets("cifar10")
    text = str(missing.value)
    assert str(tmp_path / "cache" / "pascal-snn" / "cifar10") in text and "--download" in text
    _write_cifar(tmp_path, "cifar100")
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(DataError, match=r"cifar-100-python' lacks test"):
        build_datasets("cifar100", data_dir=tmp_path)
    with pytest.raises(DataError, match="cifar10 not found"):  # CIFAR-100 files ≠ CIFAR-10
        build_datasets("cifar10", data_dir=tmp_path)


class _Evil:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return os.mkdir, (str(self.sentinel),)


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    _write_cifar(tmp_path, "cifar10")
    sentinel = tmp_path / "pwned"
    _dump({"data": _Evil(sentinel)}, tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(DataError, match=r"data_batch_3' is not a CIFAR .*refusing .*mkdir"):
        build_datasets("cifar10", data_dir=tmp_path)
    assert not sentinel.exists()
    _dump(_Evil(sentinel), tmp_path / "x")
    with pytest.raises(DataError, match="refusing"):
        load_batch(tmp_path / "x")
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (b"\x00random bytes, not a pickle", "is not a CIFAR python batch"),
        ([1, 2, 3], "holds a list, expected a CIFAR batch dict"),
        ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "no uint8 'data'"),
        ({"data": np.zeros((2, 1024), np.uint8), "labels": [0, 1]}, "hold 1024 values"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "needs 2 integer 'labels'"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, "labels outside 0–9"),
    ],
)
def test_cifar_malformed_batch_names_the_file(tmp_path, batch, message):
    _write_cifar(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    if isinstance(batch, bytes):
        path.write_bytes(batch)
    else:
        _dump(batch, path)
    with pytest.raises(DataError, match=message) as error:
        build_datasets("cifar10", data_dir=tmp_path)
    assert "data_batch_2" in str(error.value)


def test_cifar_bad_meta(tmp_path):
    _write_cifar(tmp_path, "cifar10")
    _dump({"label_names": [b"a", b"b"]}, tmp_path / "cifar-10-batches-py" / "batches.meta")
    with pytest.raises(DataError, match=r"batches\.meta' needs a list of 10 'label_names'"):
        build_datasets("cifar10", data_dir=tmp_path)


def test_cifar_download_extracts_into_root(tmp_path, monkeypatch):
    calls = []

    def fake_extract(url, download_root, filename=None, md5=None):
        calls.append((url, filename, md5))
        _write_cifar(Path(download_root), "cifar10")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_extract)
    train, _, info = build_datasets("cifar10", download=True)
    assert calls == [
        (
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
        )
    ]
    assert len(train) == 20
    assert info.data_dir == str(
        tmp_path / "cache" / "pascal-snn" / "cifar10" / "cifar-10-batches-py"
    )

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="could not download cifar100 into"):
        build_datasets("cifar100", download=True)


# ----------------------------------------------------------------------------- ImageNet


def _write_image_folder(root: Path, classes=("cat", "dog"), per_class: int = 3) -> dict:
    from PIL import Image

    colours = {}
    for split in ("train", "val"):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                colour = (40 * c + 10 * i, 100, 200 - 30 * c)
                colours[(split, name, i)] = colour
                Image.new("RGB", (24 + 4 * i, 20), colour).save(root / split / name / f"{i}.png")
    return colours


def test_imagenet_folder(tmp_path):
    colours = _write_image_folder(tmp_path)
    train, val, info = build_datasets("imagenet", data_dir=tmp_path, image_size=16)
    assert (len(train), len(val), info.num_classes, info.classes) == (6, 6, 2, ("cat", "dog"))
    assert (info.image_size, info.default_model, info.data_dir) == (16, "resnet34", str(tmp_path))
    image, label = train[4]
    assert image.dtype == torch.float32 and image.shape == (3, 16, 16) and label == 1
    mean = torch.tensor((0.485, 0.456, 0.406))[:, None, None]
    std = torch.tensor((0.229, 0.224, 0.225))[:, None, None]
    for dataset, split in ((train, "train"), (val, "val")):
        for index in (0, 5):
            image, label = dataset[index]
            name, i = ("cat", "dog")[label], index % 3
            expected = torch.tensor(colours[(split, name, i)], dtype=torch.float32) / 255
            torch.testing.assert_close(
                image * std + mean, expected[:, None, None].expand(3, 16, 16), rtol=0, atol=1e-5
            )


def test_imagenet_augment_false_is_deterministic(tmp_path):
    from PIL import Image

    _write_image_folder(tmp_path, per_class=1)
    noise = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "train" / "cat" / "noise.png")
    index = 1  # sorted file names: cat/0.png, cat/noise.png, dog/0.png
    augmented, _, _ = build_datasets("imagenet", data_dir=tmp_path, image_size=16)
    plain, _, _ = build_datasets("imagenet", data_dir=tmp_path, image_size=16, augment=False)
    torch.manual_seed(0)
    reads = [augmented[index][0] for _ in range(4)]
    assert any(not torch.equal(reads[0], other) for other in reads[1:])
    assert torch.equal(plain[index][0], plain[index][0])


def test_imagenet_default_size_is_224(tmp_path):
    _write_image_folder(tmp_path, per_class=1)
    train, val, info = build_datasets("imagenet", data_dir=tmp_path)
    assert info.image_size == 224 and train[0][0].shape == val[0][0].shape == (3, 224, 224)


def test_imagenet_errors(tmp_path):
    with pytest.raises(DataError, match=r"imagenet not found: no folder .*--data-dir"):
        build_datasets("imagenet")
    with pytest.raises(DataError, match="--download does not apply"):
        build_datasets("imagenet", download=True)
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match=r"train' must hold one subfolder of images per class"):
        build_datasets("imagenet", data_dir=tmp_path)
    _write_image_folder(tmp_path / "two", classes=("a", "b"))
    (tmp_path / "two" / "val" / "b").rename(tmp_path / "two" / "val" / "c")
    with pytest.raises(DataError, match=r"only in train: \['b'\], only in val: \['c'\]"):
        build_datasets("imagenet", data_dir=tmp_path / "two")
    _write_image_folder(tmp_path / "noval")
    shutil.rmtree(tmp_path / "noval" / "val")
    with pytest.raises(DataError, match=r"has no 'val/' folder"):
        build_datasets("imagenet", data_dir=tmp_path / "noval")


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_balanced_and_learnable():
    train, test, info = build_datasets("synthetic")
    assert (len(train), len(test), info.image_size, info.in_channels) == (512, 256, 8, 1)
    again, _, _ = build_datasets("synthetic")
    assert torch.equal(train.images, again.images) and torch.equal(train.labels, again.labels)
    assert torch.bincount(test.labels).tolist() == [26] * 6 + [25] * 4
    image, label = train[0]
    assert image.dtype == torch.float32 and type(label) is int
    assert image.min() >= 0.0 and image.max() <= 1.0
    # a nearest-class-mean classifier fitted on train separates the test set
    means = torch.stack([train.images[train.labels == c].mean(0) for c in range(10)])
    distances = torch.cdist(test.images.flatten(1), means.flatten(1))
    assert (distances.argmin(1) == test.labels).float().mean() >= 0.95


def test_synthetic_parameters():
    train, test = synthetic_datasets(40, 20, num_classes=4, channels=3, image_size=5, seed=3)
    assert train.images.shape == (40, 3, 5, 5) and test.images.shape == (20, 3, 5, 5)
    assert set(train.labels.tolist()) == {0, 1, 2, 3}
    other, _ = synthetic_datasets(40, 20, num_classes=4, channels=3, image_size=5, seed=4)
    assert not torch.equal(train.images, other.images)
    _, _, info = build_datasets("synthetic", image_size=12)
    assert info.image_size == 12
    with pytest.raises(ConfigError, match="channels must be ≥ 1"):
        synthetic_datasets(channels=0)
