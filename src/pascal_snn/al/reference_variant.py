"""The AL metric as the public PASCAL reference code computes it (SPEC §5.1, named variant).

Source: ``get_stats.py`` of https://github.com/BrainSeek-Lab/PASCAL (commit 1705941c),
re-implemented here from its description, not copied. That script takes a layer's saved
outputs, builds ``c = np.histogram(outputs, 5)`` (5 equal-width bins over the outputs' own
range ``[min, max]``) and computes its statistics on the five **bin counts** ``c_1 … c_5``,
not on the outputs:

    A  = 1 − (S − 1)/(B − 1),  S = #{i : c_i ≥ Σc / B},  B = 5 bins
    g  = m3 / m2^{3/2}                      (population moments of the counts, ddof = 0)
    k  = m4 / m2² − 3                       (population excess kurtosis of the counts)
    M  = A · (g² + 1) · (k + 3B²/((B−2)(B−3)))     (= A·(g²+1)·(k + 12.5) for B = 5)

The last factor mimics the finite-sample correction of Sarle's bimodality coefficient
``(g² + 1)/(k + 3(n−1)²/((n−2)(n−3)))`` but multiplies instead of dividing and uses the bin
count B (and B², not (B−1)²) for n. Here ``LayerStats.kurtosis`` holds that whole factor
``k + 3B²/((B−2)(B−3))``, so ``M = A·(g²+1)·K`` reads the same in both variants.

Streaming: QCFS outputs only take the level values ``k·θ/L``, so the 5-bin histogram of the
raw outputs follows exactly from the level histogram: the range is ``[k_min, k_max]`` (the
lowest and highest occupied levels) and level k falls in bin ``⌊B·(k − k_min)/(k_max − k_min)⌋``
(the last bin is closed), computed in integers. When all outputs share one value, numpy widens
the range by ±0.5 and every output lands in the middle bin; so does this code. When all five
counts are equal the reference divides 0 by 0; g, K and M are then NaN here too.
"""

from __future__ import annotations

import math
from fractions import Fraction

from pascal_snn.al.stats import LayerStats, agreement, as_alpha, level_counts

__all__ = ["REFERENCE_BINS", "rebin_levels", "reference_histogram_stats"]

REFERENCE_BINS = 5


def rebin_levels(hist: object, bins: int = REFERENCE_BINS) -> list[int]:
    """``np.histogram(outputs, bins)`` of the outputs that the level histogram ``hist`` counts."""
    counts = level_counts(hist)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    occupied = [k for k, c in enumerate(counts) if c]
    if not occupied:
        raise ValueError("the histogram is empty (n = 0); no outputs were counted")
    lo, hi = occupied[0], occupied[-1]
    out = [0] * bins
    for k in occupied:
        index = bins // 2 if lo == hi else min(bins - 1, bins * (k - lo) // (hi - lo))
        out[index] += counts[k]
    return out


def reference_histogram_stats(
    hist: object, alpha: float | Fraction | None = None, bins: int = REFERENCE_BINS
) -> LayerStats:
    """Reference-code statistics of a level histogram; ``alpha=None`` is the code's 1/B.

    ``constant`` flags a layer with one occupied level (its M is the reference value, the
    largest this formula gives: 41.4375 for B = 5); ``S`` counts the non-empty 5-bins.
    """
    c = rebin_levels(hist, bins)
    if bins < 4:
        raise ValueError(f"the reference statistic needs at least 4 bins, got {bins}")
    a = Fraction(1, bins) if alpha is None else as_alpha(alpha)
    n = sum(c)
    A, S = agreement(c, a)
    constant = sum(1 for v in level_counts(hist) if v) == 1
    # e_i = B·c_i − n = B·(c_i − mean);  E_p = Σ e_i^p;  m_p = E_p / B^{p+1}.
    e = [bins * v - n for v in c]
    E2 = sum(v**2 for v in e)
    E3 = sum(v**3 for v in e)
    E4 = sum(v**4 for v in e)
    if E2 == 0:
        nan = float("nan")
        return LayerStats(float(A), nan, nan, nan, constant, n, S)
    g2 = Fraction(E3 * E3 * bins, E2**3)  # g = E3·√B / E2^{3/2}
    K = Fraction(bins * E4, E2 * E2) - 3 + Fraction(3 * bins * bins, (bins - 2) * (bins - 3))
    g = math.sqrt(float(g2)) * (-1.0 if E3 < 0 else 1.0)
    M = A * (g2 + 1) * K
    return LayerStats(float(A), g, float(K), float(M), constant, n, S)
