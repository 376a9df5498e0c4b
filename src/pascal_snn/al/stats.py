"""The AL metric of one QCFS layer from its level histogram (SPEC §5.1, paper Alg. 3, Eqs. 3–6).

The histogram ``H`` counts the layer's outputs per level index ``k ∈ {0 … L}`` (``K = L + 1``
bins). It is read as a weighted sample of the level values ``x = k`` with ``n = Σ H`` samples:

    A = 1 − (S − 1)/(K − 1)         S = #{k : H[k] ≥ α·n}, at least 1; A = 1 when K = 1
    g = m3 / s³                     m3 = (1/n)·Σ(x − x̄)³,  s² = (1/(n − 1))·Σ(x − x̄)²
    K = (n+1)n / ((n−1)(n−2)(n−3)) · Σ(x − x̄)⁴ / k2²,   k2 = s²   (not the excess kurtosis)
    M = A · (g² + 1) · K

Everything is computed exactly in integers and fractions (``n·x − Σx`` is an integer), then
rounded once to float64, so counts in the billions lose nothing to cancellation. A layer whose
outputs all sit in one level has no spread: it is reported ``constant`` with ``M = +inf``
(``g`` and ``K`` are NaN), and it joins the lowest-L cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational

import numpy as np

__all__ = ["LayerStats", "agreement", "as_alpha", "histogram_stats", "level_counts"]

# Float alphas are read as the nearest fraction with a denominator up to this bound, so that
# 0.05 or 1/30 compare exactly against integer counts (S never flips on a rounding error).
_ALPHA_DENOMINATOR = 10**6


@dataclass(frozen=True)
class LayerStats:
    """AL statistics of one layer.

    ``agreement`` A, ``skewness`` g, ``kurtosis`` K and ``metric`` M as in the module docstring;
    ``constant`` says all outputs sit in one level (then M = inf, g = K = NaN); ``n`` is the
    number of outputs counted and ``S`` the number of bins counted as non-empty.
    """

    agreement: float
    skewness: float
    kurtosis: float
    metric: float
    constant: bool
    n: int
    S: int


def level_counts(hist: object) -> list[int]:
    """A histogram (1-D array-like of non-negative integer counts) as a list of Python ints."""
    arr = np.asarray(hist)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"a histogram must be a non-empty 1-D sequence of counts, got shape {arr.shape}"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.floor(arr)):
            raise ValueError("histogram counts must be whole numbers")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"histogram counts must be integers, got dtype {arr.dtype}")
    counts = [int(v) for v in arr.tolist()]
    if any(c < 0 for c in counts):
        raise ValueError(f"histogram counts must be >= 0, got {counts}")
    return counts


def as_alpha(alpha: object) -> Fraction:
    """The agreement threshold α ∈ (0, 1] as an exact fraction (floats: nearest p/q, q ≤ 10⁶)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, Rational)):
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
    if isinstance(alpha, float):
        if not math.isfinite(alpha):
            raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
        value = Fraction(alpha).limit_denominator(_ALPHA_DENOMINATOR)
    else:
        value = Fraction(alpha)
    if not 0 < value <= 1:
        raise ValueError(f"alpha must be in (0, 1] (a fraction of the outputs), got {alpha!r}")
    return value


def agreement(counts: list[int], alpha: Fraction) -> tuple[Fraction, int]:
    """Van der Eijk's agreement ``A = 1 − (S − 1)/(K − 1)`` and ``S`` (bins with count ≥ α·n)."""
    n = sum(counts)
    bins = len(counts)
    # count ≥ α·n  ⇔  count·q ≥ p·n  for α = p/q: exact in integers.
    p, q = alpha.numerator, alpha.denominator
    S = max(1, sum(1 for c in counts if c * q >= p * n))
    if bins == 1:
        return Fraction(1), S
    return 1 - Fraction(S - 1, bins - 1), S


def histogram_stats(hist: object, alpha: float | Fraction) -> LayerStats:
    """SPEC §5.1 statistics of a level histogram (``hist[k]`` = number of outputs at level k).

    Raises ValueError for an empty histogram (n = 0), n < 4 (the kurtosis needs n ≥ 4),
    negative or fractional counts, or ``alpha`` outside (0, 1].
    """
    counts = level_counts(hist)
    a = as_alpha(alpha)
    n = sum(counts)
    if n < 4:
        raise ValueError(f"the histogram holds n = {n} outputs; the AL statistics need n >= 4")
    A, S = agreement(counts, a)
    if sum(1 for c in counts if c) == 1:
        nan = float("nan")
        return LayerStats(float(A), nan, nan, float("inf"), True, n, S)
    s1 = sum(k * c for k, c in enumerate(counts))
    # d_k = n·(k − x̄) is an integer; D_p = Σ_k H[k]·d_k^p = n^p · Σ_i (x_i − x̄)^p.
    dev = [n * k - s1 for k in range(len(counts))]
    D2 = sum(c * d**2 for c, d in zip(counts, dev))
    D3 = sum(c * d**3 for c, d in zip(counts, dev))
    D4 = sum(c * d**4 for c, d in zip(counts, dev))
    # g = m3/s³ = D3·(n−1)^{3/2} / (n·D2^{3/2});  g² is rational.
    g2 = Fraction(D3 * D3 * (n - 1) ** 3, n * n * D2**3)
    # K = (n+1)n/((n−1)(n−2)(n−3)) · (D4/n⁴) / (D2/(n²(n−1)))²
    K = Fraction((n + 1) * n * (n - 1) * D4, (n - 2) * (n - 3) * D2 * D2)
    g = math.sqrt(float(g2)) * (-1.0 if D3 < 0 else 1.0)
    M = A * (g2 + 1) * K
    return LayerStats(float(A), g, float(K), float(M), False, n, S)
