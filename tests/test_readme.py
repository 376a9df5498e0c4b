"""The README's Python quick start runs and proves what it says: a trained model, the same
answers from its spiking network, logits equal up to float64 rounding, spikes flowing."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> str:
    text = README.read_text(encoding="utf-8").split("## Python quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", text, flags=re.DOTALL).group(1)


@pytest.mark.slow
def test_quick_start_trains_converts_and_spikes():
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(quick_start(), str(README), "exec"), {"__name__": "readme"})
    lines = dict(line.split(": ", 1) for line in printed.getvalue().splitlines())
    assert float(lines["ANN accuracy"]) > 0.8
    assert lines["same answers"] == "True"
    assert float(lines["max |logit difference|"]) < 1e-9
    spikes = re.findall(r"\('[^']*', (\d+), (\d+)\)", lines["IF layers (name, L, spikes)"])
    assert spikes and all(L == "4" and int(count) > 0 for L, count in spikes)
