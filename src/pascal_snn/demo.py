"""The whole PASCAL story on one data set, in one call (``pascal-snn demo``).

Six steps, each printed as it starts: train a QCFS ANN at uniform L → convert with PASC and
check equivalence (float64 and float32) → sweep the vanilla IF baseline over T → AL metric,
clusters and per-layer L, then the two-phase retraining of Algorithm 4 (phase 0 is the model of
the first step) → spike rates, operations, T_norm / T_eff / latency and energy of both networks
→ ``report.md``, ``metrics.json`` (:class:`DemoMetrics`), figures and ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from pascal_snn.adaptive import AdaptiveResult, train_adaptive
from pascal_snn.al.plan import ALReport
from pascal_snn.config import AdaptivePlan, RunConfig
from pascal_snn.data import build_splits, dataset_size
from pascal_snn.data.splits import DataSplits
from pascal_snn.energy.plot import energy_breakdown_figure, spike_rate_figure
from pascal_snn.energy.report import EnergyReport, energy_report
from pascal_snn.evaluation import (
    EquivalenceResult,
    VanillaSweep,
    evaluate_equivalence,
    first_reaching,
    sweep_vanilla,
)
from pascal_snn.figures import accuracy_vs_timesteps, save_figure
from pascal_snn.io import atomic_write_text, ensure_dir, write_json
from pascal_snn.report import render_report
from pascal_snn.training import TrainResult, train

__all__ = ["DemoMetrics", "DemoSettings", "EnergySummary", "ModelOutcome", "run_demo"]

FULL_TIMESTEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
QUICK_TIMESTEPS = (1, 2, 4, 8, 16)
QUICK_EPOCHS = 2
STEPS = 6


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs.

    ``train``: the training run of both models (its ``out`` is not used: they go to
    ``OUT/uniform`` and ``OUT/adaptive``; ``levels`` must be one uniform L; ``epochs`` None:
    the data set's recipe, or 2 with ``quick``). ``adaptive``: Algorithm 4's plan (its
    ``init_checkpoint`` is set to the uniform model). The rest is the evaluation budget:
    vanilla IF ``timesteps`` (None: 1 … 256, or 1 … 16 with ``quick``), the first
    ``test_images`` test images for every figure, of which ``vanilla_images`` for the sweep and
    ``energy_images`` for the energy measurement (None: all). ``threads``: torch CPU threads
    (None: leave torch's setting). ``command``: the command line for the report (None: a
    Python call).
    """

    out: str = "runs/demo"
    quick: bool = False
    train: RunConfig = field(default_factory=RunConfig)
    adaptive: AdaptivePlan = field(default_factory=AdaptivePlan)
    timesteps: tuple[int, ...] | None = None
    energy_images: int | None = None
    vanilla_images: int | None = None
    test_images: int | None = None
    threads: int | None = 1
    command: str | None = None

    def resolved_epochs(self, default: int) -> int:
        if self.train.epochs is not None:
            return self.train.epochs
        return QUICK_EPOCHS if self.quick else default

    def resolved_timesteps(self) -> tuple[int, ...]:
        if self.timesteps is not None:
            return self.timesteps
        return QUICK_TIMESTEPS if self.quick else FULL_TIMESTEPS


# ------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class LayerSummary:
    """One conv/linear layer in :class:`EnergySummary`."""

    name: str
    L: int
    t_in: int
    macs: int
    spike_rate: float | None
    r_e: float | None


