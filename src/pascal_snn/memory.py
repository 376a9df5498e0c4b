"""Memory a PASC network's spike trains need, estimated before any conversion runs.

A PASC layer with step ``L`` turns each of its ``N`` neurons into a train of ``L`` steps, so a
batch of ``B`` images holds ``B·L·N`` values per layer at once (for L = 65,536 that is
gigabytes per image in a small CNN). Around IF layer ``l`` the network holds its input train
(``T_in`` steps), its output train (``L`` steps), the next layer's train and the neuron's
working copies. Measured peaks (``digits_cnn`` and ``mnist_cnn``, L = 256 … 4,096, float32 and
float64) stay at or below::

    bytes per image ≈ max_l N_l · (2·(T_in,l + 2·L_l) · element size + 2·L_l)

with ``T_in,l`` bounded by the largest L of the network (float64 ``digits_cnn``: measured 0.96
of it; float32: 0.4; ``mnist_cnn``: 0.2–0.5). :func:`check_fits` compares that with
the memory available on the device and refuses, up front, a batch that would not fit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from pascal_snn.errors import ConfigError

__all__ = ["available_bytes", "check_fits", "spike_bytes_per_image"]


def _neurons(model: nn.Module, input_shape: Sequence[int]) -> list[tuple[int, int]]:
    """``(L, neurons per image)`` of every QCFS call, from one forward on the meta device."""
    from pascal_snn.qcfs import QCFS

    found: list[tuple[int, int]] = []

    def hook(module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
        assert isinstance(module, QCFS)
        found.append((module.L, out[0].numel()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, QCFS)]
    state = {
        k: torch.empty_like(v, device="meta")
        for k, v in (*model.named_parameters(), *model.named_buffers())
    }
    floats = [p.dtype for p in model.parameters() if p.is_floating_point()]
    was_training = model.training
    model.eval()  # the converted network is in eval mode (BatchNorm folded, one image is fine)
    try:
        x = torch.zeros((1, *input_shape), device="meta", dtype=floats[0] if floats else None)
        functional_call(model, state, (x,), strict=False)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return found


def spike_bytes_per_image(
    model: nn.Module, input_shape: Sequence[int], dtype: torch.dtype = torch.float64
) -> int:
    """Estimated peak bytes per image of the PASC network of ``model`` (see module docstring)."""
    layers = _neurons(model, input_shape)
    if not layers:
        return 0
    size = torch.empty((), dtype=dtype).element_size()
    longest = max(L for L, _ in layers)
    return max(n * (2 * (longest + 2 * L) * size + 2 * L) for L, n in layers)


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (CUDA: free device memory; CPU: MemAvailable), or None."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_fits(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device,
    advice: str | None = None,
    available: int | None = None,
) -> int:
    """Refuse (ConfigError) a conversion whose spike trains for one batch would not fit in the
    memory of ``device``, saying how much they need and what to do (default: the
    ``--batch-size`` that fits); returns the estimated bytes per batch. ``available``
    overrides the measured free memory."""
    per_image = spike_bytes_per_image(model, input_shape, dtype)
    needed = per_image * batch_size
    free = available_bytes(device) if available is None else available
    if free is None or needed <= free:
        return needed
    levels = sorted({L for L, _ in _neurons(model, input_shape)})
    fits = int(free * 0.8) // max(per_image, 1)
    if advice is not None:
        what = advice
    elif fits >= 1:
        what = f"use --batch-size {fits} or smaller"
    else:
        what = "even one image does not fit: convert a model trained with a smaller L"
    raise ConfigError(
        f"the spiking network's trains need about {_size(needed)} for a batch of {batch_size} "
        f"{dtype_name(dtype)} images (L up to {levels[-1]}; {_size(per_image)} per image) but "
        f"{device.type} has about {_size(free)} free; {what}"
    )


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
