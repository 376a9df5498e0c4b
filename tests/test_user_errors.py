"""Issue 15, re-run row by row: what a new user did, and what happens now — a clear one-line
error (exit status 2, no traceback, nothing written) or the right result.

Rows that live in other modules' tests: the README quick start (test_readme.py), progress and
--threads on every command (test_cli.py), figures (test_energy_measured.py)."""

import json
import os
import re

import pytest
import torch

from pascal_snn.checkpoint import load_checkpoint, save_checkpoint
from pascal_snn.cli import main
from pascal_snn.config import MAX_LEVEL
from pascal_snn.io import LOCK_FILE, run_folder
from pascal_snn.memory import check_fits, spike_bytes_per_image
from pascal_snn.models import create

TRAIN = ["train", "--dataset", "synthetic", "--width", "0.25", "--batch-size", "64"]


def refused(args, pattern, capsys):
    """``main(args)`` exits 2 with one line matching ``pattern`` and no traceback."""
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.match(r"pascal-snn \w+: error: ", lines[0]), err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def _edited(checkpoint, tmp_path, name, edit):
    state = load_checkpoint(checkpoint)
    edit(state)
    path = tmp_path / name
    save_checkpoint(path, state)
    return path


# --- row 1: the README's adaptive command trained phase 0, then asked for --epochs
def test_adaptive_takes_epochs_from_the_recipe_and_validates_before_training(tmp_path, capsys):
    out = tmp_path / "al-run"
    adaptive = ["--adaptive", "--levels", "4", "--clusters", "3", "--cluster-levels", "1,2,4"]
    for extra, pattern in [
        (["--clusters", "5", "--cluster-levels", "1,2,3,4,5"], r"4 QCFS layers, so at most 4"),
        (["--levels", "4,4,2,2"], r"one uniform L"),
        (["--init-checkpoint", tmp_path / "missing.pt"], r"missing\.pt.*does not exist"),
        (["--cluster-levels", "1,2"], r"--clusters 3 needs exactly 3"),
    ]:
        refused([*TRAIN, *adaptive, *extra, "--out", out], pattern, capsys)
        assert not out.exists()  # nothing written: the corrected command can start afresh
    args = [*TRAIN, *adaptive, "--al-images", "64", "--train-images", "128", "--out", out]
    assert main([str(a) for a in args]) == 0
    config = json.loads((out / "result.json").read_text())
    assert config["epochs"] == 5  # the synthetic data set's recipe
    last = load_checkpoint(out / "last.pt")
    assert last["config"]["adaptive"]["cluster_levels"] == [1, 2, 4]
    assert "per-layer L:" in capsys.readouterr().out
    # resumed as what it is: an adaptive run, with the plan it was started with
    refused(["train", "--out", out, "--resume"], r"holds an adaptive run .*--adaptive", capsys)
    refused(
        ["train", "--out", out, "--resume", "--adaptive", "--switch-fraction", "0.5"],
        r"cannot resume .*adaptive.switch_fraction: run has 0.66.*you gave 0.5.*--switch-fraction",
        capsys,
    )
    assert main(["train", "--out", str(out), "--resume", "--adaptive"]) == 0
    assert "already finished all 5 epochs" in capsys.readouterr().out


# --- rows 2 and 3: L too large for memory, or not an integer L at all
@pytest.mark.parametrize(
    ("levels", "pattern"),
    [("100000", r"above the largest supported .* L = 65536"), ("1e20", r"not an integer")],
)
def test_levels_out_of_bounds_are_refused_before_anything_is_written(
    levels, pattern, tmp_path, capsys
):
    out = tmp_path / "run"
    refused([*TRAIN, "--levels", levels, "--out", out], pattern, capsys)
    assert not out.exists()


def _checkpoint_with_levels(trained_run, tmp_path, L):
    model = create("digits_cnn", num_classes=10, in_channels=1, L=L, width=0.25)
    state = load_checkpoint(trained_run / "last.pt")
    state.update(model=model.state_dict(), levels=[L] * 4)
    path = tmp_path / "big" / "last.pt"
    save_checkpoint(path, state)
    return path


def test_a_conversion_that_cannot_fit_in_memory_is_refused_up_front(trained_run, tmp_path, capsys):
    checkpoint = _checkpoint_with_levels(trained_run, tmp_path, MAX_LEVEL)
    out = tmp_path / "eval"
    line = refused(["evaluate", "--checkpoint", checkpoint, "--out", out], r"need about", capsys)
    assert re.search(r"batch of 256 float64 images \(L up to 65536", line)
    assert re.search(r"use --batch-size \d+ or smaller|even one image does not fit", line)
    assert not out.exists()
    refused(["energy", "--checkpoint", checkpoint, "--out", out], r"need about", capsys)


