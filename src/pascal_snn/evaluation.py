"""Equivalence evaluation of converted networks (SPEC §3.6, §4).

Two models are equivalent when their logits match for every input. Over a data set this module
counts: ANN and SNN accuracy, ANN↔SNN prediction agreement, the largest |logit difference|,
and *boundary cases*: inputs for which some neuron's spike count differs from its ANN's level,
both computed in the evaluated dtype (docs/design.md, "Exactness"). In float64 there are none;
in float32 they are the inputs where the ANN and the SNN, summing in different orders, round to
different sides of a QCFS level boundary, and every float32 disagreement should be one of them.
A non-finite output (NaN or ±inf logits) is never a correct prediction and never agrees.
The vanilla IF baseline is swept over T from one run per batch (prefix means).

:func:`evaluate` does both in one pass over the data: every batch is moved once, the ANN runs
once, and the PASC and vanilla networks share one trace of the model and one annotation.
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

from pascal_snn.convert import PascNetwork, VanillaNetwork, convert
from pascal_snn.qcfs import level_index, qcfs_layers

__all__ = [
    "EquivalenceResult",
    "Evaluated",
    "VanillaSweep",
    "evaluate",
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
    """Counts over a data set for the ANN and its PASC network in one dtype.

    ``boundary_cases``: inputs where some neuron's spike count differs from the ANN's level;
    ``unexplained_disagreements``: prediction disagreements that are not boundary cases;
    ``nonfinite_outputs``: inputs whose ANN or SNN logits hold NaN or ±inf (each counts as a
    disagreement, never as correct, and is left out of ``max_abs_logit_diff``).
    """

    dtype: str
    images: int
    ann_correct: int
    snn_correct: int
    agreement: int
    boundary_cases: int
    unexplained_disagreements: int
    max_abs_logit_diff: float
    levels: list[int] = field(default_factory=list)
    nonfinite_outputs: int = 0

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
    ``act#k`` (``act`` for the first), as the converter names the IF layer of that call. An
    SNN layer called on several parts of one batch (a network that runs a batch in parts)
    records each part; :meth:`get` joins them in order.
    """

    def __init__(self) -> None:
        self.values: dict[str, list[torch.Tensor]] = {}
        self.handles: list = []
        self.calls: dict[str, int] = {}

    def ann(self, layers: Sequence[tuple[str, nn.Module]]) -> _Recorder:
        for name, layer in layers:

            def hook(module, inputs, output, name=name):
                k = self.calls[name] = self.calls.get(name, 0) + 1
                site = name if k == 1 else f"{name}#{k}"
                level = level_index(output, module.L, module.theta.to(output.dtype))
                self.values.setdefault(site, []).append(level)

            self.handles.append(layer.register_forward_hook(hook))  # fmt: skip
        return self

    def new_forward(self) -> None:
        """Call before each forward: call sites count from 1 again, old values go."""
        self.calls.clear()
        self.values.clear()

    def snn(self, layers: Sequence[tuple[str, nn.Module]]) -> _Recorder:
        for name, layer in layers:

            def hook(module, inputs, output, name=name):
                train = output.reshape(module.L, -1, *output.shape[1:])
                self.values.setdefault(name, []).append((train != 0).sum(0))

            self.handles.append(layer.register_forward_hook(hook))  # fmt: skip
        return self

    def get(self, name: str) -> torch.Tensor:
        parts = self.values[name]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@dataclass
class VanillaSweep:
    """Vanilla IF accuracy at each requested T, from one run of T_max steps per batch.

    ``nonfinite``: per T, images whose vanilla output holds NaN or ±inf (never correct, never
    agreeing); ``ann_nonfinite``: images whose ANN output does (no agreement at any T).
    """

    timesteps: list[int]
    correct: list[int]
    images: int
    agreement: list[int]  # images whose vanilla prediction equals the ANN's, per T
    ann_correct: int  # the ANN's correct predictions on the same images
    nonfinite: list[int] = field(default_factory=list)
    ann_nonfinite: int = 0

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
            "nonfinite": self.nonfinite,
            "ann_nonfinite": self.ann_nonfinite,
        }


@dataclass(frozen=True)
class Evaluated:
    """What :func:`evaluate` measured: the PASC comparison and/or the vanilla sweep."""

    pasc: EquivalenceResult | None
    vanilla: VanillaSweep | None


