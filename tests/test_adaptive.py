"""Algorithm 4 (adaptive layerwise training) on digits: phases, plan, resume in any phase."""

import json

import pytest
import torch

from pascal_snn import adaptive, qcfs_layers
from pascal_snn.adaptive import switch_epoch, train_adaptive
from pascal_snn.checkpoint import load_checkpoint
from pascal_snn.config import AdaptivePlan, RunConfig
from pascal_snn.errors import ConfigError

PLAN = AdaptivePlan(clusters=2, cluster_levels=(1, 2), switch_fraction=2 / 3, num_images=128)


def config(out, **kw):
    values = dict(
        dataset="synthetic",
        model="digits_cnn",
        epochs=3,
        batch_size=64,
        lr=0.05,
        width=0.25,
        levels=4,
        seed=0,
        out=str(out),
        adaptive=PLAN,
    )
    values.update(kw)
    return RunConfig(**values)


def test_switch_epoch():
    assert switch_epoch(3, 2 / 3) == 2
    assert switch_epoch(300, 0.667) == 200
    assert switch_epoch(2, 0.1) == 1  # at least one uniform epoch, at least one switched


def test_plan_validation():
    with pytest.raises(ConfigError, match="exactly 3"):
        AdaptivePlan(clusters=3, cluster_levels=(1, 2), switch_fraction=0.5)
    with pytest.raises(ConfigError, match="switch-fraction"):
        AdaptivePlan(clusters=2, cluster_levels=(1, 2), switch_fraction=1.0)
    with pytest.raises(ConfigError, match="uniform L"):
        config("/tmp/unused", levels=[4, 4, 4, 4])
    with pytest.raises(ConfigError, match="needs a plan"):
        train_adaptive(config("/tmp/unused", adaptive=None))


def test_two_phase_run_and_resume_after_a_crash_in_phase_two(tmp_path, monkeypatch):
    whole = train_adaptive(config(tmp_path / "whole"), progress=False)
    run = tmp_path / "whole"
    al = json.loads((run / "al.json").read_text())
    n_layers = len(qcfs_layers(whole.run.model))
    assert whole.levels == al["levels"] and len(al["levels"]) == n_layers
    assert set(al["levels"]) <= {1, 2}
    assert [layer.L for _, layer in qcfs_layers(whole.run.model)] == al["levels"]
    assert whole.run.selected_epoch == 3  # selected among the epochs at the per-layer L
    assert (run / "phase0" / "last.pt").is_file() and (run / "al_metric.png").is_file()
    last = load_checkpoint(run / "last.pt")
    assert last["phase"]["name"] == "adaptive" and last["phase"]["switch_epoch"] == 2
    assert last["phase"]["levels"] == al["levels"] and last["levels"] == al["levels"]
    assert last["plan"] == PLAN.as_dict() and last["config"]["adaptive"] == PLAN.as_dict()
    assert load_checkpoint(run / "phase0" / "last.pt")["phase"]["name"] == "uniform"
    # epochs 1–2 trained with uniform L, epoch 3 with the plan: one cosine schedule throughout
    lrs = [m["lr"] for m in last["metrics"]]
    assert lrs[0] > lrs[1] > lrs[2] > 0

    # crash at the start of phase 2 (third epoch) of a second run, then resume
    calls = {"n": 0}
    real_train = adaptive.train

    def crash_in_phase_two(cfg, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the phase 1–2 run: stop it after its first epoch

            def boom(epoch, model):
                if epoch == 2:
                    raise KeyboardInterrupt

            return real_train(cfg, on_epoch_start=boom, **kw)
        return real_train(cfg, **kw)

    monkeypatch.setattr(adaptive, "train", crash_in_phase_two)
    with pytest.raises(KeyboardInterrupt):
        train_adaptive(config(tmp_path / "crashed"), progress=False)
    monkeypatch.setattr(adaptive, "train", real_train)
    assert load_checkpoint(tmp_path / "crashed" / "last.pt")["epoch"] == 2
    resumed = train_adaptive(config(tmp_path / "crashed"), resume=True, progress=False)
    assert resumed.levels == whole.levels
    for (name, a), b in zip(
        whole.run.model.state_dict().items(), resumed.run.model.state_dict().values()
    ):
        if torch.is_tensor(a):
            assert torch.equal(a, b), name
