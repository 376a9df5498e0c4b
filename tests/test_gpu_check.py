"""benchmarks/gpu_check.py runs end to end on CPU (no GPU is lent here) and its checks pass."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_on_cpu(tmp_path):
    out = tmp_path / "check.json"
    args = ["--device", "cpu", "--models", "digits_cnn,resnet34", "--batch", "4"]
    args += ["--speed-models", "resnet18", "--speed-batches", "4", "--repeats", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert result["all_checks_passed"] is True
    assert result["qcfs_inference_equals_training"] == {"float32": True, "float64": True}
    for e in result["equivalence"]:
        assert e["float64_spike_counts_mismatched"] == 0 and e["float64_neurons_compared"] > 0
        assert 0.02 < e["mean_level_fraction"] < 0.9  # calibrated: the layers do spike
        assert e["float32_logits_bit_identical_to_reference"]
    (s,) = result["speed"]
    assert s["pasc_over_L_ann"]["median"] > 0 and s["pasc_over_floor"]["median"] > 0
