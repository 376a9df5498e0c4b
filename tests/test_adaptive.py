"""Algorithm 4 (adaptive layerwise training) on digits: phases, plan, resume in any phase."""

import json

import pytest
import torch

from pascal_snn import adaptive, qcfs_layers
from pascal_snn.adaptive import switch_epoch, train_adaptive
from pascal_snn.checkpoint import load_checkpoint
from pascal_snn.config import AdaptivePlan, RunConfig, load_yaml
from pascal_snn.errors import ConfigError
from pascal_snn.training import train

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
    # resumed from the run's own config.yaml, which records the derived level schedule
    saved = load_yaml(tmp_path / "crashed" / "config.yaml")
    assert saved["level_schedule"]
    resumed = train_adaptive(RunConfig().merged(saved), resume=True, progress=False)
    assert resumed.levels == whole.levels
    for (name, a), b in zip(
        whole.run.model.state_dict().items(), resumed.run.model.state_dict().values()
    ):
        if torch.is_tensor(a):
            assert torch.equal(a, b), name


def _activity(model, images, labels):
    """Per-QCFS-layer share of non-zero outputs and the loss on one batch (eval mode)."""
    shares = []
    hooks = [
        layer.register_forward_hook(lambda m, i, o: shares.append(float((o > 0).float().mean())))
        for _, layer in qcfs_layers(model)
    ]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = float(torch.nn.functional.cross_entropy(model(images), labels))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return shares, loss


def test_the_switch_to_smaller_levels_keeps_every_layer_firing(tmp_path):
    """Regression: Algorithm 4 diverged (ResNet-18 on Fashion-MNIST, loss NaN) when layers
    switched from L = 4 to L = 1 at a fixed θ: the first firing threshold θ/(2L) rose fourfold,
    the layers fell silent, the loss jumped to chance and the gradients by four orders of
    magnitude. The switch now keeps each layer's spike value θ/L (θ·L'/L), so the switched
    network computes what it did below its new ceiling."""
    from torch.utils.data import DataLoader

    from pascal_snn.data import DATASETS, DataSplits, synthetic_datasets

    train_set, test_set = synthetic_datasets(num_train=160, num_test=32)
    splits = DataSplits.from_sets(train_set, test_set, DATASETS["synthetic"], val_images=32)
    images, labels = next(iter(DataLoader(splits.plain_train, batch_size=128)))
    base = dict(epochs=2, batch_size=32, val_images=32, levels=4, adaptive=None)
    seen = {}

    def probe(epoch, model):  # called after the epoch's levels are applied
        if epoch == 1:
            seen["post"] = _activity(model, images, labels)
            seen["theta"] = [float(layer.theta.detach()) for _, layer in qcfs_layers(model)]

    schedule = [(1, [1, 1, 1, 1])]
    switched = config(tmp_path / "switched", **base, level_schedule=schedule)
    train(switched, splits=splits, on_epoch_start=probe, progress=False)
    # the same first epoch without a switch (epoch 1 of a cosine schedule runs at lr either way)
    reference = train(config(tmp_path / "one", **{**base, "epochs": 1}), splits=splits)
    pre_shares, pre_loss = _activity(reference.model, images, labels)
    thetas = [float(layer.theta.detach()) for _, layer in qcfs_layers(reference.model)]
    assert seen["theta"] == pytest.approx([t / 4 for t in thetas], rel=1e-6)
    post_shares, post_loss = seen["post"]
    for layer, (pre, post) in enumerate(zip(pre_shares, post_shares)):
        assert post >= 0.5 * pre, f"layer {layer} fell silent at the switch: {pre:.2f} → {post:.2f}"
    assert post_loss <= pre_loss + 0.5


def test_switch_levels_keeps_the_spike_value_and_the_low_levels():
    from torch import nn

    from pascal_snn import QCFS
    from pascal_snn.qcfs import switch_levels

    model = nn.Sequential(QCFS(4, 2.0), QCFS(2, 3.0)).double()
    z = torch.linspace(-1, 4, 1001, dtype=torch.float64)
    before = [layer(z) for layer in model]
    assert switch_levels(model, [1, 8]) == [1, 8]
    assert [float(m.theta.detach() / m.L) for m in model] == [0.5, 1.5]  # θ* unchanged
    for layer, old, (L_old, spike) in zip(model, before, [(4, 0.5), (2, 1.5)]):
        below = z < (min(layer.L, L_old) + 0.5) * spike  # under both ceilings
        assert torch.equal(layer(z)[below], old[below])
    thetas = [float(m.theta.detach()) for m in model]
    switch_levels(model, [1, 8])  # the same levels again (every epoch, a resume): no change
    assert [float(m.theta.detach()) for m in model] == thetas


def test_train_flags_set_the_al_threshold_and_statistic(tmp_path):
    from pascal_snn.cli import build_parser
    from pascal_snn.commands.train import given_from_args

    words = "train --dataset synthetic --adaptive --clusters 2 --cluster-levels 1,4"
    words += " --al-alpha 0.1 --al-variant reference-code --grad-clip 5 --out"
    args = build_parser().parse_args([*words.split(), str(tmp_path / "r")])
    config = RunConfig().merged(given_from_args(args))
    plan = config.adaptive
    assert plan is not None and plan.alpha == 0.1 and plan.variant == "reference-code"
    assert config.grad_clip == 5.0
