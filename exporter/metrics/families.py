"""Metric families built from plain counts: every expected label combination, 0 if unseen."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter.domain.statistics import Histogram


class FamiliesCollector(Collector):
    """Collects the metric families that `families` makes at each scrape."""

    def __init__(self, families: Callable[[], Iterator[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return self._families()


def keyed(
    values: Mapping[Any, float],
    expected: Iterable[tuple[str, ...]],
) -> list[tuple[tuple[str, ...], float]]:
    """Label tuples with values: the expected ones at 0 if unseen, plus any others seen."""
    found = {(key if isinstance(key, tuple) else (key,)): value for key, value in values.items()}
    rows = {key: found.get(key, 0) for key in expected}
    rows.update(found)
    return sorted(rows.items())


Rows = Iterable[tuple[tuple[str, ...], float]]


def counter_family(name: str, documentation: str, labels: list[str], rows: Rows) -> Metric:
    return _filled(CounterMetricFamily(name, documentation, labels=labels), rows)


def gauge_family(name: str, documentation: str, labels: list[str], rows: Rows) -> Metric:
    return _filled(GaugeMetricFamily(name, documentation, labels=labels), rows)


def _filled(family: CounterMetricFamily | GaugeMetricFamily, rows: Rows) -> Metric:
    for key, value in rows:
        family.add_metric(list(key), value)
    return family


def histogram_family(
    name: str,
    documentation: str,
    labels: list[str],
    histograms: Mapping[Any, Histogram],
    expected: Iterable[tuple[str, ...]],
    bounds: tuple[float, ...],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for key in sorted({*expected, *histograms}):
        histogram = histograms.get(key) or Histogram(bounds)
        buckets = [(_le(bound), count) for bound, count in histogram.cumulative()]
        family.add_metric(list(key), buckets, histogram.total)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
