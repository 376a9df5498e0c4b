"""Adaptive Layerwise training (paper Algorithm 4, SPEC §5.3).

    phase 0  train with a uniform L_α (or load a trained checkpoint)        → RUN/phase0/
    AL       metric → clusters → per-layer L (Algorithm 3)                 → RUN/al.json
    phase 1  from scratch, uniform L_α for round(p·epochs) epochs            ┐ one run in RUN/,
    phase 2  every layer switches to its own L for the remaining epochs     ┘ one cosine schedule

The run is a :class:`~pascal_snn.config.RunConfig` whose ``adaptive`` field holds the
:class:`~pascal_snn.config.AdaptivePlan`. Every step leaves its result on disk before the next
starts, so ``resume=True`` continues a killed run in whichever step it was: phase 0 resumes
from its own checkpoint, a finished AL step is read back from ``al.json``, and phases 1–2
resume from ``RUN/last.pt`` (whose checkpoints record the phase and the plan).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from pascal_snn import distributed
from pascal_snn.al.plan import ALReport, plan_levels
from pascal_snn.al.plot import save_metric_plot
from pascal_snn.checkpoint import load_model
from pascal_snn.config import AdaptivePlan, RunConfig, resolve
from pascal_snn.data.splits import DataSplits
from pascal_snn.errors import ConfigError
from pascal_snn.io import write_json
from pascal_snn.qcfs import QCFS
from pascal_snn.training import (
    LAST,
    PHASE0,
    Phase,
    TrainResult,
    build_model,
    open_run,
    run_splits,
    train,
)

__all__ = ["AL_FILE", "PHASE0", "AdaptivePlan", "AdaptiveResult", "switch_epoch", "train_adaptive"]

AL_FILE = "al.json"


def switch_epoch(epochs: int, fraction: float) -> int:
    """0-based epoch at which every layer switches to its own L: ``round(p·epochs)``, in 1…E−1."""
    return min(max(round(fraction * epochs), 1), max(epochs - 1, 1))


@dataclasses.dataclass
class AdaptiveResult:
    """Algorithm 4's outcome: the retrained run (phases 1–2), the per-layer L it switched to at
    ``switch_epoch`` (0-based), and the AL report the plan came from."""

    run: TrainResult
    levels: list[int]
    switch_epoch: int
    al: ALReport


def train_adaptive(
    config: RunConfig | Mapping[str, Any],
    *,
    resume: bool = False,
    progress: bool | None = None,
    splits: DataSplits | None = None,
) -> AdaptiveResult:
    """Run Algorithm 4 into ``config.out`` with the plan ``config.adaptive``.

    ``config``: a ``RunConfig`` or the values given explicitly (on ``resume`` the rest comes
    from the run, see :func:`~pascal_snn.training.open_run`). ``splits``: prebuilt data for
    every step (default: built from ``config``); the AL metric reads its un-augmented training
    images (never the validation or test images).
    """
    config, _ = open_run(config, resume, "adaptive")
    plan = config.adaptive
    if plan is None:
        raise ConfigError("adaptive training needs a plan (config.adaptive or --adaptive)")
    level = config.levels
    assert isinstance(level, int)  # RunConfig refuses per-layer levels with a plan
    run_dir = Path(str(config.out))
    if splits is None:
        splits = run_splits(config)
    config = resolve(config, splits.info)  # epochs etc. known before any work
    assert config.epochs is not None
    switch = switch_epoch(config.epochs, plan.switch_fraction)
    layers = sum(isinstance(m, QCFS) for m in build_model(config, splits.info).modules())
    if plan.clusters > layers:
        raise ConfigError(
            f"--clusters {plan.clusters}: model {config.model!r} has {layers} QCFS layers, so "
            f"at most {layers} clusters; give fewer --clusters and --cluster-levels"
        )
    init_model: nn.Module | None = None
    if plan.init_checkpoint:
        init_model, _ = load_model(plan.init_checkpoint)

    # phase 0: the uniform-L model whose statistics decide the plan
    if init_model is not None:
        model, source = init_model, str(plan.init_checkpoint)
    else:
        phase0_cfg = dataclasses.replace(config, out=str(run_dir / PHASE0), level_schedule=[])
        outcome0 = train(
            phase0_cfg,
            resume=resume and (run_dir / PHASE0 / LAST).exists(),
            progress=progress,
            phase=Phase("uniform", level),
            splits=splits,
        )
        model = outcome0.model
        source = str(run_dir / PHASE0 / "best.pt")

    # AL: metric → clusters → per-layer L (read back if a previous attempt finished it)
    al_path = run_dir / AL_FILE
    if resume and al_path.is_file():
        report = ALReport.from_dict(json.loads(al_path.read_text()))
    else:
        report = _plan(model, config, plan, source, run_dir, splits.plain_train)
    levels = list(report.plan.levels)

    # phases 1–2: from scratch, uniform L for round(p·E) epochs, then the per-layer L
    main_cfg = dataclasses.replace(config, level_schedule=[(switch, levels)])
    outcome = train(
        main_cfg,
        resume=resume and (run_dir / LAST).exists(),
        progress=progress,
        phase=Phase("adaptive", level, switch, tuple(levels), source),
        splits=splits,
    )
    return AdaptiveResult(run=outcome, levels=levels, switch_epoch=switch, al=report)


def _plan(
    model: nn.Module,
    config: RunConfig,
    plan: AdaptivePlan,
    source: str,
    run_dir: Path,
    train_set: Dataset[Any],
) -> ALReport:
    device = distributed.resolve_device(config.device)
    al = plan_levels(
        model.to(device),
        train_set,
        plan.cluster_levels,
        num_images=plan.num_images,
        alpha=plan.alpha,
        variant=plan.variant,
        seed=config.seed,
        device=device,
    )
    report = ALReport(source, config.dataset, al)
    if distributed.is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / AL_FILE, report.as_dict())
        save_metric_plot(
            run_dir / "al_metric.png",
            list(al.layers),
            list(al.levels),
            f"AL metric of the uniform-L model ({config.dataset})",
        )
    distributed.barrier()
    return report
