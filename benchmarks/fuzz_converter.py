"""Benchmark: the random-architecture fuzzer of the converter, for long runs.

What it measures: for ``--examples N`` random QCFS models (seeds ``S … S+N−1``, the grammar of
``tests/fuzz_models.py``: 1-D/2-D/3-D convolutional nets and MLPs, BatchNorm before and after,
QCFS with L 1–16 and θ 1e-3–100 (shared or not), pooling of every kind, residual adds,
concatenations of branches with different L, shared layers, scalings, shifts, reshapes, and
now and then an operation on the batch dim), how many convert exactly, how many are refused
(and why), how many would have been wrong (logits off by more than 1e-12·scale, a prediction
or a neuron's spike count differing from the ANN's level away from a level boundary) and how
many crashed. Wrong and crashed must be 0; every such seed is printed with its program.

Measured (Intel Xeon, 2 cores shared with other jobs, one thread, torch 2.14.1):
  --examples 10000 --seed 0: see BENCHMARKS.md ("Converter fuzzer").

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fuzz_converter.py --examples 10000 --seed 0
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the grammar lives in tests/

from tests.fuzz_models import check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--every", type=int, default=1000, help="progress line every N")
    args = parser.parse_args()
    torch.set_num_threads(1)
    status: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    boundary_examples = layers = 0
    failures = []
    began = time.perf_counter()
    for i, seed in enumerate(range(args.seed, args.seed + args.examples), 1):
        outcome = check(seed)
        status[outcome.status] += 1
        if outcome.status == "refused":
            reasons[outcome.reason] += 1
        if outcome.status in ("wrong", "crashed"):
            failures.append(outcome)
            print(f"--- seed {seed}: {outcome.status}\n{outcome.detail}", flush=True)
        boundary_examples += outcome.boundary > 0
        layers += outcome.layers
        if i % args.every == 0:
            print(f"{i} examples, {time.perf_counter() - began:.0f} s: {dict(status)}", flush=True)
    seconds = time.perf_counter() - began
    print(f"\nseeds {args.seed} … {args.seed + args.examples - 1}, torch {torch.__version__}")
    print(f"examples  {args.examples}")
    for key in ("converted", "refused", "invalid", "wrong", "crashed"):
        print(f"{key:<9} {status[key]}")
    print(f"converted with a level-boundary tie (not wrong): {boundary_examples}")
    print(f"IF layers in converted networks: {layers}")
    print(f"wall time {seconds:.0f} s ({1000 * seconds / args.examples:.0f} ms per example)")
    print("\nrefused, by reason:")
    for reason, n in reasons.most_common():
        print(f"{n:6d}  {reason}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
