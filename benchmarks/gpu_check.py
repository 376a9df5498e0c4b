"""GPU check: PASC equivalence and speed ratios on one device, written to one JSON file.

What it runs (issue 16 item 6), on ``--device`` (default ``cuda``; ``--device cpu`` runs the
same checks on CPU, which is how the test suite keeps this script working):

1. Equivalence, per model (digits_cnn, mnist_cnn, VGG-16, ResNet-18 at width 0.25, ResNet-34
   with the ImageNet stem at width 0.125; mixed per-layer L), thresholds calibrated on the
   batch so every layer spreads over its levels:
   - float64: PASC predictions = ANN predictions on every image, and every neuron's spike
     count (the PASC train summed over its steps, in units of θ*) = the ANN's QCFS level
     index ``round(h·L/θ)``; the largest logit difference is reported;
   - float32: the default path (on CUDA the torch path of the IF neuron) gives logits and
     spike statistics bit-identical to the same network running ``pasc_if_reference``;
   - QCFS's inference path = its training forward, bit for bit, on random inputs with level
     boundaries.
2. Speed (float32, one device): PASC / (L × efficient ANN), PASC / floor (the network with
   every IF layer a no-op), as in benchmarks/speed.py, for VGG-16 and ResNet-18 at width 0.25,
   32×32, L = 4, batches 64 and 256; interleaved rounds, the device synchronized around every
   timed call; medians with quartiles.

No GPU was lent to this work: the script has run on CPU only (tests/test_gpu_check.py, and
BENCHMARKS.md §5). On a CUDA machine:

    PYTHONPATH=src python benchmarks/gpu_check.py --device cuda --json gpu_check.json

The run exits 1 when any equivalence check fails.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed
from pascal_snn import QCFS, convert, qcfs_layers, set_levels
from pascal_snn.io import write_json
from pascal_snn.models import create
from pascal_snn.qcfs import level_index, qcfs_inference

MODELS: dict[str, dict[str, Any]] = {  # name: create() arguments, input shape [C, H, W]
    "digits_cnn": {"args": {"in_channels": 1}, "shape": (1, 8, 8)},
    "mnist_cnn": {"args": {"in_channels": 1}, "shape": (1, 28, 28)},
    "vgg16": {"args": {"width": 0.25}, "shape": (3, 32, 32)},
    "resnet18": {"args": {"width": 0.25}, "shape": (3, 32, 32)},
    "resnet34": {"args": {"width": 0.125, "stem": "imagenet"}, "shape": (3, 64, 64)},
}


@torch.no_grad()
def calibrate(model: nn.Module, x: torch.Tensor, quantile: float = 0.99) -> None:
    """Set each QCFS θ, in forward order, to a high quantile of its positive inputs on ``x``:
    random weights then give every layer outputs spread over its levels, as trained ones do."""
    for _, layer in qcfs_layers(model):
        seen: list[torch.Tensor] = []
        handle = layer.register_forward_pre_hook(lambda m, i, s=seen: s.append(i[0].detach()))
        try:
            model(x)
        finally:
            handle.remove()
        z = torch.cat([s.flatten() for s in seen])
        positive = z[z > 0]
        if positive.numel():
            sample = positive[torch.randperm(positive.numel())[:100_000]].double()
            layer.theta.fill_(float(torch.quantile(sample, quantile)))


def built(name: str, device: torch.device, batch: int, seed: int = 0) -> tuple[nn.Module, Any]:
    """The model with mixed per-layer L (1, 2, 4, 8 in turn), calibrated, and an input batch."""
    spec = MODELS[name]
    torch.manual_seed(seed)
    model = create(name, 10, **spec["args"]).to(device).eval()
    layers = qcfs_layers(model)
    set_levels(model, [(1, 2, 4, 8)[i % 4] for i in range(len(layers))])
    x = torch.rand(batch, *spec["shape"], device=device)
    calibrate(model, x)
    return model, x


def _counts_by_layer(
    net: nn.Module,
    layers: list[tuple[str, nn.Module]],
    x: torch.Tensor,
    fn: Callable[..., Any],
):
    """Per-neuron counts of ``layers`` (name, module) in one forward of ``net``."""
    out: dict[str, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, fn(m, i, o)))
        for n, m in layers
    ]
    try:
        logits = net(x)
    finally:
        for h in handles:
            h.remove()
    return logits, out


@torch.no_grad()
def equivalence(name: str, device: torch.device, batch: int) -> dict:
    model, x = built(name, device, batch)
    ann = copy.deepcopy(model).double()
    x64 = x.double()
    pasc = convert(ann, example_input=x64)
    ann_logits, levels = _counts_by_layer(
        ann, qcfs_layers(ann), x64, lambda m, i, o: level_index(o, m.L, m.theta.to(o.dtype))
    )

    def spikes(m, _i, o):
        train = o.reshape(m.L, -1, *o.shape[1:])
        return (train != 0).sum(0)

    # one IF layer per QCFS call site, named after the QCFS (these models call each QCFS once)
    pasc_logits, by_qcfs = _counts_by_layer(pasc, pasc.if_layers(), x64, spikes)
    mismatched = sum(int((by_qcfs[n] != levels[n]).sum()) for n in levels if n in by_qcfs)
    missing = sorted(set(levels) - set(by_qcfs))
    rates = [float(levels[n].double().mean()) / m.L for n, m in qcfs_layers(ann)]
    # float32: the default path = the reference neuron, bit for bit (logits and statistics)
    pasc32 = convert(model, example_input=x)
    ref32 = speed.reference_network(pasc32)
    pasc32.reset_stats()
    ref32.reset_stats()
    same_logits = bool(torch.equal(pasc32(x), ref32(x)))
    same_stats = speed.layer_counts(pasc32) == speed.layer_counts(ref32)
    return {
        "model": name,
        "levels": [m.L for _, m in qcfs_layers(model)],
        "float64_predictions_equal": bool(torch.equal(ann_logits.argmax(1), pasc_logits.argmax(1))),
        "float64_max_abs_logit_diff": float((ann_logits - pasc_logits).abs().max()),
        "float64_neurons_compared": sum(int(v.numel()) for v in levels.values()),
        "float64_spike_counts_mismatched": mismatched,
        "layers_without_if": missing,
        "mean_level_fraction": statistics.fmean(rates),
        "float32_logits_bit_identical_to_reference": same_logits,
        "float32_spike_statistics_equal_reference": same_stats,
    }


def qcfs_paths(device: torch.device) -> dict:
    """QCFS inference path = training forward, bit for bit, float32 and float64."""
    out = {}
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        ok = True
        for L in (1, 3, 4, 8, 255):
            x = torch.randn(100_000, generator=g, dtype=torch.float64) * 4
            x[:64] = (torch.arange(64, dtype=torch.float64) % (L + 3) - 1.5) * 2.7 / L
            x = x.to(device=device, dtype=dtype)
            act = QCFS(L, 2.7).to(device=device, dtype=dtype)
            trained = act(x.clone().requires_grad_()).detach()
            ok &= bool(torch.equal(trained, qcfs_inference(x, act.theta.detach(), L)))
            with torch.no_grad():
                ok &= bool(torch.equal(trained, act(x)))
        out[str(dtype).removeprefix("torch.")] = ok
    return out


# -- speed -------------------------------------------------------------------------------------
def synced(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    if device.type != "cuda":
        return fn

    def run() -> object:
        torch.cuda.synchronize(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return run


@torch.no_grad()
def speed_ratios(name: str, device: torch.device, batch: int, repeats: int, L: int) -> dict:
    torch.manual_seed(0)
    model = create(name, 10, width=0.25, L=L).to(device).eval()
    x = torch.rand(batch, 3, 32, 32, device=device)
    calibrate(model, x)
    ann, pasc = speed.efficient_ann(model), convert(model, example_input=x)
    floor = speed.floor_network(pasc)
    nets = {"ann": ann, "pasc": pasc, "floor": floor}
    funcs = {k: synced(lambda n=n: n(x), device) for k, n in nets.items()}
    for f in funcs.values():
        f()
        f()  # warm-up: allocator, cuDNN/oneDNN algorithm choice
    t = speed.interleaved(funcs, repeats)
    return {
        "model": name,
        "batch": batch,
        "median_s": {k: statistics.median(v) for k, v in t.items()},
        "pasc_over_L_ann": speed.ratio(t, "pasc", "ann", L),
        "pasc_over_floor": speed.ratio(t, "pasc", "floor"),
    }


def device_note(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    return f"{speed.cpu_model()} ({platform.machine()}), {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default=",".join(MODELS), help="equivalence models")
    parser.add_argument("--batch", type=int, default=32, help="equivalence batch")
    parser.add_argument("--speed-models", default="vgg16,resnet18")
    parser.add_argument("--speed-batches", default="64,256")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--L", type=int, default=4)
    parser.add_argument("--json", default="gpu_check.json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check.py: CUDA is not available here (use --device cpu to try it)")
    started = time.perf_counter()
    result: dict[str, Any] = {"device": device_note(device), "torch": torch.__version__}
    result["qcfs_inference_equals_training"] = qcfs_paths(device)
    result["equivalence"] = []
    for name in filter(None, args.models.split(",")):
        print(f"[equivalence] {name} ...", flush=True)
        result["equivalence"].append(equivalence(name, device, args.batch))
    result["speed"] = []
    for name in filter(None, args.speed_models.split(",")):
        for batch in speed.ints(args.speed_batches):
            print(f"[speed] {name}, batch {batch} ...", flush=True)
            result["speed"].append(speed_ratios(name, device, batch, args.repeats, args.L))
    checks = [*result["qcfs_inference_equals_training"].values()]
    for e in result["equivalence"]:
        checks += [
            e["float64_predictions_equal"],
            e["float64_spike_counts_mismatched"] == 0 and not e["layers_without_if"],
            e["float32_logits_bit_identical_to_reference"],
            e["float32_spike_statistics_equal_reference"],
        ]
    result["all_checks_passed"] = all(checks)
    result["seconds"] = time.perf_counter() - started
    write_json(args.json, result)
    print(f"{result['device']}: all checks passed: {result['all_checks_passed']}")
    for e in result["equivalence"]:
        print(
            f"  {e['model']:11s} float64 predictions equal {e['float64_predictions_equal']}, "
            f"{e['float64_spike_counts_mismatched']} of {e['float64_neurons_compared']} spike "
            f"counts differ, max |Δlogit| {e['float64_max_abs_logit_diff']:.2e}; float32 = "
            f"reference neuron: {e['float32_logits_bit_identical_to_reference']}"
        )
    for s in result["speed"]:
        print(
            f"  {s['model']:9s} batch {s['batch']:4d}: "
            f"PASC/(L×ANN) {speed.fmt(s['pasc_over_L_ann'])}, "
            f"PASC/floor {speed.fmt(s['pasc_over_floor'])}"
        )
    return 0 if result["all_checks_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
