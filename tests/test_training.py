"""Training runs: determinism, run-folder contents, validation, resume after a crash or a kill."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from pascal_snn import ConfigError, qcfs_layers
from pascal_snn.checkpoint import load_checkpoint, load_model
from pascal_snn.cli import main
from pascal_snn.config import RunConfig, load_yaml, parse_levels
from pascal_snn.data import DATASETS, DataSplits, split_indices, synthetic_datasets
from pascal_snn.io import LOCK_FILE
from pascal_snn.training import Phase, _select, evaluate_ann, train

INFO = DATASETS["synthetic"]  # digits_cnn, 10 classes, 1 channel, 8×8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread here and in the child processes: the same float reductions in both
    (bit-identical runs), and no spin-wait contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


VAL = 16  # held-out training images: 96 left, 6 steps of 16 per epoch


@pytest.fixture(scope="module")
def data():
    train_set, test_set = synthetic_datasets(num_train=96 + VAL, num_test=37)
    return DataSplits.from_sets(train_set, test_set, INFO, val_images=VAL)


def _config(out, **kw) -> RunConfig:
    values = {
        "dataset": "synthetic",
        "epochs": 3,
        "batch_size": 16,
        "lr": 0.05,
        "width": 0.25,
        "val_images": VAL,
    }
    return RunConfig(out=str(out), **{**values, **kw})


def _tensors(state: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def assert_same_run(a: Path, b: Path) -> None:
    """Both runs' last.pt hold bit-identical weights, optimizer state and metrics."""
    ca, cb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert ca["epoch"] == cb["epoch"]
    ta, tb = _tensors(ca["model"]), _tensors(cb["model"])
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key
    for pa, pb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"])
    assert ca["scheduler"] == cb["scheduler"]
    strip = [{k: v for k, v in m.items() if k != "seconds"} for m in ca["metrics"]]
    assert strip == [{k: v for k, v in m.items() if k != "seconds"} for m in cb["metrics"]]


# ------------------------------------------------------------------------- in-process runs
def test_same_seed_same_weights_other_seed_differs(tmp_path, data):
    train(_config(tmp_path / "a", epochs=2), splits=data)
    train(_config(tmp_path / "b", epochs=2), splits=data)
    assert_same_run(tmp_path / "a", tmp_path / "b")
    train(_config(tmp_path / "c", epochs=2, seed=1), splits=data)
    with pytest.raises(AssertionError):
        assert_same_run(tmp_path / "a", tmp_path / "c")


def test_run_folder_holds_config_checkpoints_and_metrics(tmp_path, data):
    out = tmp_path / "run"
    result = train(_config(out, levels=[4, 4, 2, 2]), splits=data)
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "config.yaml",
        "last.pt",
        "metrics.jsonl",
        "result.json",
    ]
    resolved = RunConfig.from_dict(load_yaml(out / "config.yaml"))
    assert resolved.model == "digits_cnn" and resolved.levels == [4, 4, 2, 2]
    assert resolved.weight_decay == INFO.weight_decay and resolved.epochs == 3
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    assert set(lines[0]) >= {"epoch", "loss", "train_acc", "val_acc", "lr", "seconds"}
    assert set(lines[0]) >= {"grad_norm_median", "grad_norm_max", "clipped_steps"}
    assert not any(key.startswith("test") for m in lines for key in m)  # test set: once, at the end
    assert all(m["val_total"] == VAL for m in lines)
    # one cosine schedule over all epochs, stepped per epoch: lr_e = lr·(1 + cos(π e/E))/2
    expected = [0.05 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]
    assert [m["lr"] for m in lines] == pytest.approx(expected, rel=1e-12)
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 3 and last["levels"] == [4, 4, 2, 2]
    assert last["arch"] == {
        "name": "digits_cnn",
        "num_classes": 10,
        "in_channels": 1,
        "width": 0.25,
        "kwargs": {},
    }
    assert last["dataset"]["name"] == "synthetic" and last["config"] == resolved.to_dict()
    best_val = max(m["val_acc"] for m in lines)
    best_epoch = min(m["epoch"] for m in lines if m["val_acc"] == best_val)
    assert load_checkpoint(out / "best.pt")["epoch"] == best_epoch == result.selected_epoch
    assert result.val_acc == best_val and result.test_total == 37
    model, _ = load_model(out / "best.pt")
    loader = DataLoader(data.test, batch_size=8)
    assert evaluate_ann(model, loader, torch.device("cpu")) == result.test_acc
    assert json.loads((out / "result.json").read_text()) == result.as_dict()


