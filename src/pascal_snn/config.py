"""Run configuration of ``pascal-snn train``: one dataclass, YAML in, resolved YAML out.

Precedence (timm style), highest first: explicit command-line flags → the ``--config`` YAML file
→ the data set's recipe (:class:`pascal_snn.data.DatasetInfo`: model, lr, weight decay, epochs,
batch size)
→ the defaults below. A value of ``None`` means "not set here, take it from the next source".
The fully resolved configuration is written as ``config.yaml`` into the run folder, so every run
folder says how to reproduce it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pascal_snn.errors import ConfigError
from pascal_snn.io import atomic_write_text
from pascal_snn.qcfs import validate_level

__all__ = [
    "RUN_DEFINING",
    "Levels",
    "RunConfig",
    "check_same_run",
    "load_yaml",
    "parse_levels",
    "resolve",
    "write_config",
]

Levels = int | list[int]

# Keys that define what a run computes; a resumed run must keep them (device/workers may change).
RUN_DEFINING = (
    "model",
    "dataset",
    "data_dir",
    "image_size",
    "augment",
    "levels",
    "level_schedule",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "momentum",
    "seed",
    "width",
    "model_kwargs",
    "val_images",
    "val_seed",
    "train_images",
)


@dataclass
class RunConfig:
    """Everything a training run depends on.

    ``levels``: one quantization step L for every QCFS layer, or one per layer (forward order).
    ``level_schedule``: ``[(epoch, levels), …]`` — from 0-based epoch ``epoch`` on, the model
    uses ``levels`` (Algorithm 4: ``[(round(p·epochs), per_layer_L)]``); before the first entry
    it uses ``levels``. One cosine learning-rate schedule spans all epochs regardless.
    ``batch_size`` is per process (torchvision convention under torchrun).
    ``val_images`` training images are held out (seeded by ``val_seed``) to select the model
    on (None: the data set's default; 0: none, the last epoch is selected); ``train_images``
    trains on a seeded subset of the rest (a smaller budget; None: all of them).
    """

    model: str | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    image_size: int | None = None
    augment: bool = True
    levels: Levels = 4
    level_schedule: list[tuple[int, Levels]] = field(default_factory=list)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    seed: int = 0
    width: float | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    workers: int = 0
    out: str | None = None
    val_images: int | None = None
    val_seed: int = 0
    train_images: int | None = None

    def __post_init__(self) -> None:
        self.levels = _check_levels(self.levels, "levels")
        self.level_schedule = _check_schedule(self.level_schedule)
        for name in ("image_size", "epochs", "batch_size", "train_images"):
            _check_int(name, getattr(self, name), minimum=1, optional=True)
        _check_int("val_images", self.val_images, minimum=0, optional=True)
        _check_int("seed", self.seed, minimum=0)
        _check_int("val_seed", self.val_seed, minimum=0)
        _check_int("workers", self.workers, minimum=0)
        for name in ("lr", "weight_decay", "momentum", "width"):
            setattr(self, name, _check_float(name, getattr(self, name)))
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.width is not None and self.width <= 0:
            raise ConfigError(f"width must be > 0, got {self.width}")
        for name in ("model", "dataset", "data_dir", "device", "out"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                setattr(self, name, os.fspath(value) if isinstance(value, Path) else str(value))
        for name in ("download", "augment"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.model_kwargs, Mapping):
            raise ConfigError(f"model_kwargs must be a mapping, got {self.model_kwargs!r}")
        self.model_kwargs = dict(self.model_kwargs)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """Build from a mapping (YAML or a checkpoint); unknown keys are an error."""
        return cls().merged(values)

    def merged(self, overrides: Mapping[str, Any]) -> RunConfig:
        """A copy with ``overrides`` applied; keys may use ``-`` or ``_``; ``None`` is skipped."""
        values = _normalise_keys(overrides)
        current = self.to_dict()
        current.update({k: v for k, v in values.items() if v is not None})
        return RunConfig(**current)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON/checkpoint-safe dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["levels"] = _plain_levels(self.levels)
        out["level_schedule"] = [[e, _plain_levels(lv)] for e, lv in self.level_schedule]
        return out

    def levels_at(self, epoch: int) -> Levels:
        """The levels the model uses during 0-based ``epoch`` (schedule applied)."""
        levels: Levels = self.levels
        for start, value in self.level_schedule:
            if start <= epoch:
                levels = value
        return levels


def parse_levels(text: str) -> Levels:
    """``"4"`` → 4, ``"4,4,2"`` → [4, 4, 2]; ConfigError for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    values: list[int] = []
    for i, part in enumerate(parts):
        try:
            value = int(part)
        except ValueError:
            where = f" (item {i + 1})" if len(parts) > 1 else ""
            raise ConfigError(
                f"--levels {text!r}: {part!r}{where} is not an integer; give one integer L >= 1 "
                f"or a comma-separated list with one per QCFS layer, e.g. 4 or 4,4,2,2"
            ) from None
        if value < 1:
            raise ConfigError(
                f"--levels {text!r}: every quantization step must be >= 1, got {value}"
            )
        values.append(value)
    return values[0] if len(values) == 1 else values


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a run-config YAML file (a mapping of config keys); clear errors when it is bad."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file '{file}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file '{file}': {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{file}' is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{file}' must hold a mapping of keys, got {type(data)}")
    values = _normalise_keys(data, source=f"config file '{file}'")
    RunConfig().merged(values)  # validate types and values now, naming the file
    return values


