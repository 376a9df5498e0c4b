"""Figure helpers: matplotlib ``Figure`` objects (no pyplot global state), saved atomically."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from pascal_snn.io import atomic_write_bytes

__all__ = ["accuracy_vs_timesteps", "layer_axis", "levels_text", "new_figure", "save_figure"]


def new_figure(width: float = 6.4, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def layer_axis(ax: Axes, names: Sequence[str], label: str) -> None:
    """Every per-layer plot names its layers the same way: the full module name, slanted."""
    ax.set_xticks(list(range(len(names))), list(names), rotation=45, ha="right", fontsize=8)
    ax.set_xlabel(label)


def levels_text(levels: Sequence[int]) -> str:
    """``L = 4`` for a uniform network, ``per-layer L = 2,1,2,4`` otherwise."""
    if len(set(levels)) == 1:
        return f"L = {levels[0]}"
    return "per-layer L = " + ",".join(map(str, levels))


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Render ``fig`` to PNG in memory, then write it atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def accuracy_vs_timesteps(
    timesteps: Sequence[int],
    vanilla_accuracy: Sequence[float],
    ann_accuracy: float,
    pasc_accuracy: float,
    pasc_timesteps: float,
    pasc_label: str = "PASC",
    vanilla_agreement: Sequence[float] | None = None,
) -> Figure:
    """Vanilla IF accuracy against T (log scale), the ANN level, and PASC at T = L marked;
    optionally the vanilla network's agreement with the ANN's predictions."""
    fig = new_figure()
    ax = fig.add_subplot()
    vanilla = [100 * a for a in vanilla_accuracy]
    ax.plot(timesteps, vanilla, "o-", color="tab:blue", label="vanilla IF (QCFS SNN) accuracy")
    if vanilla_agreement is not None:
        agree = [100 * a for a in vanilla_agreement]
        ax.plot(timesteps, agree, "s:", color="tab:cyan", label="vanilla IF agreement with ANN")
    ax.axhline(100 * ann_accuracy, color="gray", linestyle="--", label="ANN (QCFS)")
    pasc = f"{pasc_label} at T = {pasc_timesteps:g}"
    ax.plot([pasc_timesteps], [100 * pasc_accuracy], "*", ms=16, color="tab:red", label=pasc)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel("timesteps T per layer")
    ax.set_ylabel("test accuracy / agreement (%)" if vanilla_agreement else "test accuracy (%)")
    ax.set_title("Accuracy against timesteps")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return fig
