"""Training QCFS networks (the ANN side), torchvision-reference style: plain functions.

Recipe (SPEC §7, paper A.8): SGD with momentum 0.9, cross-entropy, one cosine learning-rate
schedule over all epochs (``CosineAnnealingLR(T_max=epochs)``, stepped once per epoch), lr and
weight decay from the data set's recipe unless given.

Determinism: every epoch draws its randomness from ``(seed, epoch)`` alone — the global RNGs
are reseeded at the start of each epoch and the sampler shuffles with ``seed + epoch`` — so a run
resumed from an epoch boundary equals an uninterrupted one bit for bit (on CPU).

Model selection (SPEC §7): every epoch is scored on a seeded validation split of the training
images (:mod:`pascal_snn.data.splits`); the test set is evaluated once, after the last epoch, on
the selected model.

Run folder: ``config.yaml`` (the resolved config, written at start), ``last.pt`` after every
epoch, ``best.pt`` whenever the validation accuracy improves, ``metrics.jsonl`` (one line per
epoch) and ``result.json`` (the selected epoch and its test accuracy). Every file is written
atomically; ``best.pt`` before ``last.pt``, so a run killed at any point resumes from a
consistent state.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from pascal_snn import distributed
from pascal_snn.calibration import calibrate_thresholds
from pascal_snn.checkpoint import load_checkpoint, load_weights, save_checkpoint
from pascal_snn.config import RUN_DEFINING, Levels, RunConfig, resolve, write_config
from pascal_snn.data.info import dataset_labels, dataset_size
from pascal_snn.data.splits import DataSplits
from pascal_snn.errors import ConfigError, DataError
from pascal_snn.io import atomic_write_text, ensure_dir, write_json
from pascal_snn.qcfs import clamp_thresholds, qcfs_layers, set_levels, switch_levels
from pascal_snn.qcfsify import load_relu_weights

__all__ = [
    "GRADIENT_JUMP",
    "EpochCallback",
    "Phase",
    "TrainResult",
    "build_model",
    "epoch_seed",
    "evaluate_ann",
    "evaluate_counts",
    "gradient_jump",
    "open_run",
    "seed_epoch",
    "train",
    "train_loader",
    "train_one_epoch",
]

EpochCallback = Callable[[int, nn.Module], None]
"""Called as ``callback(epoch, model)`` at the start of every 0-based epoch (after the level
schedule is applied); may change the model's levels."""

LAST, BEST, METRICS, RESULT = "last.pt", "best.pt", "metrics.jsonl", "result.json"
CALIBRATION = "calibration.json"
PHASE0 = "phase0"  # an adaptive run's phase-0 run folder, inside its own


@dataclass(frozen=True)
class Phase:
    """Which step of an adaptive run (Algorithm 4) a training run is; stored in its
    checkpoints as ``phase`` (:meth:`as_dict`).

    ``"uniform"``: phase 0, every layer at ``uniform_L``. ``"adaptive"``: phases 1–2, uniform
    ``uniform_L`` until 0-based epoch ``switch_epoch``, then the per-layer ``levels`` that the
    AL metric of ``source`` (a checkpoint) gave.
    """

    name: Literal["uniform", "adaptive"]
    uniform_L: int
    switch_epoch: int | None = None
    levels: tuple[int, ...] | None = None
    source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["levels"] = None if self.levels is None else list(self.levels)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Phase:
        levels = data.get("levels")
        return cls(
            name=data["name"],
            uniform_L=int(data["uniform_L"]),
            switch_epoch=data.get("switch_epoch"),
            levels=None if levels is None else tuple(int(v) for v in levels),
            source=data.get("source"),
        )


Role = Literal["run", "adaptive", "phase"]


