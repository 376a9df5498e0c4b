"""Run the ``pascal-snn`` command as a user runs it: a subprocess, this checkout's sources."""

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def env(**extra: str) -> dict[str, str]:
    """The environment of a child process: one thread, this checkout first on the path."""
    out = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), out.get("PYTHONPATH")]))
    return out


def cli(*args, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m pascal_snn ARGS`` (what the ``pascal-snn`` script runs)."""
    done = subprocess.run(
        [sys.executable, "-m", "pascal_snn", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
    )
    if check and done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
