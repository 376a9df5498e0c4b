"""Benchmark: PASC inference against an efficient ANN and against its own floor, QCFS training, AL.

What it measures (issue 16, items 1, 2, 5), per model, side by side in one process. Every
timed function runs once per round, the order rotating each round; a ratio is taken per
round (both runs of a round saw the same machine load) and reported as the median with its
quartiles over rounds. One torch thread unless a table says otherwise.

  - PASC / (L × ANN): one PASC forward (``convert(model)``, the default path) over L forwards
    of the *efficient* ANN: BatchNorm folded into the convolutions
    (``torch.nn.utils.fusion``) and QCFS on its inference path (``no_grad``).      goal ≤ 1.0
  - PASC / floor: the floor is the same converted network with every PascIF layer replaced by
    a no-op returning a preallocated zero train of the right shape, i.e. the convolution,
    linear, pooling and padding work PASC feeds the L·B images.                   goal ≤ 1.2
  - IF share: the fraction of a PASC forward spent inside PascIF modules (forward hooks).
  - growth: both ratios for L ∈ {2, 4, 8, 16} (batch 64) and batch ∈ {16, 64, 256} (L = 4).
  - QCFS / ReLU training step (the same model with every QCFS → nn.ReLU, SGD), batch 64 and
    128.                                                                           goal ≤ 1.15
  - AL statistics (``pascal_snn.al.layer_metrics``, the user's model as given, BatchNorm
    unfolded) / an efficient eval pass (BN folded, forward + argmax) over the same
    pre-decoded batches.                                                           goal ≤ 1.5
  - exactness of what was timed: PASC logits and every layer's spike counts equal, bit for
    bit, those of the same network with every PascIF running ``pasc_if_reference``, and PASC
    predictions equal the ANN's on the timed batch.
  - peak memory of one PASC forward / one ANN forward (one spawned child per measurement, as
    in benchmarks/memory.py).
  - diagnostics of what bounds PASC / (L × ANN): each PascIF against L QCFS passes, the
    largest convolution on L·B images against L on B, system time and page faults per forward,
    and PASC with every train written over its spent input (``kernel.pasc_if(out=...)``).
  - the IF kernel alone (1 M neurons, T_in = L = 4), per instruction-set variant, beside L
    inference-QCFS passes and a copy of its input (the same bytes), CPU time, one thread.
  - optionally (``--jelly``) PASC / SpikingJelly at T = L, when spikingjelly imports.

Models: VGG-16 and ResNet-18 (CIFAR layout, width 0.25, QCFS L = 4, 3 input channels),
32×32 inputs, batch 64. Weights with realistic spike activity: 400 Adam steps of 64 (one-cycle,
peak lr 2e-3) on Fashion-MNIST zero-padded to 32×32, the gray channel repeated 3 times
(``--dataset synthetic`` where Fashion-MNIST is not installed); the activity reached is
printed (output spikes per neuron per image over the L steps, mean over IF layers).

Figures, with the CPU they ran on and the commands: BENCHMARKS.md §8 (speed) and §9 (memory).
The script prints the CPU model, torch version, kernel variant and allocator settings it ran
with, and writes every median and quartile to ``--json``.

    PYTHONPATH=src python benchmarks/speed.py --weights /tmp/perf/w --json speed.json
        [--models vgg16,resnet18] [--repeats 15] [--threads 1,2] [--growth-L 2,4,8,16]
        [--growth-batch 16,64,256] [--train-batches 64,128] [--al-images 3000] [--jelly]
        [--parts inference,growth,training,al,memory,kernel,diagnostics]
"""

from __future__ import annotations

import argparse
import copy
import gc
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval
from torch.utils.data import DataLoader, Subset

from pascal_snn import DataError, PascNetwork, convert, qcfs_layers, set_levels
from pascal_snn.al import layer_metrics
from pascal_snn.data import build_datasets
from pascal_snn.data.synthetic import synthetic_datasets
from pascal_snn.graph import trace
from pascal_snn.io import save_torch, write_json
from pascal_snn.models import create
from pascal_snn.neuron import pasc_if_reference, thermometer
from pascal_snn.spiking import PascIF

Batch = tuple[torch.Tensor, torch.Tensor]
GOALS = {"pasc_over_L_ann": 1.0, "pasc_over_floor": 1.2, "qcfs_over_relu": 1.15, "al": 1.5}