def open_run(
    given: RunConfig | Mapping[str, Any], resume: bool, role: Role = "run"
) -> tuple[RunConfig, dict[str, Any] | None]:
    """The one rule for starting or continuing a run in its folder ``out`` (nothing is written).

    - A new run (``resume`` False) is refused if the folder already holds one.
    - ``resume`` is refused if there is nothing to resume. The run's stored configuration is
      taken; values given explicitly (every field of a ``RunConfig``, the keys of a mapping)
      may change only what does not define the run (device, workers, …), else the run is
      refused naming each difference.

    ``role``: ``"run"`` a plain run (its ``last.pt``); ``"adaptive"`` a whole adaptive run
    (Algorithm 4: its ``last.pt`` or its phase 0's, ``phase0/last.pt``); ``"phase"`` one
    training run inside an adaptive one. An adaptive run is never continued as a plain one.

    Returns the configuration to run and the checkpoint to continue from (None: a new run).
    """
    explicit = given.to_dict() if isinstance(given, RunConfig) else dict(given)
    explicit.pop("out", None)
    config = given if isinstance(given, RunConfig) else RunConfig().merged(given)
    if not config.out:
        raise ConfigError("no run folder: give --out RUN_DIR (or 'out' in the config file)")
    run_dir = Path(config.out)
    if role == "run" and config.adaptive is not None:
        raise ConfigError("an adaptive run is trained with --adaptive (train_adaptive)")
    last, phase0 = run_dir / LAST, run_dir / PHASE0 / LAST
    found = last if last.is_file() else phase0 if role == "adaptive" and phase0.is_file() else None
    adaptive_hint = (
        f"'{run_dir}' holds an adaptive run (Algorithm 4); continue it with "
        f"`pascal-snn train --adaptive --resume --out {run_dir}`"
    )
    if role == "run" and found is None and phase0.is_file():
        raise ConfigError(adaptive_hint)
    if not resume:
        if found is not None:
            raise ConfigError(
                f"'{run_dir}' already holds a run ({found.relative_to(run_dir)}); pass "
                "--resume to continue it, or choose another --out"
            )
        return config, None
    if found is None:
        raise ConfigError(
            f"nothing to resume: '{last}' does not exist; run without --resume to start a new run"
        )
    checkpoint = load_checkpoint(found)
    stored = RunConfig.from_dict(checkpoint["config"])
    if role == "run" and stored.adaptive is not None:
        raise ConfigError(adaptive_hint)
    if role == "adaptive":  # the whole run: its own folder, the schedule comes from its AL step
        stored = dataclasses.replace(stored, out=str(run_dir), level_schedule=[])
        explicit.pop("level_schedule", None)  # e.g. from the run's own config.yaml: derived
    changed = _flat(stored.changed(explicit))
    if changed:
        detail = "; ".join(f"{k}: run has {a!r}, you gave {b!r}" for k, (a, b) in changed.items())
        flags = " ".join(_flag(k) for k in changed)
        raise ConfigError(
            f"cannot resume '{run_dir}' with different settings ({detail}); resume without "
            f"{flags} (or with the run's values), or start a new run with another --out"
        )
    keep = {k: v for k, v in explicit.items() if k not in RUN_DEFINING}
    return dataclasses.replace(stored.merged(keep), out=str(run_dir)), checkpoint


