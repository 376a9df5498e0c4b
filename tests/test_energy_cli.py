"""``pascal-snn energy`` as a user runs it."""

import json
import subprocess
import sys

import pytest
import torch

from pascal_snn.cli import main


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num-images", "0"], "--num-images"),
        (["--batch-size", "0"], "--batch-size"),
        (["--spike-rate", "0"], "--spike-rate"),
        (["--spike-rate", "nan"], "--spike-rate"),
    ],
)
def test_bad_options_are_config_errors(tmp_path, capsys, extra, message):
    code = main(["energy", "--checkpoint", str(tmp_path / "missing.pt"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("pascal-snn energy: error:") and message in err


def test_missing_checkpoint_is_named(tmp_path, capsys):
    assert main(["energy", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    from pascal_snn.checkpoint import save_checkpoint
    from pascal_snn.models import create
    from pascal_snn.qcfs import qcfs_layers

    torch.manual_seed(0)
    levels = [4, 2, 1, 3]
    model = create("digits_cnn", num_classes=10, in_channels=1, L=levels, width=0.25)
    for i, (_, layer) in enumerate(qcfs_layers(model)):
        layer.theta.data.fill_(0.5 + 0.5 * i)  # spread the outputs over the levels
    path = tmp_path_factory.mktemp("run") / "last.pt"
    arch = {"name": "digits_cnn", "num_classes": 10, "in_channels": 1, "width": 0.25}
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "arch": {**arch, "kwargs": {}},
            "levels": levels,
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


def test_energy_command_end_to_end(digits_checkpoint, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pascal_snn", "energy", "--checkpoint"]
    command += [str(digits_checkpoint), "--num-images", "50", "--batch-size", "16"]
    command += ["--out", str(out), "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "T_eff" in done.stdout and "latency" in done.stdout
    report = json.loads((out / "energy.json").read_text())
    for name in ("spike_rates.png", "energy_breakdown.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert report["format"] == "pascal-snn/energy/1"
    assert report["dataset"] == "digits" and report["images"] == 50
    assert report["levels"] == [4, 2, 1, 3]
    assert [n["L"] for n in report["neurons"]] == [4, 2, 1, 3]
    assert report["analytic"]["t_norm"] is None  # per-layer L: T_eff only
    layers = report["layers"]
    assert [x["L"] for x in layers] == [4, 2, 1, 3, 3]  # the classifier runs its input's 3 steps
    assert layers[0]["input"] == "image" and layers[0]["measured"]["macs"] == layers[0]["macs"]
    for layer in layers[1:]:
        assert layer["input"] == "spikes"
        assert 0 <= layer["measured"]["spike_rate"] <= layer["t_in"]
    measured = report["measured"]
    assert measured["acs_per_image"] == pytest.approx(sum(x["measured"]["acs"] for x in layers))
    assert report["latency"]["total_steps"] > report["measured"]["t_eff"]


def test_energy_command_analytic_only(digits_checkpoint, tmp_path, capsys):
    out = tmp_path / "analytic"
    args = ["energy", "--checkpoint", str(digits_checkpoint), "--analytic-only"]
    assert main([*args, "--spike-rate", "0.5", "--out", str(out), "--device", "cpu"]) == 0
    report = json.loads((out / "energy.json").read_text())
    assert report["measured"] is None and report["images"] == 0
    assert report["analytic"]["b"] == 0.5
    assert (out / "spike_rates.png").exists() and (out / "energy_breakdown.png").exists()
    capsys.readouterr()