def test_the_memory_estimate_and_the_batch_it_suggests():
    model = create("digits_cnn", num_classes=10, in_channels=1, L=8, width=0.25)
    per_image = spike_bytes_per_image(model, (1, 8, 8), torch.float64)
    # largest IF layer: features.5, 16 channels × 8 × 8 neurons, with L = T_in = 8
    assert per_image == 16 * 8 * 8 * (2 * (8 + 2 * 8) * 8 + 2 * 8)
    assert check_fits(model, (1, 8, 8), 10, torch.float64, torch.device("cpu"), available=10**12)
    with pytest.raises(Exception, match=r"use --batch-size 4 or smaller") as info:
        check_fits(
            model, (1, 8, 8), 10, torch.float64, torch.device("cpu"), available=5 * per_image
        )
    assert "float64" in str(info.value)


# --- rows 4 and 6: NaN weights, a negative threshold: refused at load, by every command
@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda s: s["model"]["features.0.weight"].fill_(float("nan")), r"NaN or infinite weights"),
        (lambda s: s["model"]["features.2.theta"].fill_(-1.5), r"theta of QCFS .* is -1\.5"),
    ],
)
def test_unusable_weights_are_refused_by_every_command(
    edit, pattern, trained_run, tmp_path, capsys
):
    bad = _edited(trained_run / "last.pt", tmp_path, "bad.pt", edit)
    for command in ("evaluate", "al", "energy"):
        line = refused([command, "--checkpoint", bad, "--out", tmp_path / command], pattern, capsys)
        assert "supported:" not in line and not (tmp_path / command).exists()
    adaptive = [*TRAIN, "--adaptive", "--init-checkpoint", bad, "--out", tmp_path / "run"]
    refused(adaptive, pattern, capsys)


# --- row 5: a checkpoint evaluated on another data set
def test_another_data_set_needs_an_explicit_override(trained_run, tmp_path, capsys):
    args = ["evaluate", "--checkpoint", trained_run / "last.pt", "--mode", "ann"]
    line = refused([*args, "--dataset", "digits", "--out", tmp_path], r"--other-dataset", capsys)
    assert "was trained on synthetic" in line and "not on digits" in line
    assert (
        main([*map(str, args), "--dataset", "digits", "--other-dataset", "--out", str(tmp_path)])
        == 0
    )
    assert json.loads((tmp_path / "evaluate.json").read_text())["dataset"] == "digits"
    capsys.readouterr()


# --- row 7: two runs in one folder at once; a killed run's lock does not block --resume
def test_a_second_command_on_a_busy_folder_is_refused_naming_the_holder(
    trained_run, tmp_path, capsys
):
    out = tmp_path / "busy"
    with run_folder(out, "pascal-snn train --out busy"):
        line = refused([*TRAIN, "--epochs", "1", "--out", out], r"in use by another", capsys)
        assert f"PID {os.getpid()}: pascal-snn train --out busy" in line
        args = ["evaluate", "--checkpoint", trained_run / "last.pt", "--out", out]
        refused(args, r"in use", capsys)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]


def test_a_stale_lock_does_not_block_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0
    (out / LOCK_FILE).write_text("PID 999999: pascal-snn train (killed)\n")  # no one holds it
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert "resuming" in capsys.readouterr().err


# --- row 8: unwritable --out found after the work; failed runs leaving empty folders
def test_unwritable_out_is_refused_before_any_work(trained_run, tmp_path, monkeypatch, capsys):
    import pascal_snn.commands.al as al_command
    import pascal_snn.commands.energy as energy_command

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the output folder was checked")

    monkeypatch.setattr(al_command, "plan_levels", no_work)
    monkeypatch.setattr(energy_command, "energy_report", no_work)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for command in ("al", "energy", "evaluate"):
        args = [command, "--checkpoint", trained_run / "last.pt", "--out", blocker / "sub"]
        refused(args, r"'.*a-file' is a file; choose another --out", capsys)


def test_a_failed_run_leaves_no_folder_behind(trained_run, tmp_path, monkeypatch, capsys):
    import pascal_snn.commands.evaluate as evaluate_command
    from pascal_snn.errors import DataError

    def fail(*args, **kwargs):
        raise DataError("the data broke half-way")

    monkeypatch.setattr(evaluate_command, "evaluate", fail)
    out = tmp_path / "deep" / "eval"
    args = ["evaluate", "--checkpoint", trained_run / "last.pt", "--out", out]
    refused(args, r"broke half-way", capsys)
    assert not (tmp_path / "deep").exists()


# --- the last row: a test set with classes the training set lacks
def test_classes_missing_from_the_training_images_are_warned_about(tmp_path, capsys):
    args = [*TRAIN, "--epochs", "1", "--train-images", "3", "--val-images", "0"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    match = re.search(r"warning: (\d+) of 256 test images belong to classes the training", err)
    assert match and int(match.group(1)) > 0


def test_a_run_that_diverges_before_its_first_checkpoint_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    refused([*TRAIN, "--epochs", "1", "--lr", "1e20", "--out", out], r"NaN/inf; lower --lr", capsys)
    assert not out.exists()  # config.yaml and metrics.jsonl were removed, then the folder
