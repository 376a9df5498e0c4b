"""The whole PASCAL story on one data set, in one call (``pascal-snn demo``).

Stages: train a QCFS ANN at uniform L → convert with PASC and check equivalence (float64 and
float32) → sweep the vanilla IF baseline over T → AL metric, clusters and per-layer L → the
two-phase retraining of Algorithm 4 (phase 0 is the model of the first stage) → convert that
model too → spike rates, operations, T_norm / T_eff / latency and energy for both. The run folder
gets ``report.md``, ``metrics.json``, figures, checkpoints and ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Subset

from pascal_snn.adaptive import AdaptivePlan, train_adaptive
from pascal_snn.config import RunConfig
from pascal_snn.data import build_splits
from pascal_snn.energy import energy_report
from pascal_snn.energy.plot import energy_breakdown_figure, spike_rate_figure
from pascal_snn.evaluation import evaluate_equivalence, first_reaching, sweep_vanilla
from pascal_snn.figures import accuracy_vs_timesteps, save_figure
from pascal_snn.io import atomic_write_text, ensure_dir, write_json
from pascal_snn.report import render_report
from pascal_snn.training import train

__all__ = ["DemoSettings", "run_demo"]

FULL_TIMESTEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
QUICK_TIMESTEPS = (1, 2, 4, 8, 16)


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """What the demo runs. ``None`` epochs/width mean the data set's (or quick mode's) default."""

    out: str = "runs/demo"
    dataset: str = "digits"
    data_dir: str | None = None
    quick: bool = False
    levels: int = 4
    epochs: int | None = None
    clusters: int = 3
    cluster_levels: tuple[int, ...] = (1, 2, 4)
    switch_fraction: float = 2 / 3
    seed: int = 0
    device: str | None = None
    timesteps: tuple[int, ...] | None = None
    energy_images: int | None = None
    vanilla_images: int | None = None
    model: str | None = None
    width: float | None = None
    image_size: int | None = None
    model_kwargs: tuple[tuple[str, object], ...] = ()
    batch_size: int | None = None
    threads: int | None = 1
    train_images: int | None = None
    lr: float | None = None
    test_images: int | None = None
    command: str | None = None

    def resolved_epochs(self, default: int) -> int:
        if self.epochs is not None:
            return self.epochs
        return 2 if self.quick else default

    def resolved_timesteps(self) -> tuple[int, ...]:
        if self.timesteps is not None:
            return self.timesteps
        return QUICK_TIMESTEPS if self.quick else FULL_TIMESTEPS


Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_demo(settings: DemoSettings, log: Log = _stderr, progress: bool | None = None) -> dict:
    """Run every stage into ``settings.out``; return the content of ``metrics.json``."""
    out = ensure_dir(settings.out)
    began = time.perf_counter()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    splits = build_splits(
        settings.dataset,
        seed=0,
        train_images=settings.train_images,  # a fixed random subset: a smaller budget
        data_dir=settings.data_dir,
        image_size=settings.image_size,
    )
    info = splits.info
    test_set = splits.test
    if settings.test_images is not None:  # the first N test images, for every figure
        test_set = Subset(test_set, range(min(settings.test_images, len(test_set))))
    splits = dataclasses.replace(splits, test=test_set)
    epochs = settings.resolved_epochs(info.epochs)
    model_name = settings.model or info.default_model
    config = RunConfig(
        model=model_name,
        dataset=settings.dataset,
        data_dir=settings.data_dir,
        image_size=settings.image_size,
        levels=settings.levels,
        epochs=epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        width=settings.width,
        model_kwargs=dict(settings.model_kwargs),
        seed=settings.seed,
        device=settings.device,
        out=str(out / "uniform"),
        val_images=info.val_images,
        train_images=settings.train_images,
    )
    stage = _Stages(log, 6)

    stage(
        f"training a QCFS ANN ({model_name}, L = {settings.levels}) on "
        f"{info.name} for {epochs} epochs"
    )
    _fresh(out / "uniform")
    uniform = train(config, splits=splits, progress=progress)
    model: nn.Module = uniform.model
    device = next(model.parameters()).device
    test_loader = DataLoader(test_set, batch_size=256)

    stage("converting with PASC and checking equivalence in float64 and float32")
    exact64 = evaluate_equivalence(model, test_loader, torch.float64, device)
    exact32 = evaluate_equivalence(model, test_loader, torch.float32, device)

    steps = settings.resolved_timesteps()
    stage(f"vanilla IF baseline at T = {', '.join(map(str, steps))} (one run, prefix means)")
    sweep = sweep_vanilla(
        model, test_loader, steps, torch.float32, device, max_images=settings.vanilla_images
    )
    reach = first_reaching(sweep)  # against the ANN's accuracy on the images the sweep saw
    save_figure(
        accuracy_vs_timesteps(
            sweep.timesteps,
            sweep.accuracy,
            exact32.ann_accuracy,
            exact32.snn_accuracy,
            settings.levels,
            vanilla_agreement=sweep.agreement_rate,
        ),
        out / "accuracy_vs_timesteps.png",
    )

    stage(
        f"AL metric → {settings.clusters} clusters → per-layer L, then Algorithm 4 "
        f"(uniform L for {settings.switch_fraction:.0%} of the epochs, then per-layer L)"
    )
    plan = AdaptivePlan(
        clusters=settings.clusters,
        cluster_levels=settings.cluster_levels,
        switch_fraction=settings.switch_fraction,
        init_checkpoint=str(out / "uniform" / "best.pt"),
    )
    _fresh(out / "adaptive")
    adaptive_cfg = dataclasses.replace(config, out=str(out / "adaptive"))
    adaptive = train_adaptive(
        adaptive_cfg,
        plan,
        progress=progress,
        splits=splits,
    )
    shutil.copyfile(out / "adaptive" / "al_metric.png", out / "al_metric.png")
    al_model: nn.Module = adaptive.run.model
    al64 = evaluate_equivalence(al_model, test_loader, torch.float64, device)
    al32 = evaluate_equivalence(al_model, test_loader, torch.float32, device)

    stage("spike rates, operations, T_norm / T_eff / latency and energy of both networks")
    energy_loader = _limited(test_loader, settings.energy_images)
    energy_uniform = energy_report(model, energy_loader, device=device)
    energy_al = energy_report(al_model, energy_loader, device=device)
    save_figure(spike_rate_figure(energy_uniform), out / "spike_rates.png")
    save_figure(energy_breakdown_figure(energy_uniform), out / "energy_breakdown.png")
    save_figure(spike_rate_figure(energy_al), out / "spike_rates_adaptive.png")

    stage("writing report.md, metrics.json and config.yaml")
    metrics = {
        "dataset": info.name,
        "model": model_name,
        "width": settings.width,
        "image_size": info.image_size,
        "train_images": len(splits.train),  # type: ignore[arg-type]
        "val_images": info.val_images,
        "selected_epoch": uniform.selected_epoch,
        "test_images": exact64.images,
        "epochs": epochs,
        "ann_accuracy": exact32.ann_accuracy,
        "snn_accuracy": exact32.snn_accuracy,
        "agreement": exact64.agreement_rate,
        "levels": exact64.levels,
        "t_eff": energy_uniform["measured"]["t_eff"],
        "float64": exact64.as_dict(),
        "float32": exact32.as_dict(),
        "vanilla": {
            **sweep.as_dict(),
            "ann_accuracy_same_images": sweep.ann_accuracy,
            "timesteps_to_reach_ann": reach,
        },
        "energy": _energy_summary(energy_uniform),
        "adaptive": {
            "levels": list(adaptive.levels),
            "switch_epoch": adaptive.switch_epoch,
            "selected_epoch": adaptive.run.selected_epoch,
            "al": adaptive.al,
            "ann_accuracy": al32.ann_accuracy,
            "snn_accuracy": al32.snn_accuracy,
            "agreement": al64.agreement_rate,
            "float64": al64.as_dict(),
            "float32": al32.as_dict(),
            "t_eff": energy_al["measured"]["t_eff"],
            "energy": _energy_summary(energy_al),
        },
        "seconds": time.perf_counter() - began,
        "command": _command(settings),
    }
    write_json(out / "metrics.json", metrics)
    write_json(out / "energy_uniform.json", energy_uniform)
    write_json(out / "energy_adaptive.json", energy_al)
    resolved = {
        "demo": {
            **dataclasses.asdict(settings),
            "epochs": epochs,
            "timesteps": list(steps),
            "cluster_levels": list(plan.cluster_levels),
        },
        "train": config.to_dict(),
    }
    atomic_write_text(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    atomic_write_text(out / "report.md", render_report(metrics))
    metrics["seconds"] = time.perf_counter() - began
    write_json(out / "metrics.json", metrics)
    return metrics


class _Stages:
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


def _limited(loader: DataLoader, images: int | None) -> Any:
    if images is None:
        return loader
    return DataLoader(
        torch.utils.data.Subset(loader.dataset, range(min(images, len(loader.dataset)))),  # type: ignore[arg-type]
        batch_size=loader.batch_size,
    )


def _energy_summary(report: dict[str, Any]) -> dict[str, Any]:
    measured, analytic = report["measured"], report["analytic"]
    return {
        "images": report["images"],
        "ann_macs": report["totals"]["ann_macs"],
        "t_norm": measured["t_norm"],
        "t_eff": measured["t_eff"],
        "t_norm_analytic": analytic["t_norm"],
        "t_eff_analytic": analytic["t_eff"],
        "latency_steps": report["latency"]["total_steps"],
        "spike_rate_b": measured["b"],
        "first_layer_share_c": measured["c"],
        "energy_ratio": measured["energy_ratio"],
        "energy_ratio_analytic": analytic["energy_ratio"],
        "counted_energy_ratio": measured["counted_energy_ratio"],
        "acs_per_image": measured["acs_per_image"],
        "macs_per_image": measured["macs_per_image"],
        "if_updates_per_image": measured["if_updates_per_image"],
        "inhibitory_spikes_per_image": measured["inhibitory_spikes_per_image"],
        "layers": [
            {
                "name": x["name"],
                "L": x["L"],
                "t_in": x["t_in"],
                "macs": x["macs"],
                "spike_rate": (x["measured"] or {}).get("spike_rate"),
                "r_e": (x["measured"] or {}).get("r_e"),
            }
            for x in report["layers"]
        ],
    }


def _command(settings: DemoSettings) -> str:
    if settings.command:
        return settings.command
    words: list[str] = ["pascal-snn", "demo", "--out", settings.out]
    if settings.dataset != "digits":
        words += ["--dataset", settings.dataset]
    if settings.data_dir:
        words += ["--data-dir", settings.data_dir]
    if settings.quick:
        words.append("--quick")
    if settings.epochs is not None:
        words += ["--epochs", str(settings.epochs)]
    if settings.seed:
        words += ["--seed", str(settings.seed)]
    return shlex.join(words)
