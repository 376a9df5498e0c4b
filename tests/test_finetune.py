"""Fine-tuning from ReLU weights: ``train(init_relu_weights=...)`` / ``--init-relu-weights``."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml
from torch import nn

from pascal_snn import QCFS, CheckpointError, qcfs_layers
from pascal_snn.config import AdaptivePlan, RunConfig
from pascal_snn.data import DATASETS, DataSplits, synthetic_datasets
from pascal_snn.models import create
from pascal_snn.training import train

VAL = 16


@pytest.fixture(scope="module")
def splits() -> DataSplits:
    train_set, test_set = synthetic_datasets(num_train=96 + VAL, num_test=32)
    return DataSplits.from_sets(train_set, test_set, DATASETS["synthetic"], val_images=VAL)


def relu_twin(model: nn.Module) -> nn.Module:
    """``model`` with every QCFS a ReLU: the network a user trained before PASCAL."""
    twin = copy.deepcopy(model)
    for module in list(twin.modules()):
        for name, child in module.named_children():
            if isinstance(child, QCFS):
                setattr(module, name, nn.ReLU())
    return twin


def config(out, **kw) -> RunConfig:
    values = dict(
        dataset="synthetic",
        model="digits_cnn",
        width=0.25,
        epochs=2,
        batch_size=16,
        lr=0.01,
        val_images=VAL,
        out=str(out),
    )
    return RunConfig(**{**values, **kw})


def test_a_new_run_starts_from_the_relu_weights_with_calibrated_thresholds(tmp_path, splits):
    torch.manual_seed(3)
    relu = relu_twin(create("digits_cnn", 10, in_channels=1, width=0.25))
    torch.save(relu.state_dict(), tmp_path / "relu.pt")
    seen = {}

    def first_epoch(epoch, model):
        if epoch == 0:
            seen["state"] = copy.deepcopy(model.state_dict())
            seen["theta"] = {n: float(m.theta.detach()) for n, m in qcfs_layers(model)}

    cfg = config(tmp_path / "run", init_relu_weights=str(tmp_path / "relu.pt"))
    cfg = RunConfig(**{**cfg.to_dict(), "calibration_images": 40})
    train(cfg, splits=splits, on_epoch_start=first_epoch, progress=False)
    for key, value in relu.state_dict().items():  # every ReLU-model tensor, unchanged
        assert torch.equal(seen["state"][key], value), key
    calibration = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert calibration["images"] == 40 and calibration["percentile"] == 99.9
    assert calibration["theta"] == pytest.approx(seen["theta"])
    assert all(t != 4.0 for t in seen["theta"].values())  # no layer kept digits_cnn's init θ
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["init_relu_weights"] == str(tmp_path / "relu.pt")


def test_weights_of_another_architecture_are_refused_before_anything_is_written(tmp_path, splits):
    other = relu_twin(create("digits_cnn", 10, in_channels=1, width=0.5))
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not match the qcfsified model"):
        train(config(tmp_path / "run", init_relu_weights=str(tmp_path / "other.pt")), splits=splits)
    assert not (tmp_path / "run").exists()
    with pytest.raises(CheckpointError):
        train(config(tmp_path / "run", init_relu_weights=str(tmp_path / "none.pt")), splits=splits)
    assert not (tmp_path / "run").exists()


def test_adaptive_runs_start_each_training_from_the_relu_weights(tmp_path, splits):
    torch.manual_seed(4)
    relu = relu_twin(create("digits_cnn", 10, in_channels=1, width=0.25))
    torch.save(relu.state_dict(), tmp_path / "relu.pt")
    starts = []

    def record(epoch, model):
        if epoch == 0:
            starts.append(model.features[0].weight.detach().clone())

    plan = AdaptivePlan(clusters=2, cluster_levels=(1, 2), switch_fraction=0.5, num_images=64)
    cfg = config(
        tmp_path / "al", init_relu_weights=str(tmp_path / "relu.pt"), epochs=2, adaptive=plan
    )
    from pascal_snn import adaptive

    real = adaptive.train
    calls = []

    def spy(cfg, **kw):
        calls.append(cfg.out)
        return real(cfg, on_epoch_start=record, **kw)

    adaptive.train = spy
    try:
        adaptive.train_adaptive(cfg, splits=splits, progress=False)
    finally:
        adaptive.train = real
    assert len(calls) == 2 and len(starts) == 2  # phase 0 and the retraining
    for weight in starts:
        assert torch.equal(weight, relu.features[0].weight)
    assert (tmp_path / "al" / "calibration.json").is_file()
    assert (tmp_path / "al" / "phase0" / "calibration.json").is_file()


def test_the_command_line_flag(tmp_path):
    from pascal_snn.cli import main

    torch.manual_seed(5)
    relu = relu_twin(create("digits_cnn", 10, in_channels=1, width=0.25))
    torch.save(relu.state_dict(), tmp_path / "relu.pt")
    args = ["train", "--dataset", "digits", "--width", "0.25", "--epochs", "1", "--threads", "1"]
    args += ["--init-relu-weights", str(tmp_path / "relu.pt"), "--calibration-images", "64"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    calibration = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert calibration["images"] == 64 and len(calibration["theta"]) == 4
