"""One energy report of a converted network: layer table, analytic model, counted operations,
latency — as a JSON-ready dict (the ``pascal-snn energy`` command and the demo print it).

Two spike-rate sources sit side by side:

- ``analytic``: every layer at one assumed spike rate (the paper's analytic 0.75, also in the first
  layer's r', as the paper does to get T_norm);
- ``measured``: the rates the converted network produced on the data; a layer whose input
  is not spikes (the first layer: the image) stays MAC and enters r' with its dense input
  (rate = ``t_in``, every input on every step).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from pascal_snn.convert import PascNetwork, convert
from pascal_snn.energy.analytic import (
    ASSUMED_SPIKE_RATE,
    PRESETS,
    layer_energy,
    op_fractions,
    timesteps,
)
from pascal_snn.energy.latency import latency
from pascal_snn.energy.layers import LayerRow, layer_table
from pascal_snn.energy.measured import Measurement, measure
from pascal_snn.energy.topology import topology
from pascal_snn.errors import DataError

__all__ = ["energy_report"]


def _ratios(fractions) -> dict[str, float]:
    return {name: fractions.ratio(name) for name in PRESETS}


def _model_part(
    rows: Sequence[LayerRow],
    rates: Sequence[float | None],
    r_rates: Sequence[float],
    steps: Sequence[int],
    t_ins: Sequence[int],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Network- and layer-level figures of the energy model for one set of spike rates."""
    ts = timesteps(rows, r_rates, steps)
    mean, weighted = op_fractions(rows, rates, "mean"), op_fractions(rows, rates, "macs")
    energies = {name: layer_energy(rows, rates, t_ins, name) for name in PRESETS}
    per_layer = [
        {
            "spike_rate": s,
            "r_prime": ts.r_primes[i],
            "r_e": ts.r_es[i],
            "snn_macs": energies["fp32"][i].snn_macs,
            "snn_acs_estimated": energies["fp32"][i].snn_acs,
            "energy_pj": {
                name: {"ann": e[i].ann_pj, "snn": e[i].snn_pj} for name, e in energies.items()
            },
        }
        for i, s in enumerate(rates)
    ]
    summary = {
        "t_norm": ts.t_norm,
        "t_eff": ts.t_eff,
        "a": mean.a,
        "b": mean.b,
        "c": mean.c,
        "energy_ratio": _ratios(mean),
        "b_macs_weighted": weighted.b,
        "energy_ratio_macs_weighted": _ratios(weighted),
        "energy_pj": {
            name: {"ann": sum(x.ann_pj for x in e), "snn": sum(x.snn_pj for x in e)}
            for name, e in energies.items()
        },
    }
    return summary, per_layer


def _input_shape(loader: Iterable) -> tuple[tuple[int, ...], Iterable]:
    it = iter(loader)
    try:
        first = next(it)
    except StopIteration:
        raise DataError("the data loader yielded no images to measure") from None
    x = first[0] if isinstance(first, (tuple, list)) else first
    return tuple(x.shape[1:]), itertools.chain([first], it)