def resolve(config: RunConfig, info: Any) -> RunConfig:
    """Fill unset values from the data set's recipe (a ``DatasetInfo``)."""
    return dataclasses.replace(
        config,
        model=config.model or info.default_model,
        lr=config.lr if config.lr is not None else float(info.lr),
        weight_decay=(
            config.weight_decay if config.weight_decay is not None else float(info.weight_decay)
        ),
        epochs=config.epochs if config.epochs is not None else int(info.epochs),
        val_images=(config.val_images if config.val_images is not None else int(info.val_images)),
        batch_size=(
            config.batch_size
            if config.batch_size is not None
            else int(getattr(info, "batch_size", 128))
        ),
    )


def check_same_run(stored: RunConfig, given: Mapping[str, Any], run_dir: str) -> None:
    """ConfigError if ``given`` (explicit options) changes a run-defining key of ``stored``."""
    values = _normalise_keys(given)
    reference = stored.to_dict()
    probe = stored.merged(values).to_dict()
    changed = [k for k in RUN_DEFINING if k in values and probe[k] != reference[k]]
    if changed:
        detail = "; ".join(f"{k}: run has {reference[k]!r}, you gave {probe[k]!r}" for k in changed)
        flags = " ".join(f"--{k.replace('_', '-')}" for k in changed)
        raise ConfigError(
            f"cannot resume '{run_dir}' with different settings ({detail}); resume without "
            f"{flags} (or with the run's values), or start a new run with another --out"
        )


def write_config(config: RunConfig, run_dir: str | os.PathLike[str]) -> Path:
    """Write the resolved config as ``RUN_DIR/config.yaml`` (atomically); return its path."""
    path = Path(run_dir) / "config.yaml"
    header = "# pascal-snn train: resolved run configuration (reload with --config)\n"
    atomic_write_text(path, header + yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
def _normalise_keys(values: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    known = set(RunConfig.keys())
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ConfigError(
                f"{source}: unknown key {key!r}; valid keys: {', '.join(RunConfig.keys())}"
            )
        out[name] = value
    return out


def _check_levels(levels: object, name: str) -> Levels:
    try:
        if isinstance(levels, str):
            return parse_levels(levels)
        if isinstance(levels, Sequence):
            if len(levels) == 0:
                raise ValueError(f"{name} must not be empty")
            return [validate_level(v, f"{name}[{i}]") for i, v in enumerate(levels)]
        return validate_level(levels, name)
    except ValueError as exc:
        raise ConfigError(f"{exc}; give one integer L >= 1 or one per QCFS layer") from None


def _check_schedule(schedule: object) -> list[tuple[int, Levels]]:
    if schedule is None:
        return []
    if not isinstance(schedule, Sequence) or isinstance(schedule, str):
        raise ConfigError(f"level_schedule must be a list of [epoch, levels], got {schedule!r}")
    out: list[tuple[int, Levels]] = []
    for i, item in enumerate(schedule):
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
            raise ConfigError(f"level_schedule[{i}] must be [epoch, levels], got {item!r}")
        epoch = _check_int(f"level_schedule[{i}] epoch", item[0], minimum=0)
        if out and epoch <= out[-1][0]:
            raise ConfigError("level_schedule epochs must be strictly increasing")
        out.append((epoch, _check_levels(item[1], f"level_schedule[{i}] levels")))
    return out


def _check_int(name: str, value: object, minimum: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_float(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)  # YAML 1.1 reads "1e-3" as a string
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if number != number or number < 0 or number == float("inf"):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def _plain_levels(levels: Levels) -> Levels:
    return levels if isinstance(levels, int) else list(levels)
