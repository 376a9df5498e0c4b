"""Crash-safe file output: every file is written to a temporary sibling, then renamed.

A reader (or a resumed run) therefore sees either the previous complete file or the new
complete file, never a half-written one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from pascal_snn.errors import ConfigError

__all__ = ["atomic_write_bytes", "atomic_write_text", "ensure_dir", "save_torch", "write_json"]


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) and check it is writable; clear error otherwise."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create output folder '{folder}': {exc.strerror}; choose another --out"
        ) from exc
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"output folder '{folder}' is not writable; choose another --out")
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    _atomic(Path(path), lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON (non-finite floats become strings like "inf")."""
    atomic_write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    return value


def save_torch(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save`` through a temporary file and an atomic rename."""
    _atomic(Path(path), lambda handle: torch.save(obj, handle))
