"""``report.md`` of a demo run: one page with the results tables, the figures and the command.

:func:`render_report` joins one short function per section of the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # demo imports this module; the types are only needed for annotations
    from pascal_snn.demo import DemoMetrics, EnergySummary, ModelOutcome

__all__ = ["render_report"]


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _num(x: float | int | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _tn(x: float | None) -> str:
    """T_norm is defined for one T shared by every layer (Eq. 13)."""
    return "n/a (per-layer L)" if x is None else _num(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _levels(levels: Sequence[int]) -> str:
    return ",".join(map(str, levels))


def _uniform_L(m: DemoMetrics) -> int:
    return m.uniform.levels[0]


def _intro(m: DemoMetrics) -> list[str]:
    L = _uniform_L(m)
    return [
        f"# PASCAL on {m.dataset}: exact spiking conversion in {L} timesteps per layer",
        "",
        f"A `{m.model}` ANN with QCFS activations (L = {L} in every layer) was trained on "
        f"{m.train_images} {m.dataset} images for {m.epochs} epochs, converted into a "
        f"PASC spiking network, and compared with the ANN on {m.test_images} test images. "
        f"Then the Adaptive Layerwise (AL) metric chose a per-layer L "
        f"({_levels(m.adaptive.levels)}), the model was retrained with it (Algorithm 4) and "
        f"converted again. Everything below was measured in this run ({m.seconds:.0f} s).",
    ]


def _equivalence_row(name: str, o: ModelOutcome) -> list[str]:
    f64, f32 = o.float64, o.float32
    return [
        name,
        _levels(o.levels),
        _pct(f32.ann_accuracy),
        _pct(f32.snn_accuracy),
        f"{f64.agreement}/{f64.images}",
        _num(f64.max_abs_logit_diff),
        f"{f32.agreement}/{f32.images}",
        str(f32.boundary_cases),
    ]


def _equivalence(m: DemoMetrics) -> list[str]:
    header = [
        "model",
        "per-layer L",
        "ANN acc.",
        "PASC SNN acc.",
        "agreement (float64)",
        "max logit diff (float64)",
        "agreement (float32)",
        "boundary cases (float32)",
    ]
    rows = [
        _equivalence_row(f"uniform L = {_uniform_L(m)}", m.uniform),
        _equivalence_row("adaptive (AL)", m.adaptive),
    ]
    return [
        "## 1. The spiking network gives the ANN's answers",
        "",
        _table(header, rows),
        "",
        "Accuracies are float32. *Boundary cases* are test images for which some neuron's spike "
        "count differs from the float64 ANN's level: the input sits within float32 rounding "
        "distance of a QCFS level boundary. Float32 disagreements not explained that way: "
        f"{m.uniform.float32.unexplained_disagreements} (uniform), "
        f"{m.adaptive.float32.unexplained_disagreements} (AL).",
    ]


def _timesteps(m: DemoMetrics) -> list[str]:
    van, f64, L = m.vanilla, m.uniform.float64, _uniform_L(m)
    reach = m.timesteps_to_reach_ann
    ann_same = van.ann_accuracy
    if reach:
        verdict = (
            f"The vanilla IF network (plain IF neurons, Bu et al. 2023) first reaches the ANN's "
            f"accuracy ({_pct(ann_same)} on the same images) at T = {reach}; PASC matches it "
            f"exactly at T = {L}."
        )
    else:
        verdict = (
            f"The vanilla IF network stays below the ANN's accuracy ({_pct(ann_same)} on "
            f"the same images) up to T = {van.timesteps[-1]}; PASC matches it exactly at T = {L}."
        )
    return [
        "## 2. Timesteps: PASC at T = L against the vanilla IF baseline",
        "",
        "![accuracy against timesteps](accuracy_vs_timesteps.png)",
        "",
        _table(
            ["T"] + [str(t) for t in van.timesteps],
            [
                [f"vanilla IF accuracy (%), {van.images} test images"]
                + [f"{100 * x:.1f}" for x in van.accuracy],
                ["vanilla IF agreement with the ANN (%)"]
                + [f"{100 * x:.1f}" for x in van.agreement_rate],
            ],
        ),
        "",
        verdict,
        "",
        "Accuracy alone can flatter the baseline: the vanilla network is not the ANN (it "
        "approximates it, and on a small test set may even score higher), which its agreement "
        f"row shows; PASC agrees with the ANN on every image "
        f"({f64.agreement}/{f64.images} in float64).",
    ]


def _adaptive(m: DemoMetrics) -> list[str]:
    plan = m.al.plan
    rows = [
        [
            r.name,
            _num(r.stats.agreement),
            _num(r.stats.skewness),
            _num(r.stats.kurtosis),
            _num(r.stats.metric),
            str(r.cluster),
            str(new),
        ]
        for r, new in zip(plan.layers, plan.levels)
    ]
    return [
        "## 3. Adaptive Layerwise quantization",
        "",
        "![AL metric per layer](al_metric.png)",
        "",
        _table(["layer", "A", "g", "K", "M", "cluster", "new L"], rows),
        "",
        f"M = A·(g²+1)·K over {plan.num_images} training images (α = "
        f"{plan.alpha:.3g}); the cluster with the highest M gets the smallest L. The model "
        f"was retrained from scratch with L = {_uniform_L(m)} for {m.switch_epoch} of "
        f"{m.epochs} epochs, then with the per-layer L, under one cosine schedule.",
    ]


def _energy_rows(e: EnergySummary, ea: EnergySummary) -> list[list[str]]:
    return [
        ["T_norm (Eq. 13, measured spike rates)", _num(e.t_norm), _tn(ea.t_norm)],
        ["T_eff (Eq. 16, measured spike rates)", _num(e.t_eff), _num(ea.t_eff)],
        [
            "T_norm / T_eff at the paper's assumed rate 0.75",
            f"{_num(e.t_norm_analytic)} / {_num(e.t_eff_analytic)}",
            f"{_tn(ea.t_norm_analytic)} / {_num(ea.t_eff_analytic)}",
        ],
        [
            "latency, layer-by-layer schedule (neuron steps)",
            str(e.latency_steps),
            str(ea.latency_steps),
        ],
        ["average spike rate b", _num(e.spike_rate_b), _num(ea.spike_rate_b)],
        [
            "first layer's share of operations c",
            _num(e.first_layer_share_c),
            _num(ea.first_layer_share_c),
        ],
        [
            "ANN/SNN energy, Table 3 model, FP32",
            _num(e.energy_ratio["fp32"]),
            _num(ea.energy_ratio["fp32"]),
        ],
        [
            "ANN/SNN energy, Table 3 model, INT8",
            _num(e.energy_ratio["int8"]),
            _num(ea.energy_ratio["int8"]),
        ],
        [
            "ANN/SNN energy from counted operations, FP32",
            _num(e.counted_energy_ratio["fp32"]),
            _num(ea.counted_energy_ratio["fp32"]),
        ],
        ["ACs per image (counted)", f"{e.acs_per_image:,.0f}", f"{ea.acs_per_image:,.0f}"],
        ["ANN MACs per image", f"{e.ann_macs:,}", f"{ea.ann_macs:,}"],
        [
            "inhibitory spikes per image",
            f"{e.inhibitory_spikes_per_image:,.1f}",
            f"{ea.inhibitory_spikes_per_image:,.1f}",
        ],
    ]


def _energy(m: DemoMetrics) -> list[str]:
    header = ["quantity", f"uniform L = {_uniform_L(m)}", "adaptive (AL)"]
    return [
        "## 4. Operations, timesteps and energy",
        "",
        _table(header, _energy_rows(m.uniform.energy, m.adaptive.energy)),
        "",
        "T_norm and T_eff are energy-normalised timestep counts (paper §4.2), not latency: a PASC "
        "layer must see its whole input train before it can emit, so the end-to-end latency of a "
        "layer-by-layer schedule is the row above.",
        "",
        "![spike rate per layer](spike_rates.png)",
        "",
        "![energy per layer](energy_breakdown.png)",
    ]


def _reproduce(m: DemoMetrics) -> list[str]:
    return [
        "## Reproduce",
        "",
        "```",
        m.command,
        "```",
        "",
        "Files: `metrics.json` (all numbers above), `energy_uniform.json`, "
        "`energy_adaptive.json`, `config.yaml` (resolved settings), `uniform/` and `adaptive/` "
        "(checkpoints, per-epoch metrics, AL table).",
    ]


SECTIONS = (_intro, _equivalence, _timesteps, _adaptive, _energy, _reproduce)


def render_report(m: DemoMetrics) -> str:
    """Markdown for the results of :func:`pascal_snn.demo.run_demo`, one section after another."""
    parts: list[str] = []
    for section in SECTIONS:
        parts += [*section(m), ""]
    return "\n".join(parts)
