"""Shared test settings and the one trained run that the command-line tests share.

- hypothesis profile sized for a 2-core CI machine;
- one torch thread (tiny test models run fastest on one: no OpenMP spin);
- ``trained_run``: one small training run (session scope) for every test that needs a real
  checkpoint. Tests must not write into it: give the commands ``--out`` (or copy it first).
"""

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("PASCAL_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")
torch.set_num_threads(1)
# An unforeseen failure of the CLI shows its traceback in tests (users get one line).
os.environ.setdefault("PASCAL_SNN_DEBUG", "1")

TRAINED_LEVELS = [4, 2, 1, 4]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A finished run folder: digits_cnn (width 0.25) on synthetic data, per-layer L 4,2,1,4,
    2 epochs; trained in-process through the CLI."""
    from pascal_snn.cli import main

    out = tmp_path_factory.mktemp("shared") / "run"
    code = main(["train", "--dataset", "synthetic", "--width", "0.25", "--epochs", "2",
                 "--batch-size", "64", "--levels", "4,2,1,4", "--out", str(out)])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture
def checkpoint(trained_run, tmp_path) -> Path:
    """A private copy of the shared run's last.pt, in its own folder (commands may write
    beside it)."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    path = folder / "last.pt"
    path.write_bytes((trained_run / "last.pt").read_bytes())
    return path
