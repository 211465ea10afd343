"""Small statistics: medians, percentiles, paired ratios and bootstrap intervals."""

from __future__ import annotations

import random
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


def pooled_percentile(runs: Sequence[Sequence[float]], q: float) -> float:
    """The q-th percentile of every run's samples taken together."""
    return percentile([value for run in runs for value in run], q)


def pooled_ratio_interval(
    runs: Sequence[Sequence[float]],
    references: Sequence[Sequence[float]],
    q: float,
    confidence: float = 0.9,
    resamples: int = 200,
    seed: int = 0,
) -> tuple[float, float]:
    """A bootstrap interval for pooled_percentile(runs) / pooled_percentile(references).

    Repetitions are resampled in pairs (the same draw of indices for both), since a run and its
    reference shared the machine's state at the time; a fixed seed makes the interval repeatable.
    """
    if len(runs) != len(references):
        raise ValueError("unpaired runs")
    draw = random.Random(seed)  # noqa: S311 - resampling, not secrets
    count = len(runs)
    ratios = []
    for _ in range(resamples):
        picked = [draw.randrange(count) for _ in range(count)]
        value = pooled_percentile([runs[index] for index in picked], q)
        reference = pooled_percentile([references[index] for index in picked], q)
        ratios.append(value / reference)
    tail = (1.0 - confidence) / 2 * 100
    return percentile(ratios, tail), percentile(ratios, 100 - tail)