def _finite(out: torch.Tensor) -> torch.Tensor:
    """Per input: True where every logit is finite."""
    return torch.isfinite(out).flatten(1).all(1)


class _PascTally:
    """Running counts of the PASC comparison (images, ann, snn, agree, boundary, unexplained,
    non-finite) and the largest finite |logit difference|."""

    def __init__(self) -> None:
        self.totals = torch.zeros(7, dtype=torch.int64)
        self.max_diff = torch.zeros((), dtype=torch.float64)

    def add(
        self,
        labels: Tensor,
        ann_out: Tensor,
        snn_out: Tensor,
        boundary: Tensor,
    ) -> None:
        ann_ok, snn_ok = _finite(ann_out), _finite(snn_out)
        both = ann_ok & snn_ok
        ann_pred, snn_pred = ann_out.argmax(1), snn_out.argmax(1)
        agree = (ann_pred == snn_pred) & both
        self.totals += torch.tensor(
            [
                len(labels),
                int(((ann_pred == labels) & ann_ok).sum()),
                int(((snn_pred == labels) & snn_ok).sum()),
                int(agree.sum()),
                int(boundary.sum()),
                int((~agree & ~boundary).sum()),
                int((~both).sum()),
            ]
        )
        if bool(both.any()):
            diff = (ann_out[both].double() - snn_out[both].double()).abs().max().cpu()
            self.max_diff = torch.maximum(self.max_diff, diff)


