"""Small statistics: medians, percentiles and paired ratios."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median; raise ValueError on no values."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated between the nearest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def paired_ratio(values: Sequence[float], references: Sequence[float]) -> float:
    """Median of value/reference, pairing runs of the same repetition."""
    if len(values) != len(references):
        raise ValueError("unpaired runs")
    return median([value / reference for value, reference in zip(values, references, strict=True)])
