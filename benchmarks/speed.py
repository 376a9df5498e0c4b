"""Benchmark: speed and memory of PASC inference, the IF neuron, QCFS training and AL statistics.

What it measures (issue 7 §2), per model, side by side in one process: every timed function
runs once per round, the order rotating each round, and each ratio is the median over rounds
of that round's ratio (the two runs of a round saw the same machine load):
  - PASC inference time / (L × ANN inference time) on one test batch         goal ≤ 1.25
  - share of PASC time spent in the IF neurons (forward pre/post hooks on every PascIF)
  - PASC time / SpikingJelly time, both at T = L, and both accuracies         goal ≤ 1
    (SpikingJelly runs the same trained network the way the QCFS reference code does:
    multi-step IFNode, soft reset (v_reset=None), v_threshold = θ, initial membrane θ/2, spikes
    worth θ, BatchNorm per step, the image at every step, output = mean over the T steps; the
    library's own vanilla IF baseline is run too as a cross-check: same predictions)
  - QCFS training step / ReLU training step (a copy with every QCFS → nn.ReLU)  goal ≤ 1.15
  - AL statistics (pascal_snn.al.layer_metrics) over 3,000 test images / a plain eval pass
    (forward + argmax) over the same pre-decoded batches                      goal ≤ 1.5
  - peak memory of one PASC forward / one ANN forward, same batch             goal ≤ L + 1
    Method: one spawned child per measurement, glibc's mmap threshold fixed at 128 KiB there
    (MALLOC_MMAP_THRESHOLD_) so each tensor buffer leaves the process when freed; after a
    warm-up forward the child resets its peak RSS (``echo 5 > /proc/self/clear_refs``) and
    reports VmHWM − VmRSS across one forward: the forward's own peak working memory, weights
    and input excluded. (tracemalloc does not see torch's CPU allocations.)
On: VGG-16 and ResNet-18 (CIFAR style, width 0.25, QCFS L = 4 everywhere, 3 input channels),
batch 64, 32×32 inputs, 1 torch thread. Trained briefly: 400 Adam steps of 64 (one-cycle,
peak lr 2e-3) on Fashion-MNIST zero-padded to 32×32, the gray channel repeated 3 times
(``--dataset synthetic`` where Fashion-MNIST is not installed).

Measured on a 2-core AMD EPYC VM (KVM) shared with two training jobs, torch 2.14.1 CPU,
spikingjelly 2.0.0. "after" = the fused neuron; "before" = neuron.py and spiking.py of commit
ffd0813 (the same script, with a copy of src/ holding those two files first on PYTHONPATH):

                                            VGG-16            ResNet-18
                                        before   after     before   after    goal
  PASC / (L × ANN) time                  1.727   0.995      1.763   1.003    ≤ 1.25 met
  IF-neuron share of PASC time           46.0%   23.2%      52.5%   24.5%
  PASC / SpikingJelly time (T = 4)       1.194   0.587      1.025   0.743    ≤ 1 met
  QCFS / ReLU training step              1.265   1.379      1.361   1.291    ≤ 1.15 NOT met
  AL statistics / eval pass (3,000)      1.433   1.452      1.443   1.523    ≤ 1.5 borderline
  PASC / ANN peak forward memory          3.54    3.01       2.58    2.29    ≤ 5 met
  accuracy ANN = PASC (1,000 test images)   51.1 %             82.2 %
  accuracy SpikingJelly = vanilla, T = 4    42.0 %             64.2 %
(QCFS training and AL do not use the neuron: their before/after columns are run-to-run noise.)

Final run, after QCFS became one fused autograd node and the AL hook one aminmax pass (same
command, same machine, two Fashion-MNIST training jobs running beside it):

                                            VGG-16   ResNet-18   goal
  PASC / (L × ANN) time                      0.913     1.013     ≤ 1.25 met
  IF-neuron share of PASC time               19.3%     23.7%
  PASC / SpikingJelly time (T = 4)           0.697     0.706     ≤ 1 met
  QCFS / ReLU training step                  1.183     1.110     ≤ 1.15 met for ResNet-18 only
  AL statistics / eval pass (3,000)          1.355     1.405     ≤ 1.5 met
  PASC / ANN peak forward memory              3.69      2.56     ≤ 5 met

    .venv/bin/python benchmarks/speed.py [--models vgg16,resnet18] [--repeats 15] [--batch 64]
        [--train-steps 400] [--al-images 3000] [--dataset fashion-mnist] [--weights DIR]
        [--threads 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import gc
import multiprocessing as mp
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import version
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from pascal_snn import DataError, PascNetwork, convert, qcfs_layers
from pascal_snn.al import layer_metrics
from pascal_snn.data import build_datasets
from pascal_snn.data.synthetic import synthetic_datasets
from pascal_snn.io import save_torch, write_json
from pascal_snn.models import create

Batch = tuple[torch.Tensor, torch.Tensor]


# -- timing ------------------------------------------------------------------------------------
def interleaved(funcs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each function in each of ``repeats`` rounds; the order rotates every round."""
    names = list(funcs)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            funcs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {n: statistics.median(v) for n, v in times.items()}