def test_the_test_set_is_read_once_on_the_selected_model(tmp_path, data, monkeypatch):
    from pascal_snn import training

    seen: list[int] = []
    real = training.evaluate_counts

    def counting(model, loader, device):
        seen.append(len(loader.dataset))
        return real(model, loader, device)

    monkeypatch.setattr(training, "evaluate_counts", counting)
    result = train(_config(tmp_path / "run"), splits=data)
    assert seen == [VAL, VAL, VAL, 37]  # validation after every epoch, the test set once
    assert result.test_total == 37


def test_selection_takes_the_best_validation_epoch_at_the_final_levels():
    metrics = [
        {"epoch": 1, "val_acc": 0.9},  # before the level switch: not a candidate
        {"epoch": 2, "val_acc": 0.5},
        {"epoch": 3, "val_acc": 0.7},
        {"epoch": 4, "val_acc": 0.7},  # a tie goes to the earlier epoch
    ]
    assert _select(metrics, 0)["epoch"] == 1
    assert _select(metrics, 1)["epoch"] == 3
    no_val = [{"epoch": e, "val_acc": None} for e in (1, 2)]
    assert _select(no_val, 0)["epoch"] == 2  # without validation images: the last epoch
    assert _select(metrics, 4) is None


def test_validation_split_is_seeded_disjoint_and_recorded(tmp_path):
    train_idx, val_idx = split_indices(100, 10, seed=3)
    assert (train_idx, val_idx) == split_indices(100, 10, seed=3)
    assert split_indices(100, 10, seed=4)[1] != val_idx
    assert len(val_idx) == 10 and sorted(set(train_idx) | set(val_idx)) == list(range(100))
    budget, same_val = split_indices(100, 10, seed=3, train_images=20)
    assert same_val == val_idx and len(budget) == 20 and set(budget) <= set(train_idx)
    with pytest.raises(ConfigError, match="val_images must be in 0"):
        split_indices(10, 10, seed=0)
    with pytest.raises(ConfigError, match="train_images must be in 1"):
        split_indices(10, 2, seed=0, train_images=9)


class _Crash(BaseException):
    """Stands for the process dying mid-epoch."""


def test_resume_after_crash_mid_epoch_is_bit_identical(tmp_path, data, monkeypatch):
    train(_config(tmp_path / "whole"), splits=data)
    real = F.cross_entropy
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6 + 3:  # 6 steps per epoch: die in the 3rd step of epoch 2
            raise _Crash
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", crashing)
    with pytest.raises(_Crash):
        train(_config(tmp_path / "cut"), splits=data)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    result = train(_config(tmp_path / "cut"), splits=data, resume=True)
    assert not result.already_finished
    assert_same_run(tmp_path / "whole", tmp_path / "cut")
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    again = train(_config(tmp_path / "cut"), splits=data, resume=True)
    assert again.already_finished and again.test_acc == result.test_acc


def test_level_schedule_callback_phase_and_plan(tmp_path, data):
    seen = []

    def on_epoch_start(epoch, model):
        seen.append((epoch, [layer.L for _, layer in qcfs_layers(model)]))

    config = _config(tmp_path / "run", levels=4, level_schedule=[(2, [4, 2, 2, 1])])
    phase = Phase("adaptive", 4, switch_epoch=2, levels=(4, 2, 2, 1), source="x.pt")
    result = train(config, splits=data, on_epoch_start=on_epoch_start, phase=phase)
    assert seen == [(0, [4] * 4), (1, [4] * 4), (2, [4, 2, 2, 1])]
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["levels"] == [4, 2, 2, 1] and Phase.from_dict(last["phase"]) == phase
    assert last["phase"]["levels"] == [4, 2, 2, 1] and last["plan"] is None
    assert [layer.L for _, layer in qcfs_layers(result.model)] == [4, 2, 2, 1]
    assert result.selected_epoch == 3  # only an epoch at the final levels may be selected
    lrs = [m["lr"] for m in result.metrics]
    assert lrs[2] < lrs[1] < lrs[0]  # the switch does not restart the cosine schedule


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"levels": [4, 4, 2]}, "got 3 levels but the model has 4 QCFS layers"),
        ({"level_schedule": [(1, [4, 2])]}, "level_schedule entry for epoch 1"),
        ({"model": "no_such_net"}, "unknown model 'no_such_net'"),
    ],
)
def test_bad_settings_write_nothing(tmp_path, data, change, message):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        train(_config(out, **change), splits=data)
    assert not out.exists()


