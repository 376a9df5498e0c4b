"""AL statistics of one histogram (SPEC §5.1): paper definition and reference-code variant."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from pascal_snn.al import histogram_stats, rebin_levels, reference_histogram_stats

# Dyadic alphas are exact in binary, so the naive float comparison below is exact too.
DYADIC_ALPHAS = [1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0]


def eqs_3_to_6(hist, alpha):
    """Paper Eqs. 3–6 on the histogram expanded into its sample, written out plainly."""
    hist = np.asarray(hist)
    x = np.repeat(np.arange(hist.size), hist).astype(np.float64)
    n = x.size
    d = x - x.mean()
    s = np.sqrt(np.sum(d**2) / (n - 1))
    g = np.mean(d**3) / s**3
    k2 = s**2
    K = (n + 1) * n / ((n - 1) * (n - 2) * (n - 3)) * np.sum(d**4) / k2**2
    S = max(1, int(np.sum(hist >= alpha * n)))
    A = 1.0 if hist.size == 1 else 1 - (S - 1) / (hist.size - 1)
    return A, g, K, A * (g * g + 1) * K, S


def scipy_g_k(hist):
    """The same g and K from scipy's biased estimators, rescaled to Eqs. 4–5."""
    x = np.repeat(np.arange(len(hist)), hist).astype(np.float64)
    n = x.size
    g = scipy_stats.skew(x, bias=True) * ((n - 1) / n) ** 1.5
    K = scipy_stats.kurtosis(x, fisher=False, bias=True) * (n + 1) * (n - 1) / ((n - 2) * (n - 3))
    return g, K


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


spread_histograms = st.lists(st.integers(0, 400), min_size=2, max_size=17).filter(
    lambda h: sum(1 for c in h if c) >= 2 and sum(h) >= 4
)


@given(spread_histograms, st.sampled_from(DYADIC_ALPHAS))
def test_stats_equal_the_equations(hist, alpha):
    s = histogram_stats(hist, alpha)
    A, g, K, M, S = eqs_3_to_6(hist, alpha)
    assert not s.constant
    assert s.n == sum(hist) and s.S == S
    assert close(s.agreement, A)
    assert close(s.skewness, g) and close(s.kurtosis, K) and close(s.metric, M)
    g_sp, K_sp = scipy_g_k(hist)
    assert close(s.skewness, g_sp) and close(s.kurtosis, K_sp)


@given(st.lists(st.integers(0, 10**9), min_size=2, max_size=9), st.sampled_from(DYADIC_ALPHAS))
def test_stats_with_counts_in_the_billions(hist, alpha):
    """n far beyond what np.repeat can hold: check against weighted float64 moments."""
    assume(sum(1 for c in hist if c) >= 2 and sum(hist) >= 4)
    w = np.asarray(hist, dtype=np.float64)
    x = np.arange(w.size, dtype=np.float64)
    n = w.sum()
    d = x - np.sum(w * x) / n
    m2, m3, m4 = (np.sum(w * d**p) for p in (2, 3, 4))
    # Cancellation in these float moments limits how closely they can agree.
    assume(m2 / n > 1e-6)
    s2 = m2 / (n - 1)
    g = (m3 / n) / s2**1.5
    K = (n + 1) * n / ((n - 1) * (n - 2) * (n - 3)) * m4 / s2**2
    s = histogram_stats(hist, alpha)
    assert math.isclose(s.skewness, g, rel_tol=1e-7, abs_tol=1e-9)
    assert math.isclose(s.kurtosis, K, rel_tol=1e-7)


@pytest.mark.parametrize(
    ("alpha", "S"),
    [(0.01, 3), (0.1, 3), (0.3, 2), (0.31, 1), (0.5, 1), (0.6, 1), (0.7, 1), (1.0, 1)],
)
def test_agreement_by_hand(alpha, S):
    # n = 10, K = 5 bins; bins with count >= alpha·n are non-empty; S is at least 1.
    s = histogram_stats([6, 3, 1, 0, 0], alpha)
    assert s.S == S
    assert s.agreement == 1 - (S - 1) / 4


def test_agreement_counts_ties_exactly():
    # 0.1·30 is 3.0000000000000004 in floats; the count 3 still reaches the threshold 3.
    assert histogram_stats([3, 27], 0.1).S == 2
    assert histogram_stats([3, 27], 0.1).agreement == 0.0
    assert histogram_stats([1, 29], 1 / 30).S == 2
    assert histogram_stats([1, 29], Fraction(1, 29)).S == 1
    assert histogram_stats([1, 2, 3, 4], Fraction(1, 5)).S == 3