def ratio(times: dict[str, list[float]], num: str, den: str, scale: float = 1.0) -> float:
    """Median over rounds of ``num / (scale · den)``: each round's two runs saw the same load."""
    return statistics.median(a / (scale * b) for a, b in zip(times[num], times[den]))


def if_share(net: PascNetwork, x: torch.Tensor, repeats: int) -> float:
    """Median fraction of a PASC forward spent inside PascIF modules (forward hooks)."""
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
    return statistics.median(shares)


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


# -- networks ----------------------------------------------------------------------------------
def set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def relu_twin(model: nn.Module) -> nn.Module:
    """The same network with every QCFS replaced by nn.ReLU."""
    twin = copy.deepcopy(model)
    for name, _ in qcfs_layers(twin):
        set_module(twin, name, nn.ReLU())
    return twin


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
    """The trained ANN run by SpikingJelly for ``steps`` steps (QCFS → multi-step IFNode)."""

    def __init__(self, model: nn.Module, steps: int) -> None:
        super().__init__()
        self.net, self.steps = copy.deepcopy(model).eval(), steps
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


def jelly_or_reason(
    model: nn.Module, steps: int, probe: torch.Tensor
) -> tuple[nn.Module | None, str]:
    """SpikingJelly's run of ``model`` if it imports and runs here, else why not."""
    try:
        net = JellyNet(model, steps)
        with torch.no_grad():
            net(probe)
        return net, f"spikingjelly {version('spikingjelly')}"
    except Exception as exc:  # ImportError, or an API this script does not know
        return None, f"spikingjelly unavailable: {type(exc).__name__}: {exc}"


# -- training ----------------------------------------------------------------------------------
def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def sgd(model: nn.Module, lr: float, steps: int):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)


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


def train_step_times(model: nn.Module, x, y, repeats: int) -> dict[str, list[float]]:
    """Training-step times of copies of ``model`` (QCFS) and of its ReLU twin."""
    nets = {"qcfs": copy.deepcopy(model).train(), "relu": relu_twin(model).train()}
    opts = {k: sgd(net, 1e-3, repeats + 1)[0] for k, net in nets.items()}
    for k, net in nets.items():
        train_step(net, opts[k], x, y)  # warm-up: first-step allocations
    return interleaved({k: lambda k=k: train_step(nets[k], opts[k], x, y) for k in nets}, repeats)


@torch.no_grad()
def accuracy(nets: dict[str, nn.Module], data: Iterable[Batch]) -> dict[str, float]:
    correct = dict.fromkeys(nets, 0)
    preds: dict[str, list[torch.Tensor]] = {n: [] for n in nets}
    seen = 0
    for x, y in data:
        for name, net in nets.items():
            p = net(x).argmax(1)
            preds[name].append(p)
            correct[name] += int((p == y).sum())
        seen += len(y)
    out = {f"{n}_accuracy": c / seen for n, c in correct.items()}
    ann = torch.cat(preds["ann"])
    for n in nets:
        if n != "ann":
            out[f"{n}_agreement_with_ann"] = float((torch.cat(preds[n]) == ann).float().mean())
    out["eval_images"] = seen
    return out


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
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = create(spec["model"], 10, in_channels=3, L=spec["L"], width=spec["width"]).eval()
    net = convert(model) if kind == "pasc" else model
    x = torch.rand(spec["batch"], 3, 32, 32)
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
    """Peak extra RSS (bytes) of one forward of ``kind`` ("ann" or "pasc"), in a fresh child."""
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


