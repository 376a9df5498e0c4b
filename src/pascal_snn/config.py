"""Run configuration of ``pascal-snn train``: one dataclass, YAML in, resolved YAML out.

:class:`RunConfig` describes a run, :class:`AdaptivePlan` (its ``adaptive`` field) the
Algorithm-4 part of an adaptive one; each default is declared once, here.

Precedence (timm style), highest first: explicit command-line flags → the ``--config`` YAML file
→ the data set's recipe (:class:`pascal_snn.data.DatasetInfo`: model, lr, weight decay, epochs,
batch size)
→ the defaults below. A value of ``None`` means "not set here, take it from the next source".
The fully resolved configuration is written as ``config.yaml`` into the run folder, so every run
folder says how to reproduce it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pascal_snn.errors import ConfigError
from pascal_snn.io import atomic_write_text

__all__ = [
    "MAX_BATCH",
    "MAX_EPOCHS",
    "MAX_IMAGE_SIZE",
    "MAX_LEVEL",
    "MAX_SEED",
    "MAX_WIDTH",
    "MAX_WORKERS",
    "RUN_DEFINING",
    "AdaptivePlan",
    "Levels",
    "RunConfig",
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
    "adaptive",
    "init_relu_weights",
    "calibration_images",
    "grad_clip",
)

# The largest quantization step L accepted anywhere (2^16). A converted layer emits L spike
# steps per image; beyond this the trains do not fit in memory for any useful batch, and the
# QCFS arithmetic (z·L/θ in float32) loses the resolution that L promises.
MAX_LEVEL = 2**16
MAX_SEED = 2**32 - 1  # numpy's legacy seeds and torch's generators all take it
MAX_WIDTH = 16.0  # channel width multiplier: 16× VGG-16 is already 8,192 channels
MAX_IMAGE_SIZE = 4096
MAX_WORKERS = 256
MAX_EPOCHS = 100_000
MAX_BATCH = 2**20  # images per batch (Python's islice and the samplers take at most 2^63)

ALPHA_VARIANTS = ("paper", "reference-code")


@dataclass(frozen=True)
class AdaptivePlan:
    """Adaptive Layerwise training (paper Algorithm 4, SPEC §5.3): ``clusters`` clusters of
    layers by AL metric, one L per cluster (``cluster_levels``; the highest metric gets the
    smallest), uniform L for ``switch_fraction`` of the epochs, then per-layer L. The metric is
    taken over ``num_images`` training images (agreement threshold ``alpha``, None: the
    paper's 1/(2·layers); ``variant`` "paper" or "reference-code") of the phase-0 model, or of
    ``init_checkpoint`` when given (phase 0 is then skipped)."""

    clusters: int = 3
    cluster_levels: tuple[int, ...] = (1, 2, 4)
    switch_fraction: float = 2 / 3
    num_images: int = 3000
    alpha: float | None = None
    variant: str = "paper"
    init_checkpoint: str | None = None

    def __post_init__(self) -> None:
        levels = self.cluster_levels
        if isinstance(levels, str) or not isinstance(levels, Sequence):
            raise ConfigError(f"cluster_levels must be a list of integers, got {levels!r}")
        for i, value in enumerate(levels):
            _check_int(f"cluster_levels[{i}]", value, minimum=1, maximum=MAX_LEVEL)
        object.__setattr__(self, "cluster_levels", tuple(levels))
        _check_int("clusters", self.clusters, minimum=1)
        if self.clusters != len(self.cluster_levels):
            raise ConfigError(
                f"--clusters {self.clusters} needs exactly {self.clusters} --cluster-levels, "
                f"got {list(self.cluster_levels)}; give one L per cluster"
            )
        fraction = _check_float("switch_fraction", self.switch_fraction)
        if fraction is None or not 0.0 < fraction < 1.0:
            raise ConfigError(f"--switch-fraction must be in (0, 1), got {self.switch_fraction}")
        object.__setattr__(self, "switch_fraction", fraction)
        _check_int("num_images", self.num_images, minimum=1)
        alpha = _check_float("alpha", self.alpha)
        if alpha is not None and not 0.0 < alpha <= 1.0:
            raise ConfigError(f"--alpha must be in (0, 1], got {self.alpha}")
        object.__setattr__(self, "alpha", alpha)
        if self.variant not in ALPHA_VARIANTS:
            raise ConfigError(
                f"variant must be one of {', '.join(ALPHA_VARIANTS)}, got {self.variant!r}"
            )
        if self.init_checkpoint is not None:
            object.__setattr__(self, "init_checkpoint", os.fspath(self.init_checkpoint))

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def merged(self, overrides: Mapping[str, Any]) -> AdaptivePlan:
        """A copy with ``overrides`` (keys with ``-`` or ``_``; ``None`` skipped). Giving only
        ``cluster_levels`` sets ``clusters`` to their number."""
        values = _normalise_keys(overrides, AdaptivePlan.keys(), "adaptive")
        values = {k: v for k, v in values.items() if v is not None}
        if "cluster_levels" in values and "clusters" not in values:
            levels = values["cluster_levels"]
            if isinstance(levels, Sequence) and not isinstance(levels, str):
                values["clusters"] = len(levels)
        return dataclasses.replace(self, **values)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["cluster_levels"] = list(self.cluster_levels)
        return out


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
    ``adaptive``: the Algorithm-4 plan of an adaptive run (None: a plain run). In YAML a
    mapping of :class:`AdaptivePlan` keys, or ``true`` for the defaults.
    ``init_relu_weights``: a new run starts from this ReLU model's state_dict (same layer
    names; QCFS where the ReLUs were) with every θ calibrated on ``calibration_images``
    un-augmented training images (:func:`pascal_snn.calibrate_thresholds`) — fine-tuning a
    trained ReLU network instead of training from scratch.
    ``grad_clip``: clip the gradient's global norm to this before every step (None: never);
    a guard for Algorithm 4's switch to much smaller levels (docs/design.md).
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
    adaptive: AdaptivePlan | None = None
    init_relu_weights: str | None = None
    calibration_images: int = 3000
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        self.levels = _check_levels(self.levels, "levels")
        self.adaptive = _check_adaptive(self.adaptive)
        if self.adaptive is not None and not isinstance(self.levels, int):
            raise ConfigError(
                f"adaptive training starts from one uniform L (e.g. --levels 4), got levels "
                f"{self.levels}"
            )
        self.level_schedule = _check_schedule(self.level_schedule)
        _check_int("epochs", self.epochs, minimum=1, optional=True, maximum=MAX_EPOCHS)
        _check_int("train_images", self.train_images, minimum=1, optional=True)
        _check_int("batch_size", self.batch_size, 1, optional=True, maximum=MAX_BATCH)
        _check_int("image_size", self.image_size, 1, optional=True, maximum=MAX_IMAGE_SIZE)
        _check_int("val_images", self.val_images, minimum=0, optional=True)
        _check_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        _check_int("val_seed", self.val_seed, minimum=0, maximum=MAX_SEED)
        _check_int("workers", self.workers, minimum=0, maximum=MAX_WORKERS)
        _check_int("calibration_images", self.calibration_images, minimum=1)
        for name in ("lr", "weight_decay", "momentum", "width", "grad_clip"):
            setattr(self, name, _check_float(name, getattr(self, name)))
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip must be > 0, got {self.grad_clip}")
        if self.width is not None and not 0 < self.width <= MAX_WIDTH:
            raise ConfigError(f"width must be in (0, {MAX_WIDTH:g}], got {self.width}")
        for name in ("model", "dataset", "data_dir", "device", "out", "init_relu_weights"):
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
        """A copy with ``overrides`` applied; keys may use ``-`` or ``_``; ``None`` is skipped.

        ``adaptive`` merges key by key onto the current plan (or the default one); ``true``
        keeps the current plan or starts the default one, ``false`` makes a plain run."""
        values = _normalise_keys(overrides, RunConfig.keys(), "config")
        current = self.to_dict()
        current.update({k: v for k, v in values.items() if v is not None and k != "adaptive"})
        current["adaptive"] = _merge_adaptive(self.adaptive, values.get("adaptive"))
        return RunConfig(**current)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON/checkpoint-safe dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["levels"] = _plain_levels(self.levels)
        out["level_schedule"] = [[e, _plain_levels(lv)] for e, lv in self.level_schedule]
        out["adaptive"] = None if self.adaptive is None else self.adaptive.as_dict()
        return out

    def changed(self, given: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Run-defining keys whose value ``given`` (explicit options) would change:
        ``{key: (this run's value, the given value)}`` in plain form."""
        values = _normalise_keys(given, RunConfig.keys(), "config")
        reference = self.to_dict()
        probe = self.merged(values).to_dict()
        return {
            k: (reference[k], probe[k])
            for k in RUN_DEFINING
            if k in values and values[k] is not None and probe[k] != reference[k]
        }

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
        if value > MAX_LEVEL:
            raise ConfigError(
                f"--levels {text!r}: {value} is above the largest supported quantization step "
                f"L = {MAX_LEVEL} (2^16); choose a smaller L"
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
    values = _normalise_keys(data, RunConfig.keys(), f"config file '{file}'")
    try:
        RunConfig().merged(values)  # validate types and values now, naming the file
    except ConfigError as exc:
        raise ConfigError(f"config file '{file}': {exc}") from None
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


def write_config(config: RunConfig, run_dir: str | os.PathLike[str]) -> Path:
    """Write the resolved config as ``RUN_DIR/config.yaml`` (atomically); return its path."""
    path = Path(run_dir) / "config.yaml"
    header = "# pascal-snn train: resolved run configuration (reload with --config)\n"
    atomic_write_text(path, header + yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
def _normalise_keys(values: Mapping[str, Any], known: list[str], source: str) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys, got {values!r}")
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(known)}")
        out[name] = value
    return out


def _check_adaptive(value: object) -> AdaptivePlan | None:
    if value is None or isinstance(value, AdaptivePlan):
        return value
    return _merge_adaptive(None, value)


def _merge_adaptive(current: AdaptivePlan | None, value: object) -> AdaptivePlan | None:
    """``current`` changed by a YAML/flag value: a mapping of plan keys, true, false or None."""
    if value is None:
        return current
    if value is False:
        return None
    if value is True:
        return current or AdaptivePlan()
    if isinstance(value, AdaptivePlan):
        return value
    if isinstance(value, Mapping):
        return (current or AdaptivePlan()).merged(value)
    raise ConfigError(
        f"adaptive must be true, false or a mapping of {', '.join(AdaptivePlan.keys())}; "
        f"got {value!r}"
    )


def _check_levels(levels: object, name: str) -> Levels:
    if isinstance(levels, str):
        return parse_levels(levels)
    if isinstance(levels, Sequence):
        if len(levels) == 0:
            raise ConfigError(f"{name} must not be empty; give one integer L >= 1 or one per layer")
        return [_check_level(v, f"{name}[{i}]") for i, v in enumerate(levels)]
    return _check_level(levels, name)


def _check_level(value: object, name: str) -> int:
    """An integer quantization step 1 … MAX_LEVEL (an integral float such as YAML's 4.0 too)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"{name} must be an integer >= 1 (a quantization step), got {value!r}; give one "
            "integer L >= 1 or one per QCFS layer"
        )
    if value > MAX_LEVEL:
        raise ConfigError(
            f"{name} = {value} is above the largest supported quantization step L = "
            f"{MAX_LEVEL} (2^16); choose a smaller L"
        )
    return value


def _check_schedule(schedule: object) -> list[tuple[int, Levels]]:
    if schedule is None:
        return []
    if not isinstance(schedule, Sequence) or isinstance(schedule, str):
        raise ConfigError(f"level_schedule must be a list of [epoch, levels], got {schedule!r}")
    out: list[tuple[int, Levels]] = []
    for i, item in enumerate(schedule):
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
            raise ConfigError(f"level_schedule[{i}] must be [epoch, levels], got {item!r}")
        epoch = _require_int(f"level_schedule[{i}] epoch", item[0], minimum=0)
        if out and epoch <= out[-1][0]:
            raise ConfigError("level_schedule epochs must be strictly increasing")
        out.append((epoch, _check_levels(item[1], f"level_schedule[{i}] levels")))
    return out


def _check_int(
    name: str, value: object, minimum: int, optional: bool = False, maximum: int | None = None
) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be an integer <= {maximum}, got {value!r}")
    return value


def _require_int(name: str, value: object, minimum: int) -> int:
    checked = _check_int(name, value, minimum)
    assert checked is not None  # not optional: None was refused
    return checked


def _check_float(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not isinstance(value, (int, float, str)):
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
