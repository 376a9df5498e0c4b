"""``pascal-snn al`` as a user runs it."""

import json
import math
import subprocess
import sys
from fractions import Fraction

import pytest
import torch

from pascal_snn.al import cluster, histogram_stats, reference_histogram_stats
from pascal_snn.cli import main


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--clusters", "2"], "--cluster-levels"),
        (["--clusters", "2", "--cluster-levels", "1,2,4"], "exactly 2"),
        (["--cluster-levels", "1,x,4"], "comma-separated"),
        (["--cluster-levels", "0,2,4"], "comma-separated"),
        (["--alpha", "0"], "--alpha"),
        (["--alpha", "1.5"], "--alpha"),
        (["--num-images", "0"], "--num-images"),
    ],
)
def test_bad_options_are_config_errors(tmp_path, capsys, extra, message):
    code = main(["al", "--checkpoint", str(tmp_path / "missing.pt"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("pascal-snn al: error:") and message in err


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    checkpoint = pytest.importorskip("pascal_snn.checkpoint")
    pytest.importorskip("pascal_snn.data")
    pytest.importorskip("pascal_snn.distributed")
    from pascal_snn.models import create
    from pascal_snn.qcfs import qcfs_layers

    torch.manual_seed(0)
    model = create("digits_cnn", num_classes=10, in_channels=1, L=4, width=0.25)
    for i, (_, layer) in enumerate(qcfs_layers(model)):
        layer.theta.data.fill_(0.5 + 0.5 * i)  # spread the outputs over the levels
    folder = tmp_path_factory.mktemp("run")
    path = folder / "last.pt"
    checkpoint.save_checkpoint(
        path,
        {
            "format": "pascal-snn/1",
            "model": model.state_dict(),
            "arch": {
                "name": "digits_cnn",
                "num_classes": 10,
                "in_channels": 1,
                "width": 0.25,
                "kwargs": {},
            },
            "levels": [4, 4, 4, 4],
            "dataset": {"name": "digits", "data_dir": None, "image_size": None},
            "config": {},
            "epoch": 1,
            "optimizer": None,
            "scheduler": None,
            "rng": None,
            "metrics": {},
        },
    )
    return path


def test_al_command_end_to_end(digits_checkpoint):
    before = digits_checkpoint.read_bytes()
    command = [sys.executable, "-m", "pascal_snn", "al", "--checkpoint", str(digits_checkpoint)]
    command += ["--num-images", "200", "--clusters", "2", "--cluster-levels", "4,1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "new L" in done.stdout
    folder = digits_checkpoint.parent
    report = json.loads((folder / "al.json").read_text())
    assert (folder / "al_metric.png").read_bytes().startswith(b"\x89PNG")
    assert digits_checkpoint.read_bytes() == before
    assert report["variant"] == "paper" and report["num_images"] == 200
    assert report["cluster_levels"] == [1, 4]
    layers = report["layers"]
    assert len(layers) == 4 and report["alpha"] == 1 / 8
    metrics = []
    for layer in layers:
        s = histogram_stats(layer["histogram"], Fraction(1, 8))
        metric = float(layer["metric"])  # "inf" is written as a string
        assert metric == s.metric and layer["S"] == s.S and layer["n"] == s.n
        metrics.append(metric)
    # Every image adds the same number of outputs to a layer.
    assert all(layer["n"] % 200 == 0 for layer in layers)
    labels = cluster(metrics, 2)
    assert [layer["cluster"] for layer in layers] == labels
    assert report["levels"] == [[1, 4][c] for c in labels]
    assert [layer["new_L"] for layer in layers] == report["levels"]


def test_al_command_reference_variant(digits_checkpoint, tmp_path, capsys):
    out = tmp_path / "ref"
    args = ["al", "--checkpoint", str(digits_checkpoint), "--num-images", "64"]
    args += ["--variant", "reference-code", "--clusters", "1", "--cluster-levels", "2"]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads((out / "al.json").read_text())
    assert report["variant"] == "reference-code" and report["levels"] == [2, 2, 2, 2]
    for layer in report["layers"]:
        s = reference_histogram_stats(layer["histogram"])
        assert math.isclose(float(layer["metric"]), s.metric, rel_tol=0, abs_tol=0)
    assert (out / "al_metric.png").exists()
    capsys.readouterr()


def test_al_command_too_many_clusters(digits_checkpoint, tmp_path, capsys):
    args = ["al", "--checkpoint", str(digits_checkpoint), "--num-images", "16", "--out"]
    args += [str(tmp_path), "--clusters", "5", "--cluster-levels", "1,2,3,4,5"]
    assert main(args) == 2
    assert "at most 4" in capsys.readouterr().err
