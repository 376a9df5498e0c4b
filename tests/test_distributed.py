"""Sharded evaluation, device choice, and a real 2-process torchrun (gloo, loopback) run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pascal_snn import ConfigError
from pascal_snn.checkpoint import load_model
from pascal_snn.data import build_datasets
from pascal_snn.distributed import (
    ShardSampler,
    all_reduce_sum,
    is_distributed,
    is_main_process,
    resolve_device,
    sharded_loader,
    world_info,
)
from pascal_snn.training import evaluate_counts


@given(st.integers(0, 200), st.integers(1, 9))
def test_shards_cover_every_item_exactly_once(n, world):
    shards = [list(ShardSampler(n, rank=r, world=world)) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(n))
    assert [len(ShardSampler(n, rank=r, world=world)) for r in range(world)] == list(
        map(len, shards)
    )
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shard_sampler_rejects_bad_rank():
    with pytest.raises(ValueError, match="outside world size"):
        ShardSampler(10, rank=2, world=2)


def test_single_process_defaults(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not is_distributed() and is_main_process()
    assert world_info().world_size == 1
    x = torch.arange(5)
    y = all_reduce_sum(x)
    assert torch.equal(x, y) and y.data_ptr() != x.data_ptr()
    loader = sharded_loader(list(range(7)), batch_size=3)
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6]]
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu7")
    if torch.cuda.is_available():
        monkeypatch.setenv("LOCAL_RANK", str(torch.cuda.device_count() - 1))
        assert resolve_device(None) == torch.device("cuda", torch.cuda.device_count() - 1)
    else:
        assert resolve_device(None) == torch.device("cpu")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


# Under torchrun: train with the CLI (DDP), then keep the process group for one more check —
# sharded evaluation of an odd-sized subset (101 items: shards of 51 and 50).
TORCHRUN_SCRIPT = r"""
import json, sys
import torch
from torch.utils.data import Subset
import pascal_snn.distributed as D
from pascal_snn.checkpoint import load_model
from pascal_snn.cli import main
from pascal_snn.data import build_datasets
from pascal_snn.training import evaluate_counts

leave = D.destroy_distributed
D.destroy_distributed = lambda: None
rc = main(sys.argv[1:])
out = sys.argv[sys.argv.index("--out") + 1]
model, _ = load_model(out + "/last.pt")
odd = Subset(build_datasets("synthetic", augment=False)[1], range(101))
loader = D.sharded_loader(odd, 16)
correct, total = evaluate_counts(model, loader, torch.device("cpu"))
with open(f"{out}/rank{D.rank()}.json", "w") as f:
    json.dump({"world": D.world_size(), "shard": len(loader.sampler), "correct": correct,
               "total": total, "main": D.is_main_process()}, f)
leave()
sys.exit(rc)
"""


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(TORCHRUN_SCRIPT)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH")])
    )
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    args = ["train", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "32"]
    args += ["--width", "0.25", "--device", "cpu", "--out", str(out)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(script), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("ANN test accuracy:") == 1  # rank 0 reports, rank 1 is quiet

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["world"], r["shard"], r["main"]) for r in ranks] == [(2, 51, True), (2, 50, False)]
    model, checkpoint = load_model(out / "last.pt")
    cpu = torch.device("cpu")
    _, test, _ = build_datasets("synthetic", augment=False)
    odd = torch.utils.data.Subset(test, range(101))
    single_odd = evaluate_counts(model, torch.utils.data.DataLoader(odd, batch_size=7), cpu)
    assert all((r["correct"], r["total"]) == single_odd for r in ranks)

    # the test accuracy the DDP run measured on its selected model, sharded over both ranks,
    # equals one process evaluating that checkpoint (best.pt) on the whole test set
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2] and checkpoint["epoch"] == 2
    result = json.loads((out / "result.json").read_text())
    selected, _ = load_model(out / "best.pt")
    single = evaluate_counts(selected, torch.utils.data.DataLoader(test, batch_size=64), cpu)
    assert (result["test_correct"], result["test_total"]) == single
    assert single[1] == len(test)


@pytest.mark.slow
def test_torchrun_evaluate_pasc_and_vanilla_equals_one_process(tmp_path):
    from pascal_snn.cli import main

    run = tmp_path / "run"
    train = ["train", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "64"]
    assert main([*train, "--width", "0.25", "--levels", "4,2,1,4", "--out", str(run)]) == 0
    evaluate = ["evaluate", "--checkpoint", str(run / "last.pt"), "--mode", "both"]
    evaluate += ["--timesteps", "1,2,4", "--num-images", "101", "--batch-size", "16"]
    assert main([*evaluate, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH")])
    )
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", "-m", "pascal_snn", *evaluate, "--device", "cpu"]
    command += ["--out", str(tmp_path / "two")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "evaluate.json").read_text())
    two = json.loads((tmp_path / "two" / "evaluate.json").read_text())
    assert two["images"] == one["images"] == 101
    for key in ("images", "ann_correct", "snn_correct", "agreement", "boundary_cases"):
        assert two["pasc"][key] == one["pasc"][key], key
    assert two["vanilla"]["correct"] == one["vanilla"]["correct"]
    assert two["pasc"]["max_abs_logit_diff"] == pytest.approx(
        one["pasc"]["max_abs_logit_diff"], abs=1e-12
    )