class _VanillaTally:
    """Running counts of the vanilla sweep: per T correct, agreeing and non-finite outputs;
    the ANN's correct and non-finite outputs; images."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.totals = torch.zeros(3 * steps + 3, dtype=torch.int64)

    def add(self, labels: Tensor, ann_out: Tensor, means: Tensor) -> None:
        ann_ok = _finite(ann_out)
        ann_pred = ann_out.argmax(-1)
        ok = torch.isfinite(means).flatten(2).all(2)  # [T, B]
        preds = means.argmax(-1)
        correct = ((preds == labels) & ok).sum(1).cpu()
        agree = ((preds == ann_pred) & ok & ann_ok).sum(1).cpu()
        bad = (~ok).sum(1).cpu()
        ann = torch.tensor(
            [int(((ann_pred == labels) & ann_ok).sum()), int((~ann_ok).sum()), len(labels)]
        )
        self.totals += torch.cat([correct, agree, bad, ann])


def evaluate(
    model: nn.Module,
    batches: Batches,
    *,
    pasc: bool = True,
    timesteps: Sequence[int] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    max_images: int | None = None,
    reduce: Reducer = _identity,
) -> Evaluated:
    """One pass over ``batches``: the ANN (once per batch, in ``dtype``), its PASC network
    (``pasc``) and the vanilla IF baseline at every T of ``timesteps`` (if given).

    The two networks come from one trace and share their annotation. ``reduce`` sums count
    tensors over processes (identity for one process).
    """
    steps = None if timesteps is None else sorted({int(t) for t in timesteps})
    if steps is not None and (not steps or steps[0] < 1):
        raise ValueError(f"timesteps must be integers >= 1, got {list(timesteps or [])}")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        ann = _cast(model, dtype, device)
        data = take_images(batches, max_images)
        first = next(data, None)
        example = None if first is None else first[0].to(device=device, dtype=dtype)
        snn: PascNetwork | None = None
        vanilla: VanillaNetwork | None = None
        if pasc:
            snn = convert(ann, example_input=example)
            if steps is not None:
                vanilla = snn.vanilla(steps[-1])
        elif steps is not None:
            vanilla = convert(ann, mode="vanilla", timesteps=steps[-1], example_input=example)
        layers = snn.if_layers() if snn is not None and first is not None else []
        names = [n for n, _ in layers]
        ann_levels = _Recorder().ann(qcfs_layers(ann) if names else [])  # order: the trace's
        snn_counts = _Recorder().snn(layers)
        pasc_tally = _PascTally()
        vanilla_tally = _VanillaTally(len(steps or []))
        try:
            with torch.no_grad():
                for images, labels in itertools.chain([] if first is None else [first], data):
                    x = images.to(device=device, dtype=dtype)
                    labels = labels.to(device)
                    ann_levels.new_forward()
                    snn_counts.new_forward()
                    ann_out = ann(x)
                    if snn is not None:
                        snn_out = snn(x)
                        boundary = torch.zeros(len(labels), dtype=torch.bool, device=device)
                        for name in names:
                            diff = snn_counts.get(name) != ann_levels.get(name)
                            boundary |= diff.flatten(1).any(1)
                        pasc_tally.add(labels, ann_out, snn_out, boundary)
                    if vanilla is not None and steps is not None:
                        vanilla_tally.add(labels, ann_out, vanilla.logits_at(x, steps))
        finally:
            ann_levels.remove()
            snn_counts.remove()
    finally:
        model.train(was_training)
    levels = [layer.L for _, layer in qcfs_layers(ann)]  # ann: a copy, its order known
    return Evaluated(
        _pasc_result(pasc_tally, reduce, dtype, levels) if pasc else None,
        None if steps is None else _sweep_result(vanilla_tally, reduce, steps),
    )


def _pasc_result(
    tally: _PascTally, reduce: Reducer, dtype: torch.dtype, levels: list[int]
) -> EquivalenceResult:
    totals = reduce(tally.totals)
    max_diff = reduce_max(tally.max_diff, reduce)
    seen, ann_c, snn_c, agree_c, boundary_c, unexplained, nonfinite = (int(v) for v in totals)
    return EquivalenceResult(
        dtype=str(dtype).replace("torch.", ""),
        images=seen,
        ann_correct=ann_c,
        snn_correct=snn_c,
        agreement=agree_c,
        boundary_cases=boundary_c,
        unexplained_disagreements=unexplained,
        max_abs_logit_diff=float(max_diff),
        levels=levels,
        nonfinite_outputs=nonfinite,
    )


def _sweep_result(tally: _VanillaTally, reduce: Reducer, steps: list[int]) -> VanillaSweep:
    totals = [int(v) for v in reduce(tally.totals)]
    n = len(steps)
    return VanillaSweep(
        timesteps=steps,
        correct=totals[:n],
        images=totals[-1],
        agreement=totals[n : 2 * n],
        ann_correct=totals[3 * n],
        nonfinite=totals[2 * n : 3 * n],
        ann_nonfinite=totals[3 * n + 1],
    )


def evaluate_equivalence(
    model: nn.Module,
    batches: Batches,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    max_images: int | None = None,
    reduce: Reducer = _identity,
) -> EquivalenceResult:
    """Run the ANN and its PASC network in ``dtype`` and compare them (:func:`evaluate`)."""
    result = evaluate(
        model, batches, dtype=dtype, device=device, max_images=max_images, reduce=reduce
    ).pasc
    assert result is not None
    return result


def reduce_max(value: torch.Tensor, reduce: Reducer) -> torch.Tensor:
    """The maximum over processes (only when running distributed, i.e. ``reduce`` is set)."""
    if reduce is _identity or not (dist.is_available() and dist.is_initialized()):
        return value
    out = value.clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def _cast(model: nn.Module, dtype: torch.dtype, device: torch.device) -> nn.Module:
    return copy.deepcopy(model).to(device=device, dtype=dtype).eval()


def sweep_vanilla(
    model: nn.Module,
    batches: Batches,
    timesteps: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    max_images: int | None = None,
    reduce: Reducer = _identity,
) -> VanillaSweep:
    """Accuracy of the vanilla IF baseline at every T in ``timesteps`` (prefix means of one
    run of ``max(timesteps)`` steps per batch), and its agreement with the ANN."""
    result = evaluate(
        model,
        batches,
        pasc=False,
        timesteps=timesteps,
        dtype=dtype,
        device=device,
        max_images=max_images,
        reduce=reduce,
    ).vanilla
    assert result is not None
    return result


def first_reaching(sweep: VanillaSweep, target: float | None = None) -> int | None:
    """Smallest swept T whose accuracy is at least ``target`` (default: the ANN's accuracy on
    the same images); None if none is."""
    target = sweep.ann_accuracy if target is None else target
    for t, acc in zip(sweep.timesteps, sweep.accuracy):
        if acc >= target:
            return t
    return None
