"""``pascal-snn convert``: a training checkpoint's spiking network, saved as one data file.

The file is what ``snn.save(path)`` writes (:mod:`pascal_snn.convert.serialize`); load it with
``pascal_snn.load_snn(path)``. The network is built for the input shape the checkpoint
records. ``--out`` is one file written atomically (temporary file, then a rename), so no run
folder is held: a reader sees the old file or the new one, and nothing else is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from pascal_snn.checkpoint import load_model
from pascal_snn.commands.args import DEFAULT_THREADS, DTYPE_NAMES, MAX_THREADS, bounded_int
from pascal_snn.config import MAX_LEVEL
from pascal_snn.convert import PascNetwork, convert
from pascal_snn.errors import CheckpointError, ConfigError
from pascal_snn.io import check_writable

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "convert",
        help="convert a checkpoint into its spiking network and save it (load_snn loads it)",
        description="Convert a trained checkpoint into its PASC spiking network (or the vanilla "
        "IF baseline), built for the checkpoint's input shape, and save it as one data file "
        "that pascal_snn.load_snn(path) loads.",
    )
    parser.add_argument(
        "--checkpoint", required=True, type=Path, help="a checkpoint written by `train`"
    )
    parser.add_argument("--out", required=True, type=Path, help="the file to write (e.g. snn.pt)")
    parser.add_argument(
        "--mode",
        choices=["pasc", "vanilla"],
        default="pasc",
        help="pasc (default): exact at T = L per layer; vanilla: the plain IF baseline",
    )
    parser.add_argument(
        "--timesteps",
        type=bounded_int(1, MAX_LEVEL),
        default=None,
        help="steps of the vanilla IF baseline (needed with --mode vanilla)",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        default="float64",
        help="arithmetic of the network (default: float64, where it equals the ANN exactly)",
    )
    parser.add_argument(
        "--threads",
        type=bounded_int(1, MAX_THREADS),
        default=DEFAULT_THREADS,
        help=f"torch CPU threads (default {DEFAULT_THREADS})",
    )
    parser.set_defaults(run=run)
    return parser


def _check_options(args: argparse.Namespace) -> Path:
    """Every option, and the output file's folder, before any work; returns ``--out``."""
    if args.mode == "vanilla" and args.timesteps is None:
        raise ConfigError("--mode vanilla needs --timesteps T (the steps it runs)")
    if args.mode == "pasc" and args.timesteps is not None:
        raise ConfigError("--timesteps applies to --mode vanilla; PASC runs T = L per layer")
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out '{out}' is a folder; give a file name such as {out}/snn.pt")
    if out.exists() and out.resolve() == Path(args.checkpoint).resolve():
        raise ConfigError(f"--out '{out}' is the checkpoint itself; choose another file")
    check_writable(out.absolute().parent)
    return out


def _input_shape(checkpoint: dict[str, Any], path: Path) -> tuple[int, ...]:
    shape = (checkpoint.get("dataset") or {}).get("input_shape")
    if not (
        isinstance(shape, (list, tuple)) and shape and all(type(s) is int and s > 0 for s in shape)
    ):
        raise CheckpointError(
            f"checkpoint '{path}' does not record the shape of its inputs (dataset.input_shape); "
            "convert its model in Python (pascal_snn.convert(model, example_input=x).save(path))"
        )
    return tuple(shape)


def run(args: argparse.Namespace) -> int:
    out = _check_options(args)
    model, checkpoint = load_model(args.checkpoint)
    shape = _input_shape(checkpoint, args.checkpoint)
    dtype = getattr(torch, args.dtype)
    example = torch.zeros((2, *shape), dtype=dtype)
    snn = convert(model.to(dtype), args.mode, args.timesteps, example_input=example)
    snn.save(out)
    if isinstance(snn, PascNetwork):
        levels = [layer.L for _, layer in snn.if_layers()]
        layers = f"{len(levels)} IF layers, per-layer L: {','.join(map(str, levels))}"
    else:
        layers = f"{len(snn.if_layers())} IF layers, {args.timesteps} timesteps"
    print(f"saved the {args.mode} spiking network to {out} ({out.stat().st_size:,} bytes)")
    print(f"  input {'×'.join(map(str, shape))}, {args.dtype}; {layers}")
    print("  load it with pascal_snn.load_snn(path)")
    return 0
