"""Crash-safe file output: every file is written to a temporary sibling, then renamed.

A reader (or a resumed run) therefore sees either the previous complete file or the new
complete file, never a half-written one.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

from pascal_snn.errors import ConfigError

__all__ = [
    "LOCK_FILE",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable",
    "ensure_dir",
    "run_folder",
    "save_torch",
    "write_json",
]

LOCK_FILE = ".pascal-snn.lock"


def ensure_dir(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Create ``path`` (and parents) and check it is writable; clear error otherwise."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create output folder '{folder}': {exc.strerror}; choose another {flag}"
        ) from exc
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"output folder '{folder}' is not writable; choose another {flag}")
    return folder


def check_writable(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Refuse (ConfigError) an output folder that could not be created or written, without
    creating anything: an existing folder must be writable, else its nearest existing parent
    must be a writable folder."""
    folder = Path(path)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == folder else f"cannot be created: '{probe}' is a file"
        raise ConfigError(f"output folder '{folder}' {what}; choose another {flag}")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == folder else f" (its parent '{probe}' is not writable)"
        raise ConfigError(f"output folder '{folder}' is not writable{where}; choose another {flag}")
    return folder


@contextmanager
def run_folder(
    path: str | os.PathLike[str], command: str, flag: str = "--out", enabled: bool = True
) -> Iterator[Path]:
    """Hold the output folder ``path`` for one command's whole life (one run per folder).

    Creates it if needed and takes an exclusive lock on ``PATH/.pascal-snn.lock``
    (``fcntl.flock``; the kernel drops it when the process ends, so a killed run leaves no
    stale lock). A second command on the same folder is refused naming the holder's PID. If the
    command fails before writing anything else into a folder it created, the folder is removed
    again: a refused run leaves nothing behind. ``enabled=False`` (other ranks of a torchrun
    job) yields the path and does nothing else.
    """
    folder = Path(path).absolute()
    if not enabled:
        yield folder
        return
    check_writable(folder, flag)
    created = _first_missing(folder)
    ensure_dir(folder, flag)
    lock = folder / LOCK_FILE
    lock_existed = lock.exists()
    try:
        handle = _acquire(lock, command, folder, flag)
    except ConfigError:
        if not lock_existed:
            _remove_if_untouched(folder, lock, created, lock_existed)
        raise
    try:
        yield folder
    except BaseException:
        _release(handle)
        _remove_if_untouched(folder, lock, created, lock_existed)
        raise
    _release(handle)


def _first_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet (None: it exists)."""
    missing = None
    probe = folder.absolute()
    while not probe.exists():
        missing = probe
        probe = probe.parent
    return missing


def _acquire(lock: Path, command: str, folder: Path, flag: str) -> IO[str]:
    try:
        handle = open(lock, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run's life
    except OSError as exc:
        raise ConfigError(
            f"cannot write into '{folder}' ({exc.strerror}); choose another {flag}"
        ) from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            f"'{folder}' is in use by another pascal-snn command ({holder}); wait for it to "
            f"finish, or choose another {flag}"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"PID {os.getpid()}: {command}\n")
    handle.flush()
    return handle


def _release(handle: IO[str]) -> None:
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


def _remove_if_untouched(
    folder: Path, lock: Path, created: Path | None, lock_existed: bool
) -> None:
    """After a failure: remove what :func:`run_folder` itself created (the lock file; the
    folders from ``created`` down to ``folder``) if nothing else was written into them."""
    if lock_existed:
        return
    lock.unlink(missing_ok=True)
    if created is None:
        return
    current = folder
    while True:
        try:
            current.rmdir()  # only if empty
        except OSError:
            return
        if current == created:
            return
        current = current.parent


def warn(message: str) -> None:
    """A warning line on stderr (the run goes on)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
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
