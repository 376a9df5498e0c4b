"""``pascal-snn al`` as a user runs it."""

import json
import math
from fractions import Fraction

import pytest

from pascal_snn.al import cluster, histogram_stats, reference_histogram_stats
from pascal_snn.cli import main
from tests.cli_helpers import assert_png, cli
from tests.conftest import TRAINED_LEVELS


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


@pytest.mark.slow
def test_al_command_end_to_end(checkpoint):
    before = checkpoint.read_bytes()
    done = cli("al", "--checkpoint", checkpoint, "--num-images", "200", "--clusters", "2",
               "--cluster-levels", "4,1")  # fmt: skip
    folder = checkpoint.parent  # the default --out
    report = json.loads((folder / "al.json").read_text())
    assert f"per-layer L: {report['levels']}" in done.stdout
    assert_png(folder / "al_metric.png")
    assert checkpoint.read_bytes() == before
    assert report["variant"] == "paper" and report["num_images"] == 200
    assert report["dataset"] == "synthetic" and report["checkpoint"] == str(checkpoint)
    assert report["cluster_levels"] == [1, 4]
    layers = report["layers"]
    assert len(layers) == 4 and report["alpha"] == 1 / 8
    assert [len(layer["histogram"]) for layer in layers] == [L + 1 for L in TRAINED_LEVELS]
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


def test_al_command_reference_variant(trained_run, tmp_path, capsys):
    out = tmp_path / "ref"
    args = ["al", "--checkpoint", str(trained_run / "last.pt"), "--num-images", "64"]
    args += ["--variant", "reference-code", "--clusters", "1", "--cluster-levels", "2"]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads((out / "al.json").read_text())
    assert report["variant"] == "reference-code" and report["levels"] == [2, 2, 2, 2]
    for layer in report["layers"]:
        s = reference_histogram_stats(layer["histogram"])
        assert math.isclose(float(layer["metric"]), s.metric, rel_tol=0, abs_tol=0)
    assert_png(out / "al_metric.png")
    capsys.readouterr()


def test_al_command_too_many_clusters(trained_run, tmp_path, capsys):
    args = ["al", "--checkpoint", str(trained_run / "last.pt"), "--num-images", "16", "--out"]
    args += [str(tmp_path), "--clusters", "5", "--cluster-levels", "1,2,3,4,5"]
    assert main(args) == 2
    assert "at most 4" in capsys.readouterr().err
