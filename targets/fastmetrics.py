"""Lock-free counters and histograms for the request path of single-threaded services.

prometheus-client guards every value with a lock and looks labels up through several calls:
microseconds per request, which a proxy doing tens of thousands of requests a second feels.
These keep plain dicts keyed by the label values (one event-loop thread writes them) and become
ordinary Prometheus families when scraped. Register them in the service's own registry.

`BornAtZeroRegistry` is the registry every process of the lab exposes: a counter or histogram
series appears at 0 the first time it is exposed and with its real value from the next
exposition on. Prometheus's `rate()` and `increase()` only see increments between two samples,
so a series whose first sample is already 1 (the first 502 of a backend, a Locust endpoint's
first failure, a worker added mid-rush that worked before its first scrape) would hide that
first increment from every plot and SLO. Delaying a new series by one scrape makes every
increment count; a counter's total is unchanged.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

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

    def declare(self, labels: Labels) -> None:
        """The series for `labels` exists (at 0) before its first observation."""
        if labels not in self.counts:
            self.counts[labels] = [0] * (len(self.bounds) + 1)
            self.sums[labels] = 0.0

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.counts.get(labels)
        if counts is None:
            self.declare(labels)
            counts = self.counts[labels]
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


_CUMULATIVE = frozenset({"counter", "histogram", "summary"})
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class BornAtZeroRegistry(CollectorRegistry):
    """A registry whose counter and histogram series are exposed at 0 the first time (see the
    module docstring). The first exposition is its first reader's: in the lab that is
    Prometheus; a person reading `/metrics` by hand sees the real values from the second read.
    Gauges and `_created` timestamps are passed through."""

    def __init__(self) -> None:
        super().__init__(auto_describe=False)
        self._exposed: set[SeriesKey] = set()
        self.born_last = 0
        """How many series the last collection exposed for the first time (at 0)."""

    def collect(self) -> Iterator[Metric]:
        born = 0
        for metric in super().collect():
            if metric.type in _CUMULATIVE:
                samples = []
                for sample in metric.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key not in self._exposed and not sample.name.endswith("_created"):
                        self._exposed.add(key)
                        sample = sample._replace(value=0.0)  # noqa: PLW2901 - the one rewrite
                        born += 1
                    samples.append(sample)
                metric.samples = samples
            yield metric
        self.born_last = born
