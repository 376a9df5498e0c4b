"""Checkpoints: data only, written atomically, loaded with ``weights_only=True``.

A checkpoint is a dict (format ``"pascal-snn/1"``)::

    format, model (state_dict), arch {name, num_classes, in_channels, width, kwargs},
    levels (per-layer L), dataset {name, data_dir, image_size, input_shape, num_classes,
    normalisation}, config (resolved run config),
    epoch (epochs completed), optimizer, scheduler, rng, metrics (one record per epoch),
    and for adaptive runs phase and plan (dicts given by the caller).

Loading never runs code: a file that carries pickled callables or classes is refused.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pascal_snn.errors import CheckpointError
from pascal_snn.io import save_torch

__all__ = [
    "FORMAT",
    "check_usable",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "save_checkpoint",
]

FORMAT = "pascal-snn/1"
REQUIRED = ("format", "model", "arch", "levels")


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """Write ``state`` (``format`` added) to ``path`` atomically: temp file, fsync, rename.

    A crash during the write leaves the previous file at ``path`` intact.
    """
    save_torch(path, {"format": FORMAT, **state})


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a pascal-snn checkpoint onto the CPU as plain data.

    Raises :class:`CheckpointError` naming the file if it is missing, truncated or not a
    checkpoint, carries Python code (pickled callables/classes are refused, never executed),
    or is not in this package's format.
    """
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"checkpoint '{file}' does not exist; check the path")
    if not file.is_file():
        raise CheckpointError(f"checkpoint '{file}' is not a file")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _unpickling_error(file, exc) from None
    except Exception as exc:  # arbitrary bytes make the legacy unpickler fail in any way
        raise CheckpointError(
            f"checkpoint '{file}' is truncated or corrupt and cannot be read ({_first_line(exc)});"
            " use an earlier checkpoint or re-run training"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"'{file}' is not a pascal-snn checkpoint (format {found!r}, expected {FORMAT!r}); "
            "checkpoints are written by `pascal-snn train` (reference-code weights load through "
            "pascal_snn.models.load_reference_weights)"
        )
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint '{file}' lacks {', '.join(missing)}; it is incomplete")
    return state


def load_weights(
    model: nn.Module, state_dict: Mapping[str, Any], source: str = "checkpoint"
) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with a clear error on any mismatch.

    The error names the missing, unexpected and shape-mismatched keys (e.g. a checkpoint of
    another architecture or class count); nothing is loaded in that case.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict
        and isinstance(own[k], torch.Tensor)
        and isinstance(state_dict[k], torch.Tensor)
        and own[k].shape != state_dict[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if keys:
                shown = ", ".join(keys[:8]) + (f", … ({len(keys)} in all)" if len(keys) > 8 else "")
                parts.append(f"{label}: {shown}")
        raise CheckpointError(
            f"{source} does not match the model ({'; '.join(parts)}); it was saved from another "
            "architecture, class count or width"
        )
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{source} does not match the model: {exc}") from None


def load_model(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the checkpoint's model (``models.create(**arch, L=levels)``), load its weights.

    Returns ``(model, checkpoint)`` with the model in eval mode on ``map_location``.
    """
    from pascal_snn import models  # the zoo imports heavy builders; load it on use

    state = load_checkpoint(path)
    arch = state["arch"]
    if not isinstance(arch, dict) or "name" not in arch or "num_classes" not in arch:
        raise CheckpointError(f"checkpoint '{path}' has no usable 'arch' entry: {arch!r}")
    try:
        model = models.create(
            arch["name"],
            num_classes=arch["num_classes"],
            in_channels=arch.get("in_channels"),
            width=arch.get("width"),
            L=state["levels"],
            **dict(arch.get("kwargs") or {}),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint '{path}': cannot rebuild its model: {exc}") from None
    load_weights(model, state["model"], source=f"checkpoint '{path}'")
    check_usable(model, f"checkpoint '{path}'")
    return model.to(map_location).eval(), state


def check_usable(model: nn.Module, source: str) -> None:
    """Refuse (CheckpointError) weights no command can use: NaN or infinite values (a run
    that diverged) or a QCFS threshold θ ≤ 0 (a spike is worth θ/L)."""
    from pascal_snn.qcfs import QCFS

    broken = [
        name
        for name, value in (*model.named_parameters(), *model.named_buffers())
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    if broken:
        shown = ", ".join(broken[:3]) + (f", … ({len(broken)} in all)" if len(broken) > 3 else "")
        raise CheckpointError(
            f"{source} holds NaN or infinite weights ({shown}): the run diverged; use an "
            "earlier checkpoint (e.g. best.pt) or train again with a lower --lr"
        )
    for name, module in model.named_modules():
        if isinstance(module, QCFS) and not float(module.theta.detach()) > 0:
            raise CheckpointError(
                f"{source}: the threshold theta of QCFS layer '{name}' is "
                f"{float(module.theta.detach()):g}, and a threshold must be > 0 (one spike is "
                "worth theta/L); use another checkpoint or train again"
            )


def _unpickling_error(file: Path, exc: Exception) -> CheckpointError:
    if not zipfile.is_zipfile(file):
        return CheckpointError(
            f"'{file}' is not a PyTorch checkpoint (unreadable or corrupt data); check the path"
        )
    found = re.search(r"GLOBAL ([\w.]+)|global ['\"]?([\w.]+)", str(exc))
    what = f" ({next(g for g in found.groups() if g)})" if found else ""
    return CheckpointError(
        f"refusing to load '{file}': it holds pickled Python objects or code{what}, and a "
        "checkpoint must be data only (tensors, numbers, strings, lists, dicts); "
        "re-save it as a plain state_dict"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
