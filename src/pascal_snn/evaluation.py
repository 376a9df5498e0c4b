"""Equivalence evaluation of converted networks (SPEC §3.6, §4).

Two models are equivalent when their logits match for every input. Over a data set this module
counts: ANN and SNN accuracy, ANN↔SNN prediction agreement, the largest |logit difference|,
and *boundary cases*: inputs for which some neuron's spike count differs from the level of the
float64 ANN. In float64 there are none; in float32 they are the inputs that sit within rounding
distance of a QCFS level boundary, and every float32 disagreement should be one of them.
The vanilla IF baseline is swept over T from one run per batch (prefix means).

All state is O(1) per layer (running counts); batches stream through. Under
``torch.distributed`` every rank evaluates its shard and the counts are summed.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn

from pascal_snn.convert import convert
from pascal_snn.qcfs import level_index, qcfs_layers

__all__ = [
    "EquivalenceResult",
    "VanillaSweep",
    "evaluate_equivalence",
    "first_reaching",
    "sweep_vanilla",
]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
Reducer = Callable[[torch.Tensor], torch.Tensor]


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def take_images(batches: Batches, max_images: int | None) -> Iterator[tuple[Tensor, Tensor]]:
    """The batches, cut so that at most ``max_images`` images come out in all."""
    seen = 0
    for images, labels in batches:
        if max_images is not None:
            if seen >= max_images:
                return
            images, labels = images[: max_images - seen], labels[: max_images - seen]
        seen += len(labels)
        yield images, labels


@dataclass
class EquivalenceResult:
    """Counts over a data set for the ANN and its PASC network in one dtype."""

    dtype: str
    images: int
    ann_correct: int
    snn_correct: int
    agreement: int
    boundary_cases: int
    unexplained_disagreements: int
    max_abs_logit_diff: float
    levels: list[int] = field(default_factory=list)

    @property
    def ann_accuracy(self) -> float:
        return self.ann_correct / max(self.images, 1)

    @property
    def snn_accuracy(self) -> float:
        return self.snn_correct / max(self.images, 1)

    @property
    def agreement_rate(self) -> float:
        return self.agreement / max(self.images, 1)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(
            ann_accuracy=self.ann_accuracy,
            snn_accuracy=self.snn_accuracy,
            agreement_rate=self.agreement_rate,
        )
        return out


class _Recorder:
    """Forward hooks that keep the last batch's per-layer levels (ANN) or counts (SNN).

    Keys are call sites: the ANN's k-th call of a QCFS module ``act`` in one forward is
    ``act#k`` (``act`` for the first), as the converter names the IF layer of that call.
    """

    def __init__(self) -> None:
        self.values: dict[str, torch.Tensor] = {}
        self.handles: list = []
        self.calls: dict[str, int] = {}

    def ann(self, layers: Sequence[tuple[str, nn.Module]]) -> _Recorder:
        for name, layer in layers:

            def hook(module, inputs, output, name=name):
                k = self.calls[name] = self.calls.get(name, 0) + 1
                site = name if k == 1 else f"{name}#{k}"
                self.values[site] = level_index(output, module.L, module.theta.to(output.dtype))

            self.handles.append(layer.register_forward_hook(hook))  # fmt: skip
        return self

    def new_forward(self) -> None:
        """Call before each forward: call sites count from 1 again."""
        self.calls.clear()

    def snn(self, layers: Sequence[tuple[str, nn.Module]]) -> _Recorder:
        for name, layer in layers:

            def hook(module, inputs, output, name=name):
                train = output.reshape(module.L, -1, *output.shape[1:])
                self.values[name] = (train != 0).sum(0)

            self.handles.append(layer.register_forward_hook(hook))  # fmt: skip
        return self

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def evaluate_equivalence(
    model: nn.Module,
    batches: Batches,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    max_images: int | None = None,
    reduce: Reducer = _identity,
) -> EquivalenceResult:
    """Run the ANN (in ``dtype`` and in float64) and its PASC network (in ``dtype``).

    ``reduce`` sums count tensors over processes (identity for one process).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        ann = _cast(model, dtype, device)
        reference = ann if dtype == torch.float64 else _cast(model, torch.float64, device)
        data = take_images(batches, max_images)
        first = next(data, None)
        example = None if first is None else first[0].to(device=device, dtype=dtype)
        snn = convert(ann, example_input=example)
        layers = snn.if_layers() if first is not None else []
        names = [n for n, _ in layers]
        ref_levels = _Recorder().ann(qcfs_layers(reference))
        snn_counts = _Recorder().snn(layers)
        totals = torch.zeros(6, dtype=torch.int64)  # images, ann, snn, agree, boundary, unexpl.
        max_diff = torch.zeros((), dtype=torch.float64)
        try:
            with torch.no_grad():
                for images, labels in itertools.chain([] if first is None else [first], data):
                    x = images.to(device=device, dtype=dtype)
                    labels = labels.to(device)
                    ref_levels.new_forward()
                    ann_out = ann(x)
                    snn_out = snn(x)
                    if reference is not ann:  # in float64 the ANN forward filled the levels
                        ref_levels.new_forward()
                        reference(x.to(torch.float64))
                    boundary = torch.zeros(len(labels), dtype=torch.bool, device=device)
                    for name in names:
                        diff = snn_counts.values[name] != ref_levels.values[name]
                        boundary |= diff.flatten(1).any(1)
                    ann_pred, snn_pred = ann_out.argmax(1), snn_out.argmax(1)
                    agree = ann_pred == snn_pred
                    totals += torch.tensor(
                        [
                            len(labels),
                            int((ann_pred == labels).sum()),
                            int((snn_pred == labels).sum()),
                            int(agree.sum()),
                            int(boundary.sum()),
                            int((~agree & ~boundary).sum()),
                        ]
                    )
                    diff = (ann_out.double() - snn_out.double()).abs().max().cpu()
                    max_diff = torch.maximum(max_diff, diff)
        finally:
            ref_levels.remove()
            snn_counts.remove()
    finally:
        model.train(was_training)
    totals = reduce(totals)
    max_diff = reduce_max(max_diff, reduce)
    seen, ann_c, snn_c, agree_c, boundary_c, unexplained = (int(v) for v in totals)
    return EquivalenceResult(
        dtype=str(dtype).replace("torch.", ""),
        images=seen,
        ann_correct=ann_c,
        snn_correct=snn_c,
        agreement=agree_c,
        boundary_cases=boundary_c,
        unexplained_disagreements=unexplained,
        max_abs_logit_diff=float(max_diff),
        levels=[layer.L for _, layer in qcfs_layers(model)],
    )


