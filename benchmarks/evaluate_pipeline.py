"""Benchmark: ``pascal-snn evaluate --mode both`` on 1,000 images, an old tree against this one.

What it measures (issue 16, item 3: goal ≤ 0.5 × the old time). Each round runs the command
once with the old ``pascal_snn`` and once with the new one (``PYTHONPATH`` set per run, the
order alternating between rounds), each in its own process with one torch thread
(``OMP_NUM_THREADS=1``), and records wall-clock and CPU time (user + system, from the child's
rusage). The ratio new / old is taken per round, so both runs of a round saw the same machine
load; reported as median [q1, q3]. Before timing anything it checks that both trees report the
same numbers (accuracies, agreement, boundary cases, every vanilla T's correct count).

The figure in BENCHMARKS.md §5 used ``mnist_cnn`` (L = 4) trained 2 epochs on 10,000
Fashion-MNIST training images, the first 1,000 test images, float64 (the command's default),
batch 256, vanilla T ∈ {1, 2, 4, …, 256}:

    pascal-snn train --dataset fashion-mnist --epochs 2 --train-images 10000 \\
        --val-images 1000 --out /tmp/fm_cnn
    git archive 5d3d163 | tar -x -C /tmp/base            # main before issue 16 item 3
    PYTHONPATH=src python benchmarks/evaluate_pipeline.py --checkpoint /tmp/fm_cnn/best.pt \\
        --old /tmp/base/src --new src --rounds 3 --json pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(src: str, args: argparse.Namespace, out: Path) -> dict:
    """One ``evaluate`` run with ``src`` first on the path; wall and CPU seconds, the JSON."""
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve()), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pascal_snn.cli", "evaluate", "--checkpoint",
               str(args.checkpoint), "--mode", "both", "--num-images", str(args.images),
               "--out", str(out)]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"evaluate with {src} failed:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    system = after.ru_stime - before.ru_stime
    result = json.loads((out / "evaluate.json").read_text())
    return {"wall_s": wall, "cpu_s": cpu, "system_s": system, "result": result}


def figures(result: dict) -> dict:
    """What both trees must agree on."""
    pasc, vanilla = result["pasc"], result["vanilla"]
    keys = ("images", "ann_correct", "snn_correct", "agreement", "boundary_cases")
    return {
        "pasc": {k: pasc[k] for k in keys},
        "vanilla": {k: vanilla[k] for k in ("timesteps", "correct", "images")},
        "ann_accuracy": result["ann_accuracy"],
    }


def quartiles(values: list[float]) -> dict:
    if len(values) < 2:
        return {"median": values[0], "q1": values[0], "q3": values[0]}
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": q2, "q1": q1, "q3": q3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--old", required=True, help="the old tree's src folder")
    parser.add_argument("--new", default="src", help="this tree's src folder")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if "model name" in line), "?")
    print(f"{cpu}, {os.cpu_count()} CPUs; {args.images} images, {args.rounds} rounds", flush=True)
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for which in order:
                src = args.old if which == "old" else args.new
                got = run(src, args, Path(tmp) / f"{which}{r}")
                runs[which].append(got)
                print(
                    f"round {r + 1} {which}: wall {got['wall_s']:.1f} s, CPU {got['cpu_s']:.1f} s"
                    f" (system {got['system_s']:.1f} s)",
                    flush=True,
                )
            if figures(runs["old"][-1]["result"]) != figures(runs["new"][-1]["result"]):
                raise SystemExit(
                    "the two trees report different numbers:\n"
                    f"old {figures(runs['old'][-1]['result'])}\n"
                    f"new {figures(runs['new'][-1]['result'])}"
                )
    ratios = {
        key: quartiles([n[key] / o[key] for n, o in zip(runs["new"], runs["old"])])
        for key in ("wall_s", "cpu_s")
    }
    medians = {
        which: {k: statistics.median(r[k] for r in runs[which]) for k in ("wall_s", "cpu_s")}
        for which in runs
    }
    for key, q in ratios.items():
        print(f"new / old {key[:-2]}: {q['median']:.3f} [{q['q1']:.3f}, {q['q3']:.3f}]")
    print(f"medians: {json.dumps(medians)}; same figures in every round: True")
    if args.json:
        from pascal_snn.io import write_json

        for which in runs:
            for r in runs[which]:
                r.pop("result")
        settings = {k: str(v) for k, v in vars(args).items()}
        summary = {"ratio_new_over_old": ratios, "medians": medians}
        write_json(args.json, {"cpu": cpu, "args": settings, "runs": runs, **summary})


if __name__ == "__main__":
    main()
