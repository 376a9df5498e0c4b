"""Operations, spike rates, T_norm / T_eff, latency and energy of PASC networks (SPEC §6, §3.5).

- :mod:`.layers`: the layer table (shapes and ANN MACs of every conv/linear layer);
- :mod:`.topology`: which IF layers feed each conv/linear layer;
- :mod:`.analytic`: the paper's r', r_E, T_norm, T_eff and ANN/SNN energy ratio;
- :mod:`.measured`: operations counted on a real run of the converted network;
- :mod:`.latency`: end-to-end latency of a layer-by-layer schedule, in neuron steps;
- :mod:`.report`: all of it as one JSON-ready dict; :mod:`.plot`: its figures.
"""

from pascal_snn.energy.analytic import (
    ASSUMED_SPIKE_RATE,
    FP32,
    INT8,
    PRESETS,
    EnergyPreset,
    LayerEnergy,
    OpFractions,
    Timesteps,
    energy_ratio,
    get_preset,
    layer_energy,
    op_fractions,
    r_e,
    r_prime,
    t_eff,
    t_norm,
    timesteps,
)
from pascal_snn.energy.latency import Latency, NeuronTiming, chain_latency, if_delay, latency
from pascal_snn.energy.layers import LayerRow, layer_table, total_macs
from pascal_snn.energy.measured import LayerOps, Measurement, NeuronOps, count_acs, measure
from pascal_snn.energy.report import energy_report
from pascal_snn.energy.topology import Link, Topology, topology

__all__ = [
    "ASSUMED_SPIKE_RATE",
    "FP32",
    "INT8",
    "PRESETS",
    "EnergyPreset",
    "Latency",
    "LayerEnergy",
    "LayerOps",
    "LayerRow",
    "Link",
    "Measurement",
    "NeuronOps",
    "NeuronTiming",
    "OpFractions",
    "Timesteps",
    "Topology",
    "chain_latency",
    "count_acs",
    "energy_ratio",
    "energy_report",
    "get_preset",
    "if_delay",
    "latency",
    "layer_energy",
    "layer_table",
    "measure",
    "op_fractions",
    "r_e",
    "r_prime",
    "t_eff",
    "t_norm",
    "timesteps",
    "topology",
    "total_macs",
]
