"""One energy report of a converted network: layer table, analytic model, counted operations,
latency — as typed data (:class:`EnergyReport`) with one JSON form (:meth:`EnergyReport.as_dict`).
The ``pascal-snn energy`` command and the demo print it, plot it and write it.

Two spike-rate sources sit side by side:

- ``analytic``: every layer at one assumed spike rate (the paper's analytic 0.75, also in the first
  layer's r', as the paper does to get T_norm);
- ``measured``: the rates the converted network produced on the data; a layer whose input
  is not spikes (the first layer: the image) stays MAC and enters r' with its dense input
  (rate = ``t_in``, every input on every step).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pascal_snn.convert import PascNetwork, convert
from pascal_snn.energy.analytic import (
    ASSUMED_SPIKE_RATE,
    PRESETS,
    OpFractions,
    layer_energy,
    op_fractions,
    timesteps,
)
from pascal_snn.energy.latency import Latency, latency
from pascal_snn.energy.layers import LayerRow, layer_table
from pascal_snn.energy.measured import Measurement, NeuronOps, measure
from pascal_snn.energy.topology import topology
from pascal_snn.errors import DataError

__all__ = [
    "CountedOps",
    "EnergyReport",
    "LayerCounts",
    "LayerModel",
    "LayerReport",
    "ModelSummary",
    "NeuronReport",
    "PresetEnergy",
    "energy_report",
]


@dataclass(frozen=True)
class PresetEnergy:
    """Energy per image of the ANN and of the SNN for one preset, in picojoules."""

    ann: float
    snn: float

    def as_dict(self) -> dict[str, float]:
        return {"ann": self.ann, "snn": self.snn}


def _presets(values: Mapping[str, PresetEnergy]) -> dict[str, dict[str, float]]:
    return {name: value.as_dict() for name, value in values.items()}


@dataclass(frozen=True)
class LayerCounts:
    """Operations one conv/linear layer actually performed, per image (measured only)."""

    acs: float
    macs: float
    bias_adds: float
    input_events: float


@dataclass(frozen=True)
class LayerModel:
    """One conv/linear layer in the energy model for one set of spike rates (``spike_rate``
    None: the layer stays MAC); ``counted``: what it did on the data (measured rates only)."""

    spike_rate: float | None
    r_prime: float
    r_e: float
    snn_macs: float
    snn_acs_estimated: float
    energy_pj: Mapping[str, PresetEnergy]
    counted: LayerCounts | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "spike_rate": self.spike_rate,
            "r_prime": self.r_prime,
            "r_e": self.r_e,
            "snn_macs": self.snn_macs,
            "snn_acs_estimated": self.snn_acs_estimated,
            "energy_pj": _presets(self.energy_pj),
        }
        if self.counted is not None:
            out.update(dataclasses.asdict(self.counted))
        return out


@dataclass(frozen=True)
class CountedOps:
    """Energy from the operations actually performed (per image), against the ANN's."""

    acs_per_image: float
    macs_per_image: float
    if_updates_per_image: tuple[float, float, float]  # stage 1, 2, 3
    inhibitory_spikes_per_image: float
    energy_pj: Mapping[str, PresetEnergy]
    energy_ratio: Mapping[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "acs_per_image": self.acs_per_image,
            "macs_per_image": self.macs_per_image,
            "if_updates_per_image": list(self.if_updates_per_image),
            "inhibitory_spikes_per_image": self.inhibitory_spikes_per_image,
            "counted_energy_pj": _presets(self.energy_pj),
            "counted_energy_ratio": dict(self.energy_ratio),
        }


@dataclass(frozen=True)
class ModelSummary:
    """Network-level figures of the energy model for one set of spike rates: T_norm (uniform
    L only), T_eff, Table 3's a, b, c and energy ratios (plain and MAC-weighted b), the summed
    per-layer energy; ``counted``: the operations counted on the data (measured rates only)."""

    t_norm: float | None
    t_eff: float
    a: float
    b: float
    c: float
    energy_ratio: Mapping[str, float]
    b_macs_weighted: float
    energy_ratio_macs_weighted: Mapping[str, float]
    energy_pj: Mapping[str, PresetEnergy]
    counted: CountedOps | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "t_norm": self.t_norm,
            "t_eff": self.t_eff,
            "a": self.a,
            "b": self.b,
            "c": self.c,
            "energy_ratio": dict(self.energy_ratio),
            "b_macs_weighted": self.b_macs_weighted,
            "energy_ratio_macs_weighted": dict(self.energy_ratio_macs_weighted),
            "energy_pj": _presets(self.energy_pj),
        }
        if self.counted is not None:
            out.update(self.counted.as_dict())
        return out


