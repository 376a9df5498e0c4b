"""Adaptive Layerwise training (paper Algorithm 4, SPEC §5.3).

    phase 0  train with a uniform L_α (or load a trained checkpoint)        → RUN/phase0/
    AL       metric → clusters → per-layer L (Algorithm 3)                 → RUN/al.json
    phase 1  from scratch, uniform L_α for round(p·epochs) epochs            ┐ one run in RUN/,
    phase 2  every layer switches to its own L for the remaining epochs     ┘ one cosine schedule

Every step leaves its result on disk before the next starts, so ``resume=True`` continues a
killed run in whichever step it was: phase 0 resumes from its own checkpoint, a finished AL
step is read back from ``al.json``, and phases 1–2 resume from ``RUN/last.pt`` (whose
checkpoints record the phase and the plan).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from pascal_snn import distributed
from pascal_snn.al.plan import plan_levels
from pascal_snn.al.plot import save_metric_plot
from pascal_snn.checkpoint import load_model
from pascal_snn.config import RunConfig, resolve
from pascal_snn.data.splits import DataSplits
from pascal_snn.errors import ConfigError
from pascal_snn.io import ensure_dir, write_json
from pascal_snn.training import TrainResult, train

__all__ = ["AdaptivePlan", "AdaptiveResult", "switch_epoch", "train_adaptive"]

PHASE0 = "phase0"
AL_FILE = "al.json"


@dataclasses.dataclass(frozen=True)
class AdaptivePlan:
    """How the adaptive run is set up (stored in checkpoints as ``plan``)."""

    clusters: int
    cluster_levels: tuple[int, ...]
    switch_fraction: float
    num_images: int = 3000
    alpha: float | None = None
    variant: str = "paper"
    init_checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.clusters != len(self.cluster_levels):
            raise ConfigError(
                f"--clusters {self.clusters} needs exactly {self.clusters} --cluster-levels, "
                f"got {list(self.cluster_levels)}"
            )
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in self.cluster_levels):
            raise ConfigError(f"--cluster-levels must be integers >= 1, got {self.cluster_levels}")
        if not 0.0 < self.switch_fraction < 1.0:
            raise ConfigError(f"--switch-fraction must be in (0, 1), got {self.switch_fraction}")


def switch_epoch(epochs: int, fraction: float) -> int:
    """0-based epoch at which every layer switches to its own L: ``round(p·epochs)``, in 1…E−1."""
    return min(max(round(fraction * epochs), 1), max(epochs - 1, 1))


def _uniform_level(config: RunConfig) -> int:
    if not isinstance(config.levels, int):
        raise ConfigError(
            f"adaptive training starts from one uniform L (e.g. --levels 4), got {config.levels}"
        )
    return config.levels


@dataclasses.dataclass
class AdaptiveResult:
    """Algorithm 4's outcome: the retrained run (phases 1–2), the per-layer L it switched to at
    ``switch_epoch`` (0-based), and the AL report the plan came from."""

    run: TrainResult
    levels: list[int]
    switch_epoch: int
    al: dict[str, Any]


def train_adaptive(
    config: RunConfig,
    plan: AdaptivePlan,
    *,
    resume: bool = False,
    progress: bool | None = None,
    splits: DataSplits | None = None,
) -> AdaptiveResult:
    """Run Algorithm 4 into ``config.out``.

    ``splits``: prebuilt data for every step (default: built from ``config``); the AL metric
    reads its un-augmented training images (never the validation or test images).
    """
    if not config.out:
        raise ConfigError("no run folder: give --out RUN_DIR")
    level = _uniform_level(config)
    run_dir = Path(config.out)
    if not resume and (run_dir / "last.pt").exists():
        raise ConfigError(f"'{run_dir}' already holds a run; pass --resume or another --out")
    if splits is None:
        from pascal_snn.data import build_splits

        splits = build_splits(
            config.dataset,
            val_images=config.val_images,
            seed=config.val_seed,
            train_images=config.train_images,
            data_dir=config.data_dir,
            download=config.download,
            augment=config.augment,
            image_size=config.image_size,
        )
    config = resolve(config, splits.info)  # epochs etc. known before any work
    assert config.epochs is not None
    switch = switch_epoch(config.epochs, plan.switch_fraction)
    if distributed.is_main_process():
        ensure_dir(run_dir)

    # phase 0: the uniform-L model whose statistics decide the plan
    if plan.init_checkpoint:
        model, _ = load_model(plan.init_checkpoint)
        source = plan.init_checkpoint
    else:
        phase0_cfg = dataclasses.replace(config, out=str(run_dir / PHASE0), level_schedule=[])
        resume0 = resume and (run_dir / PHASE0 / "last.pt").exists()
        outcome0 = train(
            phase0_cfg,
            resume=resume0,
            progress=progress,
            phase={"name": "uniform", "L": level},
            plan=dataclasses.asdict(plan),
            splits=splits,
        )
        model = outcome0.model
        source = str(run_dir / PHASE0 / "best.pt")

    # AL: metric → clusters → per-layer L (read back if a previous attempt finished it)
    al_path = run_dir / AL_FILE
    if resume and al_path.is_file():
        report = json.loads(al_path.read_text())
        levels = [int(v) for v in report["levels"]]
    else:
        report, levels = _plan(model, config, plan, source, run_dir, splits.plain_train)

    # phases 1–2: from scratch, uniform L for round(p·E) epochs, then the per-layer L
    main_cfg = dataclasses.replace(config, level_schedule=[(switch, levels)])
    outcome = train(
        main_cfg,
        resume=resume and (run_dir / "last.pt").exists(),
        progress=progress,
        phase={"name": "adaptive", "uniform_L": level, "switch_epoch": switch},
        plan={**dataclasses.asdict(plan), "levels": levels, "phase0": source},
        splits=splits,
    )
    return AdaptiveResult(run=outcome, levels=levels, switch_epoch=switch, al=report)


def _plan(
    model: nn.Module,
    config: RunConfig,
    plan: AdaptivePlan,
    source: str,
    run_dir: Path,
    train_set: Dataset,
) -> tuple[dict[str, Any], list[int]]:
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
    report = {"checkpoint": source, "dataset": config.dataset, **al.as_dict()}
    if distributed.is_main_process():
        write_json(run_dir / AL_FILE, report)
        save_metric_plot(
            run_dir / "al_metric.png",
            list(al.layers),
            list(al.levels),
            f"AL metric of the uniform-L model ({config.dataset})",
        )
    distributed.barrier()
    return report, list(al.levels)
