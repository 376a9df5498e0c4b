"""Benchmark: how many ``torch.fx`` traces evaluation and training run (issue 14, item 3).

Counts every call of ``torch.fx.Tracer.trace`` (any tracer) in:

  - one ``evaluate_equivalence`` (float64 and float32) on ``digits_cnn`` with 2 batches;
  - training runs of 1 and 3 epochs (``digits_cnn``, synthetic data, batch 16); traces per
    epoch = (traces of 3 epochs − traces of 1 epoch) / 2;
  - one ``sweep_vanilla`` and one ``layer_metrics`` (AL statistics) as a check that nothing
    else traces per batch.

It runs against whatever ``pascal_snn`` is on ``PYTHONPATH``, so the same script measures an
old tree and this one:

    PYTHONPATH=src python benchmarks/trace_count.py
    git archive 8b02300 | tar -x -C /tmp/before      # main before this change
    PYTHONPATH=/tmp/before/src python benchmarks/trace_count.py

Figures (Intel(R) Xeon(R) Processor, 2 cores, torch 2.14.1), before (8b02300) → after:
evaluate_equivalence 3 → 1 traces in float64 and in float32 (what is left is the conversion's
own trace); training 3 → 0 traces per epoch (5 → 1 for a 1-epoch run); sweep_vanilla 1 → 1
(its conversion); layer_metrics 1 → 0 (the model's order was already known).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable

import torch
from torch import fx

from pascal_snn.data.synthetic import synthetic_datasets
from pascal_snn.evaluation import evaluate_equivalence, sweep_vanilla
from pascal_snn.models import create

COUNT = [0]
_original = fx.Tracer.trace


def _counting(self, *args, **kwargs):
    COUNT[0] += 1
    return _original(self, *args, **kwargs)


fx.Tracer.trace = _counting  # type: ignore[method-assign]


def traces(work: Callable[[], object]) -> int:
    before = COUNT[0]
    work()
    return COUNT[0] - before


def training_traces(epochs: int) -> int:
    from pascal_snn.config import RunConfig
    from pascal_snn.training import train

    with tempfile.TemporaryDirectory() as out:
        config = RunConfig(
            out=out,
            dataset="synthetic",
            model="digits_cnn",
            epochs=epochs,
            batch_size=16,
            lr=0.05,
            val_images=16,
            train_images=64,
        )
        return traces(lambda: train(config, progress=False))


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    _, test = synthetic_datasets(1, 64, image_size=8, channels=1)
    batches = [
        (torch.stack([test[i][0] for i in range(j, j + 32)]), torch.arange(32) % 10)
        for j in (0, 32)
    ]
    model = create("digits_cnn", 10, in_channels=1, L=4).eval()
    model(batches[0][0])
    result = {
        "evaluate_equivalence_float64": traces(lambda: evaluate_equivalence(model, batches)),
        "evaluate_equivalence_float32": traces(
            lambda: evaluate_equivalence(model, batches, dtype=torch.float32)
        ),
        "sweep_vanilla": traces(lambda: sweep_vanilla(model, batches, [1, 4])),
    }
    try:
        from pascal_snn.al import layer_metrics

        result["layer_metrics"] = traces(lambda: layer_metrics(model, batches, num_images=64))
    except ImportError:
        pass
    one, three = training_traces(1), training_traces(3)
    result["training_1_epoch"] = one
    result["training_3_epochs"] = three
    result["training_per_epoch"] = (three - one) / 2
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