def test_unwritable_out_is_a_clear_error(tmp_path, data):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot create output folder"):
        train(_config(blocker / "run"), splits=data)


def test_existing_run_and_resume_mismatch_are_refused(tmp_path, data):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(_config(out), splits=data, resume=True)
    train(_config(out, epochs=1), splits=data)
    before = (out / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):
        train(_config(out, epochs=1), splits=data)
    with pytest.raises(ConfigError, match=r"lr: run has 0\.05, you gave 0\.1"):
        train(_config(out, epochs=1, lr=0.1), splits=data, resume=True)
    assert (out / "last.pt").read_bytes() == before


def test_evaluate_ann_counts_and_restores_mode(data):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).train()
    loader = DataLoader(data.test, batch_size=5)
    images = torch.stack([data.test[i][0] for i in range(len(data.test))])
    labels = torch.tensor([data.test[i][1] for i in range(len(data.test))])
    expected = (model(images).argmax(1) == labels).sum().item() / len(labels)
    assert evaluate_ann(model, loader, torch.device("cpu")) == expected
    assert model.training


# ------------------------------------------------------------------------- config parsing
@given(st.lists(st.integers(1, 64), min_size=2, max_size=20))
def test_parse_levels_lists(values):
    assert parse_levels(",".join(map(str, values))) == values


@pytest.mark.parametrize("text", ["0", "4,x", "-1", "4,,2", "", "2.5", "4,0"])
def test_parse_levels_rejects(text):
    with pytest.raises(ConfigError, match="--levels"):
        parse_levels(text)