# -- machine -----------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (else platform's guess)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kernel_note() -> str:
    """Which IF/QCFS implementation this pascal_snn runs (this script also times old trees)."""
    try:
        from pascal_snn import kernel
    except ImportError:
        return "no C kernel in this pascal_snn (torch path)"
    lib = kernel.library()
    return f"C kernel, {lib.isa}" if lib is not None else "C kernel not built (torch path)"


# -- timing ------------------------------------------------------------------------------------
class Times(dict):
    """Per function: wall seconds, process CPU seconds and minor page faults of each round."""


def interleaved(funcs: dict[str, Callable[[], object]], repeats: int) -> Times:
    """Wall seconds of each function in each of ``repeats`` rounds (the order rotating every
    round); ``times.cpu`` holds the process CPU seconds and ``times.faults`` the minor page
    faults of the same calls."""
    names = list(funcs)
    times = Times({n: [] for n in names})
    times.cpu = {n: [] for n in names}
    times.faults = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            cpu, start = time.process_time(), time.perf_counter()
            funcs[name]()
            times[name].append(time.perf_counter() - start)
            times.cpu[name].append(time.process_time() - cpu)
            times.faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
    return times


def quartiles(values: list[float]) -> dict[str, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": q2, "q1": q1, "q3": q3}


def ratio(times: dict[str, list[float]], num: str, den: str, scale: float = 1.0) -> dict:
    """Quartiles over rounds of ``num / (scale · den)``, each round's pair measured together."""
    return quartiles([a / (scale * b) for a, b in zip(times[num], times[den])])


def summary(t: Times, ratios: dict[str, tuple[str, str, float]]) -> dict:
    """Medians per function (wall, CPU, page faults) and each ratio by wall and by CPU time."""
    out: dict = {
        "median_s": {k: statistics.median(v) for k, v in t.items()},
        "median_cpu_s": {k: statistics.median(v) for k, v in t.cpu.items()},
        "median_page_faults": {k: statistics.median(v) for k, v in t.faults.items()},
    }
    for key, (num, den, scale) in ratios.items():
        out[key] = ratio(t, num, den, scale)
        out[key + "_cpu"] = ratio(t.cpu, num, den, scale)
    return out


def fmt(r: dict) -> str:
    return f"{r['median']:.3f} [{r['q1']:.3f}, {r['q3']:.3f}]"


# -- data --------------------------------------------------------------------------------------
def datasets(name: str, channels: int, data_dir: str | None):
    """(train, test) with 32×32 images of ``channels`` channels (gray repeated)."""
    if name == "synthetic":
        return synthetic_datasets(6400, 3200, channels=channels, image_size=32, noise=0.5)
    try:
        train, test, _ = build_datasets(name, data_dir, augment=False, image_size=32)
    except DataError as exc:
        raise SystemExit(f"speed.py: {exc}\n(run with --dataset synthetic instead)") from exc
    return train, test


def batches(dataset, batch: int, channels: int, seed: int | None = None) -> Iterator[Batch]:
    """Batches in order (``seed=None``) or shuffled with ``seed``; gray repeated to channels."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    for x, y in DataLoader(dataset, batch_size=batch, shuffle=seed is not None, generator=g):
        if x.shape[1] != channels:
            x = x.expand(-1, channels, -1, -1).contiguous()
        yield x, y


def forever(dataset, batch: int, channels: int) -> Iterator[Batch]:
    epoch = 0
    while True:
        yield from batches(dataset, batch, channels, seed=epoch)
        epoch += 1


def first_images(dataset, count: int, channels: int) -> Batch:
    """The first ``count`` test images as one batch (repeated if the set is smaller)."""
    xs, ys = [], []
    for x, y in batches(dataset, min(count, 512), channels):
        xs.append(x)
        ys.append(y)
        if sum(len(v) for v in ys) >= count:
            break
    x, y = torch.cat(xs), torch.cat(ys)
    while len(x) < count:
        x, y = torch.cat([x, x]), torch.cat([y, y])
    return x[:count].contiguous(), y[:count]


# -- networks ----------------------------------------------------------------------------------
def set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def efficient_ann(model: nn.Module) -> fx.GraphModule:
    """The ANN as one would deploy it: eval mode, every BatchNorm folded into the conv/linear
    layer before it (``torch.nn.utils.fusion``); QCFS runs its inference path under no_grad."""
    gm = trace(copy.deepcopy(model).eval())
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        source = node.args[0]
        if not (isinstance(source, fx.Node) and source.op == "call_module"):
            continue
        layer = modules[source.target]
        if len(source.users) != 1:
            continue
        if isinstance(layer, nn.Conv2d):
            fused = fuse_conv_bn_eval(layer, modules[node.target])
        elif isinstance(layer, nn.Linear):
            fused = fuse_linear_bn_eval(layer, modules[node.target])
        else:
            continue
        set_module(gm, source.target, fused)
        node.replace_all_uses_with(source)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    left = [n for n, m in gm.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if left:
        raise RuntimeError(f"BatchNorm left unfolded: {left}")
    return gm.eval()


class NoIF(nn.Module):
    """A PascIF's stand-in that costs nothing: a preallocated zero train ``[L·B, ...]``."""

    def __init__(self, L: int, t_in: int) -> None:
        super().__init__()
        self.L, self.t_in = L, t_in
        self.zeros: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:  # a residual add fused into the neuron stays in the floor
            x = x + y
        shape = (self.L * (x.shape[0] // self.t_in), *x.shape[1:])
        if self.zeros is None or self.zeros.shape != shape or self.zeros.dtype != x.dtype:
            self.zeros = x.new_zeros(shape)
        return self.zeros


def floor_network(pasc: PascNetwork) -> PascNetwork:
    """``pasc`` with every PascIF a no-op: what PASC costs without its neurons."""
    floor = copy.deepcopy(pasc)
    for name, layer in floor.if_layers():
        set_module(floor.graph, name, NoIF(layer.L, layer.t_in))
    return floor


def _reference_forward(
    self: PascIF, x: torch.Tensor, y: torch.Tensor | None = None
) -> torch.Tensor:
    """PascIF.forward with the reference neuron (same bookkeeping, the spec's algorithm), on
    ``x + y`` as the unfused network adds them when a residual add is fused in."""
    if y is not None:
        x = x + y
    steps = x.reshape(self.t_in, x.shape[0] // self.t_in, *x.shape[1:])
    count, c = pasc_if_reference(steps, self.theta, self.L)
    self.record(steps, (c.excitatory, c.inhibitory, c.output))
    return thermometer(count, self.L, (self.theta / self.L).to(x.dtype)).flatten(0, 1)


def reference_network(pasc: PascNetwork) -> PascNetwork:
    """``pasc`` with Algorithm 1 layers run by the reference neuron; the input layer (Algorithm 2,
    the ANN's own QCFS formula) is its own reference."""
    ref = copy.deepcopy(pasc)
    for _, layer in ref.if_layers():
        if not layer.from_image:
            layer.forward = types.MethodType(_reference_forward, layer)  # type: ignore[method-assign]
    return ref


def layer_counts(net: PascNetwork) -> list[tuple[int, int, int]]:
    return [
        (int(m.excitatory), int(m.inhibitory), int(m.output_spikes)) for _, m in net.if_layers()
    ]


@torch.no_grad()
def exactness(model: nn.Module, pasc: PascNetwork, x: torch.Tensor) -> dict:
    """What was timed is exact: PASC = reference neuron bit for bit; predictions = ANN's."""
    ref = reference_network(pasc)
    pasc.reset_stats()
    ref.reset_stats()
    out, out_ref = pasc(x), ref(x)
    counts, counts_ref = layer_counts(pasc), layer_counts(ref)
    pasc.reset_stats()
    ann = model.eval()(x)
    rates = [
        int(m.output_spikes) / (len(x) * m.neurons * m.L) for _, m in ref.if_layers() if m.neurons
    ]
    return {
        "logits_bit_identical_to_reference_neuron": bool(torch.equal(out, out_ref)),
        "spike_counts_equal_reference_neuron": counts == counts_ref,
        "predictions_equal_ann": bool(torch.equal(out.argmax(1), ann.argmax(1))),
        "max_abs_logit_diff_vs_ann_float32": float((out - ann).abs().max()),
        "mean_output_spike_rate": statistics.fmean(rates),
        "output_spike_rate_by_layer": [round(r, 4) for r in rates],
    }


def relu_twin(model: nn.Module) -> nn.Module:
    """The same network with every QCFS replaced by nn.ReLU."""
    twin = copy.deepcopy(model)
    for name, _ in qcfs_layers(twin):
        set_module(twin, name, nn.ReLU())
    return twin


# -- inference ---------------------------------------------------------------------------------
def if_share(net: PascNetwork, x: torch.Tensor, repeats: int) -> dict:
    """Quartiles of the fraction of a PASC forward spent inside PascIF modules."""
    spent = [0.0]
    started: dict[nn.Module, float] = {}

    def before(module, _inputs):
        started[module] = time.perf_counter()

    def after(module, _inputs, _out):
        spent[0] += time.perf_counter() - started[module]

    handles = []
    for _, layer in net.if_layers():
        handles += [layer.register_forward_pre_hook(before), layer.register_forward_hook(after)]
    shares = []
    try:
        for _ in range(repeats):
            spent[0] = 0.0
            start = time.perf_counter()
            net(x)
            shares.append(spent[0] / (time.perf_counter() - start))
    finally:
        for h in handles:
            h.remove()
    return quartiles(shares)


@torch.no_grad()
def inference(model: nn.Module, x: torch.Tensor, L: int, repeats: int, share: bool) -> dict:
    """PASC / (L × efficient ANN), PASC / floor, floor / (L × ANN), times, IF share."""
    ann, pasc = efficient_ann(model), convert(model, example_input=x)
    floor = floor_network(pasc)
    funcs = {"ann": lambda: ann(x), "pasc": lambda: pasc(x), "floor": lambda: floor(x)}
    for f in funcs.values():
        f()  # warm-up: first-call allocations and oneDNN primitive creation
    t = interleaved(funcs, repeats)
    out = summary(
        t,
        {
            "pasc_over_L_ann": ("pasc", "ann", L),
            "pasc_over_floor": ("pasc", "floor", 1.0),
            "floor_over_L_ann": ("floor", "ann", L),
        },
    )
    if share:
        out["if_share"] = if_share(pasc, x, repeats)
    return out


def kernel_alone(repeats: int, neurons: int = 1 << 20, L: int = 4) -> dict:
    """CPU ms, one thread, of the IF kernel per instruction-set variant on ``[L, neurons]``
    (T_in = L), beside L inference-QCFS kernel passes over ``neurons`` and a copy of the
    input: the same bytes read and written as the IF."""
    try:
        from pascal_snn import kernel
    except ImportError:
        return {"note": "no C kernel in this pascal_snn"}
    if not kernel.available():
        return {"note": "C kernel not built"}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(L, neurons, generator=g) * 0.6 - 0.3
    copy_to = torch.empty_like(x)
    funcs: dict[str, Callable[[], object]] = {}
    for k in kernel.variants():
        tuning = kernel.Tuning(k, threads=1)
        funcs[f"IF {k.isa}"] = lambda t=tuning: kernel.pasc_if(x, 0.5, L, L - 1, True, False, t)
    best = kernel.Tuning(kernel.library(), threads=1)
    funcs["QCFS x L"] = lambda: [kernel.qcfs_forward(x[i], 2.0, L, best) for i in range(L)]
    funcs["copy"] = lambda: copy_to.copy_(x)
    t = interleaved(funcs, repeats)
    return {k: statistics.median(v) * 1e3 for k, v in t.cpu.items()}


@torch.no_grad()
def diagnostics(model: nn.Module, x: torch.Tensor, L: int, repeats: int) -> dict:
    """What bounds PASC / (L × ANN), one thread, CPU time: each PascIF against L passes of its
    QCFS in the efficient ANN (forward hooks), the largest convolution on L·B images against
    L convolutions on B, system time and page faults per forward, and the default network
    against the same with the whole batch in one part (``part_bytes = None``) and with every
    train in new memory (``overwrite = False``)."""
    ann, pasc = efficient_ann(model), convert(model, example_input=x)

    def per_module(net: nn.Module, kind: type) -> dict[str, float]:
        spent: dict[str, list[float]] = {}
        started: dict[str, float] = {}
        handles = []
        for n, m in net.named_modules():
            if isinstance(m, kind):
                n = n.removeprefix("graph.")
                pre = lambda _m, _i, n=n: started.__setitem__(n, time.thread_time())  # noqa: E731
                post = lambda _m, _i, _o, n=n: spent.setdefault(n, []).append(  # noqa: E731
                    time.thread_time() - started[n]
                )
                handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
        try:
            for _ in range(repeats):
                net(x)
        finally:
            for h in handles:
                h.remove()
        return {n: statistics.median(v) for n, v in spent.items()}

    from pascal_snn import QCFS

    neuron = per_module(pasc, PascIF)
    qcfs = per_module(ann, QCFS)
    per_layer = {n: neuron[n] / (L * qcfs[n]) for n in neuron if n in qcfs}
    out: dict = {"if_over_L_qcfs_by_layer": per_layer}
    out["if_over_L_qcfs_total"] = sum(neuron.values()) / (L * sum(qcfs.values()))
    convs = [m for m in ann.modules() if isinstance(m, nn.Conv2d)]
    sizes: dict[nn.Module, torch.Size] = {}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        sizes.setdefault(module, inputs[0].shape)

    hooks = [c.register_forward_pre_hook(record) for c in convs]
    ann(x)
    for h in hooks:
        h.remove()
    conv = max(convs, key=lambda c: sizes[c].numel() * c.out_channels)
    small = torch.randn(sizes[conv])
    big = torch.randn(L * small.shape[0], *small.shape[1:])
    t = interleaved(
        {"big": lambda: conv(big), "small": lambda: [conv(small) for _ in range(L)]}, repeats
    )
    out["largest_conv_LB_over_L_convs_B"] = ratio(t.cpu, "big", "small")
    # the default network against the same one without its two memory measures
    whole = convert(model, example_input=x)
    whole.part_bytes = None
    fresh = convert(model, example_input=x)
    for _, layer in fresh.if_layers():
        layer.overwrite = False
    variants = {"pasc": pasc, "pasc_whole_batch": whole, "pasc_trains_in_new_memory": fresh}
    for name, net in variants.items():
        if not torch.equal(net(x), pasc(x)):
            raise RuntimeError(f"{name} changed the logits")
    funcs: dict[str, Callable[[], object]] = {"ann": lambda: ann(x)}
    funcs.update({k: (lambda net=net: net(x)) for k, net in variants.items()})
    system: dict[str, list[float]] = {k: [] for k in funcs}
    timed = {}
    for k, f in funcs.items():

        def run(f=f, k=k) -> None:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
            f()
            system[k].append(resource.getrusage(resource.RUSAGE_SELF).ru_stime - before)

        timed[k] = run
    t = interleaved(timed, repeats)
    out["median_cpu_s"] = {k: statistics.median(v) for k, v in t.cpu.items()}
    out["median_system_s"] = {k: statistics.median(v) for k, v in system.items()}
    out["median_page_faults"] = {k: statistics.median(v) for k, v in t.faults.items()}
    for k in variants:
        out[f"{k}_over_L_ann"] = ratio(t, k, "ann", L)
    return out


# -- training and AL ---------------------------------------------------------------------------
def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def train(model: nn.Module, data: Iterator[Batch], steps: int, lr: float) -> None:
    """Adam with a one-cycle schedule for ``steps`` batches.

    Adam, not the QCFS recipe's SGD: in a run this short SGD at a useful learning rate drives
    some thresholds θ negative, and conversion refuses those; Adam moves θ by ~lr per step.
    """
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    for _ in range(steps):
        train_step(model, opt, *next(data))
        sched.step()
    model.eval()


def training(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict:
    """QCFS / ReLU training step (SGD momentum, weight decay), both from the same weights."""
    nets = {"qcfs": copy.deepcopy(model).train(), "relu": relu_twin(model).train()}
    opts = {
        k: torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        for k, net in nets.items()
    }
    for k, net in nets.items():
        train_step(net, opts[k], x, y)  # warm-up: first-step allocations
    t = interleaved({k: lambda k=k: train_step(nets[k], opts[k], x, y) for k in nets}, repeats)
    return summary(t, {"qcfs_over_relu": ("qcfs", "relu", 1.0)})


def al_statistics(model: nn.Module, al_batches: list[Batch], images: int, repeats: int) -> dict:
    """AL statistics over ``images`` / the efficient ANN's eval pass over the same batches."""
    ann = efficient_ann(model)

    @torch.no_grad()
    def plain_eval() -> int:
        return sum(int((ann(xb).argmax(1) == yb).sum()) for xb, yb in al_batches)

    t = interleaved(
        {"al": lambda: layer_metrics(model, al_batches, num_images=images), "eval": plain_eval},
        repeats,
    )
    return summary(t, {"al_over_eval": ("al", "eval", 1.0)})


# -- memory (child processes) ------------------------------------------------------------------
def _proc_status() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def _memory_child(kind: str, spec: dict, queue) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create(spec["model"], 10, in_channels=3, L=spec["L"], width=spec["width"]).eval()
    x = torch.rand(spec["batch"], 3, 32, 32)
    net = convert(model, example_input=x) if kind == "pasc" else efficient_ann(model)
    with torch.no_grad():
        net(x)  # warm-up: one-time allocations (oneDNN primitives, lazy state) happen here
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        before = _proc_status()["VmRSS"]
        out = net(x)
        del out
        queue.put(_proc_status()["VmHWM"] - before)


def peak_memory(kind: str, spec: dict) -> int:
    """Peak extra RSS (bytes) of one forward of ``kind`` ("ann" or "pasc"), in a fresh child.

    glibc's mmap threshold is fixed at 128 KiB in the child (MALLOC_MMAP_THRESHOLD_), so every
    tensor buffer leaves the process when freed and RSS follows live memory.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    saved = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "131072"  # read by the child's glibc at start
    try:
        child = ctx.Process(target=_memory_child, args=(kind, spec, queue))
        child.start()
        result = queue.get(timeout=600)
        child.join()
    finally:
        if saved is None:
            del os.environ["MALLOC_MMAP_THRESHOLD_"]
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = saved
    return result


# -- SpikingJelly (optional) -------------------------------------------------------------------
class _JellyIF(nn.Module):
    """SpikingJelly multi-step IF node on a folded train, as the QCFS reference code's IF."""

    def __init__(self, theta: float, steps: int) -> None:
        super().__init__()
        from spikingjelly.activation_based import neuron

        self.theta, self.steps = theta, steps
        self.node = neuron.IFNode(v_threshold=theta, v_reset=None, step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = self.node(x.reshape(self.steps, -1, *x.shape[1:]))
        return (spikes * self.theta).flatten(0, 1)


class JellyNet(nn.Module):
    """The trained ANN (BN folded) run by SpikingJelly for ``steps`` steps, image every step,
    soft reset, initial membrane θ/2, spikes worth θ, output the mean over steps."""

    def __init__(self, model: nn.Module, steps: int) -> None:
        super().__init__()
        self.net, self.steps = efficient_ann(model), steps
        self.nodes = []
        for name, q in qcfs_layers(self.net):
            node = _JellyIF(float(q.theta.detach()), steps)
            set_module(self.net, name, node)
            self.nodes.append(node)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from spikingjelly.activation_based import functional

        functional.reset_net(self.net)
        for n in self.nodes:
            n.node.v = 0.5 * n.theta  # initial membrane θ/2 (materialised on the first step)
        out = self.net(x.repeat(self.steps, *([1] * (x.dim() - 1))))
        return out.reshape(self.steps, -1, *out.shape[1:]).mean(0)


@torch.no_grad()
def jelly(model: nn.Module, x: torch.Tensor, L: int, repeats: int) -> dict:
    from importlib.metadata import version

    try:
        net = JellyNet(model, L)
        net(x[:2])
    except Exception as exc:  # ImportError, or an API this script does not know
        return {"note": f"spikingjelly unavailable: {type(exc).__name__}: {exc}"}
    pasc = convert(model)
    pasc(x)
    net(x)
    t = interleaved({"pasc": lambda: pasc(x), "jelly": lambda: net(x)}, repeats)
    note = f"spikingjelly {version('spikingjelly')}"
    return {"note": note, **summary(t, {"pasc_over_jelly": ("pasc", "jelly", 1.0)})}


# -- one model ---------------------------------------------------------------------------------
def trained(name: str, args) -> tuple[nn.Module, Any]:
    """The model with trained-like weights (cached in ``--weights``) and the test split."""
    torch.manual_seed(0)
    model = create(name, 10, in_channels=3, L=args.L, width=args.width)
    train_set, test = datasets(args.dataset, 3, args.data_dir)
    tag = f"{name}-L{args.L}-w{args.width}-{args.dataset}-{args.train_steps}steps.pt"
    cached = Path(args.weights) / tag if args.weights else None
    if cached is not None and cached.exists():
        print(f"[{name}] weights from {cached}", flush=True)
        model.load_state_dict(torch.load(cached, weights_only=True))
    else:
        print(f"[{name}] training {args.train_steps} Adam steps of 64 ...", flush=True)
        torch.set_num_threads(max(args.threads))
        train(model, forever(train_set, 64, 3), args.train_steps, args.lr)
        if cached is not None:
            save_torch(cached, model.state_dict())
    return model.eval(), test


def bench_model(name: str, args) -> dict:
    model, test = trained(name, args)
    L, B = args.L, args.batch
    x, y = first_images(test, max([B, *args.growth_batch, *args.train_batches]), 3)
    res: dict = {"model": name}
    torch.set_num_threads(1)
    res["exactness"] = exactness(model, convert(model, example_input=x[:B]), x[:B])
    print(f"[{name}] exactness {res['exactness']}", flush=True)
    res["inference"] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"[{name}] inference, {threads} thread(s) ...", flush=True)
        res["inference"][threads] = inference(model, x[:B], L, args.repeats, share=True)
    torch.set_num_threads(1)
    res["growth_L"] = {}
    for level in args.growth_L if "growth" in args.parts else []:
        print(f"[{name}] growth: L = {level} ...", flush=True)
        m = copy.deepcopy(model)
        set_levels(m, level)
        res["growth_L"][level] = inference(m, x[:B], level, args.growth_repeats, share=False)
    res["growth_batch"] = {}
    for b in args.growth_batch if "growth" in args.parts else []:
        print(f"[{name}] growth: batch = {b} ...", flush=True)
        res["growth_batch"][b] = inference(model, x[:b], L, args.growth_repeats, share=False)
    res["training"] = {}
    for b in args.train_batches if "training" in args.parts else []:
        print(f"[{name}] training step, batch {b} ...", flush=True)
        res["training"][b] = training(model, x[:b], y[:b], args.repeats)
    if "al" in args.parts:
        al_set = Subset(test, range(min(args.al_images, len(test))))
        al_batches = list(batches(al_set, B, 3))  # decoded once: both runs alike
        print(f"[{name}] AL statistics vs eval pass on {len(al_set)} images ...", flush=True)
        res["al"] = al_statistics(model, al_batches, len(al_set), args.al_repeats)
    if "diagnostics" in args.parts:
        torch.set_num_threads(1)
        print(f"[{name}] diagnostics ...", flush=True)
        res["diagnostics"] = diagnostics(model, x[:B], L, args.repeats)
    if "kernel" in args.parts and name == args.models.split(",")[0]:
        torch.set_num_threads(1)
        print("[kernel] the IF kernel alone ...", flush=True)
        res["kernel_alone_cpu_ms"] = kernel_alone(args.repeats)
    if args.memory and "memory" in args.parts:
        print(f"[{name}] peak memory, one child per measurement ...", flush=True)
        spec = {"model": name, "L": L, "width": args.width, "batch": B}
        mem = {kind: peak_memory(kind, spec) for kind in ("ann", "pasc")}
        res["peak_forward_bytes"] = mem
        res["pasc_over_ann_peak_memory"] = mem["pasc"] / mem["ann"]
    if args.jelly:
        res["spikingjelly"] = jelly(model, x[:B], L, args.repeats)
    return res


# -- report ------------------------------------------------------------------------------------
def met(value: float, goal: float) -> str:
    return "met" if value <= goal else f"NOT met (+{value / goal - 1:.0%})"


def allocator_note() -> str:
    """glibc's malloc settings in force (read by glibc at process start from these names)."""
    keys = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")
    tuned = [f"{k}={os.environ[k]}" for k in keys if k in os.environ]
    return "allocator: " + (", ".join(tuned) if tuned else "glibc defaults")


def table(results: list[dict], args) -> str:
    """Per model: the exactness check, then every ratio as median [q1, q3] over rounds, by
    wall-clock time and by process CPU time (CPU time is what a shared machine's other jobs
    disturb least), with the median minor page faults per PASC / floor / ANN call."""
    lines = []
    for r in results:
        e = r["exactness"]
        lines.append(
            f"\n{r['model']}: PASC = reference neuron bit for bit: "
            f"{e['logits_bit_identical_to_reference_neuron']} (logits), "
            f"{e['spike_counts_equal_reference_neuron']} (spike counts); predictions = ANN: "
            f"{e['predictions_equal_ann']}; mean output spike rate "
            f"{e['mean_output_spike_rate']:.3f} per neuron per step"
        )
        head = f"  {'':13s}{'PASC/(L×ANN) wall':>24s}{'(CPU)':>8s}{'PASC/floor wall':>24s}"
        lines.append(head + f"{'(CPU)':>8s}  IF share  faults PASC/floor/ANN")
        rows = [(f"threads {k}", v) for k, v in r["inference"].items()]
        rows += [(f"L = {k}", v) for k, v in r["growth_L"].items()]
        rows += [(f"batch = {k}", v) for k, v in r["growth_batch"].items()]
        for label, inf in rows:
            p, f = inf["pasc_over_L_ann"], inf["pasc_over_floor"]
            share = f"{inf['if_share']['median']:8.1%}" if "if_share" in inf else " " * 8
            faults = "/".join(
                f"{inf['median_page_faults'][k]:.0f}" for k in ("pasc", "floor", "ann")
            )
            lines.append(
                f"  {label:13s}{fmt(p):>24s}{inf['pasc_over_L_ann_cpu']['median']:8.3f}"
                f"{fmt(f):>24s}{inf['pasc_over_floor_cpu']['median']:8.3f}  {share}  {faults}"
            )
        for label, inf in r["inference"].items():
            p, f = inf["pasc_over_L_ann"]["median"], inf["pasc_over_floor"]["median"]
            lines.append(
                f"  goals, {label} thread(s), wall: PASC/(L×ANN) ≤ 1.0 {met(p, 1.0)}; "
                f"PASC/floor ≤ 1.2 {met(f, 1.2)}"
            )
        for b, t in r["training"].items():
            q = t["qcfs_over_relu"]
            lines.append(
                f"  QCFS/ReLU training step, batch {b}: {fmt(q)} (CPU "
                f"{t['qcfs_over_relu_cpu']['median']:.3f})   goal ≤ 1.15: {met(q['median'], 1.15)}"
            )
        if "al" in r:
            a = r["al"]["al_over_eval"]
            lines.append(
                f"  AL statistics / efficient eval pass: {fmt(a)} (CPU "
                f"{r['al']['al_over_eval_cpu']['median']:.3f})   goal ≤ 1.5: "
                f"{met(a['median'], 1.5)}"
            )
        if "pasc_over_ann_peak_memory" in r:
            lines.append(f"  PASC / ANN peak forward memory: {r['pasc_over_ann_peak_memory']:.2f}")
        if "diagnostics" in r:
            d = r["diagnostics"]
            layers = d["if_over_L_qcfs_by_layer"].values()
            lines.append(
                f"  diagnostics (CPU): IF / (L × QCFS) {d['if_over_L_qcfs_total']:.2f} in all, "
                f"{min(layers):.2f}–{max(layers):.2f} by layer; largest conv on L·B / L on B "
                f"{d['largest_conv_LB_over_L_convs_B']['median']:.3f}; system s per forward "
                + ", ".join(f"{k} {v:.3f}" for k, v in d["median_system_s"].items())
                + "; faults "
                + ", ".join(f"{k} {v:.0f}" for k, v in d["median_page_faults"].items())
            )
            lines.append(
                f"  PASC/(L×ANN) default {fmt(d['pasc_over_L_ann'])}, whole batch in one part "
                f"{fmt(d['pasc_whole_batch_over_L_ann'])}, trains in new memory "
                f"{fmt(d['pasc_trains_in_new_memory_over_L_ann'])}"
            )
        if "kernel_alone_cpu_ms" in r:
            k = r["kernel_alone_cpu_ms"]
            alone = ", ".join(f"{n} {v:.2f}" if isinstance(v, float) else v for n, v in k.items())
            lines.append(f"  kernel alone, 1 M neurons, T_in = L = 4, CPU ms: {alone}")
        if "spikingjelly" in r:
            j = r["spikingjelly"]
            got = fmt(j["pasc_over_jelly"]) if "pasc_over_jelly" in j else j["note"]
            lines.append(f"  PASC / SpikingJelly (T = L): {got}")
    return "\n".join(lines)


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg16,resnet18", help="comma-separated names")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--growth-repeats", type=int, default=7)
    parser.add_argument("--L", type=int, default=4, help="QCFS level count of every layer")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--threads", type=ints, default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--growth-L", type=ints, default=[2, 4, 8, 16])
    parser.add_argument("--growth-batch", type=ints, default=[16, 64, 256])
    parser.add_argument("--train-batches", type=ints, default=[64, 128])
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate")
    parser.add_argument("--weights", help="folder caching the trained weights between runs")
    parser.add_argument("--al-images", type=int, default=3000)
    parser.add_argument("--al-repeats", type=int, default=5)
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument(
        "--parts",
        type=lambda text: set(text.split(",")),
        default={"inference", "growth", "training", "al", "memory", "kernel", "diagnostics"},
        help="which measurements to run (comma-separated; inference always runs)",
    )
    parser.add_argument("--jelly", action="store_true", help="also time SpikingJelly")
    parser.add_argument(
        "--dataset", default="fashion-mnist", choices=["fashion-mnist", "synthetic"]
    )
    parser.add_argument("--data-dir")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    machine = f"{cpu_model()}, {os.cpu_count()} CPUs"
    setting = f"torch {torch.__version__}; {machine}; {kernel_note()}; {allocator_note()}"
    print(setting, flush=True)
    results = [bench_model(name.strip(), args) for name in args.models.split(",")]
    print(f"\n{setting}; batch {args.batch}, L {args.L}")
    print(table(results, args))
    if args.json:
        meta = {"torch": torch.__version__, "cpu": machine, "kernel": kernel_note()}
        meta["allocator"] = allocator_note()
        settings = {**vars(args), "parts": sorted(args.parts)}
        write_json(args.json, {"args": settings, **meta, "results": results})


if __name__ == "__main__":
    main()
