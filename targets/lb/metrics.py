"""The load balancer's Prometheus metrics, in its own registry.

The per-request series (requests by backend and code, latency by backend) are plain counters
the data path bumps without locks (the load balancer is one thread) and that a collector turns
into Prometheus families at scrape time: a few hundred nanoseconds per request instead of the
microseconds of prometheus-client's locked values. Rare events use ordinary prometheus-client
counters. Target gauges are read from the core at scrape time, so they never drift from it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from targets.lb.core import TargetGroup, TargetState

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class RequestStats(Collector):
    """`lb_requests_total` and `lb_request_duration_seconds`, accumulated without locks."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        self.buckets: dict[str, list[int]] = {}  # per backend: one count per bucket, then +Inf
        self.sums: dict[str, float] = {}

    def add(self, backend: str, status: int, seconds: float) -> None:
        key = (backend, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        buckets = self.buckets.get(backend)
        if buckets is None:
            buckets = self.buckets[backend] = [0] * (len(LATENCY_BUCKETS) + 1)
            self.sums[backend] = 0.0
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sums[backend] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "lb_requests",
            "Client requests answered, by backend (target id, or 'lb' when the load balancer "
            "answered itself) and status code.",
            labels=["backend", "code"],
        )
        for (backend, status), count in sorted(self.counts.items()):
            requests.add_metric([backend, str(status)], count)
        yield requests
        duration = HistogramMetricFamily(
            "lb_request_duration_seconds",
            "Time from request head received to response complete, by backend.",
            labels=["backend"],
        )
        for backend, counts in sorted(self.buckets.items()):
            cumulative = 0
            points = []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                points.append((_bound(bound), cumulative))
            duration.add_metric([backend], points, self.sums[backend])
        yield duration


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


class LbMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stats = RequestStats()
        registry.register(self.stats)
        self.answered = self.stats.add  # one client request done: (backend, status, seconds)
        self.retries = Counter(
            "lb_retries_total",
            "Requests sent again to another target, by the reason the previous try failed.",
            ["reason"],
            registry=registry,
        )
        self.upstream_errors = Counter(
            "lb_upstream_errors_total",
            "Failed exchanges with a target, by backend and reason "
            "(refused, connect_timeout, pool_timeout, reset, timeout, bad_response).",
            ["backend", "reason"],
            registry=registry,
        )
        self.health_checks = Counter(
            "lb_health_checks_total",
            "Active health probes, by backend and result (ok, fail).",
            ["backend", "result"],
            registry=registry,
        )
        self.transitions = Counter(
            "lb_target_transitions_total",
            "Target state changes, by the new state.",
            ["state"],
            registry=registry,
        )


class TargetCollector(Collector):
    """Target gauges read from the core at scrape time."""

    def __init__(self, group: TargetGroup, connections: Callable[[], int]) -> None:
        self.group = group
        self.connections = connections

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("lb_targets", "Registered targets by state.", labels=["state"])
        for state, count in self.group.counts().items():
            by_state.add_metric([state.value], count)
        yield by_state
        yield GaugeMetricFamily(
            "lb_routable_targets",
            "Targets a new request may go to now (healthy ones, or all when failing open).",
            value=self.group.routable(),
        )
        in_flight = GaugeMetricFamily(
            "lb_target_in_flight", "Requests outstanding at each target.", labels=["backend"]
        )
        healthy = GaugeMetricFamily(
            "lb_target_healthy", "1 when the target is healthy, else 0.", labels=["backend"]
        )
        for target in self.group.targets.values():
            in_flight.add_metric([target.id], target.in_flight)
            healthy.add_metric([target.id], int(target.state is TargetState.HEALTHY))
        yield in_flight
        yield healthy
        yield GaugeMetricFamily(
            "lb_client_connections", "Open client connections.", value=self.connections()
        )