@pytest.mark.parametrize("hist", [[0, 7, 0], [12], [0, 0, 0, 0, 5]])
def test_constant_layer_has_infinite_metric(hist):
    s = histogram_stats(hist, 0.1)
    assert s.constant and s.metric == math.inf and s.agreement == 1.0 and s.S == 1
    assert math.isnan(s.skewness) and math.isnan(s.kurtosis)


def test_known_values():
    # Two equal bins: symmetric (g = 0); x̄ = 1/2, Σd⁴ = n/16, k2 = n/(4(n−1)).
    s = histogram_stats([2, 2], 0.5)
    n = 4
    K = (n + 1) * n / ((n - 1) * (n - 2) * (n - 3)) * (n / 16) / (n / (4 * (n - 1))) ** 2
    assert s.skewness == 0.0 and math.isclose(s.kurtosis, K, rel_tol=1e-15)
    assert s.agreement == 0.0 and s.metric == 0.0


@pytest.mark.parametrize(
    ("hist", "alpha"),
    [
        ([], 0.1),
        ([0, 0, 0], 0.1),
        ([1, 1, 1], 0.1),  # n = 3 < 4
        ([3, -1, 5], 0.1),
        ([1.5, 4], 0.1),
        ([[1, 2], [3, 4]], 0.1),
        (["a", "b"], 0.1),
        ([2, 2, 2], 0.0),
        ([2, 2, 2], -0.1),
        ([2, 2, 2], 1.5),
        ([2, 2, 2], float("nan")),
        ([2, 2, 2], True),
        ([2, 2, 2], "0.1"),
    ],
)
def test_bad_input_raises(hist, alpha):
    with pytest.raises(ValueError):
        histogram_stats(hist, alpha)


# ----------------------------------------------------------------------------------------
# Reference-code variant (BrainSeek-Lab/PASCAL get_stats.py): statistics of 5 bin counts.


def reference_recipe(outputs, bins=5):
    """The reference script's recipe, written out from its description."""
    c, _ = np.histogram(outputs, bins)
    c = c.astype(np.float64)
    valid = sum(1 for v in c if v >= np.sum(c) / bins)
    A = 1 - (valid - 1) / (bins - 1)
    mu, sd = np.mean(c), np.std(c)
    k = np.mean((c - mu) ** 4) / sd**4 - 3
    g = np.mean((c - mu) ** 3) / sd**3
    b = (g**2 + 1) * (k + 3 * bins**2 / ((bins - 2) * (bins - 3)))
    return A, g, k, A * b


level_histograms_st = st.lists(st.integers(0, 300), min_size=2, max_size=17).filter(
    lambda h: sum(h) >= 1
)


@given(level_histograms_st)
def test_rebin_equals_numpy_histogram_of_the_outputs(hist):
    outputs = np.repeat(np.arange(len(hist)), hist).astype(np.float64)
    assert rebin_levels(hist) == np.histogram(outputs, 5)[0].tolist()


@given(level_histograms_st)
def test_reference_variant_equals_the_reference_recipe(hist):
    outputs = np.repeat(np.arange(len(hist)), hist).astype(np.float64)
    counts = np.histogram(outputs, 5)[0]
    assume(np.std(counts) > 0)
    A, g, k, M = reference_recipe(outputs)
    s = reference_histogram_stats(hist)
    assert close(s.agreement, A) and s.n == sum(hist)
    assert close(s.skewness, g)
    assert close(s.kurtosis, k + 12.5)
    assert close(s.metric, M)


def test_reference_variant_constant_layer_gets_the_largest_value():
    s = reference_histogram_stats([0, 9, 0, 0, 0])
    assert s.constant and s.S == 1 and s.agreement == 1.0
    assert s.skewness == 1.5 and s.kurtosis == 12.75 and s.metric == 41.4375
    assert rebin_levels([0, 9, 0, 0, 0]) == [0, 0, 9, 0, 0]


def test_reference_variant_equal_counts_is_nan_like_the_reference():
    s = reference_histogram_stats([2, 2, 2, 2, 2])
    assert math.isnan(s.metric) and math.isnan(s.skewness) and not s.constant


def test_reference_variant_alpha_overrides_the_one_fifth_threshold():
    hist = [50, 30, 15, 5, 0]  # L = 4: the 5 bins are the levels themselves
    assert reference_histogram_stats(hist).S == 2  # counts >= 100/5
    assert reference_histogram_stats(hist, alpha=0.05).S == 4
    with pytest.raises(ValueError):
        reference_histogram_stats([0, 0, 0])
    with pytest.raises(ValueError):
        reference_histogram_stats(hist, alpha=0)
