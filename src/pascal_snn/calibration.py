"""θ calibration from data: each QCFS threshold from its pre-activation distribution.

For every QCFS layer ``l`` (forward order), over the first ``num_images`` images of a loader:

    θ_l = Q_p( { z ∈ Z_l : z > 0 } )

the ``p``-th percentile (default 99.9) of the layer's **strictly positive pre-activations**
``z`` (the input of its QCFS, i.e. of the ReLU it replaced), with ``Q_p`` the linearly
interpolated order statistic of ``torch.quantile``: rank ``r = p/100 · (n − 1)``,
``Q = x_(⌊r⌋) + (r − ⌊r⌋)·(x_(⌊r⌋+1) − x_(⌊r⌋))``. Zeros and negatives are left out: the ReLU
maps them all to 0, and counting them would tie θ to the layer's sparsity. A ReLU6 site (see
:func:`pascal_snn.qcfsify.qcfs_sites`) gets ``min(θ_l, 6)`` — its ReLU never exceeded 6 — or
a fixed ``relu6_theta`` (e.g. 6) when given.

By default the statistics are those of the **ReLU network**: while calibrating, every QCFS
passes ``relu(z)`` (``clip(z, 0, 6)`` at ReLU6 sites) downstream, so the result depends only
on the ReLU weights, not on the θ/L the model held before. ``upstream="qcfs"`` keeps the QCFS
outputs instead (re-calibrating a QCFS-trained model as it runs).

Memory is bounded: one :class:`LogHistogram` per layer (2^(8+b) int64 counts, 256 KiB at the
default b = 7) whatever the number of images; one pass, exact integer counts, deterministic
for a given image order.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from pascal_snn.errors import ConfigError, DataError
from pascal_snn.qcfs import QCFS, qcfs_layers
from pascal_snn.qcfsify import SiteKind, qcfs_sites

__all__ = ["Calibration", "LayerThreshold", "LogHistogram", "calibrate_thresholds"]

RELU6_CLIP = 6.0


class LogHistogram:
    """Streaming quantiles of positive values with bounded memory and a relative error bound.

    A positive value ``v`` is counted in the bucket given by the top ``8 + b`` bits of its
    float32 bit pattern (exponent and ``b`` mantissa bits): bucket edges are
    ``2^e·(1 + k/2^b)``, so every bucket ``[lo, hi)`` of normal numbers has
    ``hi/lo ≤ 1 + 2^-b``. An order statistic is estimated by its bucket's midpoint, clamped to
    the exact minimum and maximum seen; the estimate ``q̂`` of a quantile ``q`` (linear
    interpolation as in ``torch.quantile``) then satisfies

        |q̂ − q| ≤ ε·q,   ε = 2^-(b+1) + 2^-23     (0.39 % at b = 7)

    for values within float32's normal range (the 2^-23 covers float64 → float32 rounding).
    State: ``2^(8+b)`` int64 counts plus min and max, independent of how many values are seen.
    """

    def __init__(self, device: torch.device | str = "cpu", mantissa_bits: int = 7) -> None:
        if not 0 <= mantissa_bits <= 12:
            raise ValueError(f"mantissa_bits must be in 0 … 12, got {mantissa_bits}")
        self.bits = mantissa_bits
        self.counts = torch.zeros(2 ** (8 + mantissa_bits), dtype=torch.int64, device=device)
        self.minimum = torch.full((), math.inf, dtype=torch.float64, device=device)
        self.maximum = torch.zeros((), dtype=torch.float64, device=device)

    @property
    def relative_error(self) -> float:
        """The bound ε of the class docstring."""
        return 2.0 ** -(self.bits + 1) + 2.0**-23

    @property
    def nbytes(self) -> int:
        """Bytes of state (constant)."""
        return sum(t.numel() * t.element_size() for t in (self.counts, self.minimum, self.maximum))

    @property
    def count(self) -> int:
        """Number of positive values seen."""
        return int(self.counts.sum())

    @torch.no_grad()
    def update(self, values: torch.Tensor) -> None:
        """Count the strictly positive, finite entries of ``values`` (others are ignored)."""
        v = values.detach().reshape(-1)
        v = v[(v > 0) & torch.isfinite(v)]
        if v.numel() == 0:
            return
        v = v.to(device=self.counts.device)
        self.minimum = torch.minimum(self.minimum, v.min().to(torch.float64))
        self.maximum = torch.maximum(self.maximum, v.max().to(torch.float64))
        f32 = v.to(torch.float32).clamp_(max=torch.finfo(torch.float32).max)
        bucket = f32.view(torch.int32) >> (23 - self.bits)
        self.counts += torch.bincount(bucket, minlength=self.counts.numel())

    def _edge(self, bucket: int) -> float:
        pattern = torch.tensor(bucket << (23 - self.bits), dtype=torch.int32)
        return float(pattern.view(torch.float32))

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0 ≤ q ≤ 1) of the values seen; None if none was positive."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q}")
        counts = self.counts.cpu()
        n = int(counts.sum())
        if n == 0:
            return None
        cumulative = torch.cumsum(counts, 0)
        low, high = float(self.minimum), float(self.maximum)

        def order_statistic(i: int) -> float:  # the i-th smallest value (0-based), estimated
            if i == 0:
                return low
            if i == n - 1:
                return high
            b = int(torch.searchsorted(cumulative, torch.tensor(i), right=True))
            top = self._edge(b + 1) if b + 1 < counts.numel() else torch.finfo(torch.float32).max
            return min(max(0.5 * (self._edge(b) + top), low), high)

        rank = q * (n - 1)
        j = math.floor(rank)
        frac = rank - j
        x_j = order_statistic(j)
        if frac == 0.0:
            return x_j
        x_next = order_statistic(min(j + 1, n - 1))
        return x_j + frac * (x_next - x_j)


@dataclasses.dataclass(frozen=True)
class LayerThreshold:
    """One QCFS layer's calibration: the θ set, from how many positive values, and how."""

    name: str
    theta: float
    positives: int
    relu6: bool
    source: Literal["percentile", "relu6-capped", "relu6-fixed", "unchanged"]


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate_thresholds` did: images seen, the percentile, per-layer results."""

    images: int
    percentile: float
    layers: list[LayerThreshold]

    def thetas(self) -> dict[str, float]:
        """Layer name → θ, forward order."""
        return {layer.name: layer.theta for layer in self.layers}


def _images(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise DataError(
        "calibrate_thresholds: each loader batch must be an image tensor or a (images, "
        f"labels, …) tuple, got {type(batch).__name__}"
    )


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.get_default_dtype(), torch.device("cpu")


def calibrate_thresholds(
    model: nn.Module,
    loader: Iterable[Any],
    num_images: int,
    percentile: float = 99.9,
    relu6_theta: float | None = None,
    upstream: Literal["relu", "qcfs"] = "relu",
) -> Calibration:
    """Set every QCFS θ of ``model`` (in place) from its pre-activations on real images.

    ``θ = percentile``-th percentile of the strictly positive QCFS inputs over the first
    ``num_images`` images of ``loader`` (all of them if it has fewer); ReLU6 sites get
    ``min(θ, 6)``, or ``relu6_theta`` when given. A layer that saw no positive input keeps its
    θ (a warning names it). Runs in eval mode under ``no_grad`` on the model's device and
    floating dtype, restores the model's mode, and leaves every other parameter unchanged.
    See the module docstring for the math and the memory bound.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ConfigError(f"num_images must be an integer >= 1, got {num_images!r}")
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)):
        raise ConfigError(f"percentile must be a number in (0, 100], got {percentile!r}")
    if not 0 < percentile <= 100:
        raise ConfigError(f"percentile must be in (0, 100], got {percentile}")
    if relu6_theta is not None and not (
        isinstance(relu6_theta, (int, float)) and 0 < relu6_theta < math.inf
    ):
        raise ConfigError(f"relu6_theta must be a finite number > 0, got {relu6_theta!r}")
    if upstream not in ("relu", "qcfs"):
        raise ConfigError(f"upstream must be 'relu' or 'qcfs', got {upstream!r}")
    layers = qcfs_layers(model)
    if not layers:
        raise ConfigError(
            "calibrate_thresholds: the model has no QCFS layer; swap its ReLUs with "
            "pascal_snn.qcfsify first"
        )
    relu6 = {name for name, site in qcfs_sites(model).items() if site.kind is SiteKind.RELU6}
    dtype, device = _model_dtype_device(model)
    histograms = {name: LogHistogram(device) for name, _ in layers}

    def hook_for(name: str) -> Any:
        def hook(module: QCFS, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> Any:
            z = inputs[0]
            histograms[name].update(z)
            if upstream == "qcfs":
                return None
            return z.clamp(0, RELU6_CLIP) if name in relu6 else torch.relu(z)

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in layers]
    was_training = model.training
    seen = 0
    try:
        model.eval()
        with torch.no_grad():
            for batch in loader:
                x = _images(batch)[: num_images - seen]
                if x.is_floating_point():
                    x = x.to(device=device, dtype=dtype)
                else:
                    x = x.to(device=device)
                model(x)
                seen += int(x.shape[0])
                if seen >= num_images:
                    break
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if seen == 0:
        raise DataError("calibrate_thresholds: the loader yielded no images")

    results: list[LayerThreshold] = []
    dead: list[str] = []
    with torch.no_grad():
        for name, module in layers:
            hist = histograms[name]
            value = hist.quantile(percentile / 100.0)
            is_relu6 = name in relu6
            source: Literal["percentile", "relu6-capped", "relu6-fixed", "unchanged"]
            if is_relu6 and relu6_theta is not None:
                value, source = float(relu6_theta), "relu6-fixed"
            elif value is None:
                value, source = float(module.theta.detach()), "unchanged"
                dead.append(name)
            elif is_relu6:
                value, source = min(value, RELU6_CLIP), "relu6-capped"
            else:
                source = "percentile"
            module.theta.fill_(value)
            results.append(LayerThreshold(name, value, hist.count, is_relu6, source))
    if dead:
        warnings.warn(
            f"calibrate_thresholds: no positive pre-activation in {', '.join(dead)} over "
            f"{seen} images; their θ is unchanged",
            RuntimeWarning,
            stacklevel=2,
        )
    return Calibration(images=seen, percentile=float(percentile), layers=results)