@dataclass(frozen=True)
class EnergySummary:
    """The energy figures of one network that the demo reports (measured spike rates, with
    the analytic ones beside them), taken from its :class:`EnergyReport`."""

    images: int
    ann_macs: int
    t_norm: float | None
    t_eff: float
    t_norm_analytic: float | None
    t_eff_analytic: float
    latency_steps: int
    spike_rate_b: float
    first_layer_share_c: float
    energy_ratio: Mapping[str, float]
    energy_ratio_analytic: Mapping[str, float]
    counted_energy_ratio: Mapping[str, float]
    acs_per_image: float
    macs_per_image: float
    if_updates_per_image: tuple[float, float, float]
    inhibitory_spikes_per_image: float
    layers: tuple[LayerSummary, ...]

    @classmethod
    def of(cls, report: EnergyReport) -> EnergySummary:
        measured, analytic = report.measured, report.analytic
        if measured is None or measured.counted is None:
            raise ValueError("the demo's energy summary needs a measured report")
        counted = measured.counted
        return cls(
            images=report.images,
            ann_macs=report.ann_macs,
            t_norm=measured.t_norm,
            t_eff=measured.t_eff,
            t_norm_analytic=analytic.t_norm,
            t_eff_analytic=analytic.t_eff,
            latency_steps=report.latency.total_steps,
            spike_rate_b=measured.b,
            first_layer_share_c=measured.c,
            energy_ratio=measured.energy_ratio,
            energy_ratio_analytic=analytic.energy_ratio,
            counted_energy_ratio=counted.energy_ratio,
            acs_per_image=counted.acs_per_image,
            macs_per_image=counted.macs_per_image,
            if_updates_per_image=counted.if_updates_per_image,
            inhibitory_spikes_per_image=counted.inhibitory_spikes_per_image,
            layers=tuple(
                LayerSummary(
                    name=x.name,
                    L=x.L,
                    t_in=x.t_in,
                    macs=x.row.macs,
                    spike_rate=None if x.measured is None else x.measured.spike_rate,
                    r_e=None if x.measured is None else x.measured.r_e,
                )
                for x in report.layers
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("energy_ratio", "energy_ratio_analytic", "counted_energy_ratio"):
            out[key] = dict(getattr(self, key))
        out["if_updates_per_image"] = list(self.if_updates_per_image)
        out["layers"] = [dataclasses.asdict(x) for x in self.layers]
        return out


@dataclass(frozen=True)
class ModelOutcome:
    """A trained model converted and measured: equivalence in both dtypes and its energy.
    Accuracies are the float32 ones; agreement is the float64 rate."""

    levels: list[int]
    float64: EquivalenceResult
    float32: EquivalenceResult
    energy: EnergySummary

    @property
    def ann_accuracy(self) -> float:
        return self.float32.ann_accuracy

    @property
    def snn_accuracy(self) -> float:
        return self.float32.snn_accuracy

    @property
    def agreement(self) -> float:
        return self.float64.agreement_rate

    @property
    def t_eff(self) -> float:
        return self.energy.t_eff


@dataclass(frozen=True)
class DemoMetrics:
    """Everything the demo measured; :meth:`as_dict` is ``metrics.json``."""

    dataset: str
    model: str
    width: float | None
    image_size: int
    train_images: int
    val_images: int
    selected_epoch: int
    epochs: int
    uniform: ModelOutcome
    vanilla: VanillaSweep
    adaptive: ModelOutcome
    switch_epoch: int
    adaptive_selected_epoch: int
    al: ALReport
    seconds: float
    command: str

    @property
    def test_images(self) -> int:
        return self.uniform.float64.images

    @property
    def timesteps_to_reach_ann(self) -> int | None:
        """Smallest swept T at which vanilla IF reaches the ANN's accuracy on its images."""
        return first_reaching(self.vanilla)

    def as_dict(self) -> dict[str, Any]:
        u, a = self.uniform, self.adaptive
        return {
            "dataset": self.dataset,
            "model": self.model,
            "width": self.width,
            "image_size": self.image_size,
            "train_images": self.train_images,
            "val_images": self.val_images,
            "selected_epoch": self.selected_epoch,
            "test_images": self.test_images,
            "epochs": self.epochs,
            "ann_accuracy": u.ann_accuracy,
            "snn_accuracy": u.snn_accuracy,
            "agreement": u.agreement,
            "levels": u.levels,
            "t_eff": u.t_eff,
            "float64": u.float64.as_dict(),
            "float32": u.float32.as_dict(),
            "vanilla": {
                **self.vanilla.as_dict(),
                "ann_accuracy_same_images": self.vanilla.ann_accuracy,
                "timesteps_to_reach_ann": self.timesteps_to_reach_ann,
            },
            "energy": u.energy.as_dict(),
            "adaptive": {
                "levels": a.levels,
                "switch_epoch": self.switch_epoch,
                "selected_epoch": self.adaptive_selected_epoch,
                "al": self.al.as_dict(),
                "ann_accuracy": a.ann_accuracy,
                "snn_accuracy": a.snn_accuracy,
                "agreement": a.agreement,
                "float64": a.float64.as_dict(),
                "float32": a.float32.as_dict(),
                "t_eff": a.t_eff,
                "energy": a.energy.as_dict(),
            },
            "seconds": self.seconds,
            "command": self.command,
        }


# ------------------------------------------------------------------------------- the demo
Log = Callable[[str], None]
Wrap = Callable[[Iterable[Any], str], Iterable[Any]]
"""``wrap(batches, label)``: the batches, e.g. with a progress display around them."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _unwrapped(batches: Iterable[Any], label: str) -> Iterable[Any]:
    return batches


def run_demo(
    settings: DemoSettings,
    log: Log = _stderr,
    progress: bool | None = None,
    wrap: Wrap = _unwrapped,
) -> DemoMetrics:
    """Run every step into ``settings.out``; return what ``metrics.json`` holds.

    ``progress``: training progress display (None: on the main process); ``wrap`` may show
    the progress of every pass over test images.
    """
    began = time.perf_counter()
    out = ensure_dir(settings.out)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    splits, config = _prepare(settings, out)
    test_loader = DataLoader(splits.test, batch_size=256)
    step = _Steps(log, STEPS)

    step(
        f"training a QCFS ANN ({config.model}, L = {config.levels}) on "
        f"{splits.info.name} for {config.epochs} epochs"
    )
    uniform = _train_uniform(config, splits, progress)
    model = uniform.model
    device = next(model.parameters()).device

    step("converting with PASC and checking equivalence in float64 and float32")
    exact64, exact32 = _equivalence(model, test_loader, device, wrap, "uniform")

    steps = settings.resolved_timesteps()
    step(f"vanilla IF baseline at T = {', '.join(map(str, steps))} (one run, prefix means)")
    sweep = sweep_vanilla(
        model,
        wrap(test_loader, "vanilla IF"),
        steps,
        torch.float32,
        device,
        max_images=settings.vanilla_images,
    )
    save_figure(
        accuracy_vs_timesteps(
            sweep.timesteps,
            sweep.accuracy,
            exact32.ann_accuracy,
            exact32.snn_accuracy,
            exact32.levels[0],
            vanilla_agreement=sweep.agreement_rate,
        ),
        out / "accuracy_vs_timesteps.png",
    )

    plan = dataclasses.replace(settings.adaptive, init_checkpoint=str(out / "uniform" / "best.pt"))
    step(
        f"AL metric → {plan.clusters} clusters → per-layer L, then Algorithm 4 "
        f"(uniform L for {plan.switch_fraction:.0%} of the epochs, then per-layer L)"
    )
    adaptive = _train_adaptive(config, plan, splits, out, progress)
    al_model = adaptive.run.model
    al64, al32 = _equivalence(al_model, test_loader, device, wrap, "adaptive")

    step("spike rates, operations, T_norm / T_eff / latency and energy of both networks")
    energy_loader = _first(test_loader, settings.energy_images)
    energy_uniform = energy_report(model, wrap(energy_loader, "energy, uniform"), device=device)
    energy_al = energy_report(al_model, wrap(energy_loader, "energy, adaptive"), device=device)
    save_figure(spike_rate_figure(energy_uniform), out / "spike_rates.png")
    save_figure(energy_breakdown_figure(energy_uniform), out / "energy_breakdown.png")
    save_figure(spike_rate_figure(energy_al), out / "spike_rates_adaptive.png")

    step("writing report.md, metrics.json and config.yaml")
    metrics = DemoMetrics(
        dataset=splits.info.name,
        model=str(config.model),
        width=config.width,
        image_size=splits.info.image_size,
        train_images=dataset_size(splits.train),
        val_images=splits.info.val_images,
        selected_epoch=uniform.selected_epoch,
        epochs=int(config.epochs or 0),
        uniform=ModelOutcome(exact64.levels, exact64, exact32, EnergySummary.of(energy_uniform)),
        vanilla=sweep,
        adaptive=ModelOutcome(list(adaptive.levels), al64, al32, EnergySummary.of(energy_al)),
        switch_epoch=adaptive.switch_epoch,
        adaptive_selected_epoch=adaptive.run.selected_epoch,
        al=adaptive.al,
        seconds=time.perf_counter() - began,
        command=settings.command or _python_call(settings),
    )
    _write_outputs(out, settings, config, plan, metrics, energy_uniform, energy_al)
    metrics = dataclasses.replace(metrics, seconds=time.perf_counter() - began)
    write_json(out / "metrics.json", metrics.as_dict())
    return metrics


def _prepare(settings: DemoSettings, out: Path) -> tuple[DataSplits, RunConfig]:
    """The data (test set cut to ``test_images``) and the resolved run of the uniform model."""
    train = settings.train
    if not isinstance(train.levels, int):
        raise ValueError(f"the demo trains one uniform L first, got levels {train.levels}")
    splits = build_splits(
        train.dataset,
        val_images=train.val_images,
        seed=train.val_seed,
        train_images=train.train_images,  # a fixed random subset: a smaller budget
        data_dir=train.data_dir,
        image_size=train.image_size,
    )
    info = splits.info
    test_set: Dataset[Any] = splits.test
    if settings.test_images is not None:  # the first N test images, for every figure
        test_set = Subset(test_set, range(min(settings.test_images, dataset_size(test_set))))
    config = dataclasses.replace(
        train,
        model=train.model or info.default_model,
        epochs=settings.resolved_epochs(info.epochs),
        val_images=info.val_images if train.val_images is None else train.val_images,
        out=str(out / "uniform"),
        adaptive=None,
    )
    return dataclasses.replace(splits, test=test_set), config


def _train_uniform(config: RunConfig, splits: DataSplits, progress: bool | None) -> TrainResult:
    _fresh(Path(str(config.out)))
    return train(config, splits=splits, progress=progress)


def _train_adaptive(
    config: RunConfig, plan: AdaptivePlan, splits: DataSplits, out: Path, progress: bool | None
) -> AdaptiveResult:
    _fresh(out / "adaptive")
    adaptive_cfg = dataclasses.replace(config, out=str(out / "adaptive"), adaptive=plan)
    result = train_adaptive(adaptive_cfg, progress=progress, splits=splits)
    shutil.copyfile(out / "adaptive" / "al_metric.png", out / "al_metric.png")
    return result


def _equivalence(
    model: nn.Module, loader: DataLoader[Any], device: torch.device, wrap: Wrap, which: str
) -> tuple[EquivalenceResult, EquivalenceResult]:
    """PASC against the ANN in float64 (exact) and float32."""
    return (
        evaluate_equivalence(model, wrap(loader, f"PASC float64, {which}"), torch.float64, device),
        evaluate_equivalence(model, wrap(loader, f"PASC float32, {which}"), torch.float32, device),
    )


def _write_outputs(
    out: Path,
    settings: DemoSettings,
    config: RunConfig,
    plan: AdaptivePlan,
    metrics: DemoMetrics,
    energy_uniform: EnergyReport,
    energy_al: EnergyReport,
) -> None:
    write_json(out / "metrics.json", metrics.as_dict())
    write_json(out / "energy_uniform.json", energy_uniform.as_dict())
    write_json(out / "energy_adaptive.json", energy_al.as_dict())
    resolved = {
        "demo": {
            "out": settings.out,
            "quick": settings.quick,
            "timesteps": list(settings.resolved_timesteps()),
            "test_images": settings.test_images,
            "vanilla_images": settings.vanilla_images,
            "energy_images": settings.energy_images,
            "threads": settings.threads,
        },
        "train": config.to_dict(),
        "adaptive": plan.as_dict(),
    }
    atomic_write_text(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    atomic_write_text(out / "report.md", render_report(metrics))


class _Steps:
    def __init__(self, log: Log, total: int) -> None:
        self.log, self.total, self.index = log, total, 0
        self.began = time.perf_counter()

    def __call__(self, message: str) -> None:
        self.index += 1
        elapsed = time.perf_counter() - self.began
        self.log(f"[{self.index}/{self.total}] {message}   ({elapsed:.0f} s)")


def _fresh(folder: Path) -> None:
    """A demo run starts over: earlier demo output in this folder is replaced."""
    if folder.exists():
        shutil.rmtree(folder)


def _first(loader: DataLoader[Any], images: int | None) -> DataLoader[Any]:
    """``loader`` over its first ``images`` items (all when None)."""
    if images is None:
        return loader
    dataset = loader.dataset
    return DataLoader(
        Subset(dataset, range(min(images, dataset_size(dataset)))),
        batch_size=loader.batch_size,
    )


def _python_call(settings: DemoSettings) -> str:
    return f"pascal_snn.demo.run_demo({settings!r})"
