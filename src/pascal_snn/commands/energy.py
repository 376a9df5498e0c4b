"""``pascal-snn energy``: operations, spike rates, T_norm / T_eff, latency and energy of a
checkpoint's converted (PASC) network.

The network runs on ``--num-images`` test images and counts what it does (spike rates, ACs,
IF updates); the paper's analytic model with one assumed spike rate (``--spike-rate``,
default 0.75) is reported beside it. Prints a per-layer table and writes ``energy.json``,
``spike_rates.png`` (paper Figure 4) and ``energy_breakdown.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Subset

from pascal_snn.commands.args import add_checkpoint_arguments, positive_float
from pascal_snn.commands.common import load_checkpoint_and_data, progress
from pascal_snn.data import dataset_size
from pascal_snn.energy.analytic import ASSUMED_SPIKE_RATE
from pascal_snn.energy.report import EnergyReport, energy_report
from pascal_snn.errors import ConfigError
from pascal_snn.io import run_folder, write_json

__all__ = ["add_parser", "run"]

ENERGY_FORMAT = "pascal-snn/energy/1"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "energy",
        help="spike rates, operations, T_norm/T_eff, latency and energy of the converted SNN",
        description=(
            "Convert a checkpoint to its PASC spiking network, run it on test images and report "
            "per-layer MACs, spike rates, counted ACs and IF updates, the paper's T_norm/T_eff "
            "and ANN/SNN energy ratios (FP32 and INT8, Horowitz 2014), and the end-to-end "
            "latency in neuron steps. Writes energy.json, spike_rates.png, energy_breakdown.png."
        ),
    )
    add_checkpoint_arguments(
        parser, num_images=1000, num_images_help="test images to measure on (1000)", batch_size=100
    )
    parser.add_argument(
        "--spike-rate",
        type=positive_float,
        default=ASSUMED_SPIKE_RATE,
        help="spike rate of the analytic model (spikes per neuron over all steps), reported "
        f"beside the measured one ({ASSUMED_SPIKE_RATE})",
    )
    parser.add_argument(
        "--analytic-only",
        action="store_true",
        help="do not run the network: report the analytic model only",
    )
    parser.set_defaults(run=run)
    return parser


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (abs(value) >= 1000 and float(value).is_integer()):
        return f"{int(value):,}"
    return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def layer_tables(report: EnergyReport, title: str) -> list[Table]:
    """The per-layer figures as tables that fit 80 columns: the structure with the analytic
    model, then (when measured) what the network did."""
    structure = Table(title=title, title_justify="left")
    for column in ("layer", "kind", "input", "L", "ANN MACs", "rate*", "r_E*"):
        structure.add_column(
            column, justify="left" if column in ("layer", "kind", "input") else "right"
        )
    for layer in report.layers:
        a = layer.analytic
        structure.add_row(
            layer.name,
            layer.row.kind,
            layer.input,
            str(layer.L),
            _num(layer.row.macs),
            _num(a.spike_rate),
            _num(a.r_e),
        )
    structure.caption = f"* analytic model at the assumed spike rate {report.assumed_spike_rate:g}"
    tables = [structure]
    if report.measured is not None:
        measured = Table(title="measured on the data", title_justify="left")
        for column in ("layer", "rate", "ACs est.", "ACs counted", "MACs counted", "r_E"):
            measured.add_column(column, justify="left" if column == "layer" else "right")
        for layer in report.layers:
            m = layer.measured
            if m is None or m.counted is None:
                continue
            measured.add_row(
                layer.name,
                _num(m.spike_rate),
                _num(m.snn_acs_estimated),
                _num(m.counted.acs),
                _num(m.counted.macs),
                _num(m.r_e),
            )
        measured.caption = "per image; rate: spikes per input neuron over all steps"
        tables.append(measured)
    for table in tables:
        table.columns[0].overflow = "ellipsis"
        table.columns[0].max_width = 22
    return tables


def summary_lines(report: EnergyReport) -> list[str]:
    """The network totals, one line each (at most 80 characters)."""
    lines = [f"ANN MACs per image: {report.ann_macs:,}"]
    for label, part in (("assumed", report.analytic), ("measured", report.measured)):
        if part is None:
            continue
        t_norm = "–" if part.t_norm is None else f"{part.t_norm:.3f}"
        ratio = part.energy_ratio
        lines.append(
            f"{label:>8}: b={part.b:.4f} c={part.c:.4f} T_norm={t_norm} T_eff={part.t_eff:.3f}"
        )
        lines.append(
            f"          ANN/SNN energy (Table 3 model) FP32={ratio['fp32']:.2f} "
            f"INT8={ratio['int8']:.2f}"
        )
    if report.measured is not None and report.measured.counted is not None:
        c = report.measured.counted
        upd = c.if_updates_per_image
        lines += [
            f" counted: ACs/image={c.acs_per_image:,.0f} MACs/image={c.macs_per_image:,.0f}",
            f"          ANN/SNN energy FP32={c.energy_ratio['fp32']:.2f} "
            f"INT8={c.energy_ratio['int8']:.2f}",
            f"          IF updates/image: stage1={upd[0]:,.0f} stage2={upd[1]:,.0f} "
            f"stage3={upd[2]:,.0f}",
            f"          inhibitory spikes/image={c.inhibitory_spikes_per_image:,.1f}",
        ]
    lines += [
        f" latency: {report.latency.total_steps} neuron steps end to end (layer-by-layer schedule;",
        "          T_norm/T_eff are energy-normalised, not latency)",
    ]
    return lines


def print_report(report: EnergyReport, title: str, console: Console | None = None) -> None:
    """The per-layer tables and the totals, on the terminal (rich), within 80 columns."""
    console = console or Console()
    for table in layer_tables(report, title):
        console.print(table)
    for line in summary_lines(report):
        console.print(line, highlight=False)


def run(args: argparse.Namespace) -> int:
    loaded = load_checkpoint_and_data(args)
    test = loaded.test_set
    images = min(args.num_images, dataset_size(test))
    if images == 0:
        raise ConfigError(f"the {loaded.info.name} test split is empty")
    if not args.analytic_only:
        loaded.check_memory(args.batch_size, images, torch.float32)
    loader = DataLoader(Subset(test, range(images)), batch_size=args.batch_size, shuffle=False)
    with run_folder(loaded.out, args.command_line) as out:
        report = energy_report(
            loaded.model,
            None if args.analytic_only else progress(loader, "energy: PASC network", images),
            input_shape=loaded.info.input_shape,
            spike_rate=args.spike_rate,
            device=loaded.device,
        )
        name = loaded.info.name
        what = "analytic only" if args.analytic_only else f"{report.images} {name} images"
        print_report(report, f"Energy of {args.checkpoint.name} ({what})")
        header = {
            "format": ENERGY_FORMAT,
            "checkpoint": str(args.checkpoint),
            "dataset": name,
            "levels": loaded.checkpoint.get("levels"),
        }
        write_json(out / "energy.json", {**header, **report.as_dict()})
        from pascal_snn.energy.plot import energy_breakdown_figure, save_figure, spike_rate_figure

        # matplotlib is imported only by the commands that plot (it costs ~0.5 s)
        save_figure(spike_rate_figure(report), out / "spike_rates.png")
        save_figure(energy_breakdown_figure(report), out / "energy_breakdown.png")
    print(f"wrote {out / 'energy.json'}, {out / 'spike_rates.png'}, {out / 'energy_breakdown.png'}")
    return 0