# -- one model ---------------------------------------------------------------------------------
def bench_model(name: str, args) -> dict:
    L, channels = args.L, 3
    torch.manual_seed(0)
    model = create(name, 10, in_channels=channels, L=L, width=args.width)
    train_set, test = datasets(args.dataset, channels, args.data_dir)
    tag = f"{name}-L{L}-w{args.width}-{args.dataset}-{args.train_steps}steps.pt"
    cached = Path(args.weights) / tag if args.weights else None
    if cached is not None and cached.exists():
        print(f"[{name}] weights from {cached}", flush=True)
        model.load_state_dict(torch.load(cached, weights_only=True))
        model.eval()
    else:
        print(f"[{name}] training {args.train_steps} steps of {args.batch} ...", flush=True)
        train(model, forever(train_set, args.batch, channels), args.train_steps, args.lr)
        if cached is not None:
            save_torch(cached, model.state_dict())
    x, y = next(batches(test, args.batch, channels))  # the timed batch
    pasc = convert(model)
    jelly, jelly_note = jelly_or_reason(model, L, x[:2])
    vanilla = convert(model, "vanilla", timesteps=L)
    result: dict = {"model": name, "spikingjelly": jelly_note}

    nets: dict[str, nn.Module] = {"ann": model, "pasc": pasc, "vanilla_T=L": vanilla}
    if jelly is not None:
        nets["spikingjelly_T=L"] = jelly
    eval_set = Subset(test, range(min(args.eval_images, len(test))))
    print(f"[{name}] accuracy on {len(eval_set)} test images ...", flush=True)
    result.update(accuracy(nets, batches(eval_set, args.batch, channels)))

    print(f"[{name}] inference timing, {args.repeats} interleaved rounds ...", flush=True)
    with torch.no_grad():
        for net in (model, pasc, jelly):
            if net is not None:
                net(x)  # warm-up
        funcs = {"ann": lambda: model(x), "pasc": lambda: pasc(x)}
        if jelly is not None:
            funcs["spikingjelly"] = lambda: jelly(x)
        t = interleaved(funcs, args.repeats)
        result["inference_s"] = medians(t)
        result["pasc_over_L_ann"] = ratio(t, "pasc", "ann", L)
        if jelly is not None:
            result["pasc_over_spikingjelly"] = ratio(t, "pasc", "spikingjelly")
        result["if_share_of_pasc"] = if_share(pasc, x, args.repeats)

    al_set = Subset(test, range(min(args.al_images, len(test))))
    al_batches = list(batches(al_set, args.batch, channels))  # decoded once: both runs alike
    print(f"[{name}] AL statistics vs eval pass on {len(al_set)} images ...", flush=True)

    @torch.no_grad()
    def plain_eval() -> int:
        return sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in al_batches)

    al = interleaved(
        {
            "al": lambda: layer_metrics(model, al_batches, num_images=len(al_set)),
            "eval": plain_eval,
        },
        args.al_repeats,
    )
    result["al_s"] = medians(al)
    result["al_over_eval"] = ratio(al, "al", "eval")

    print(f"[{name}] training steps, QCFS vs ReLU ...", flush=True)
    steps = train_step_times(model, x, y, args.repeats)
    result["train_step_s"] = medians(steps)
    result["qcfs_over_relu_train_step"] = ratio(steps, "qcfs", "relu")

    print(f"[{name}] peak memory, one child per measurement ...", flush=True)
    spec = {"model": name, "L": L, "width": args.width, "batch": args.batch}
    spec["threads"] = args.threads
    mem = {kind: peak_memory(kind, spec) for kind in ("ann", "pasc")}
    result["peak_forward_bytes"] = mem
    result["pasc_over_ann_peak_memory"] = mem["pasc"] / mem["ann"]
    return result


GOALS = [  # (key, label, goal, format)
    ("pasc_over_L_ann", "PASC time / (L × ANN time)", 1.25, "{:.3f}"),
    ("if_share_of_pasc", "IF-neuron share of PASC time", None, "{:.1%}"),
    ("pasc_over_spikingjelly", "PASC time / SpikingJelly time (T = L)", 1.0, "{:.3f}"),
    ("qcfs_over_relu_train_step", "QCFS / ReLU training step", 1.15, "{:.3f}"),
    ("al_over_eval", "AL statistics / eval pass", 1.5, "{:.3f}"),
    ("pasc_over_ann_peak_memory", "PASC / ANN peak memory", None, "{:.2f}"),
    ("ann_accuracy", "ANN accuracy", None, "{:.2%}"),
    ("pasc_accuracy", "PASC accuracy (T = L)", None, "{:.2%}"),
    ("pasc_agreement_with_ann", "PASC agreement with ANN", None, "{:.2%}"),
    ("spikingjelly_T=L_accuracy", "SpikingJelly accuracy (T = L)", None, "{:.2%}"),
    ("vanilla_T=L_accuracy", "pascal_snn vanilla IF accuracy (T = L)", None, "{:.2%}"),
    (
        "spikingjelly_T=L_agreement_with_ann",
        "SpikingJelly agreement with ANN",
        None,
        "{:.2%}",
    ),
]


def table(results: list[dict], L: int) -> str:
    names = [r["model"] for r in results]
    rows = [f"{'metric':44s}" + "".join(f"{n:>12s}" for n in names) + "   goal"]
    for key, label, goal, fmt in GOALS:
        if key == "pasc_over_ann_peak_memory":
            goal = L + 1
        cells = [fmt.format(r[key]) if key in r else "n/a" for r in results]
        met = ""
        if goal is not None and all(key in r for r in results):
            met = " (met)" if all(r[key] <= goal for r in results) else " (NOT met)"
        g = f"≤ {goal}{met}" if goal is not None else ""
        rows.append(f"{label:44s}" + "".join(f"{c:>12s}" for c in cells) + f"   {g}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg16,resnet18", help="comma-separated names")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--L", type=int, default=4, help="QCFS level count of every layer")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate")
    parser.add_argument("--weights", help="folder caching the trained weights between runs")
    parser.add_argument("--eval-images", type=int, default=1000)
    parser.add_argument("--al-images", type=int, default=3000)
    parser.add_argument("--al-repeats", type=int, default=5)
    parser.add_argument(
        "--dataset", default="fashion-mnist", choices=["fashion-mnist", "synthetic"]
    )
    parser.add_argument("--data-dir")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest here)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = [bench_model(name.strip(), args) for name in args.models.split(",")]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    print(f"\ntorch {torch.__version__}, {args.threads} thread(s), {machine}, batch {args.batch}")
    print(table(results, args.L))
    if args.json:
        write_json(args.json, {"args": vars(args), "torch": torch.__version__, "results": results})


if __name__ == "__main__":
    main()
