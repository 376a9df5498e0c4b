"""``pascal-snn energy`` as a user runs it."""

import json

import pytest
import torch

from pascal_snn.cli import main
from tests.cli_helpers import assert_png, cli
from tests.conftest import TRAINED_LEVELS


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


@pytest.mark.slow
def test_energy_command_end_to_end(trained_run, tmp_path):
    out = tmp_path / "out"
    done = cli("energy", "--checkpoint", trained_run / "last.pt", "--num-images", "50",
               "--batch-size", "16", "--out", out, "--device", "cpu")  # fmt: skip
    report = json.loads((out / "energy.json").read_text())
    assert f"T_eff={report['measured']['t_eff']:.3f}" in done.stdout
    assert f"latency: {report['latency']['total_steps']} neuron steps" in done.stdout
    for name in ("spike_rates.png", "energy_breakdown.png"):
        assert_png(out / name)
    assert report["format"] == "pascal-snn/energy/1"
    assert report["dataset"] == "synthetic" and report["images"] == 50
    assert report["levels"] == TRAINED_LEVELS
    assert [n["L"] for n in report["neurons"]] == TRAINED_LEVELS
    assert report["analytic"]["t_norm"] is None  # per-layer L: T_eff only
    layers = report["layers"]
    assert [x["L"] for x in layers] == [4, 2, 1, 4, 4]  # the classifier runs its input's steps
    assert layers[0]["input"] == "image" and layers[0]["measured"]["macs"] == layers[0]["macs"]
    for layer in layers[1:]:
        assert layer["input"] == "spikes"
        assert 0 <= layer["measured"]["spike_rate"] <= layer["t_in"]
    measured = report["measured"]
    assert measured["acs_per_image"] == pytest.approx(sum(x["measured"]["acs"] for x in layers))
    assert report["latency"]["total_steps"] > report["measured"]["t_eff"]


def test_energy_command_analytic_only(trained_run, tmp_path, capsys):
    out = tmp_path / "analytic"
    args = ["energy", "--checkpoint", str(trained_run / "last.pt"), "--analytic-only"]
    assert main([*args, "--spike-rate", "0.5", "--out", str(out), "--device", "cpu"]) == 0
    report = json.loads((out / "energy.json").read_text())
    assert report["measured"] is None and report["images"] == 0
    assert report["analytic"]["b"] == 0.5
    assert [x["analytic"]["spike_rate"] for x in report["layers"]] == [None, 0.5, 0.5, 0.5, 0.5]
    assert_png(out / "spike_rates.png")
    assert_png(out / "energy_breakdown.png")
    capsys.readouterr()


def _widths(tables):
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(width=300)
    return [Measurement.get(console, console.options, t).maximum for t in tables]


def test_energy_tables_and_totals_fit_80_columns(trained_run):
    from pascal_snn.checkpoint import load_model
    from pascal_snn.commands.energy import layer_tables, summary_lines
    from pascal_snn.data import build_datasets
    from pascal_snn.energy import energy_report
    from pascal_snn.models import create

    model, _ = load_model(trained_run / "last.pt")
    _, test, _ = build_datasets("synthetic", augment=False)
    loader = [(torch.stack([test[i][0] for i in range(8)]), torch.zeros(8))]
    measured = energy_report(model, loader)
    tables = layer_tables(measured, "Energy of a long checkpoint name.pt (8 synthetic images)")
    assert len(tables) == 2 and all(w <= 80 for w in _widths(tables))
    assert [t.row_count for t in tables] == [5, 5]
    resnet = energy_report(create("resnet18", 10, L=4, width=0.25), input_shape=(3, 32, 32))
    assert all(w <= 80 for w in _widths(layer_tables(resnet, "ResNet-18, analytic")))
    for report in (measured, resnet):
        assert max(len(line) for line in summary_lines(report)) <= 80
