"""The ``pascal-snn`` command line, as a user runs it (a subprocess for evaluate, convert and
the demo) and in-process for the rest; every command on the one shared trained run."""

import json
import re

import pytest
import torch

from pascal_snn import __version__, convert, load_snn
from pascal_snn.checkpoint import load_model
from pascal_snn.cli import main
from pascal_snn.data import build_datasets
from tests.cli_helpers import assert_png, cli
from tests.conftest import TRAINED_LEVELS


def test_train_writes_a_complete_run_folder(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"last.pt", "best.pt", "config.yaml", "metrics.jsonl", "result.json"} <= names
    lines = (trained_run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    result = json.loads((trained_run / "result.json").read_text())
    assert result["epochs"] == 2 and result["test_total"] == 256


@pytest.mark.slow
def test_evaluate_both_modes(trained_run, tmp_path):
    done = cli("evaluate", "--checkpoint", trained_run / "last.pt", "--mode", "both",
               "--timesteps", "1,2,4,8", "--num-images", "64", "--out", tmp_path)  # fmt: skip
    result = json.loads((tmp_path / "evaluate.json").read_text())
    pasc = result["pasc"]
    assert f"{pasc['agreement']}/{pasc['images']}" in done.stdout
    assert result["images"] == 64 and result["levels"] == TRAINED_LEVELS
    assert pasc["agreement"] == 64 and pasc["boundary_cases"] == 0
    assert pasc["max_abs_logit_diff"] <= 1e-9
    assert result["vanilla"]["timesteps"] == [1, 2, 4, 8]
    assert result["vanilla"]["ann_accuracy"] == result["ann_accuracy"] == pasc["ann_accuracy"]
    assert_png(tmp_path / "accuracy_vs_timesteps.png")
    # progress without a terminal: plain lines with images done / total and the time; one
    # pass over the data for all three networks
    line = r"ANN, PASC and vanilla IF up to T = 8, float64: 64/64 images, \d+ s, done"
    assert len(re.findall(line, done.stderr)) == 1, done.stderr


def test_evaluate_ann_mode_runs_the_ann_only(trained_run, tmp_path, monkeypatch, capsys):
    import pascal_snn.evaluation as evaluation

    def refuse(*args, **kwargs):
        raise AssertionError("--mode ann must not convert the network")

    monkeypatch.setattr(evaluation, "convert", refuse)
    args = ["evaluate", "--checkpoint", str(trained_run / "best.pt"), "--mode", "ann"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "evaluate.json").read_text())
    assert set(result) == {"checkpoint", "dataset", "model", "dtype", "images", "levels",
                           "ann_accuracy"}  # fmt: skip
    model, _ = load_model(trained_run / "best.pt")
    _, test, _ = build_datasets("synthetic", augment=False)
    images = torch.stack([test[i][0] for i in range(len(test))]).double()
    labels = torch.tensor([test[i][1] for i in range(len(test))])
    correct = int((model.double()(images).argmax(1) == labels).sum())
    assert result["images"] == 256 and result["ann_accuracy"] == correct / 256
    assert f"{100 * correct / 256:.2f} %" in capsys.readouterr().out