@dataclass(frozen=True)
class LayerReport:
    """One conv/linear layer: its shape and ANN MACs (``row``), what feeds it, its step ``L``
    (that of the IF layer it feeds, or its input train's length), and the energy model."""

    row: LayerRow
    input: str
    sources: tuple[str, ...]
    t_in: int
    L: int
    analytic: LayerModel
    measured: LayerModel | None

    @property
    def name(self) -> str:
        return self.row.name

    def as_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self.row),
            "input": self.input,
            "sources": list(self.sources),
            "t_in": self.t_in,
            "L": self.L,
            "analytic": self.analytic.as_dict(),
            "measured": None if self.measured is None else self.measured.as_dict(),
        }


@dataclass(frozen=True)
class NeuronReport:
    """One PASC IF layer's counts per image over the measured images."""

    name: str
    L: int
    t_in: int
    neurons: int
    spike_rate: float
    excitatory_per_image: float
    inhibitory_per_image: float
    output_spikes_per_image: float
    updates_per_image: tuple[float, float, float]

    @classmethod
    def from_ops(cls, x: NeuronOps, images: int) -> NeuronReport:
        u1, u2, u3 = (u / images for u in x.updates)
        return cls(
            name=x.name,
            L=x.L,
            t_in=x.t_in,
            neurons=x.neurons,
            spike_rate=x.spike_rate,
            excitatory_per_image=x.excitatory / images,
            inhibitory_per_image=x.inhibitory / images,
            output_spikes_per_image=x.output_spikes / images,
            updates_per_image=(u1, u2, u3),
        )

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["updates_per_image"] = list(self.updates_per_image)
        return out


@dataclass(frozen=True)
class EnergyReport:
    """Everything :func:`energy_report` found; :meth:`as_dict` is its JSON form."""

    model: str
    input_shape: tuple[int, ...]
    images: int  # 0: analytic only
    assumed_spike_rate: float
    layers: tuple[LayerReport, ...]
    neurons: tuple[NeuronReport, ...]
    analytic: ModelSummary
    measured: ModelSummary | None
    latency: Latency

    @property
    def ann_macs(self) -> int:
        """Dense ANN MACs per image, all conv/linear layers."""
        return sum(layer.row.macs for layer in self.layers)

    @property
    def uniform_L(self) -> int | None:
        steps = {layer.L for layer in self.layers}
        return steps.pop() if len(steps) == 1 else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "images": self.images,
            "assumed_spike_rate": self.assumed_spike_rate,
            "presets": {
                k: {"e_mac_pj": p.e_mac_pj, "e_ac_pj": p.e_ac_pj} for k, p in PRESETS.items()
            },
            "totals": {
                "layers": len(self.layers),
                "ann_macs": self.ann_macs,
                "uniform_L": self.uniform_L,
            },
            "layers": [layer.as_dict() for layer in self.layers],
            "neurons": [neuron.as_dict() for neuron in self.neurons],
            "analytic": self.analytic.as_dict(),
            "measured": None if self.measured is None else self.measured.as_dict(),
            "latency": {
                "total_steps": self.latency.total_steps,
                "output_length": self.latency.output_length,
                "neurons": [
                    {
                        "name": t.name,
                        "t_in": t.t_in,
                        "L": t.L,
                        "input_start": t.input_start,
                        "output_start": t.output_start,
                    }
                    for t in self.latency.neurons
                ],
            },
        }


def _ratios(fractions: OpFractions) -> dict[str, float]:
    return {name: fractions.ratio(preset) for name, preset in PRESETS.items()}