def test_yaml_keys_and_types_are_checked(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("lr: 1e-3\nbatch-size: 8\nlevels: [4, 2]\nlevel_schedule: [[3, 1]]\n")
    values = load_yaml(good)
    config = RunConfig().merged(values)
    assert config.lr == 0.001 and config.batch_size == 8 and config.levels == [4, 2]
    assert config.level_schedule == [(3, 1)] and config.levels_at(2) == [4, 2]
    assert config.levels_at(3) == 1
    for text, message in [
        ("epochz: 3\n", "unknown key 'epochz'"),
        ("epochs: three\n", "epochs must be an integer"),
        ("- 1\n", "must hold a mapping"),
        ("lr: [\n", "not valid YAML"),
        ("levels: 0\n", "levels must be an integer >= 1"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_yaml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    assert dataclasses.replace(config, lr=0.5).merged({"lr": None}).lr == 0.5


# ------------------------------------------------------------------------- the CLI
CLI = ["train", "--dataset", "synthetic", "--width", "0.25", "--batch-size", "64"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--levels", "0"], "every quantization step must be >= 1"),
        (["--levels", "4,x"], "'x' .*is not an integer"),
        (["--levels", "4,4,2"], "got 3 levels but the model has 4 QCFS layers"),
        (["--epochs", "0"], "epochs must be an integer >= 1"),
        (["--model", "nope"], "unknown model 'nope'"),
    ],
)
def test_cli_bad_flags(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main([*CLI, "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pascal-snn train: error: ")
    assert re.search(message, err), err
    assert not out.exists()


def test_cli_needs_out(capsys):
    assert main(CLI) == 2
    assert "--out RUN_DIR" in capsys.readouterr().err


def test_cli_flags_override_yaml_and_resume_rules(tmp_path, capsys):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("epochs: 1\nlr: 1e-3\nlevels: [4, 4, 2, 2]\nseed: 3\n")
    out = tmp_path / "run"
    assert main([*CLI, "--config", str(yaml_file), "--lr", "0.02", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ANN test accuracy:" in printed and f"run folder: {out}" in printed
    config = RunConfig.from_dict(load_yaml(out / "config.yaml"))
    assert (config.lr, config.epochs, config.levels, config.seed) == (0.02, 1, [4, 4, 2, 2], 3)
    assert config.batch_size == 64 and config.weight_decay == INFO.weight_decay

    # resume takes the run's own settings; a different model is refused, nothing is written
    def contents():  # the run's files (the lock file names the last command that held it)
        return {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK_FILE}

    before = contents()
    assert main(["train", "--out", str(out), "--resume", "--model", "vgg16"]) == 2
    assert "model: run has 'digits_cnn', you gave 'vgg16'" in capsys.readouterr().err
    assert contents() == before
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.02"]) == 0
    assert "already finished all 1 epochs" in capsys.readouterr().out
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


# ------------------------------------------------------------------------- kill and resume
# The CLI in a child process; PASCAL_TEST_HANG makes it stop at a chosen point (after touching
# RUN_DIR/hanging) so the test can SIGKILL it exactly there:
#   mid-epoch: the 3rd training step after the first last.pt exists (epoch 2 half done);
#   in-write:  the second last.pt is fully written to its temp file, not yet renamed.
SHIM = r"""
import os, sys, time
from pathlib import Path
import torch.nn.functional as F

out = Path(sys.argv[sys.argv.index("--out") + 1])
hang = os.environ.get("PASCAL_TEST_HANG")

def stop_here():
    (out / "hanging").touch()
    time.sleep(600)

if hang == "mid-epoch":
    real_loss, steps = F.cross_entropy, [0]
    def cross_entropy(*args, **kwargs):
        if (out / "last.pt").exists():
            steps[0] += 1
            if steps[0] == 3:
                stop_here()
        return real_loss(*args, **kwargs)
    F.cross_entropy = cross_entropy
elif hang == "in-write":
    real_replace = os.replace
    def replace(src, dst):
        if Path(dst).name == "last.pt" and Path(dst).exists():
            stop_here()
        return real_replace(src, dst)
    os.replace = replace

from pascal_snn.cli import main
sys.exit(main(sys.argv[1:]))
"""
KILL_ARGS = [*CLI, "--epochs", "4", "--levels", "4,2,2,4"]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[1] / "src"),
                                                      env.get("PYTHONPATH")]))  # fmt: skip
    return env


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    assert main([*KILL_ARGS, "--out", str(out)]) == 0
    return out


def _kill_at_hang_point(args: list[str], out: Path, where: str) -> None:
    """Run the CLI with the shim until it hangs at ``where``, then SIGKILL it."""
    (out / "hanging").unlink(missing_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-c", SHIM, *args],
        env=_env(PASCAL_TEST_HANG=where),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while not (out / "hanging").exists():
            assert child.poll() is None, child.communicate()[0].decode()
            assert time.monotonic() < deadline, "the child never reached the kill point"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    (out / "hanging").unlink()


@pytest.mark.slow
def test_sigkill_mid_epoch_and_mid_write_then_resume_equals_uninterrupted(tmp_path, uninterrupted):
    out = tmp_path / "run"
    # 1. killed halfway through epoch 2: epoch 1's checkpoint is the last complete one
    _kill_at_hang_point([*KILL_ARGS, "--out", str(out)], out, "mid-epoch")
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert not list(out.glob(".*.tmp"))
    # 2. resumed, then killed while writing epoch 2's checkpoint (temp file complete, not renamed)
    _kill_at_hang_point(["train", "--out", str(out), "--resume"], out, "in-write")
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert len(list(out.glob(".last.pt.*.tmp"))) == 1
    # 3. resumed again to the end: bit-identical to the run that was never interrupted
    resumed = subprocess.run(
        [sys.executable, "-m", "pascal_snn", "train", "--out", str(out), "--resume"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "ANN test accuracy:" in resumed.stdout
    assert not list(out.glob(".*.tmp"))
    assert_same_run(uninterrupted, out)
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]


def test_grad_clip_bounds_every_step():
    """With grad_clip the gradient's global norm is clipped before each step: plain SGD at
    lr 1 then moves the parameters by at most grad_clip per step (here far less than
    unclipped)."""
    from torch.utils.data import TensorDataset

    from pascal_snn.models import create
    from pascal_snn.training import train_one_epoch

    def moved(grad_clip):
        torch.manual_seed(0)
        model = create("digits_cnn", 10, in_channels=1, L=4)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        data = TensorDataset(torch.rand(96, 1, 8, 8), torch.randint(0, 10, (96,)))
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        loader = DataLoader(data, batch_size=32)
        train_one_epoch(model, loader, optimizer, torch.device("cpu"), grad_clip=grad_clip)
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        return float((after - before).norm())

    assert moved(1e-3) <= 3 * 1e-3 * (1 + 1e-5)  # three steps
    assert moved(None) > 100 * 3e-3


def test_epoch_reports_the_gradient_norm_before_clipping():
    """Each epoch reports the median and largest global gradient norm of its steps, measured
    before clipping, and how many steps were clipped (None without grad_clip)."""
    import copy

    from torch.utils.data import TensorDataset

    from pascal_snn.models import create
    from pascal_snn.training import train_one_epoch

    torch.manual_seed(0)
    model = create("digits_cnn", 10, in_channels=1, L=4)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    reference = copy.deepcopy(model).train()
    torch.nn.functional.cross_entropy(reference(x), y).backward()
    expected = float(torch.cat([p.grad.flatten() for p in reference.parameters()]).norm())
    loader = DataLoader(TensorDataset(x, y), batch_size=32)  # one step: median = max = it

    def epoch(grad_clip):
        trained = copy.deepcopy(model)
        optimizer = torch.optim.SGD(trained.parameters(), lr=0.1)
        return train_one_epoch(trained, loader, optimizer, torch.device("cpu"), grad_clip=grad_clip)

    plain = epoch(None)
    assert plain["grad_norm_max"] == pytest.approx(expected, rel=1e-5)
    assert plain["grad_norm_median"] == plain["grad_norm_max"]
    assert plain["clipped_steps"] is None
    clipped = epoch(expected / 2)
    assert clipped["grad_norm_max"] == pytest.approx(expected, rel=1e-5)  # before clipping
    assert clipped["clipped_steps"] == 1
    assert epoch(expected * 2)["clipped_steps"] == 0


def test_a_gradient_jump_at_a_level_change_is_flagged_unless_clipped():
    """The warning needs all of: the levels changed at this epoch, no clipping, and a median
    gradient norm more than GRADIENT_JUMP times the epoch before's (ResNet-18's all-L = 1
    switch: 2.09 -> 193 with clipping on, far more without; a plan that trained on: ~6x)."""
    from pascal_snn.training import GRADIENT_JUMP, gradient_jump

    def records(before, now):
        return [
            {"epoch": 20, "grad_norm_median": before},
            {"epoch": 21, "grad_norm_median": now},
        ]

    jump = records(2.09, 193.0)
    warning = gradient_jump(jump, None, 4, [1, 1, 1])
    assert warning is not None and "92x" in warning and "epoch 21" in warning
    assert "--grad-clip" in warning
    assert gradient_jump(jump, 5.0, 4, [1, 1, 1]) is None  # clipped: nothing to say
    assert gradient_jump(jump, None, 4, 4) is None  # no level change
    assert gradient_jump(jump, None, None, 4) is None  # first epoch
    assert gradient_jump(records(2.0, 2.0 * GRADIENT_JUMP), None, 4, 1) is None
    assert gradient_jump(records(2.0, 2.0 * GRADIENT_JUMP * 1.01), None, 4, 1) is not None
    assert gradient_jump(records(None, 193.0), None, 4, 1) is None  # resumed from an older run
    assert gradient_jump(jump[1:], None, 4, 1) is None


def test_grad_clip_must_be_positive():
    with pytest.raises(ConfigError, match="grad_clip must be > 0"):
        RunConfig(grad_clip=0)
    assert RunConfig(grad_clip="0.5").grad_clip == 0.5
