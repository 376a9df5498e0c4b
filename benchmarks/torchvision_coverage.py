"""Coverage table: which torchvision classification models qcfsify and convert exactly.

What it checks, for every model of ``torchvision.models.list_models(module=torchvision.models)``:
  1. ``qcfsify`` (architecture only, built on the meta device where the builder allows): the
     number of QCFS = IF layers, or the refusal (the activations with no QCFS counterpart).
  2. For models that qcfsify: random weights (torchvision's init), randomised BatchNorm
     statistics, float64, per-layer L drawn from 1…8, θ calibrated (99th percentile) on 4
     random images, then ``convert`` and one batch of 2 random images: ✓ when the spiking
     network's logits equal the ANN's to 1e-9 (relative) with the same predictions, else the
     converter's refusal (first sentence) or the mismatch.
Inputs are 32×32 (AlexNet 64×64, Inception v3 75×75: their smallest), torchvision's own stem,
GoogLeNet / Inception v3 with ``aux_logits=False``; classifier sizes as torchvision builds them.

Run (every model is built once at full size):

    PYTHONPATH=src python benchmarks/torchvision_coverage.py --write docs/models.md

``--write`` replaces the table between the coverage markers in that file; without it the
table is printed. ``--models resnet18,vgg11`` restricts the run. The table in docs/models.md
comes from a full run (80 models, 86 minutes with one thread on a loaded 2-core Xeon).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import torch
import torchvision
from torch import nn

from pascal_snn import ConversionError, calibrate_thresholds, convert, qcfs_layers, qcfsify

START = "<!-- torchvision-coverage:start -->"
END = "<!-- torchvision-coverage:end -->"
SIZE = {"alexnet": 64, "inception_v3": 75}
OPTIONS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


def build(name: str, device: str | None = None) -> nn.Module:
    options = {"weights": None, "num_classes": 10, **OPTIONS.get(name, {})}
    if device is None:
        return torchvision.models.get_model(name, **options)
    try:
        with torch.device(device):
            return torchvision.models.get_model(name, **options)
    except NotImplementedError:  # the builder reads tensor values (RegNet widths)
        return torchvision.models.get_model(name, **options)


def randomize_batchnorm(model: nn.Module, g: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) * 2 - 1)


def first_sentence(error: Exception) -> str:
    text = str(error).split(". supported:")[0].split("\n")[0]
    return text.replace("|", "/").strip()


def check(name: str) -> dict[str, str]:
    """One table row: qcfsify (layers or refusal), then exact conversion or the reason."""
    try:
        layers = len(qcfs_layers(qcfsify(build(name, "meta"))))
    except ConversionError as exc:
        found = re.search(r"counterpart \((.*?)\);", str(exc))
        reason = found.group(1) if found else first_sentence(exc)
        return {"model": name, "result": f"refused by qcfsify: {reason}", "layers": "–"}
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    relu_model = build(name)
    with torch.no_grad():
        randomize_batchnorm(relu_model, g)
    relu_model = relu_model.double().eval()
    levels = torch.randint(1, 9, (layers,), generator=g).tolist()
    model = qcfsify(relu_model, L=levels)
    del relu_model
    size = SIZE.get(name, 32)
    images = torch.rand(6, 3, size, size, generator=g, dtype=torch.float64)
    calibrate_thresholds(model, [images[:4]], num_images=4, percentile=99.0)
    try:
        snn = convert(model)
    except ConversionError as exc:
        return {
            "model": name,
            "result": f"refused by convert: {first_sentence(exc)}",
            "layers": str(layers),
        }
    with torch.no_grad():
        ann_out, snn_out = model(images[4:]), snn(images[4:])
    error = ((ann_out - snn_out).abs().max() / ann_out.abs().max()).item()
    same = torch.equal(ann_out.argmax(1), snn_out.argmax(1))
    result = "✓" if error <= 1e-9 and same else f"✗ logits differ (relative {error:.1e})"
    return {"model": name, "result": result, "layers": str(len(snn.if_layers()))}


def table(rows: list[dict[str, str]]) -> str:
    head = "| torchvision model | converts exactly (float64) | QCFS = IF layers |"
    lines = [head, "|---|---|---|"]
    lines += [f"| `{r['model']}` | {r['result']} | {r['layers']} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: all)")
    parser.add_argument("--write", metavar="MARKDOWN", help="replace the table in this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = torchvision.models.list_models(module=torchvision.models)
    if args.models:
        names = [n.strip() for n in args.models.split(",")]
    rows = []
    for name in names:
        start = time.perf_counter()
        rows.append(check(name))
        print(
            f"{name}: {rows[-1]['result']} ({time.perf_counter() - start:.1f} s)", file=sys.stderr
        )
    text = table(rows)
    header = (
        "Generated by `PYTHONPATH=src python benchmarks/torchvision_coverage.py --write "
        f"docs/models.md` (torchvision {torchvision.__version__}, torch {torch.__version__})."
    )
    if not args.write:
        print(text)
        return
    path = Path(args.write)
    doc = path.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        raise SystemExit(f"{path} has no {START} … {END} markers")
    before, rest = doc.split(START, 1)
    _, after = rest.split(END, 1)
    path.write_text(f"{before}{START}\n{header}\n\n{text}\n{END}{after}", encoding="utf-8")


if __name__ == "__main__":
    main()
