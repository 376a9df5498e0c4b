"""A grammar of random QCFS models, and the check that the converter is exact or refuses.

``random_model(seed)`` builds, from a seeded ``random.Random``, a model as a small program
over registers: conv/linear with and without bias, BatchNorm before and after, QCFS with L in
1–16 and θ from 1e-3 to 100 (new or shared), average/max/adaptive pooling, residual adds and
subtractions, ``torch.cat`` of branches with different L (along channels or a spatial dim),
shared modules called twice, positive and negative scalings, constant shifts,
flatten/view/reshape/transpose/permute/chunk/slicing, upsampling and padding, on 1-D, 2-D and
3-D inputs and plain ``[B, F]`` MLPs — and, now and then, an operation that touches the batch
dimension or is not exact, which the converter must refuse. Every candidate operation is
tried on a probe tensor while the program is built, so every model runs as an ANN.

``check(seed)`` converts the model (float64) and returns an :class:`Outcome`: refused (with
the reason), or converted and compared against the ANN on two batch sizes — logits within
1e-12·scale, equal predictions, and every neuron's spike count equal to the ANN's QCFS level
(per call site), except where the ANN's own pre-activation lies on a level boundary (within
rounding; reported, never counted as wrong). Any other exception is a crash.
"""

from __future__ import annotations

import math
import random
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pascal_snn import QCFS, ConversionError, convert
from pascal_snn.convert import PascNetwork

Fn = Callable[[nn.ModuleDict, list[torch.Tensor]], torch.Tensor]

TOLERANCE = 1e-12
BOUNDARY = 1e-9


@dataclass
class Step:
    """One instruction: ``fn(modules, [registers[i] for i in inputs])``."""

    text: str
    inputs: tuple[int, ...]
    fn: Fn


