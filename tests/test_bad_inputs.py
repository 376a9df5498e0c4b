"""Bad input at the command line: one clear message (what was wrong, what to do), no
traceback, exit status 2, and nothing written half-way.

Other bad-input cases live with their modules: L / level lists and training flags in
test_training.py and test_qcfs.py, unsupported layers in test_convert.py, checkpoint contents
(pickled code, other architecture) in test_checkpoint.py, wrong input shapes and NaN inputs to
the SNN in test_convert.py, data folders in test_data.py.
"""

import re

import pytest
import torch

from pascal_snn.checkpoint import load_checkpoint, save_checkpoint
from pascal_snn.cli import main


def fails(args, pattern, capsys):
    assert main([str(a) for a in args]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    first = captured.err.strip().splitlines()[0]
    assert first.startswith("pascal-snn ") and ": error: " in first, captured.err
    assert re.search(pattern, captured.err), captured.err
    return captured.err


def test_missing_checkpoint(capsys, tmp_path):
    fails(["evaluate", "--checkpoint", tmp_path / "nope.pt"], r"nope\.pt.*(not|no such)", capsys)


def test_truncated_checkpoint(capsys, tmp_path, checkpoint):
    half = tmp_path / "half.pt"
    data = checkpoint.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    fails(["evaluate", "--checkpoint", half], r"half\.pt", capsys)


@pytest.mark.parametrize("seed", range(12))
def test_random_bytes_checkpoint(capsys, tmp_path, seed):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(
        torch.randint(
            0, 256, (2000,), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
        )
        .numpy()
        .tobytes()
    )
    for command in ("evaluate", "al", "energy"):
        fails([command, "--checkpoint", junk], r"junk\.pt", capsys)


def test_checkpoint_of_another_class_count(capsys, tmp_path, checkpoint):
    state = load_checkpoint(checkpoint)
    state["arch"] = {**state["arch"], "num_classes": 7}
    other = tmp_path / "other.pt"
    save_checkpoint(other, state)
    fails(["evaluate", "--checkpoint", other], r"does not match.*(shape|size)", capsys)


def test_dataset_with_another_class_count_or_channels(capsys, checkpoint):
    # the synthetic model takes 1-channel 8×8 images; CIFAR-shaped data does not fit
    err = fails(
        [
            "evaluate",
            "--checkpoint",
            checkpoint,
            "--dataset",
            "cifar10",
            "--data-dir",
            "/nonexistent-folder",
        ],
        r"nonexistent-folder",
        capsys,
    )
    assert "--download" in err


def test_missing_data_folder(capsys, tmp_path):
    out = tmp_path / "run"
    fails(
        ["train", "--dataset", "fashion-mnist", "--data-dir", tmp_path / "nowhere", "--out", out],
        r"nowhere",
        capsys,
    )
    assert not out.exists()


def test_data_folder_with_wrong_files(capsys, tmp_path):
    folder = tmp_path / "fm"
    folder.mkdir()
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        (folder / name).write_bytes(b"not an idx file")
    fails(
        ["train", "--dataset", "fashion-mnist", "--data-dir", folder, "--out", tmp_path / "run"],
        r"idx|IDX|gzip",
        capsys,
    )


def test_conflicting_flags(capsys, checkpoint, tmp_path):
    fails(
        ["evaluate", "--checkpoint", checkpoint, "--mode", "pasc", "--timesteps", "1,2"],
        r"--timesteps applies to --mode vanilla or both",
        capsys,
    )
    fails(
        ["train", "--dataset", "synthetic", "--clusters", "3", "--out", tmp_path / "r"],
        r"--clusters only apply with --adaptive",
        capsys,
    )
    fails(
        ["train", "--dataset", "synthetic", "--al-alpha", "0.1", "--out", tmp_path / "r"],
        r"--al-alpha only apply with --adaptive",
        capsys,
    )
    fails(
        [
            *["train", "--dataset", "synthetic", "--adaptive", "--clusters", "2"],
            *["--cluster-levels", "1,4", "--al-alpha", "1.5", "--out", tmp_path / "r"],
        ],
        r"--alpha must be in \(0, 1\], got 1.5",
        capsys,
    )
    fails(
        ["al", "--checkpoint", checkpoint, "--clusters", "2", "--cluster-levels", "1,2,4"],
        r"--clusters 2 needs exactly 2",
        capsys,
    )
    fails(
        ["evaluate", "--checkpoint", checkpoint, "--mode", "both", "--timesteps", "0,4"],
        r"--timesteps takes comma-separated positive integers",
        capsys,
    )


def test_unwritable_output_folder(capsys, checkpoint, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    fails(
        ["evaluate", "--checkpoint", checkpoint, "--out", blocker / "sub"],
        r"output folder '.*a-file/sub' cannot be created: '.*a-file' is a file",
        capsys,
    )
    fails(["train", "--dataset", "synthetic", "--out", blocker / "sub"], r"a-file", capsys)


def test_bad_device(capsys, checkpoint):
    fails(["evaluate", "--checkpoint", checkpoint, "--device", "tpu:7"], r"device", capsys)
    if not torch.cuda.is_available():
        fails(["evaluate", "--checkpoint", checkpoint, "--device", "cuda"], r"CUDA", capsys)
