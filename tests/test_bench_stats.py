"""The bench's statistics: pooled percentiles and the bootstrap interval of their ratio."""

from __future__ import annotations

import pytest

from bench.stats import percentile, pooled_percentile, pooled_ratio_interval

QUIET = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
NOISY = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 50.0)


def test_pooled_percentile_is_the_percentile_of_all_samples_together() -> None:
    runs = [QUIET, NOISY, (0.5, 70.0)]

    assert pooled_percentile(runs, 99) == percentile([*QUIET, *NOISY, 0.5, 70.0], 99)
    assert pooled_percentile(runs, 99) != pytest.approx(max(percentile(run, 99) for run in runs))


def test_a_ratio_of_identical_runs_is_one_whatever_is_resampled() -> None:
    runs = [QUIET, NOISY, QUIET, NOISY]

    assert pooled_ratio_interval(runs, runs, 99) == pytest.approx((1.0, 1.0))


def test_runs_twice_as_slow_give_an_interval_at_two() -> None:
    references = [QUIET, NOISY, QUIET]
    runs = [tuple(2 * value for value in run) for run in references]

    low, high = pooled_ratio_interval(runs, references, 99)

    assert low == pytest.approx(2.0)
    assert high == pytest.approx(2.0)


def test_repetitions_that_disagree_widen_the_interval_around_the_pooled_ratio() -> None:
    references = [QUIET] * 6
    runs = [QUIET, NOISY, QUIET, QUIET, NOISY, QUIET]
    pooled = pooled_percentile(runs, 99) / pooled_percentile(references, 99)

    low, high = pooled_ratio_interval(runs, references, 99)

    assert low < high
    assert low <= pooled <= high
    assert pooled_ratio_interval(runs, references, 99) == (low, high)  # a fixed seed


def test_unpaired_repetitions_are_refused() -> None:
    with pytest.raises(ValueError, match="unpaired"):
        pooled_ratio_interval([QUIET, QUIET], [QUIET], 99)