class Program(nn.Module):
    """A model written as straight-line code over registers (fx traces through the loop)."""

    def __init__(self, modules: nn.ModuleDict, steps: Sequence[Step]) -> None:
        super().__init__()
        self.layers = modules
        self.steps = list(steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        regs = [x]
        for step in self.steps:
            regs.append(step.fn(self.layers, [regs[i] for i in step.inputs]))
        return regs[-1]

    def describe(self) -> str:
        """The program, one register per line (``r0`` is the input)."""
        lines = []
        for i, step in enumerate(self.steps):
            names = [f"r{j}" for j in step.inputs]
            text = step.text
            for k in range(text.count("{}")):
                text = text.replace("{}", names[min(k, len(names) - 1)], 1)
            lines.append(f"r{i + 1} = {text}")
        return "\n".join(lines)


class _Builder:
    """Grows a program one random operation at a time, checking each on a probe batch."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.modules = nn.ModuleDict()
        self.steps: list[Step] = []
        self.regs: list[torch.Tensor] = []  # probe values (batch 2), one per register
        self.qcfs: list[str] = []
        self.matmuls: list[str] = []
        self.broken = False  # an operation touched the batch: only a head may follow

    # -- registers and modules ---------------------------------------------------------------
    def add_module(self, prefix: str, module: nn.Module) -> str:
        name = f"{prefix}{len(self.modules)}"
        self.modules[name] = module.double()
        return name

    def emit(self, text: str, inputs: Sequence[int], fn: Fn) -> bool:
        """Append a step if it runs on the probe (and keeps values small); else drop it."""
        try:
            with torch.no_grad():
                out = fn(self.modules, [self.regs[i] for i in inputs])
        except Exception:
            return False
        if not isinstance(out, torch.Tensor) or out.numel() == 0 or out.numel() > 2 * 600:
            return False
        self.steps.append(Step(text, tuple(inputs), fn))
        self.regs.append(out)
        return True

    @property
    def last(self) -> int:
        return len(self.regs) - 1

    def shape(self, i: int | None = None) -> tuple[int, ...]:
        return tuple(self.regs[self.last if i is None else i].shape[1:])

    # -- random pieces -----------------------------------------------------------------------
    def theta(self) -> float:
        if self.rng.random() < 0.25:
            return math.exp(self.rng.uniform(math.log(1e-3), math.log(100.0)))
        return math.exp(self.rng.uniform(math.log(0.05), math.log(4.0)))

    def new_qcfs(self) -> str:
        name = self.add_module("q", QCFS(self.rng.randint(1, 16), self.theta()))
        self.qcfs.append(name)
        return name

    def qcfs_name(self) -> str:
        if self.qcfs and self.rng.random() < 0.3:
            return self.rng.choice(self.qcfs)  # a shared QCFS: a second call site
        return self.new_qcfs()

    def matmul(self, shape: tuple[int, ...], keep: bool = False) -> str | None:
        """A new conv/linear for per-sample ``shape`` (``keep``: same output shape)."""
        bias = self.rng.random() < 0.7
        rank = len(shape) + 1
        if rank == 2 or (rank > 2 and self.rng.random() < 0.15):
            out = shape[-1] if keep else self.rng.randint(2, 12)
            return self.add_module("fc", nn.Linear(shape[-1], out, bias=bias))
        if rank > 5:
            return None
        conv = {3: nn.Conv1d, 4: nn.Conv2d, 5: nn.Conv3d}[rank]
        k = self.rng.choice([1, 3]) if keep else self.rng.choice([1, 2, 3])
        pad = k // 2 if keep or self.rng.random() < 0.7 else 0
        stride = 1 if keep or min(shape[1:]) < 4 or self.rng.random() < 0.7 else 2
        out = shape[0] if keep else self.rng.randint(1, 6)
        groups = shape[0] if out == shape[0] and self.rng.random() < 0.25 else 1  # depthwise
        mode = "reflect" if pad and self.rng.random() < 0.1 else "zeros"
        layer = conv(shape[0], out, k, stride, pad, groups=groups, bias=bias, padding_mode=mode)
        return self.add_module("conv", layer)

    def batchnorm(self, shape: tuple[int, ...]) -> str | None:
        rank = len(shape) + 1
        kind = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
        if rank not in kind:
            return None
        bn = kind[rank](shape[0])
        c = shape[0]
        with torch.no_grad():
            bn.running_mean.copy_(torch.tensor([self.rng.uniform(-1, 1) for _ in range(c)]))
            bn.running_var.copy_(torch.tensor([self.rng.uniform(0.3, 2) for _ in range(c)]))
            bn.weight.copy_(torch.tensor([self.rng.uniform(-1.5, 1.5) for _ in range(c)]))
            bn.bias.copy_(torch.tensor([self.rng.uniform(-1, 1) for _ in range(c)]))
        return self.add_module("bn", bn)

    def layer_chain(self, i: int, keep: bool = False, qcfs: bool = True) -> bool:
        """``[BN] → conv/linear → [BN] → [QCFS]`` on register ``i``."""
        start = len(self.steps)
        if self.rng.random() < 0.15:
            bn = self.batchnorm(self.shape(i))
            if bn is not None and self.emit(f"{bn}({{}})", [i], lambda m, a, n=bn: m[n](a[0])):
                i = self.last
        mm = self.matmul(self.shape(i), keep)
        if mm is None or not self.emit(f"{mm}({{}})", [i], lambda m, a, n=mm: m[n](a[0])):
            del self.steps[start:], self.regs[start + 1 :]
            return False
        self.matmuls.append(mm)
        if self.rng.random() < 0.4:
            bn = self.batchnorm(self.shape())
            if bn is not None:
                self.emit(f"{bn}({{}})", [self.last], lambda m, a, n=bn: m[n](a[0]))
        if qcfs:
            q = self.qcfs_name()
            self.emit(f"{q}({{}})", [self.last], lambda m, a, n=q: m[n](a[0]))
        return True

    # -- the grammar -------------------------------------------------------------------------
    def step(self) -> None:
        if not self.shape():  # [B]: back to [B, 1]
            self.emit("{}.unsqueeze(-1)", [self.last], lambda m, a: a[0].unsqueeze(-1))
            return
        ops: list[tuple[float, Callable[[], Any]]] = [
            (3.0, lambda: self.layer_chain(self.last)),
            (1.5, self.neuron),
            (1.0, self.pool),
            (1.0, self.scale),
            (0.5, self.shift),
            (1.0, self.residual),
            (1.2, self.cat),
            (1.5, self.reshape),
            (0.7, self.shared_matmul),
            (0.5, self.misc),
            (0.35, self.bad),
        ]
        total = sum(w for w, _ in ops)
        pick = self.rng.uniform(0, total)
        for weight, op in ops:
            pick -= weight
            if pick <= 0:
                op()
                return

    def neuron(self) -> None:
        q = self.qcfs_name()
        self.emit(f"{q}({{}})", [self.last], lambda m, a, n=q: m[n](a[0]))

    def pool(self) -> None:
        rank = len(self.shape()) + 1
        if rank < 3:
            return
        dims = rank - 2
        spatial = self.shape()[1:]
        r = self.rng.random()
        if r < 0.55 and min(spatial) >= 2:
            kind = self.rng.choice(["avg", "max"])
            cls = {
                ("avg", 1): nn.AvgPool1d,
                ("avg", 2): nn.AvgPool2d,
                ("avg", 3): nn.AvgPool3d,
                ("max", 1): nn.MaxPool1d,
                ("max", 2): nn.MaxPool2d,
                ("max", 3): nn.MaxPool3d,
            }
            stride = self.rng.choice([None, 1])
            name = self.add_module("pool", cls[(kind, dims)](2, stride=stride))
            self.emit(f"{name}({{}})", [self.last], lambda m, a, n=name: m[n](a[0]))
        elif r < 0.8:
            kind = self.rng.choice(["avg", "max"])
            size = self.rng.choice([1, 2])
            cls = {
                1: (nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d),
                2: (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d),
                3: (nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d),
            }[dims]
            name = self.add_module("apool", cls[kind == "max"](size))
            self.emit(f"{name}({{}})", [self.last], lambda m, a, n=name: m[n](a[0]))
        elif r < 0.9 and dims == 2:
            self.emit(
                "F.max_pool2d({}, 2, ceil_mode=True)",
                [self.last],
                lambda m, a: F.max_pool2d(a[0], 2, ceil_mode=True),
            )
        else:
            axes = list(range(2, rank))
            how = self.rng.choice(["mean", "amax"])
            if how == "mean":
                self.emit(f"{{}}.mean({axes})", [self.last], lambda m, a: a[0].mean(axes))
            else:
                self.emit(f"{{}}.amax({axes})", [self.last], lambda m, a: a[0].amax(axes))

    def scale(self) -> None:
        c = self.rng.uniform(0.3, 2.5) * (1 if self.rng.random() < 0.7 else -1)
        if self.rng.random() < 0.5:
            self.emit(f"{{}} * {c:.3g}", [self.last], lambda m, a: a[0] * c)
        elif self.rng.random() < 0.5:
            self.emit(f"{{}} / {c:.3g}", [self.last], lambda m, a: a[0] / c)
        else:
            self.emit("-{}", [self.last], lambda m, a: -a[0])

    def shift(self) -> None:
        c = self.rng.uniform(-1, 1)
        if self.rng.random() < 0.5:
            self.emit(f"{{}} + {c:.3g}", [self.last], lambda m, a: a[0] + c)
        else:
            self.emit(f"{c:.3g} - {{}}", [self.last], lambda m, a: c - a[0])

    def residual(self) -> None:
        base = self.last
        if not self.layer_chain(base, keep=True, qcfs=self.rng.random() < 0.6):
            return
        sub = self.rng.random() < 0.25
        sign = "-" if sub else "+"
        self.emit(
            f"{{}} {sign} {{}}",
            [base, self.last],
            (lambda m, a: a[0] - a[1]) if sub else (lambda m, a: a[0] + a[1]),
        )

    def cat(self) -> None:
        """Two branches (IF outputs of different L and θ) concatenated on a non-batch dim."""
        base = self.last
        branches = []
        for _ in range(2):
            if self.rng.random() < 0.35:  # straight from the value: codes of two spike values
                q = self.new_qcfs()
                self.emit(f"{q}({{}})", [base], lambda m, a, n=q: m[n](a[0]))
            elif not self.layer_chain(base, keep=True):
                return
            branches.append(self.last)
        rank = len(self.shape()) + 1
        dim = self.rng.randint(1, rank - 1)
        if self.rng.random() < 0.4:
            dim -= rank  # the same dim, written negative
        if self.rng.random() < 0.75 or dim < 0:
            self.emit(
                f"torch.cat([{{}}, {{}}], dim={dim})",
                branches,
                lambda m, a: torch.cat([a[0], a[1]], dim=dim),
            )
        else:  # interleaved: stack, then merge the new dim into the next
            self.emit(
                f"torch.stack([{{}}, {{}}], dim={dim}).flatten({dim}, {dim + 1})",
                branches,
                lambda m, a: torch.stack([a[0], a[1]], dim=dim).flatten(dim, dim + 1),
            )

    def reshape(self) -> None:
        shape = self.shape()
        rank = len(shape) + 1
        choices: list[tuple[str, Fn]] = [
            ("{}.view(b, -1)", lambda m, a: a[0].view(a[0].size(0), -1)),
            ("torch.flatten({}, 1)", lambda m, a: torch.flatten(a[0], 1)),
            ("{}.unsqueeze(1).squeeze(1)", lambda m, a: a[0].unsqueeze(1).squeeze(1)),
        ]
        if rank >= 3:
            choices += [
                ("{}.transpose(1, 2)", lambda m, a: a[0].transpose(1, 2).contiguous()),
                ("{}.transpose(-1, -2)", lambda m, a: a[0].transpose(-1, -2)),
                (
                    "{}.reshape(b, c, -1)",
                    lambda m, a: a[0].reshape(a[0].shape[0], a[0].shape[1], -1),
                ),
                ("{}.permute(0, 2, …, 1)", lambda m, a: a[0].permute(0, *range(2, rank), 1)),
            ]
        if rank >= 4:
            choices.append(("channel shuffle", lambda m, a: _shuffle(a[0], 2)))
        if shape[0] >= 2:
            choices += [
                ("{}[:, :k]", lambda m, a: a[0][:, : a[0].shape[1] // 2 + 1]),
                (
                    "torch.cat({}.chunk(2, dim=1), 1)[swap]",
                    lambda m, a: torch.cat(a[0].chunk(2, dim=1)[::-1], 1),
                ),
                ("{}[..., ::2]", lambda m, a: a[0][..., ::2]),
            ]
        if rank >= 3:
            flat = self.add_module("flat", nn.Flatten())
            choices.append(
                (
                    "{}.unflatten(1, (c, -1)) after nn.Flatten",
                    lambda m, a, n=flat: m[n](a[0]).unflatten(1, (shape[0], -1)),
                )
            )
        text, fn = self.rng.choice(choices)
        self.emit(text, [self.last], fn)

    def shared_matmul(self) -> None:
        """Call an existing conv/linear again (a second call site, maybe at another T)."""
        shape = self.shape()
        fits = []
        for name in self.matmuls:
            mod = self.modules[name]
            if (isinstance(mod, nn.Linear) and shape[-1] == mod.in_features) or (
                isinstance(mod, nn.modules.conv._ConvNd)
                and len(shape) == mod.weight.dim() - 1
                and shape[0] == mod.in_channels
            ):
                fits.append(name)
        if not fits:
            self.layer_chain(self.last)
            return
        name = self.rng.choice(fits)
        if self.emit(f"{name}({{}})  # again", [self.last], lambda m, a, n=name: m[n](a[0])):
            self.neuron()

    def misc(self) -> None:
        rank = len(self.shape()) + 1
        r = self.rng.random()
        if r < 0.3:
            name = self.add_module("drop", self.rng.choice([nn.Dropout(0.3), nn.Identity()]))
            self.emit(f"{name}({{}})", [self.last], lambda m, a, n=name: m[n](a[0]))
        elif r < 0.6 and rank == 4:
            name = self.add_module("up", nn.Upsample(scale_factor=2, mode="nearest"))
            self.emit(f"{name}({{}})", [self.last], lambda m, a, n=name: m[n](a[0]))
        elif r < 0.8 and rank >= 3:
            self.emit("F.pad({}, (1, 1))", [self.last], lambda m, a: F.pad(a[0], (1, 1)))
        elif rank == 4:
            self.emit(
                "F.interpolate(bilinear)",
                [self.last],
                lambda m, a: F.interpolate(a[0], scale_factor=2, mode="bilinear"),
            )
        else:
            self.emit("{}.sum(-1)", [self.last], lambda m, a: a[0].sum(-1))

    def bad(self) -> None:
        """Operations that touch the batch or are not exact: the converter must refuse them."""
        rank = len(self.shape()) + 1
        choices: list[tuple[str, Fn]] = [
            ("{}.sum(0, keepdim=True)", lambda m, a: a[0].sum(0, keepdim=True)),
            (f"{{}}.sum({-rank}, keepdim=True)", lambda m, a: a[0].sum(-rank, keepdim=True)),
            (f"torch.cat([{{}}, {{}}], {-rank})", lambda m, a: torch.cat([a[0], a[0]], -rank)),
            ("{}.flip(0)", lambda m, a: a[0].flip(0)),
            ("{}.cumsum(0)", lambda m, a: a[0].cumsum(0)),
            ("{}.roll(1, 0)", lambda m, a: a[0].roll(1, 0)),
            ("{}[:1]", lambda m, a: a[0][:1]),
            ("{} * {}", lambda m, a: a[0] * a[0]),
            ("torch.softmax({}, 1)", lambda m, a: torch.softmax(a[0], 1)),
            ("F.relu({})", lambda m, a: F.relu(a[0])),
        ]
        if rank >= 3:
            choices.append(("{}.transpose(0, 1)", lambda m, a: a[0].transpose(0, 1)))
        text, fn = self.rng.choice(choices)
        if self.emit(text, [self.last], fn):
            self.broken = text not in ("{} * {}", "torch.softmax({}, 1)", "F.relu({})")

    def head(self, classes: int) -> None:
        """Flatten and a linear classifier (whatever the batch layout, after a bad op)."""
        if self.broken:
            self.emit(
                "{}.reshape(len, -1).mean(1, keepdim=True)",
                [self.last],
                lambda m, a: a[0].reshape(a[0].shape[0], -1).mean(1, keepdim=True),
            )
        elif not self.shape():
            self.emit("{}.unsqueeze(-1)", [self.last], lambda m, a: a[0].unsqueeze(-1))
        elif len(self.shape()) != 1:
            self.emit("{}.flatten(1)", [self.last], lambda m, a: a[0].flatten(1))
        fc = self.add_module("head", nn.Linear(self.shape()[-1], classes))
        self.emit(f"{fc}({{}})", [self.last], lambda m, a, n=fc: m[n](a[0]))


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """torchvision's ShuffleNet channel shuffle (when the channels divide)."""
    b, c, h = x.size(0), x.size(1), x.size(2)
    x = x.view(b, groups, c // groups, h, -1)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, x.size(-1))


INPUTS = {
    "mlp": lambda r: (r.randint(3, 10),),
    "1d": lambda r: (r.randint(1, 3), r.randint(5, 12)),
    "2d": lambda r: (r.randint(1, 3), r.randint(3, 8), r.randint(3, 8)),
    "3d": lambda r: (r.randint(1, 2), r.randint(2, 4), r.randint(3, 5), r.randint(3, 5)),
}


@dataclass
class Example:
    seed: int
    model: Program
    inputs: tuple[torch.Tensor, torch.Tensor]


def random_model(seed: int) -> Example:
    """A random model and two input batches (float64) of different batch sizes."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    kind = rng.choice(list(INPUTS))
    shape = INPUTS[kind](rng)
    builder = _Builder(rng)
    builder.regs.append(torch.randn(2, *shape, dtype=torch.float64))
    builder.layer_chain(0)
    for _ in range(rng.randint(0, 6)):
        if builder.broken:
            break
        builder.step()
    if not builder.qcfs:
        builder.neuron()
    builder.head(rng.randint(2, 5))
    model = Program(builder.modules, builder.steps).double().eval()
    g = torch.Generator().manual_seed(seed)
    b1, b2 = rng.randint(1, 5), rng.randint(2, 6)
    scale = rng.choice([0.5, 1.0, 2.0, 4.0])
    xs = (
        torch.randn(b1, *shape, generator=g, dtype=torch.float64) * scale,
        torch.randn(b2, *shape, generator=g, dtype=torch.float64) * scale,
    )
    return Example(seed, model, xs)


@dataclass
class Outcome:
    """``status``: converted / refused / invalid (the ANN itself fails) / wrong / crashed."""

    seed: int
    status: str
    reason: str = ""
    boundary: int = 0  # neurons whose count differs from the ANN's level at a level boundary
    detail: str = ""
    layers: int = 0
    calls: list[str] = field(default_factory=list)


def _reason(message: str) -> str:
    """A short, stable key for a refusal: the 'why' part, numbers and names stripped."""
    why = message.split(": ", 1)[-1]
    why = re.sub(r"\(shape .*?\)", "", why)
    why = re.sub(r"'[^']*'", "'…'", why)
    why = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "N", why)
    return why.split(". ")[0][:90]


class _Levels:
    """Per call site: the ANN's QCFS level and whether its pre-activation is on a boundary."""

    def __init__(self, model: nn.Module) -> None:
        self.levels: dict[str, torch.Tensor] = {}
        self.boundary: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        self.handles = []
        for name, module in model.named_modules():
            if isinstance(module, QCFS):
                self.handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: QCFS, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
            k = self.calls[name] = self.calls.get(name, 0) + 1
            site = name if k == 1 else f"{name}#{k}"
            u = inputs[0] * module.L / module.theta.to(inputs[0].dtype) + 0.5
            self.levels[site] = torch.floor(u).clamp(0, module.L).to(torch.int64)
            self.boundary[site] = (u - u.round()).abs() <= BOUNDARY * u.abs().clamp(min=1)

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def compare(model: nn.Module, snn: PascNetwork, x: torch.Tensor) -> tuple[str, int, str]:
    """("ok" | "wrong", boundary neurons, detail) for one batch."""
    counts: dict[str, torch.Tensor] = {}
    handles = [
        layer.register_forward_hook(
            lambda m, i, o, name=name: counts.__setitem__(
                name, (o.reshape(m.L, -1, *o.shape[1:]) != 0).sum(0)
            )
        )
        for name, layer in snn.if_layers()
    ]
    levels = _Levels(model)
    try:
        with torch.no_grad():
            ann = model(x)
            out = snn(x)
    finally:
        levels.remove()
        for h in handles:
            h.remove()
    # In forward order, the first layer whose counts differ from the ANN's levels must differ
    # only where the ANN's pre-activation sits on a level boundary (a tie within rounding);
    # everything after it may then differ too, so the comparison stops there.
    for name, _ in snn.if_layers():
        if name not in levels.levels:
            return "wrong", 0, f"SNN layer {name} has no ANN call site"
        differ = counts[name] != levels.levels[name]
        if bool(differ.any()):
            off = differ & ~levels.boundary[name]
            if bool(off.any()):
                return "wrong", 0, f"{name}: {int(off.sum())} counts differ from the ANN's levels"
            return "ok", int(differ.sum()), f"{name}: ties at a level boundary"
    boundary = 0
    if out.shape != ann.shape:
        return "wrong", 0, f"SNN output {tuple(out.shape)} != ANN {tuple(ann.shape)}"
    scale = float(ann.abs().max()) + 1
    diff = float((out - ann).abs().max())
    if boundary == 0 and diff > TOLERANCE * scale:
        return "wrong", 0, f"max |logit diff| {diff:.3g} > {TOLERANCE} x {scale:.3g}"
    top2 = ann.topk(min(2, ann.shape[-1]), -1).values
    clear = (top2[..., 0] - top2[..., -1]) > 2 * TOLERANCE * scale if ann.shape[-1] > 1 else None
    if boundary == 0 and clear is not None:
        same = out.argmax(-1) == ann.argmax(-1)
        if bool((clear & ~same).any()):
            return "wrong", 0, "a prediction differs"
    return "ok", boundary, ""


def check(seed: int) -> Outcome:
    """Build, convert and compare one random model (see the module docstring)."""
    example = random_model(seed)
    model, (x1, x2) = example.model, example.inputs
    try:
        with torch.no_grad():
            model(x1)
            model(x2)
    except Exception as exc:
        return Outcome(seed, "invalid", detail=f"{type(exc).__name__}: {exc}")
    try:
        snn = convert(model, example_input=x1)
    except ConversionError as exc:
        return Outcome(seed, "refused", _reason(str(exc)), detail=str(exc))
    except Exception:
        return Outcome(seed, "crashed", detail=traceback.format_exc() + model.describe())
    try:
        total = 0
        for x in (x1, x2):
            status, boundary, detail = compare(model, snn, x)
            if status != "ok":
                return Outcome(seed, "wrong", detail=detail + "\n" + model.describe())
            total += boundary
        vanilla = convert(model, "vanilla", timesteps=3)  # whatever PASC takes, vanilla runs
        if vanilla(x2).shape != model(x2).shape:
            return Outcome(seed, "wrong", detail="vanilla output shape differs")
    except Exception:
        return Outcome(seed, "crashed", detail=traceback.format_exc() + model.describe())
    names = [n for n, _ in snn.if_layers()]
    return Outcome(seed, "converted", boundary=total, layers=len(names), calls=names)
