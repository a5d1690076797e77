"""Metric families built from catalog entries, so a name, type, help text or label set can
only be what ``catalog.py`` says.

Collectors call ``gauge``/``counter``/``histogram`` with a catalog name; a name that is not in
the catalog, or a family of the wrong type, is a programming error and raises at once (the
tests scrape every source, so it cannot reach a user).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from comfy_init.sidecar import catalog
from comfy_init.sidecar.metric import Metric as CatalogEntry


def _entry(name: str, kind: str) -> CatalogEntry:
    entry = catalog.get(name)
    if entry.type != kind:
        raise TypeError(f"metric {entry.name} is a {entry.type}, not a {kind}")
    return entry


def gauge(name: str) -> GaugeMetricFamily:
    m = _entry(name, "gauge")
    return GaugeMetricFamily(m.name, m.help, labels=m.labels, unit=m.unit)


def counter(name: str) -> CounterMetricFamily:
    m = _entry(name, "counter")
    return CounterMetricFamily(m.family_name, m.help, labels=m.labels, unit=m.unit)


def histogram(name: str) -> HistogramMetricFamily:
    m = _entry(name, "histogram")
    return HistogramMetricFamily(m.name, m.help, labels=m.labels, unit=m.unit)


def single(name: str, value: float) -> GaugeMetricFamily:
    """An unlabelled gauge with one sample."""
    family = gauge(name)
    family.add_metric([], value)
    return family


def labelled(name: str, samples: Iterable[tuple[Sequence[str], float]]) -> Metric:
    """A labelled gauge or counter with the given ``(label values, value)`` samples."""
    kind = catalog.get(name).type
    family: Metric = gauge(name) if kind == "gauge" else counter(name)
    for labels, value in samples:
        family.add_metric(list(labels), value)  # type: ignore[attr-defined]
    return family


def one_hot(name: str, states: Iterable[str], current: str | None) -> GaugeMetricFamily:
    """A state gauge: 1 for ``current``, 0 for every other state (a state set)."""
    family = gauge(name)
    for state in states:
        family.add_metric([state], 1.0 if state == current else 0.0)
    return family


def cumulative_buckets(
    values: Iterable[float], bounds: Sequence[float]
) -> tuple[list[tuple[str, float]], float]:
    """Prometheus histogram buckets for ``values``: ``[(le, cumulative count)...]`` ending in
    ``+Inf``, and the sum of the values.  ``bounds`` must be sorted."""
    counts = [0] * (len(bounds) + 1)
    total = 0.0
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
        total += value
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*bounds, math.inf), counts, strict=True):
        running += count
        buckets.append((_le(bound), float(running)))
    return buckets, total


def _le(bound: float) -> str:
    if math.isinf(bound):
        return "+Inf"
    return repr(float(bound))