def _model_part(
    rows: Sequence[LayerRow],
    rates: Sequence[float | None],
    r_rates: Sequence[float],
    steps: Sequence[int],
    t_ins: Sequence[int],
) -> tuple[ModelSummary, list[LayerModel]]:
    """Network- and layer-level figures of the energy model for one set of spike rates."""
    ts = timesteps(rows, r_rates, steps)
    mean, weighted = op_fractions(rows, rates, "mean"), op_fractions(rows, rates, "macs")
    energies = {name: layer_energy(rows, rates, t_ins, preset) for name, preset in PRESETS.items()}
    per_layer = [
        LayerModel(
            spike_rate=s,
            r_prime=ts.r_primes[i],
            r_e=ts.r_es[i],
            snn_macs=energies["fp32"][i].snn_macs,
            snn_acs_estimated=energies["fp32"][i].snn_acs,
            energy_pj={
                name: PresetEnergy(e[i].ann_pj, e[i].snn_pj) for name, e in energies.items()
            },
        )
        for i, s in enumerate(rates)
    ]
    summary = ModelSummary(
        t_norm=ts.t_norm,
        t_eff=ts.t_eff,
        a=mean.a,
        b=mean.b,
        c=mean.c,
        energy_ratio=_ratios(mean),
        b_macs_weighted=weighted.b,
        energy_ratio_macs_weighted=_ratios(weighted),
        energy_pj={
            name: PresetEnergy(sum(x.ann_pj for x in e), sum(x.snn_pj for x in e))
            for name, e in energies.items()
        },
    )
    return summary, per_layer


def _input_shape(loader: Iterable[Any]) -> tuple[tuple[int, ...], Iterator[Any]]:
    it = iter(loader)
    try:
        first = next(it)
    except StopIteration:
        raise DataError("the data loader yielded no images to measure") from None
    x = first[0] if isinstance(first, (tuple, list)) else first
    return tuple(x.shape[1:]), itertools.chain([first], it)


def _counted(rows: Sequence[LayerRow], m: Measurement) -> CountedOps:
    """Energy from the operations actually performed (per image), against the ANN's."""
    n = m.images
    ann_macs = sum(r.macs for r in rows)
    u1, u2, u3 = (sum(neuron.updates[k] for neuron in m.neurons) / n for k in range(3))
    energy: dict[str, PresetEnergy] = {}
    ratio: dict[str, float] = {}
    for name, p in PRESETS.items():
        snn = (m.macs * p.e_mac_pj + m.acs * p.e_ac_pj) / n
        ann = ann_macs * p.e_mac_pj
        energy[name] = PresetEnergy(ann, snn)
        ratio[name] = ann / snn if snn else float("inf")
    return CountedOps(
        acs_per_image=m.acs / n,
        macs_per_image=m.macs / n,
        if_updates_per_image=(u1, u2, u3),
        inhibitory_spikes_per_image=sum(x.inhibitory for x in m.neurons) / n,
        energy_pj=energy,
        energy_ratio=ratio,
    )


def energy_report(
    net_or_model: nn.Module,
    loader: Iterable[Any] | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    num_images: int | None = None,
    spike_rate: float = ASSUMED_SPIKE_RATE,
    device: torch.device | str | None = None,
) -> EnergyReport:
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
    measured: ModelSummary | None = None
    measured_layers: list[LayerModel | None] = [None] * len(rows)
    if loader is not None:
        measurement = measure(net or convert(structure), loader, num_images, device)
        ops = {layer.name: layer for layer in measurement.layers}
        rates = [ops[r.name].spike_rate for r in rows]
        r_rates = [float(t) if s is None else s for s, t in zip(rates, t_ins, strict=True)]
        summary, per_layer = _model_part(rows, rates, r_rates, steps, t_ins)
        measured = dataclasses.replace(summary, counted=_counted(rows, measurement))
        n = measurement.images
        measured_layers = []
        for layer, row in zip(per_layer, rows, strict=True):
            got = ops[row.name]
            counts = LayerCounts(
                acs=got.acs / n,
                macs=got.macs / n,
                bias_adds=got.bias_adds / n,
                input_events=got.input_events / n,
            )
            measured_layers.append(dataclasses.replace(layer, counted=counts))

    layers = tuple(
        LayerReport(
            row=row,
            input=links[row.name].input,
            sources=tuple(links[row.name].sources),
            t_in=links[row.name].t_in,
            L=steps[i],
            analytic=analytic_layers[i],
            measured=measured_layers[i],
        )
        for i, row in enumerate(rows)
    )
    graph = structure.graph if isinstance(structure, PascNetwork) else structure
    images = measurement.images if measurement else 0
    return EnergyReport(
        model=type(graph).__name__,
        input_shape=tuple(input_shape),
        images=images,
        assumed_spike_rate=spike_rate,
        layers=layers,
        neurons=tuple(NeuronReport.from_ops(x, images) for x in measurement.neurons)
        if measurement
        else (),
        analytic=analytic,
        measured=measured,
        latency=latency(structure, input_shape),
    )
