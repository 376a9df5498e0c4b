"""The installed ``pascal-snn`` command, run as a user runs it: one subprocess per command."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cli(*args, check=True, timeout=300):
    exe = shutil.which("pascal-snn", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "pascal_snn"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: one thread is fastest
    done = subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    done = cli("train", "--dataset", "synthetic", "--width", "0.25", "--epochs", "2",
               "--batch-size", "64", "--levels", "4,2,1,4", "--out", out)  # fmt: skip
    assert "ANN test accuracy" in done.stdout
    return out


@pytest.mark.slow
def test_train_writes_a_complete_run_folder(run_dir):
    for name in ("last.pt", "best.pt", "config.yaml", "metrics.jsonl"):
        assert (run_dir / name).is_file(), name
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


@pytest.mark.slow
def test_evaluate_both_modes(run_dir):
    done = cli("evaluate", "--checkpoint", run_dir / "last.pt", "--mode", "both",
               "--timesteps", "1,2,4,8", "--num-images", "64")  # fmt: skip
    assert "agreement" in done.stdout
    result = json.loads((run_dir / "evaluate.json").read_text())
    assert result["images"] == 64 and result["levels"] == [4, 2, 1, 4]
    assert result["pasc"]["agreement"] == 64 and result["pasc"]["boundary_cases"] == 0
    assert result["pasc"]["max_abs_logit_diff"] <= 1e-9
    assert result["vanilla"]["timesteps"] == [1, 2, 4, 8]
    assert_png(run_dir / "accuracy_vs_timesteps.png")


@pytest.mark.slow
def test_al_and_energy(run_dir, tmp_path):
    cli("al", "--checkpoint", run_dir / "last.pt", "--num-images", "128", "--clusters", "2",
        "--cluster-levels", "1,2", "--out", tmp_path)  # fmt: skip
    al = json.loads((tmp_path / "al.json").read_text())
    assert len(al["levels"]) == 4 and set(al["levels"]) <= {1, 2}
    assert_png(tmp_path / "al_metric.png")
    cli("energy", "--checkpoint", run_dir / "last.pt", "--num-images", "32", "--out", tmp_path)
    energy = json.loads((tmp_path / "energy.json").read_text())
    assert energy["images"] == 32 and energy["measured"]["t_eff"] > 0
    assert_png(tmp_path / "spike_rates.png")
    assert_png(tmp_path / "energy_breakdown.png")


@pytest.mark.slow
def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    cli("demo", "--quick", "--out", out, timeout=900)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("ann_accuracy", "snn_accuracy", "agreement", "levels", "t_eff"):
        assert key in metrics, key
    assert metrics["agreement"] == 1.0 and metrics["adaptive"]["agreement"] == 1.0
    assert metrics["float64"]["max_abs_logit_diff"] <= 1e-9
    assert metrics["float32"]["unexplained_disagreements"] == 0
    n_layers = len(metrics["levels"])
    assert n_layers == len(metrics["adaptive"]["levels"]) == 4
    assert set(metrics["adaptive"]["levels"]) <= {1, 2, 4}
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
    assert "pascal-snn demo" in report
    assert (out / "config.yaml").is_file() and (out / "uniform" / "best.pt").is_file()


def test_help_lists_every_command():
    done = cli("--help")
    for command in ("train", "evaluate", "al", "energy", "demo"):
        assert command in done.stdout
