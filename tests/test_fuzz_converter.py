"""The converter on random architectures (tests/fuzz_models.py): exact or refused, never wrong.

A bounded run; ``benchmarks/fuzz_converter.py --examples N`` runs the same check for long.
"""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz_models import check


@settings(max_examples=250, deadline=None, database=None)
@given(st.integers(0, 2**32 - 1))
def test_random_architectures_convert_exactly_or_are_refused(seed):
    outcome = check(seed)
    assert outcome.status in ("converted", "refused", "invalid"), (
        f"seed {seed}: {outcome.status}\n{outcome.detail}"
    )


def test_the_grammar_mostly_builds_models_that_convert():
    """Not vacuous: most random models convert, some are refused, and IF layers are shared."""
    outcomes = [check(seed) for seed in range(40)]
    status = Counter(o.status for o in outcomes)
    assert status["converted"] >= 25 and status["wrong"] == status["crashed"] == 0
    assert any("#" in name for o in outcomes for name in o.calls)  # a QCFS called twice
    assert sum(o.layers for o in outcomes) > 60