def _flat(changed: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
    """Changed settings with an adaptive plan's changes listed key by key."""
    out = dict(changed)
    if "adaptive" in out:
        run, given = (v or {} for v in out.pop("adaptive"))
        for key in sorted(set(run) | set(given)):
            if run.get(key) != given.get(key):
                out[f"adaptive.{key}"] = (run.get(key), given.get(key))
    return out


def _flag(key: str) -> str:
    """The command-line flag of a (flattened) RunConfig key."""
    name = key.removeprefix("adaptive.")
    if name == "num_images":
        return "--al-images"
    return "--adaptive" if key == "adaptive" else f"--{name.replace('_', '-')}"


# ---------------------------------------------------------------------------- randomness
def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A well-mixed 63-bit seed that depends only on ``(seed, epoch, rank)``."""
    state = np.random.SeedSequence([seed, epoch, rank]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Reseed torch (CPU and CUDA), numpy and ``random`` for this epoch (and rank)."""
    value = epoch_seed(seed, epoch, rank)
    torch.manual_seed(value)
    np.random.seed(value % 2**32)
    random.seed(value)


def _rng_state() -> dict[str, Any]:
    state: Any = np.random.get_state()  # ("MT19937", keys, pos, has_gauss, gauss)
    keys, pos, has_gauss, gauss = state[1:]
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    npy = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["gauss"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# ---------------------------------------------------------------------------- data and model
def train_loader(
    dataset: Dataset, batch_size: int, seed: int, workers: int = 0, pin_memory: bool = False
) -> tuple[DataLoader, DistributedSampler]:
    """Shuffling loader for this rank; call ``sampler.set_epoch(epoch)`` before each epoch.

    The order depends only on ``seed + epoch`` (DistributedSampler's rule, used in one process
    too). The last partial batch is dropped when there is at least one full batch (BatchNorm
    cannot train on a batch of one).
    """
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset,
        num_replicas=distributed.world_size(),
        rank=distributed.rank(),
        shuffle=True,
        seed=seed,
        drop_last=False,
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=len(sampler) > batch_size,
    )
    return loader, sampler


def run_splits(config: RunConfig) -> DataSplits:
    """The data of a run: its data set, split as its config says (validation images and seed,
    training budget, augmentation, image size)."""
    from pascal_snn.data import build_splits

    return build_splits(
        config.dataset,
        val_images=config.val_images,
        seed=config.val_seed,
        train_images=config.train_images,
        data_dir=config.data_dir,
        download=config.download,
        augment=config.augment,
        image_size=config.image_size,
    )


def build_model(config: RunConfig, info: Any) -> nn.Module:
    """``models.create`` for a resolved config; bad model/levels become ConfigError."""
    from pascal_snn import models

    if config.model is None:
        raise ConfigError("no model: give --model (resolve() fills in the data set's default)")
    torch.manual_seed(config.seed)
    model = models.create(
        config.model,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        L=config.levels,
        width=config.width,
        **config.model_kwargs,
    )
    count = len(qcfs_layers(model))
    for start, levels in config.level_schedule:
        try:
            set_levels(model, levels)
        except ValueError as exc:
            raise ConfigError(
                f"level_schedule entry for epoch {start}: {exc} (model {config.model!r})"
            ) from None
    if config.level_schedule:
        set_levels(model, config.levels)
    if count == 0:
        raise ConfigError(f"model {config.model!r} has no QCFS layers; nothing to quantize")
    return model


def _arch(config: RunConfig, info: Any) -> dict[str, Any]:
    return {
        "name": config.model,
        "num_classes": int(info.num_classes),
        "in_channels": int(info.in_channels),
        "width": config.width,
        "kwargs": dict(config.model_kwargs),
    }


# ---------------------------------------------------------------------------- one epoch
def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    on_step: Callable[[float, float], None] | None = None,
    grad_clip: float | None = None,
) -> dict[str, Any]:
    """One pass over ``loader`` with cross-entropy; returns mean ``loss`` and ``train_acc``,
    and the gradient's global norm (before any clipping) over the steps: ``grad_norm_median``,
    ``grad_norm_max`` and ``clipped_steps`` (steps whose norm exceeded ``grad_clip``; None
    without it). A norm that grows by orders of magnitude is the sign of a run diverging in
    scale before its loss shows it (docs/design.md, Algorithm 4's switch).

    Figures are summed over all ranks (the norms are of the all-reduced gradient, the same on
    every rank). ``on_step(loss, acc)`` is called after every step (it forces a device sync;
    pass None for full speed). ``grad_clip``: the gradient's global norm is clipped to it
    before every step (None: not clipped).
    """
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = torch.zeros((), dtype=torch.int64, device=device)
    norms: list[torch.Tensor] = []
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norms.append(_clip_gradient(model, grad_clip))
        optimizer.step()
        clamp_thresholds(model)
        loss_sum += loss.detach().double() * labels.numel()
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += labels.numel()
        if on_step is not None:
            on_step(float(loss), float(correct) / max(int(seen), 1))
    totals = distributed.all_reduce_sum(torch.stack([loss_sum, correct.double(), seen.double()]))
    loss_total, correct_total, n = (float(v) for v in totals)
    if n == 0:
        raise DataError("the training set is empty; check the data set and --batch-size")
    if not math.isfinite(loss_total):
        raise ConfigError("the training loss became NaN/inf; lower --lr and start a new run")
    steps = torch.stack(norms).double().cpu()
    return {
        "loss": loss_total / n,
        "train_acc": correct_total / n,
        "grad_norm_median": float(steps.median()),
        "grad_norm_max": float(steps.max()),
        "clipped_steps": None if grad_clip is None else int((steps > grad_clip).sum()),
    }


