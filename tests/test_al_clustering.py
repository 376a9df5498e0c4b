"""Exact 1-D k-means of AL metrics and the per-layer L (SPEC §5.2)."""

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pascal_snn.al import assign_levels, cluster


def sse(group):
    mean = sum(group) / len(group)
    return sum((v - mean) ** 2 for v in group)


def brute_force_cost(values, k):
    """Minimum k-means cost over all splits of the sorted values into k contiguous groups."""
    v = sorted(values)
    best = math.inf
    for cuts in itertools.combinations(range(1, len(v)), k - 1):
        bounds = (0, *cuts, len(v))
        best = min(best, sum(sse(v[a:b]) for a, b in itertools.pairwise(bounds)))
    return best


def labelled_cost(values, labels):
    groups = {}
    for v, c in zip(values, labels):
        groups.setdefault(c, []).append(v)
    return sum(sse(g) for g in groups.values())


def check_label_structure(values, labels):
    """Labels 0..m−1 all used, clusters are intervals, 0 has the highest mean, ties shared."""
    used = sorted(set(labels))
    assert used == list(range(len(used)))
    groups = {c: [v for v, lab in zip(values, labels) if lab == c] for c in used}
    for a, b in itertools.pairwise(used):  # label a above label b: every value strictly larger
        assert min(groups[a]) > max(groups[b])
    for (v1, c1), (v2, c2) in itertools.combinations(zip(values, labels), 2):
        if v1 == v2:
            assert c1 == c2


values_st = st.lists(
    st.one_of(st.integers(0, 30).map(float), st.floats(0, 1e4, allow_nan=False)),
    min_size=1,
    max_size=8,
)


@given(values_st, st.data())
def test_cluster_is_optimal(values, data):
    k = data.draw(st.integers(1, len(values)))
    labels = cluster(values, k)
    assert len(labels) == len(values)
    check_label_structure(values, labels)
    assert len(set(labels)) == min(k, len(set(values)))
    best = brute_force_cost(values, k)
    assert math.isclose(labelled_cost(values, labels), best, rel_tol=1e-9, abs_tol=1e-6)


@given(values_st, st.integers(1, 4), st.data())
def test_infinite_metrics_form_the_highest_cluster(values, n_inf, data):
    metrics = values + [math.inf] * n_inf
    metrics = data.draw(st.permutations(metrics))
    k = data.draw(st.integers(1, len(metrics)))
    labels = cluster(metrics, k)
    inf_labels = {c for v, c in zip(metrics, labels) if v == math.inf}
    assert inf_labels == {0}
    finite = [v for v in metrics if v != math.inf]
    finite_labels = [c for v, c in zip(metrics, labels) if v != math.inf]
    if k == 1:
        assert set(labels) == {0}
    else:
        assert 0 not in finite_labels
        shifted = [c - 1 for c in finite_labels]
        check_label_structure(finite, shifted)
        best = brute_force_cost(finite, min(k - 1, len(finite)))
        assert math.isclose(labelled_cost(finite, shifted), best, rel_tol=1e-9, abs_tol=1e-6)


@given(
    st.lists(st.one_of(st.floats(0, 1e6), st.just(math.inf)), min_size=1, max_size=12),
    st.lists(st.integers(1, 16), min_size=1, max_size=4),
)
def test_higher_metric_never_gets_a_larger_L(metrics, levels):
    if len(levels) > len(metrics):
        with pytest.raises(ValueError):
            assign_levels(metrics, levels)
        return
    L = assign_levels(metrics, levels)
    assert all(v in levels for v in L)
    for (m1, l1), (m2, l2) in itertools.combinations(zip(metrics, L), 2):
        if m1 > m2:
            assert l1 <= l2
        elif m1 == m2:
            assert l1 == l2


def test_known_assignment():
    metrics = [1.0, 2.0, 10.0, 11.0, math.inf, 5.0]
    assert cluster(metrics, 3) == [2, 2, 1, 1, 0, 2]
    assert assign_levels(metrics) == [4, 4, 2, 2, 1, 4]
    assert assign_levels(metrics, [4, 1, 2]) == [4, 4, 2, 2, 1, 4]  # sorted ascending
    assert cluster([1.0, 1.1, 5.0, 5.2, 9.0], 3) == [2, 2, 1, 1, 0]
    assert assign_levels([1.0, 1.1, 5.0, 5.2, 9.0], [1, 4]) == [4, 4, 1, 1, 1]
    assert cluster([3.0, 3.0, 3.0], 2) == [0, 0, 0]  # equal metrics are never split
    assert assign_levels([7.0], [8]) == [8]


@pytest.mark.parametrize(
    ("metrics", "k"),
    [
        ([1.0, 2.0], 3),
        ([1.0, 2.0], 0),
        ([1.0, 2.0], -1),
        ([1.0, 2.0], 1.0),
        ([1.0, 2.0], True),
        ([], 1),
        ([1.0, float("nan")], 1),
        ([1.0, -math.inf], 1),
    ],
)
def test_cluster_rejects_bad_input(metrics, k):
    with pytest.raises(ValueError):
        cluster(metrics, k)


@pytest.mark.parametrize("levels", [[], [0, 1], [1, 2.5], [1, True], "12", 4, [1, -2]])
def test_assign_levels_rejects_bad_levels(levels):
    with pytest.raises(ValueError):
        assign_levels([1.0, 2.0, 3.0], levels)
