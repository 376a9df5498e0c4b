"""Progress of a pass over images: plain lines off a terminal, a bar on one, nothing when off."""

import io
import re

import torch

from pascal_snn.progress import ImageProgress


def _batches(sizes):
    return [(torch.zeros(n, 1, 2, 2), torch.zeros(n)) for n in sizes]


def test_plain_lines_count_images_and_end_with_a_done_line():
    stream = io.StringIO()
    progress = ImageProgress(interval=0.0, stream=stream, tty=False)
    batches = _batches([4, 4, 2])
    assert list(progress.wrap(batches, "PASC", total=10)) == batches  # batches pass unchanged
    lines = stream.getvalue().splitlines()
    assert [re.match(r"PASC: (\d+)/10 images, \d+ s", line).group(1) for line in lines] == [
        "0", "4", "8", "10",
    ]  # fmt: skip
    assert lines[-1].endswith(", done")


def test_a_consumer_that_stops_early_still_gets_a_final_line():
    stream = io.StringIO()
    wrapped = ImageProgress(interval=3600.0, stream=stream, tty=False).wrap(
        _batches([5, 5, 5]), "AL", total=7
    )
    next(wrapped), next(wrapped)
    wrapped.close()
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[-1]]
    assert re.fullmatch(r"AL: 7/7 images, \d+ s, done", stream.getvalue().strip())


def test_a_terminal_gets_a_bar_and_disabled_shows_nothing():
    stream = io.StringIO()
    list(ImageProgress(stream=stream, tty=True).wrap(_batches([3, 3]), "energy", total=6))
    assert "energy" in stream.getvalue() and "6/6" in stream.getvalue()
    quiet = io.StringIO()
    list(ImageProgress(enabled=False, stream=quiet).wrap(_batches([3]), "x"))
    assert quiet.getvalue() == ""
