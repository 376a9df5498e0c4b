"""Where data sets are looked for, and the download helper they share."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pascal_snn.errors import DataError

__all__ = ["cache_dir", "download_file"]


def cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/pascal-snn/<name>`` (default ``~/.cache/pascal-snn/<name>``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pascal-snn" / name


def download_file(urls: Sequence[str], folder: Path, filename: str, md5: str) -> None:
    """Fetch ``filename`` into ``folder`` from the first of ``urls`` that works (md5 checked).

    Uses torchvision's downloader; every failure becomes a :class:`DataError` that names the
    file, the folder and the last reason.
    """
    from torchvision.datasets.utils import download_url

    reason = "no mirror given"
    for url in urls:
        try:
            download_url(url, root=str(folder), filename=filename, md5=md5)
            return
        except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
            reason = f"{url}: {exc}"
    raise DataError(
        f"could not download '{filename}' into '{folder}' ({reason}); check the network, or "
        f"fetch the file by hand into that folder (or another one given with --data-dir)"
    )