def _clip_gradient(model: nn.Module, grad_clip: float | None) -> torch.Tensor:
    """The global 2-norm of every parameter's gradient, before clipping; the gradients are
    scaled to norm ``grad_clip`` when they exceed it (None: left alone). Stays on the device."""
    if grad_clip is not None:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip).detach().double()
    grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), dtype=torch.float64)
    norms = [torch.linalg.vector_norm(g).double() for g in grads]  # parameters may mix dtypes
    return torch.linalg.vector_norm(torch.stack(norms))


@torch.no_grad()
def evaluate_counts(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[int, int]:
    """``(correct, total)`` top-1 predictions over ``loader``, summed over all ranks.

    Give each rank its own shard (:func:`pascal_snn.distributed.sharded_loader`) to split the
    work; the counts are integers, so the sum equals a single-process evaluation exactly.
    """
    if isinstance(model, DistributedDataParallel):
        # Rank 0's BatchNorm statistics are the checkpoint's; the others drifted on their last
        # batch. Then evaluate the plain module: shards may differ in length, so no collectives
        # may run inside forward.
        distributed.broadcast_buffers(model.module)
        model = model.module
    was_training = model.training
    model.eval()
    try:
        correct = torch.zeros((), dtype=torch.int64, device=device)
        total = torch.zeros((), dtype=torch.int64, device=device)
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            correct += (model(images).argmax(1) == labels).sum()
            total += labels.numel()
    finally:
        model.train(was_training)
    counts = distributed.all_reduce_sum(torch.stack([correct, total]))
    return int(counts[0]), int(counts[1])


def evaluate_ann(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    """Top-1 accuracy in [0, 1] over ``loader`` (summed over ranks when distributed)."""
    correct, total = evaluate_counts(model, loader, device)
    if total == 0:
        raise DataError("the evaluation set is empty; nothing to measure")
    return correct / total


# ---------------------------------------------------------------------------- progress display
def _val_text(record: Mapping[str, Any]) -> str:
    value = record.get("val_acc")
    return "val –" if value is None else f"val {value:.2%}"


class _Progress:
    """Live bar (loss/acc/ETA) on a terminal, one plain line per epoch otherwise; rank 0 only."""

    def __init__(self, enabled: bool, epochs: int, start: int, steps: int) -> None:
        self.enabled = enabled
        self.epochs = epochs
        self.live = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.live = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.run_task = self.live.add_task("run", total=(epochs - start) * steps, stats="")
            self.epoch_task = self.live.add_task("epoch", total=steps, stats="")
            self.live.start()

    def start_epoch(self, epoch: int, steps: int) -> None:
        if self.live is not None:
            desc = f"epoch {epoch + 1}/{self.epochs}"
            self.live.reset(self.epoch_task, total=steps, description=desc, stats="")

    def step(self, loss: float, acc: float) -> None:
        if self.live is not None:
            stats = f"loss {loss:.4f} acc {acc:6.2%}"
            self.live.update(self.epoch_task, advance=1, stats=stats)
            self.live.update(self.run_task, advance=1)

    def end_epoch(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        line = (
            f"epoch {record['epoch']}/{self.epochs}  loss {record['loss']:.4f}  "
            f"train {record['train_acc']:.2%}  {_val_text(record)}  "
            f"lr {record['lr']:.4g}  {_grad_text(record)}  {record['seconds']:.1f}s"
        )
        if self.live is not None:
            self.live.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def _grad_text(record: Mapping[str, Any]) -> str:
    text = f"|grad| {record['grad_norm_median']:.3g} (max {record['grad_norm_max']:.3g})"
    if record.get("clipped_steps") is not None:
        text += f", {record['clipped_steps']} steps clipped"
    return text


# ---------------------------------------------------------------------------- the run
@dataclass
class TrainResult:
    """The outcome of a run: the selected model and its one test-set evaluation.

    ``selected_epoch`` is the epoch (1-based) with the best validation accuracy among the
    epochs trained at the run's final levels (the last epoch when there is no validation set);
    ``model`` holds its weights, in eval mode, on the training device.
    """

    run_dir: str
    epochs: int
    selected_epoch: int
    val_acc: float | None
    test_acc: float
    test_correct: int
    test_total: int
    metrics: list[dict[str, Any]]
    already_finished: bool
    model: nn.Module
    config: RunConfig

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``RUN_DIR/result.json``); the model and metrics left out."""
        return {
            "run_dir": self.run_dir,
            "epochs": self.epochs,
            "selected_epoch": self.selected_epoch,
            "val_acc": self.val_acc,
            "test_acc": self.test_acc,
            "test_correct": self.test_correct,
            "test_total": self.test_total,
        }


def selectable_from(config: RunConfig) -> int:
    """First 0-based epoch whose model may be selected: the start of the final levels (a model
    from before a level switch has other levels than the run delivers)."""
    return config.level_schedule[-1][0] if config.level_schedule else 0


def _select(metrics: list[dict[str, Any]], first: int) -> dict[str, Any] | None:
    """The record of the selected epoch: best ``val_acc`` (earliest on ties) from ``first`` on,
    or the last record when there is no validation set."""
    eligible = [m for m in metrics if m["epoch"] > first]
    if not eligible:
        return None
    if eligible[-1].get("val_acc") is None:
        return eligible[-1]
    return max(eligible, key=lambda m: (m["val_acc"], -m["epoch"]))


def train(
    config: RunConfig | Mapping[str, Any],
    *,
    resume: bool = False,
    on_epoch_start: EpochCallback | None = None,
    phase: Phase | None = None,
    splits: DataSplits | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``config`` into the run folder ``config.out``; select on validation, test once.

    ``config``: a ``RunConfig``, or a mapping of the values given explicitly (on ``resume`` the
    rest comes from the run: :func:`open_run`). ``resume``: continue from ``out/last.pt``; a
    finished run returns at once with ``already_finished=True``. ``on_epoch_start`` and
    ``config.level_schedule`` are the hooks for adaptive training (Algorithm 4), which passes
    its ``phase``; it is stored in every checkpoint with the plan (``config.adaptive``).
    ``splits``: prebuilt data (:class:`~pascal_snn.data.DataSplits`) instead of building
    ``config.dataset``; its validation set must have ``config.val_images`` images.
    ``progress``: None = rank 0 only. Works unchanged under ``torchrun`` (DDP).

    Every epoch is scored on the validation images; ``best.pt`` holds the selected epoch
    (:func:`selectable_from`); after the last epoch the selected model is evaluated once on the
    test set and ``result.json`` written.
    """
    config, checkpoint = open_run(config, resume, "run" if phase is None else "phase")
    run_dir = Path(str(config.out))
    device = distributed.resolve_device(config.device)
    world = distributed.init_distributed(device)
    if splits is None:
        splits = run_splits(config)
    info = splits.info
    config = resolve(config, info)
    assert config.epochs and config.batch_size and config.lr is not None
    assert config.weight_decay is not None and config.val_images is not None
    held_out = 0 if splits.val is None else dataset_size(splits.val)
    if held_out != config.val_images:
        raise ConfigError(
            f"the prebuilt validation set has {held_out} images but the run config says "
            f"val_images={config.val_images}; build the splits from the same config"
        )

    # --- everything is validated before the first byte is written
    model = build_model(config, info)
    start = 0
    metrics: list[dict[str, Any]] = []
    if checkpoint is not None:
        load_weights(model, checkpoint["model"], source=f"checkpoint '{run_dir / LAST}'")
        start = int(checkpoint["epoch"])
        metrics = [dict(m) for m in checkpoint.get("metrics", [])]
    elif config.init_relu_weights:
        load_relu_weights(model, config.init_relu_weights)  # CheckpointError names bad keys
    ensure_dir(run_dir)
    main = distributed.is_main_process()
    show = main if progress is None else (progress and main)
    if show and start == 0:
        _warn_unseen_classes(splits)
    if show and checkpoint is not None:
        what = "already finished" if start >= config.epochs else f"epoch {start + 1}"
        print(
            f"resuming '{run_dir}' from {LAST}: {start} of {config.epochs} epochs done; {what}",
            file=sys.stderr,
            flush=True,
        )
    model.to(device)
    pin = device.type == "cuda"
    eval_loader = functools.partial(
        distributed.sharded_loader,
        batch_size=config.batch_size,
        workers=config.workers,
        pin_memory=pin,
    )
    if start >= config.epochs:
        return _finish(run_dir, config, model, metrics, eval_loader(splits.test), device, True)
    if checkpoint is None and config.init_relu_weights:
        _calibrate(model, config, splits, run_dir if main else None)

    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("rng"):
            _set_rng_state(checkpoint["rng"])
    net: nn.Module = model
    if world.world_size > 1:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    loader, sampler = train_loader(
        splits.train, config.batch_size, config.seed, config.workers, pin
    )
    val_loader = None if splits.val is None else eval_loader(splits.val)
    if main:
        write_config(config, run_dir)
        for stale in run_dir.glob(".*.pt.*.tmp"):  # left by a run killed mid-write
            stale.unlink(missing_ok=True)
        _write_metrics(run_dir, metrics)
    bar = _Progress(show, config.epochs, start, len(loader))
    arch = _arch(config, info)
    first = selectable_from(config)
    try:
        for epoch in range(start, config.epochs):
            began = time.perf_counter()
            switch_levels(model, config.levels_at(epoch))  # keeps θ/L at a level change
            if on_epoch_start is not None:
                on_epoch_start(epoch, model)
            seed_epoch(config.seed, epoch, distributed.rank())
            sampler.set_epoch(epoch)
            lr = float(optimizer.param_groups[0]["lr"])
            bar.start_epoch(epoch, len(loader))
            stats = train_one_epoch(
                net,
                loader,
                optimizer,
                device,
                on_step=bar.step if bar.live else None,
                grad_clip=config.grad_clip,
            )
            val = None if val_loader is None else evaluate_counts(net, val_loader, device)
            scheduler.step()
            previous = _select(metrics, first)
            record = {
                "epoch": epoch + 1,
                "loss": stats["loss"],
                "train_acc": stats["train_acc"],
                "val_acc": None if val is None else val[0] / max(val[1], 1),
                "val_correct": None if val is None else val[0],
                "val_total": None if val is None else val[1],
                "lr": lr,
                "grad_norm_median": stats["grad_norm_median"],
                "grad_norm_max": stats["grad_norm_max"],
                "clipped_steps": stats["clipped_steps"],
                "seconds": time.perf_counter() - began,
            }
            metrics.append(record)
            jump = gradient_jump(
                metrics,
                config.grad_clip,
                config.levels_at(epoch - 1) if epoch else None,
                config.levels_at(epoch),
            )
            if main and jump is not None:
                print(jump, file=sys.stderr, flush=True)
            if main:
                state = {
                    "model": model.state_dict(),
                    "arch": arch,
                    "levels": [layer.L for _, layer in qcfs_layers(model)],
                    "dataset": dataset_record(config, info),
                    "config": config.to_dict(),
                    "epoch": epoch + 1,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": _rng_state(),
                    "metrics": metrics,
                    "phase": None if phase is None else phase.as_dict(),
                    "plan": None if config.adaptive is None else config.adaptive.as_dict(),
                }
                if _select(metrics, first) is not previous:
                    save_checkpoint(run_dir / BEST, state)
                save_checkpoint(run_dir / LAST, state)
                _write_metrics(run_dir, metrics)
            bar.end_epoch(record)
    except BaseException:
        if main and start == 0 and not (run_dir / LAST).exists():
            # failed before its first checkpoint: leave no half-written run behind
            for name in ("config.yaml", METRICS):
                (run_dir / name).unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    distributed.barrier()
    return _finish(run_dir, config, model, metrics, eval_loader(splits.test), device, False)


def dataset_record(config: RunConfig, info: Any) -> dict[str, Any]:
    """What a checkpoint says about the data it was trained on (commands that load it check
    the data they are given against it)."""
    return {
        "name": config.dataset,
        "data_dir": config.data_dir,
        "image_size": config.image_size,
        "input_shape": list(info.input_shape),
        "num_classes": int(info.num_classes),
        "normalisation": info.normalisation,
    }


#: A level change that multiplies the median gradient norm by more than this is flagged.
GRADIENT_JUMP = 30.0


def gradient_jump(
    metrics: list[dict[str, Any]],
    grad_clip: float | None,
    levels_before: Levels | None,
    levels_now: Levels,
) -> str | None:
    """A warning when the levels changed at the last epoch of ``metrics`` and its median
    gradient norm is over ``GRADIENT_JUMP`` × the epoch before's, with no ``grad_clip``;
    else None. Measured on ResNet-18 (Fashion-MNIST, docs/design.md): a plan with five of 17
    layers at L = 1 raises the norm about 7× and trains on; every layer at L = 1 raises it
    10⁴× and the run diverged in scale with a finite loss, unless clipped
    (``benchmarks/switch_gradients.py --batches 8``)."""
    if grad_clip is not None or levels_before is None or levels_before == levels_now:
        return None
    if len(metrics) < 2:
        return None
    before = metrics[-2].get("grad_norm_median")
    now = metrics[-1].get("grad_norm_median")
    if not before or now is None or now <= GRADIENT_JUMP * before:
        return None
    return (
        f"warning: the median gradient norm grew {now / before:.0f}x ({before:.3g} -> "
        f"{now:.3g}) when the levels changed at epoch {metrics[-1]['epoch']}; a run can then "
        "diverge in scale with a finite loss (docs/design.md). If the validation accuracy "
        "falls, start it again with --grad-clip (e.g. 5: it held a ResNet-18 with every "
        "layer switched to L = 1 to 92.5 %)"
    )


def _warn_unseen_classes(splits: DataSplits) -> None:
    """Warn when the test set holds classes that no training image has (those test images
    cannot be classified right, whatever the network)."""
    train, test = dataset_labels(splits.train), dataset_labels(splits.test)
    if train is None or test is None:
        return
    unseen = sorted(set(test) - set(train))
    if unseen:
        count = sum(1 for label in test if label in set(unseen))
        names = ", ".join(map(str, unseen[:10])) + (", …" if len(unseen) > 10 else "")
        print(
            f"warning: {count} of {len(test)} test images belong to classes the training "
            f"images never show ({names}); no model can classify them right (use more "
            "--train-images, or a split that has every class)",
            file=sys.stderr,
            flush=True,
        )


def _calibrate(
    model: nn.Module, config: RunConfig, splits: DataSplits, run_dir: Path | None
) -> None:
    """θ of every QCFS from the ReLU network's pre-activations on the first
    ``config.calibration_images`` un-augmented training images (the same on every rank, before
    DDP wraps the model); the thresholds go to ``RUN_DIR/calibration.json``."""
    loader = DataLoader(splits.plain_train, batch_size=config.batch_size or 128, shuffle=False)
    calibration = calibrate_thresholds(model, loader, num_images=config.calibration_images)
    if run_dir is not None:
        write_json(
            run_dir / CALIBRATION,
            {
                "init_relu_weights": config.init_relu_weights,
                "images": calibration.images,
                "percentile": calibration.percentile,
                "theta": calibration.thetas(),
            },
        )


def _write_metrics(run_dir: Path, metrics: list[dict[str, Any]]) -> None:
    atomic_write_text(run_dir / METRICS, "".join(json.dumps(m) + "\n" for m in metrics))


def _finish(
    run_dir: Path,
    config: RunConfig,
    model: nn.Module,
    metrics: list[dict[str, Any]],
    test_loader: DataLoader,
    device: torch.device,
    already_finished: bool,
) -> TrainResult:
    """Load the selected epoch's weights (``best.pt``), evaluate the test set once, write
    ``result.json`` (every rank evaluates its shard; rank 0 writes)."""
    selected = _select(metrics, selectable_from(config))
    if selected is None:
        raise ConfigError(f"run '{run_dir}' has no epoch to select; train it first")
    if selected["epoch"] != len(metrics):  # the last epoch's weights are the model already
        best = load_checkpoint(run_dir / BEST)
        load_weights(model, best["model"], source=f"checkpoint '{run_dir / BEST}'")
    model.to(device).eval()
    correct, total = evaluate_counts(model, test_loader, device)
    result = TrainResult(
        run_dir=str(run_dir),
        epochs=int(config.epochs or 0),
        selected_epoch=int(selected["epoch"]),
        val_acc=selected.get("val_acc"),
        test_acc=correct / max(total, 1),
        test_correct=correct,
        test_total=total,
        metrics=list(metrics),
        already_finished=already_finished,
        model=model,
        config=config,
    )
    if distributed.is_main_process():
        write_json(run_dir / RESULT, result.as_dict())
    return result
