"""Lock-free counters and histograms for the request path of single-threaded services.

prometheus-client guards every value with a lock and looks labels up through several calls:
microseconds per request, which a proxy doing tens of thousands of requests a second feels.
These keep plain dicts keyed by the label values (one event-loop thread writes them) and become
ordinary Prometheus families when scraped. Register them in the service's own registry.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Seconds; shared by every latency histogram so dashboards can compare services."""

Labels = tuple[str, ...]


class FastCounter(Collector):
    """A counter family; `inc(labels)` with a tuple of label values (`_total` is added)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name.removesuffix("_total")
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in sorted(self.values.items()):
            family.add_metric(list(labels), value)
        yield family


class FastHistogram(Collector):
    """A histogram family; `observe(labels, value)` with a tuple of label values."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self.counts: dict[Labels, list[int]] = {}  # one count per bucket, then +Inf
        self.sums: dict[Labels, float] = {}

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.counts.get(labels)
        if counts is None:
            counts = self.counts[labels] = [0] * (len(self.bounds) + 1)
            self.sums[labels] = 0.0
        counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.sums[labels] += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [repr(b) for b in self.bounds] + ["+Inf"]
        for labels, counts in sorted(self.counts.items()):
            cumulative = 0
            points = []
            for edge, count in zip(edges, counts, strict=True):
                cumulative += count
                points.append((edge, cumulative))
            family.add_metric(list(labels), points, self.sums[labels])
        yield family
