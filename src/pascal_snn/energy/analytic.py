"""The paper's energy model (§4.2, Appendix A.4): r', r_E, T_norm, T_eff and ANN/SNN energy.

Per conv/linear layer ``l`` with input spike rate ``s`` (spikes per input neuron over all
steps of the train) and quantization step ``L`` of the IF layer it feeds:

    r'   = 1 / (C_i/groups · K_h · K_w · s)      conv      (Eq. 11; IF ops / AC ops)
    r'   = 1 / (C_i · s)                          linear    (Eq. 12)
    r_E  = (1 + (5L − 2)·r') / (1 + L·r')                   (Eq. 10; PASC / vanilla energy)
    T_norm = mean_l(r_E^l) · T                              (Eq. 13; uniform T = L)
    T_eff  = mean_l(r_E^l · T^l)                            (Eq. 16; per-layer steps)

Means run over **all** layers (the public reference script zips lists of different lengths
and silently drops layers). Energy ratio ANN/SNN (Table 3, after Rathi & Roy):

    a·E_MAC / (c·E_MAC + (1 − c)·b·E_AC)

with ``a = 1`` (normalised ANN ops), ``b`` the normalised SNN ops (the average spike rate)
and ``c`` the share of ops in layers that stay MAC (the first layer sees real pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from pascal_snn.energy.layers import LayerRow

__all__ = [
    "ASSUMED_SPIKE_RATE",
    "FP32",
    "INT8",
    "PRESETS",
    "EnergyPreset",
    "LayerEnergy",
    "OpFractions",
    "Precision",
    "Timesteps",
    "energy_ratio",
    "get_preset",
    "layer_energy",
    "op_fractions",
    "r_e",
    "r_prime",
    "t_eff",
    "t_norm",
    "timesteps",
]

ASSUMED_SPIKE_RATE = 0.75  # the paper's analytic value (§4.2.1, after Eq. 13)
Precision = Literal["fp32", "int8"]
Weighting = Literal["mean", "macs"]


@dataclass(frozen=True)
class EnergyPreset:
    """Energy of one operation, in picojoules.

    Source: M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC
    2014, doi:10.1109/ISSCC.2014.6757323, 45 nm CMOS (paper Table 10). A MAC is one multiply
    plus one add; an AC (accumulate) is one add.
    """

    name: str
    e_mac_pj: float
    e_ac_pj: float


FP32 = EnergyPreset("fp32", e_mac_pj=4.6, e_ac_pj=0.9)  # FP mult 3.7 pJ + FP add 0.9 pJ
INT8 = EnergyPreset("int8", e_mac_pj=0.23, e_ac_pj=0.03)  # int8 mult 0.2 pJ + add 0.03 pJ
PRESETS: MappingProxyType[str, EnergyPreset] = MappingProxyType({"fp32": FP32, "int8": INT8})


def get_preset(preset: Precision | EnergyPreset) -> EnergyPreset:
    """The preset named ``preset`` ("fp32" or "int8"), or ``preset`` itself."""
    if isinstance(preset, EnergyPreset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(
            f"unknown energy preset {preset!r}; choose one of {', '.join(PRESETS)}"
        ) from None


def r_prime(row: LayerRow, spike_rate: float) -> float:
    """IF ops over MatMul ops of one layer (Eq. 11/12); ``inf`` for a silent input."""
    if spike_rate < 0 or math.isnan(spike_rate):
        raise ValueError(f"spike rate must be >= 0, got {spike_rate}")
    ops = row.fan_in * spike_rate
    return math.inf if ops == 0 else 1.0 / ops


def r_e(r_prime_: float, L: int) -> float:
    """PASC over vanilla SNN energy of one layer, ``(1 + (5L−2)r') / (1 + L·r')`` (Eq. 10)."""
    if L < 1:
        raise ValueError(f"L must be >= 1, got {L}")
    if math.isinf(r_prime_):
        return (5 * L - 2) / L  # no AC work left: the IF layer is all there is
    return (1 + (5 * L - 2) * r_prime_) / (1 + L * r_prime_)


def _check_lengths(**seqs: Sequence[object]) -> int:
    lengths = {name: len(s) for name, s in seqs.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"one value per layer is needed, got lengths {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("no layers: the energy model needs at least one layer")
    return n


def t_norm(r_es: Sequence[float], T: int) -> float:
    """``mean_l(r_E^l) · T`` over all layers (Eq. 13), for a uniform step ``T = L``."""
    n = _check_lengths(r_es=r_es)
    return sum(r_es) / n * T


def t_eff(r_es: Sequence[float], steps: Sequence[int]) -> float:
    """``mean_l(r_E^l · T^l)`` over all layers (Eq. 16); both sequences must match in length."""
    n = _check_lengths(r_es=r_es, steps=steps)
    return sum(r * t for r, t in zip(r_es, steps, strict=True)) / n


@dataclass(frozen=True)
class Timesteps:
    """Per-layer r' and r_E, and the network's T_norm (uniform steps only) and T_eff."""

    r_primes: tuple[float, ...]
    r_es: tuple[float, ...]
    steps: tuple[int, ...]
    t_norm: float | None
    t_eff: float


def timesteps(
    rows: Sequence[LayerRow], spike_rates: Sequence[float], steps: Sequence[int]
) -> Timesteps:
    """r', r_E (with L = T^l = ``steps[l]``), T_norm and T_eff of ``rows``.

    ``T_norm`` is given only when every layer has the same step (it is then equal to T_eff).
    """
    _check_lengths(rows=rows, spike_rates=spike_rates, steps=steps)
    rp = tuple(r_prime(row, s) for row, s in zip(rows, spike_rates, strict=True))
    re = tuple(r_e(p, L) for p, L in zip(rp, steps, strict=True))
    uniform = len(set(steps)) == 1
    return Timesteps(
        rp, re, tuple(steps), t_norm(re, steps[0]) if uniform else None, t_eff(re, steps)
    )


def energy_ratio(a: float, b: float, c: float, preset: Precision | EnergyPreset = "fp32") -> float:
    """ANN over SNN energy, ``a·E_MAC / (c·E_MAC + (1 − c)·b·E_AC)`` (paper Table 3)."""
    p = get_preset(preset)
    if not 0 <= c <= 1:
        raise ValueError(f"c (the MAC share of ops) must lie in [0, 1], got {c}")
    return a * p.e_mac_pj / (c * p.e_mac_pj + (1 - c) * b * p.e_ac_pj)


@dataclass(frozen=True)
class OpFractions:
    """Inputs of :func:`energy_ratio`: a (ANN ops, 1.0), b (SNN ops), c (MAC share)."""

    a: float
    b: float
    c: float

    def ratio(self, preset: Precision | EnergyPreset = "fp32") -> float:
        return energy_ratio(self.a, self.b, self.c, preset)


def op_fractions(
    rows: Sequence[LayerRow],
    spike_rates: Sequence[float | None],
    weighting: Weighting = "mean",
) -> OpFractions:
    """a, b, c of Table 3 from a layer table and per-layer input spike rates.

    ``None`` marks a layer that stays MAC (its input is the image or real-valued). ``c`` is
    those layers' share of the MACs. ``b`` is, as in the paper (Table 3 footnote), the plain
    mean of the spike rates over the spiking layers (``weighting="mean"``); with
    ``weighting="macs"`` it is the MAC-weighted mean, which makes the ratio exactly
    ``E_ANN / E_SNN`` of the AC estimate ``#AC_l = MACs_l · SpikeRate_l``.
    """
    _check_lengths(rows=rows, spike_rates=spike_rates)
    total = sum(r.macs for r in rows)
    if total == 0:
        raise ValueError("the layers have no MACs")
    mac_share = sum(r.macs for r, s in zip(rows, spike_rates, strict=True) if s is None) / total
    spiking = [(r.macs, s) for r, s in zip(rows, spike_rates, strict=True) if s is not None]
    if not spiking:
        b = 0.0
    elif weighting == "mean":
        b = sum(s for _, s in spiking) / len(spiking)
    elif weighting == "macs":
        macs = sum(m for m, _ in spiking)
        b = sum(m * s for m, s in spiking) / macs if macs else 0.0
    else:
        raise ValueError(f"weighting must be 'mean' or 'macs', got {weighting!r}")
    return OpFractions(1.0, b, mac_share)


@dataclass(frozen=True)
class LayerEnergy:
    """One layer's operations and energy per image: the ANN's MACs against the SNN's
    MACs (input not spikes: dense over ``t_in`` steps) plus ACs (``MACs · SpikeRate``)."""

    name: str
    ann_macs: int
    snn_macs: float
    snn_acs: float
    ann_pj: float
    snn_pj: float


def layer_energy(
    rows: Sequence[LayerRow],
    spike_rates: Sequence[float | None],
    t_ins: Sequence[int] | None = None,
    preset: Precision | EnergyPreset = "fp32",
) -> list[LayerEnergy]:
    """Per-layer energy estimate; ``None`` rate: the layer stays MAC for ``t_in`` steps
    (``t_ins`` default all 1: the image is a train of length 1)."""
    p = get_preset(preset)
    t_ins = [1] * len(rows) if t_ins is None else t_ins
    _check_lengths(rows=rows, spike_rates=spike_rates, t_ins=t_ins)
    out = []
    for row, s, t in zip(rows, spike_rates, t_ins, strict=True):
        macs = float(row.macs * t) if s is None else 0.0
        acs = 0.0 if s is None else row.macs * s
        out.append(
            LayerEnergy(
                row.name,
                row.macs,
                macs,
                acs,
                row.macs * p.e_mac_pj,
                macs * p.e_mac_pj + acs * p.e_ac_pj,
            )
        )
    return out