def test_al_and_energy(trained_run, tmp_path, capsys):
    args = ["al", "--checkpoint", str(trained_run / "last.pt"), "--num-images", "128"]
    assert main([*args, "--clusters", "2", "--cluster-levels", "1,2", "--out", str(tmp_path)]) == 0
    al = json.loads((tmp_path / "al.json").read_text())
    assert len(al["levels"]) == 4 and set(al["levels"]) <= {1, 2}
    assert [layer["L"] for layer in al["layers"]] == TRAINED_LEVELS
    assert_png(tmp_path / "al_metric.png")
    args = ["energy", "--checkpoint", str(trained_run / "last.pt"), "--num-images", "32"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    energy = json.loads((tmp_path / "energy.json").read_text())
    assert energy["images"] == 32 and energy["measured"]["t_eff"] > 0
    assert [n["L"] for n in energy["neurons"]] == TRAINED_LEVELS
    assert_png(tmp_path / "spike_rates.png")
    assert_png(tmp_path / "energy_breakdown.png")
    err = capsys.readouterr().err
    assert re.search(r"AL metric: 128/128 images, \d+ s, done", err)
    assert re.search(r"energy: PASC network: 32/32 images, \d+ s, done", err)


@pytest.mark.slow
def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    done = cli("demo", "--quick", "--out", out, "--levels", "4", timeout=900)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["agreement"] == 1.0 and metrics["adaptive"]["agreement"] == 1.0
    assert metrics["float64"]["max_abs_logit_diff"] <= 1e-9
    assert metrics["float32"]["unexplained_disagreements"] == 0
    assert metrics["levels"] == [4, 4, 4, 4] and metrics["epochs"] == 2
    assert len(metrics["adaptive"]["levels"]) == 4
    assert set(metrics["adaptive"]["levels"]) <= {1, 2, 4}
    assert metrics["vanilla"]["timesteps"] == [1, 2, 4, 8, 16]
    assert metrics["t_eff"] == metrics["energy"]["t_eff"] > 0
    assert (
        metrics["snn_accuracy"]
        == metrics["ann_accuracy"]
        - (metrics["float32"]["ann_correct"] - metrics["float32"]["snn_correct"])
        / metrics["test_images"]
    )
    for png in ("accuracy_vs_timesteps", "al_metric", "spike_rates", "energy_breakdown"):
        assert_png(out / f"{png}.png")
    report = (out / "report.md").read_text()
    assert "![accuracy against timesteps](accuracy_vs_timesteps.png)" in report
    command = f"pascal-snn demo --quick --out {out} --levels 4"
    assert metrics["command"] == command and f"```\n{command}\n```" in report
    assert (out / "config.yaml").is_file() and (out / "uniform" / "best.pt").is_file()
    assert f"{100 * metrics['ann_accuracy']:.2f} %" in done.stdout


def test_help_lists_every_command_and_version(capsys):
    assert main(["--help"]) == 0
    listed = re.findall(r"^    (\w+) ", capsys.readouterr().out, flags=re.MULTILINE)
    assert listed == ["train", "evaluate", "convert", "al", "energy", "demo"]
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pascal-snn {__version__}"


@pytest.mark.parametrize("command", ["train", "evaluate", "convert", "al", "energy", "demo"])
def test_help_has_no_raw_markup(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "``" not in text and ":func:" not in text and ":class:" not in text


@pytest.mark.parametrize("command", ["train", "evaluate", "convert", "al", "energy", "demo"])
def test_every_command_takes_threads(command, capsys):
    assert main([command, "--help"]) == 0
    assert re.search(r"--threads THREADS\s+torch CPU threads \(default 1", capsys.readouterr().out)


def test_threads_apply_to_the_run(trained_run, tmp_path, capsys):
    args = ["evaluate", "--checkpoint", str(trained_run / "last.pt"), "--mode", "ann"]
    try:
        assert main([*args, "--threads", "2", "--out", str(tmp_path)]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    capsys.readouterr()


def test_convert_saves_a_network_that_loads_and_equals_a_fresh_conversion(trained_run, tmp_path):
    out = tmp_path / "nets" / "snn.pt"
    done = cli("convert", "--checkpoint", trained_run / "last.pt", "--out", out)
    levels = ",".join(map(str, TRAINED_LEVELS))
    assert (
        f"{out.stat().st_size:,} bytes" in done.stdout and f"per-layer L: {levels}" in done.stdout
    )
    assert [p.name for p in out.parent.iterdir()] == ["snn.pt"]  # no lock or temporary file
    model, checkpoint = load_model(trained_run / "last.pt")
    x = torch.randn(6, *checkpoint["dataset"]["input_shape"], dtype=torch.float64)
    snn = load_snn(out)
    assert [layer.L for _, layer in snn.if_layers()] == TRAINED_LEVELS
    assert torch.equal(snn(x), convert(model.double())(x))


def test_convert_vanilla_in_float32(trained_run, tmp_path, capsys):
    out = tmp_path / "vanilla.pt"
    args = ["convert", "--checkpoint", str(trained_run / "last.pt"), "--out", str(out)]
    assert main([*args, "--mode", "vanilla", "--timesteps", "3", "--dtype", "float32"]) == 0
    assert "4 IF layers, 3 timesteps" in capsys.readouterr().out
    model, checkpoint = load_model(trained_run / "last.pt")
    x = torch.randn(6, *checkpoint["dataset"]["input_shape"])
    snn = load_snn(out)
    assert snn.timesteps == 3 and torch.equal(snn(x), convert(model, "vanilla", 3)(x))


def refused_in_one_line(args, pattern, capsys):
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("pascal-snn convert: error: ") and re.search(pattern, lines[0])


def test_convert_refuses_bad_input_before_any_work_and_writes_nothing(
    trained_run, tmp_path, monkeypatch, capsys
):
    import pascal_snn.commands.convert as convert_command

    ckpt = trained_run / "last.pt"
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    real_load = convert_command.load_model

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the options were checked")

    monkeypatch.setattr(convert_command, "load_model", no_work)
    for args, pattern in [
        (["--out", blocker / "sub" / "snn.pt"], r"'.*a-file' is a file; choose another --out"),
        (["--out", tmp_path], r"is a folder; give a file name"),
        (["--out", ckpt], r"is the checkpoint itself"),
        (["--out", tmp_path / "v.pt", "--mode", "vanilla"], r"needs --timesteps"),
        (["--out", tmp_path / "p.pt", "--timesteps", "4"], r"applies to --mode vanilla"),
    ]:
        refused_in_one_line(["convert", "--checkpoint", ckpt, *args], pattern, capsys)
    monkeypatch.setattr(convert_command, "load_model", real_load)
    args = ["convert", "--checkpoint", bad, "--out", tmp_path / "out" / "snn.pt"]
    refused_in_one_line(args, r"not a PyTorch checkpoint", capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "bad.pt"]
