"""Checkpoints are data: atomic writes, weights_only loads, clear errors for every bad file."""

from __future__ import annotations

import os
import pathlib

import pytest
import torch

from pascal_snn import CheckpointError, qcfs_layers
from pascal_snn.checkpoint import (
    FORMAT,
    load_checkpoint,
    load_model,
    load_weights,
    save_checkpoint,
)
from pascal_snn.models import create

ARCH = {"name": "digits_cnn", "num_classes": 10, "in_channels": 1, "width": 0.5, "kwargs": {}}


def _model(levels=(4, 2, 3, 1), num_classes=10, seed=0):
    torch.manual_seed(seed)
    model = create("digits_cnn", num_classes=num_classes, in_channels=1, L=list(levels), width=0.5)
    with torch.no_grad():  # make every tensor distinctive, including BN statistics and θ
        for tensor in model.state_dict().values():
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return model


def _state(model, **extra):
    return {
        "model": model.state_dict(),
        "arch": dict(ARCH),
        "levels": [layer.L for _, layer in qcfs_layers(model)],
        "epoch": 3,
        **extra,
    }


@pytest.fixture
def good(tmp_path):
    model = _model()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, _state(model, metrics=[{"epoch": 1, "test_acc": 0.5}]))
    return path, model


def test_round_trip_rebuilds_the_same_model(good):
    path, model = good
    loaded, state = load_model(path)
    assert state["format"] == FORMAT and state["epoch"] == 3
    assert state["metrics"] == [{"epoch": 1, "test_acc": 0.5}]
    assert [layer.L for _, layer in qcfs_layers(loaded)] == [4, 2, 3, 1]
    assert not loaded.training
    expected = model.state_dict()
    for key, value in loaded.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, expected[key]), key
        else:
            assert value == expected[key], key
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(loaded(x), model.eval()(x))


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=r"nope\.pt.*does not exist"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="is not a file"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_file_is_refused(good, keep):
    path, _ = good
    data = path.read_bytes()
    cut = path.with_name("cut.pt")
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"cut\.pt.*(truncated or corrupt|not a PyTorch)"):
        load_checkpoint(cut)


@pytest.mark.parametrize("size", [0, 7, 4096])
def test_random_bytes_are_refused(tmp_path, size):
    path = tmp_path / "noise.pt"
    path.write_bytes(os.urandom(size))
    with pytest.raises(CheckpointError, match=r"noise\.pt"):
        load_checkpoint(path)


class _Payload:
    """Unpickling this calls ``Path.touch(marker)``: code that must never run on load."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["reduce-payload", "callable", "custom-class"])
def test_pickled_code_is_refused_never_executed(good, tmp_path, kind):
    _, model = good
    marker = tmp_path / "executed"
    evil = tmp_path / "evil.pt"
    payload = {
        "reduce-payload": _Payload(marker),
        "callable": os.system,
        "custom-class": _Payload,
    }[kind]
    torch.save({**_state(model), "format": FORMAT, "hook": payload}, evil)
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.pt.*code"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="refusing"):
        load_model(evil)
    assert not marker.exists()
    if kind == "reduce-payload":  # the payload is live: an unsafe load would have run it
        torch.load(evil, weights_only=False)
        assert marker.exists()


def test_wrong_format_is_refused(tmp_path, good):
    _, model = good
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)  # a bare state_dict, not a pascal-snn checkpoint
    with pytest.raises(CheckpointError, match=r"plain\.pt.*not a pascal-snn checkpoint"):
        load_checkpoint(plain)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match="not a pascal-snn checkpoint"):
        load_checkpoint(tensor)
    other = tmp_path / "other.pt"
    torch.save({"format": "pascal-snn/99", "model": {}}, other)
    with pytest.raises(CheckpointError, match="pascal-snn/99"):
        load_checkpoint(other)
    partial = tmp_path / "partial.pt"
    torch.save({"format": FORMAT, "model": {}}, partial)
    with pytest.raises(CheckpointError, match="lacks arch, levels"):
        load_checkpoint(partial)


def test_other_class_count_names_the_shape_mismatch(tmp_path):
    path = tmp_path / "three.pt"
    save_checkpoint(path, _state(_model(num_classes=3)))  # arch still says 10 classes
    with pytest.raises(
        CheckpointError, match=r"three\.pt.*shape: classifier\.\d+\.weight \(3, 64\)"
    ):
        load_model(path)


def test_other_architecture_names_missing_and_unexpected_keys(tmp_path):
    vgg = create("vgg16", num_classes=10, in_channels=1, width=0.0625)
    vgg_arch = {**ARCH, "name": "vgg16", "width": 0.0625}
    cases = [  # (weights, the arch the checkpoint claims, what the error must name)
        (_model().state_dict(), vgg_arch, r"missing: features\.10\.weight"),
        (vgg.state_dict(), ARCH, r"unexpected: features\.10\.weight"),
    ]
    for i, (weights, arch, expected) in enumerate(cases):
        path = tmp_path / f"other{i}.pt"
        save_checkpoint(path, {"model": weights, "arch": arch, "levels": 4})
        with pytest.raises(CheckpointError, match=rf"other{i}\.pt.*{expected}.*shape: "):
            load_model(path)


def test_load_weights_loads_nothing_on_mismatch():
    model = _model(seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    source = _model(seed=2).state_dict()
    source.pop("features.0.bias")
    with pytest.raises(CheckpointError, match=r"missing: features\.0\.bias"):
        load_weights(model, source, source="test weights")
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, before[key])


class _Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch it)."""


@pytest.mark.parametrize("when", ["during-write", "before-rename"])
def test_crash_while_writing_keeps_the_previous_file(good, monkeypatch, when):
    path, _ = good
    before = path.read_bytes()
    replacement = _state(_model(seed=5), epoch=4)
    if when == "during-write":
        real_save = torch.save

        def half_then_die(obj, handle, *args, **kwargs):
            handle.write(b"PK\x03\x04 half a checkpoint")
            raise _Crash

        monkeypatch.setattr(torch, "save", half_then_die)
        assert real_save is not torch.save
    else:
        real_replace = os.replace

        def die(src, dst):
            if pathlib.Path(dst) == path:
                raise _Crash
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", die)
    with pytest.raises(_Crash):
        save_checkpoint(path, replacement)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 3
    save_checkpoint(path, replacement)  # and a normal write replaces it
    assert load_checkpoint(path)["epoch"] == 4


SHIPPED = sorted(
    (pathlib.Path(__file__).parent.parent / "benchmarks/results/checkpoints").glob("*.pt")
)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_checkpoints_load_finite_with_their_recorded_levels(path):
    """Every checkpoint BENCHMARKS.md §3 evaluates loads with weights_only, holds finite
    weights (a run that diverged in scale is refused at load) and the per-layer L its run
    selected, and records its validation split (model selection never saw the test set)."""
    from pascal_snn.checkpoint import load_model

    model, checkpoint = load_model(path)
    assert [layer.L for _, layer in qcfs_layers(model)] == checkpoint["levels"]
    weights = [v for v in model.state_dict().values() if torch.is_tensor(v)]
    assert all(torch.isfinite(v).all() for v in weights if v.is_floating_point())
    assert checkpoint["config"]["val_images"] > 0
    assert checkpoint["dataset"]["name"] == "fashion-mnist"