def reduce_max(value: torch.Tensor, reduce: Reducer) -> torch.Tensor:
    """The maximum over processes (only when running distributed, i.e. ``reduce`` is set)."""
    if reduce is _identity or not (dist.is_available() and dist.is_initialized()):
        return value
    out = value.clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def _cast(model: nn.Module, dtype: torch.dtype, device: torch.device) -> nn.Module:
    return copy.deepcopy(model).to(device=device, dtype=dtype).eval()


@dataclass
class VanillaSweep:
    """Vanilla IF accuracy at each requested T, from one run of T_max steps per batch."""

    timesteps: list[int]
    correct: list[int]
    images: int
    agreement: list[int]  # images whose vanilla prediction equals the ANN's, per T
    ann_correct: int  # the ANN's correct predictions on the same images

    @property
    def ann_accuracy(self) -> float:
        return self.ann_correct / max(self.images, 1)

    @property
    def accuracy(self) -> list[float]:
        return [c / max(self.images, 1) for c in self.correct]

    @property
    def agreement_rate(self) -> list[float]:
        return [a / max(self.images, 1) for a in self.agreement]

    def as_dict(self) -> dict:
        return {
            "timesteps": self.timesteps,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "agreement_with_ann": self.agreement_rate,
            "ann_accuracy": self.ann_accuracy,
            "images": self.images,
        }


def sweep_vanilla(
    model: nn.Module,
    batches: Batches,
    timesteps: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    max_images: int | None = None,
    reduce: Reducer = _identity,
) -> VanillaSweep:
    """Accuracy of the vanilla IF baseline at every T in ``timesteps`` (prefix means)."""
    steps = sorted({int(t) for t in timesteps})
    if not steps or steps[0] < 1:
        raise ValueError(f"timesteps must be integers >= 1, got {list(timesteps)}")
    device = torch.device(device)
    ann = _cast(model, dtype, device)
    vanilla = convert(ann, mode="vanilla", timesteps=steps[-1])
    index = torch.tensor([t - 1 for t in steps], device=device)
    correct = torch.zeros(len(steps), dtype=torch.int64)
    agree = torch.zeros(len(steps), dtype=torch.int64)
    ann_correct = torch.zeros(1, dtype=torch.int64)
    seen = 0
    with torch.no_grad():
        for images, labels in take_images(batches, max_images):
            seen += len(labels)
            x = images.to(device=device, dtype=dtype)
            prefix = vanilla.prefix_logits(x)
            preds = prefix.index_select(0, index).argmax(-1)  # [len(steps), B]
            correct += (preds == labels.to(device)).sum(1).cpu()
            ann_pred = ann(x).argmax(-1)
            agree += (preds == ann_pred).sum(1).cpu()
            ann_correct += int((ann_pred == labels.to(device)).sum())
    totals = reduce(torch.cat([correct, agree, ann_correct, torch.tensor([seen])]))
    n = len(steps)
    return VanillaSweep(
        steps,
        [int(c) for c in totals[:n]],
        int(totals[-1]),
        [int(a) for a in totals[n : 2 * n]],
        int(totals[2 * n]),
    )


def first_reaching(sweep: VanillaSweep, target: float | None = None) -> int | None:
    """Smallest swept T whose accuracy is at least ``target`` (default: the ANN's accuracy on
    the same images); None if none is."""
    target = sweep.ann_accuracy if target is None else target
    for t, acc in zip(sweep.timesteps, sweep.accuracy):
        if acc >= target:
            return t
    return None
