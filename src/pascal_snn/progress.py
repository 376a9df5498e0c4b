"""Progress of a pass over images, for the commands (evaluate, al, energy, demo).

On a terminal: a rich progress bar on stderr. Otherwise (CI logs, files): a plain line every
``interval`` seconds and one at the end, each with the images done, the total and the elapsed
time. Only the main process of a torchrun job shows anything.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import IO, Any, TypeVar

__all__ = ["ImageProgress", "batch_size_of"]

T = TypeVar("T")


def batch_size_of(batch: Any) -> int:
    """Images in a batch: ``(images, labels)`` or an image tensor."""
    images = batch[0] if isinstance(batch, (tuple, list)) else batch
    shape = getattr(images, "shape", None)
    return int(shape[0]) if shape else 1


def _known_total(batches: Iterable[Any]) -> int | None:
    """Images a DataLoader will yield (its sampler's length), else None."""
    sampler = getattr(batches, "sampler", None)
    return len(sampler) if isinstance(sampler, Sized) else None


class ImageProgress:
    """Wraps the batches of one pass (:meth:`wrap`) and shows how far it got.

    ``label`` names the pass; ``total`` is the number of images it will see (None: unknown).
    ``enabled=False`` shows nothing; ``tty`` (default: whether ``stream`` is a terminal)
    chooses the bar over plain lines.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        interval: float = 10.0,
        stream: IO[str] | None = None,
        tty: bool | None = None,
    ) -> None:
        self.enabled = enabled
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty

    def wrap(self, batches: Iterable[T], label: str, total: int | None = None) -> Iterator[T]:
        """Yield ``batches`` unchanged, counting their images."""
        if not self.enabled:
            yield from batches
            return
        if total is None:
            total = _known_total(batches)
        if self.tty:
            yield from self._bar(batches, label, total)
        else:
            yield from self._lines(batches, label, total)

    def _lines(self, batches: Iterable[T], label: str, total: int | None) -> Iterator[T]:
        began = last = time.perf_counter()
        done, finished = 0, False
        of = "" if total is None else f"/{total}"
        for batch in batches:
            now = time.perf_counter()
            if now - last >= self.interval:
                last = now
                self._line(f"{label}: {done}{of} images, {now - began:.0f} s")
            done += batch_size_of(batch)
            if total is not None and done >= total and not finished:
                done, finished = total, True  # a consumer may stop after the last image
                self._line(f"{label}: {done}{of} images, {time.perf_counter() - began:.0f} s, done")
            yield batch
        if not finished:
            self._line(f"{label}: {done}{of} images, {time.perf_counter() - began:.0f} s, done")

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _bar(self, batches: Iterable[T], label: str, total: int | None) -> Iterator[T]:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("images"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=False,
        ) as bar:
            task = bar.add_task(label, total=total)
            for batch in batches:
                bar.advance(task, batch_size_of(batch))
                yield batch
            if total is not None:
                bar.update(task, completed=total)
