"""Benchmark: peak memory of evaluation, AL statistics and energy measurement vs data-set size.

What it measures (issue 8 §5): the peak resident memory of three streaming passes over
``N`` test images and ``10 × N`` test images — ``pascal_snn.evaluation.evaluate_equivalence``
(ANN and PASC network, float64), ``pascal_snn.al.layer_metrics`` (level histograms of every
QCFS layer) and ``pascal_snn.energy.measure`` (operation and spike counts of the PASC network)
— each in its own freshly spawned process, batches streamed from a DataLoader. In the child the
data set, model and network are set up first; then the peak RSS is reset
(``echo 5 > /proc/self/clear_refs``) and the task runs; the child reports its RSS after setup
and its peak RSS during the task (VmHWM). Memory that stays flat: peak(10 N) / peak(N) ≈ 1, and
the growth above the setup RSS does not scale with N either.

On: ``mnist_cnn`` (QCFS L = 4, random weights: memory does not depend on them) on the
Fashion-MNIST test split at 28×28 (``--dataset synthetic`` for generated images), batch 100,
1 torch thread.

Measured (2-core AMD EPYC VM shared with training jobs, torch 2.14.1; MiB):

  task (malloc)                  peak@500  peak@5000  ratio  growth@500  growth@5000  ratio
  evaluate_equivalence (default)   1198.9     1237.1  1.032       453.4        491.6  1.084
  layer_metrics (default)           827.1      875.1  1.058        81.6        129.6  1.588
  energy.measure (default)          866.4      866.3  1.000       120.8        120.8  1.000
  evaluate_equivalence (fixed)     1050.9     1051.0  1.000       308.6        308.7  1.000
  layer_metrics (fixed)             815.4      815.4  1.000        73.1         73.1  1.000
  energy.measure (fixed)            825.2      825.4  1.000        82.8         83.2  1.004

"fixed" runs the child with glibc's mmap threshold fixed at 128 KiB (MALLOC_MMAP_THRESHOLD_),
so freed tensors leave the process at once and RSS follows live memory: flat to the MiB, the
library holds O(1) state per layer. With glibc's default (dynamic) threshold, freed buffers
stay in the heap and fragment it; that creep varies run to run (another run: layer_metrics
81.6 → 81.6, evaluate_equivalence 453 → 454 → 516 → 498 → 543 MiB at 0.5/1/2/5/10 k images)
and is bounded by the allocator, not by N. ~740 MiB of every peak is the interpreter, torch
and the decoded data set.

    .venv/bin/python benchmarks/memory.py [--images 500] [--scale 10] [--model mnist_cnn]
        [--batch 100] [--dataset fashion-mnist] [--allocator both] [--json PATH]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os

import torch
from torch.utils.data import DataLoader, Subset

from pascal_snn import DataError, convert
from pascal_snn.al import layer_metrics
from pascal_snn.data import build_datasets
from pascal_snn.data.synthetic import synthetic_datasets
from pascal_snn.energy import measure
from pascal_snn.evaluation import evaluate_equivalence
from pascal_snn.io import write_json
from pascal_snn.models import create

TASKS = ("evaluate_equivalence", "layer_metrics", "energy.measure")
MiB = 2**20


def _status() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def _test_set(spec: dict):
    if spec["dataset"] == "synthetic":
        _, test = synthetic_datasets(1, spec["images"], image_size=28, channels=1)
        return test
    _, test, _ = build_datasets(spec["dataset"], spec["data_dir"], augment=False)
    if len(test) < spec["images"]:
        raise DataError(f"the test split has {len(test)} images, fewer than {spec['images']}")
    return test


def _child(task: str, spec: dict, queue) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    test = Subset(_test_set(spec), range(spec["images"]))
    loader = DataLoader(test, batch_size=spec["batch"])
    model = create(spec["model"], 10, in_channels=1, L=4).eval()
    net = convert(model)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS; what follows is the task alone
    setup = _status()["VmRSS"]
    if task == "evaluate_equivalence":
        evaluate_equivalence(model, loader)
    elif task == "layer_metrics":
        layer_metrics(model, loader, num_images=spec["images"])
    else:
        measure(net, loader, num_images=spec["images"])
    queue.put({"setup_rss": setup, "peak_rss": _status()["VmHWM"]})


def run_child(task: str, spec: dict, allocator: str) -> dict[str, int]:
    """Run ``task`` in a spawned child; ``allocator="fixed"`` fixes glibc's mmap threshold."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    saved = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    if allocator == "fixed":
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "131072"  # read by the child's glibc at start
    try:
        child = ctx.Process(target=_child, args=(task, spec, queue))
        child.start()
        result = queue.get(timeout=1800)
        child.join()
    finally:
        os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
        if saved is not None:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = saved
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500, help="the small case N")
    parser.add_argument("--scale", type=int, default=10, help="the large case is scale × N")
    parser.add_argument("--model", default="mnist_cnn")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--dataset", default="fashion-mnist", choices=["fashion-mnist", "synthetic"]
    )
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--allocator",
        default="both",
        choices=["default", "fixed", "both"],
        help="glibc malloc as a user runs it, with its mmap threshold fixed at 128 KiB "
        "(freed tensors leave the process at once: RSS follows live memory), or both",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    sizes = (args.images, args.images * args.scale)
    allocators = ["default", "fixed"] if args.allocator == "both" else [args.allocator]
    results = []
    for allocator in allocators:
        for task in TASKS:
            row = {"task": task, "allocator": allocator}
            for n in sizes:
                spec = {"images": n, "batch": args.batch, "model": args.model}
                spec.update(dataset=args.dataset, data_dir=args.data_dir)
                print(f"{task}, {allocator} malloc: {n} images ...", flush=True)
                row[n] = run_child(task, spec, allocator)
            small, large = row[sizes[0]], row[sizes[1]]
            row["peak_ratio"] = large["peak_rss"] / small["peak_rss"]
            growth = [max(r["peak_rss"] - r["setup_rss"], 1) for r in (small, large)]
            row["growth_ratio"] = growth[1] / growth[0]
            results.append(row)

    a, b = sizes
    print("\npeak RSS (MiB) of one process per case; growth = peak − RSS after setup (MiB)")
    print(
        f"{'task (malloc)':34s}{'peak@' + str(a):>11s}{'peak@' + str(b):>11s}{'ratio':>8s}"
        f"{'growth@' + str(a):>13s}{'growth@' + str(b):>13s}{'ratio':>8s}"
    )
    for r in results:
        s, t = r[a], r[b]
        label = f"{r['task']} ({r['allocator']})"
        print(
            f"{label:34s}{s['peak_rss'] / MiB:11.1f}{t['peak_rss'] / MiB:11.1f}"
            f"{r['peak_ratio']:8.3f}{(s['peak_rss'] - s['setup_rss']) / MiB:13.1f}"
            f"{(t['peak_rss'] - t['setup_rss']) / MiB:13.1f}{r['growth_ratio']:8.3f}"
        )
    if args.json:
        write_json(args.json, {"args": vars(args), "torch": torch.__version__, "results": results})


if __name__ == "__main__":
    main()