def energy_report(
    net_or_model: nn.Module,
    loader: Iterable | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    num_images: int | None = None,
    spike_rate: float = ASSUMED_SPIKE_RATE,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Energy report of a PascNetwork or a QCFS ANN (converted here only to measure).

    Without a loader the report is analytic: ``input_shape`` (one image, ``(C, H, W)``) is
    required and nothing runs but a shape trace. With a ``loader`` (yielding images or
    ``(images, labels)``), the network runs on up to ``num_images`` images, the report has a
    ``measured`` part, and ``input_shape`` defaults to the data's. Counts are per image.
    """
    # The ANN itself describes the structure (fast: traced on the meta device); a converted
    # network is needed only to measure.
    structure = net_or_model
    net = net_or_model if isinstance(net_or_model, PascNetwork) else None
    if device is not None:
        structure.to(device)
    if input_shape is None:
        if loader is None:
            raise ValueError("energy_report needs input_shape or a loader to read it from")
        input_shape, loader = _input_shape(loader)
    rows = layer_table(structure, input_shape)
    topo = topology(structure, input_shape)
    links = {link.name: link for link in topo.links}
    if [r.name for r in rows] != list(links):
        raise RuntimeError("layer table and graph disagree on the conv/linear layers")
    steps = [topo.step(links[r.name]) for r in rows]
    t_ins = [links[r.name].t_in for r in rows]
    spiking = [links[r.name].input == "spikes" for r in rows]

    assumed = [spike_rate if s else None for s in spiking]
    analytic, analytic_layers = _model_part(rows, assumed, [spike_rate] * len(rows), steps, t_ins)

    measurement: Measurement | None = None
    measured: dict[str, Any] | None = None
    measured_layers: list[dict[str, Any]] = [{} for _ in rows]
    if loader is not None:
        if net is None:
            net = convert(structure)
        assert isinstance(net, PascNetwork)
        measurement = measure(net, loader, num_images, device)
        ops = {layer.name: layer for layer in measurement.layers}
        rates = [ops[r.name].spike_rate for r in rows]
        r_rates = [float(t) if s is None else s for s, t in zip(rates, t_ins, strict=True)]
        measured, measured_layers = _model_part(rows, rates, r_rates, steps, t_ins)
        measured.update(_counted(rows, measurement))
        n = measurement.images
        for layer, row in zip(measured_layers, rows, strict=True):
            got = ops[row.name]
            layer.update(
                acs=got.acs / n,
                macs=got.macs / n,
                bias_adds=got.bias_adds / n,
                input_events=got.input_events / n,
            )

    layers = []
    for i, row in enumerate(rows):
        link = links[row.name]
        layers.append(
            {
                **{k: getattr(row, k) for k in row.__dataclass_fields__},
                "input": link.input,
                "sources": list(link.sources),
                "t_in": link.t_in,
                "L": steps[i],
                "analytic": analytic_layers[i],
                "measured": measured_layers[i] or None,
            }
        )
    lat = latency(structure, input_shape)
    graph = structure.graph if isinstance(structure, PascNetwork) else structure
    return {
        "model": type(graph).__name__,
        "input_shape": list(input_shape),
        "images": measurement.images if measurement else 0,
        "assumed_spike_rate": spike_rate,
        "presets": {k: {"e_mac_pj": p.e_mac_pj, "e_ac_pj": p.e_ac_pj} for k, p in PRESETS.items()},
        "totals": {
            "layers": len(rows),
            "ann_macs": sum(r.macs for r in rows),
            "uniform_L": steps[0] if len(set(steps)) == 1 else None,
        },
        "layers": layers,
        "neurons": _neurons(measurement) if measurement else [],
        "analytic": analytic,
        "measured": measured,
        "latency": {
            "total_steps": lat.total_steps,
            "output_length": lat.output_length,
            "neurons": [
                {
                    "name": t.name,
                    "t_in": t.t_in,
                    "L": t.L,
                    "input_start": t.input_start,
                    "output_start": t.output_start,
                }
                for t in lat.neurons
            ],
        },
    }


def _counted(rows: Sequence[LayerRow], m: Measurement) -> dict[str, Any]:
    """Energy from the operations actually performed (per image), against the ANN's."""
    n = m.images
    ann_macs = sum(r.macs for r in rows)
    updates = [sum(neuron.updates[k] for neuron in m.neurons) / n for k in range(3)]
    out: dict[str, Any] = {
        "acs_per_image": m.acs / n,
        "macs_per_image": m.macs / n,
        "if_updates_per_image": updates,
        "inhibitory_spikes_per_image": sum(x.inhibitory for x in m.neurons) / n,
        "counted_energy_pj": {},
        "counted_energy_ratio": {},
    }
    for name, p in PRESETS.items():
        snn = (m.macs * p.e_mac_pj + m.acs * p.e_ac_pj) / n
        ann = ann_macs * p.e_mac_pj
        out["counted_energy_pj"][name] = {"ann": ann, "snn": snn}
        out["counted_energy_ratio"][name] = ann / snn if snn else float("inf")
    return out


def _neurons(m: Measurement) -> list[dict[str, Any]]:
    n = m.images
    return [
        {
            "name": x.name,
            "L": x.L,
            "t_in": x.t_in,
            "neurons": x.neurons,
            "spike_rate": x.spike_rate,
            "excitatory_per_image": x.excitatory / n,
            "inhibitory_per_image": x.inhibitory / n,
            "output_spikes_per_image": x.output_spikes / n,
            "updates_per_image": [u / n for u in x.updates],
        }
        for x in m.neurons
    ]
