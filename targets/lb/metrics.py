"""The load balancer's Prometheus metrics, in its own registry.

Counters are bumped on the data path through cached label children; gauges about targets are
read from the core at scrape time by a collector, so they can never drift from the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from targets.lb.core import TargetGroup, TargetState

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class LbMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "lb_requests_total",
            "Client requests answered, by backend (target id, or 'lb' when the load balancer "
            "answered itself) and status code.",
            ["backend", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "lb_request_duration_seconds",
            "Time from request head received to response complete, by backend.",
            ["backend"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
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
        self._answered: dict[tuple[str, int], Callable[[float], None]] = {}
        self._latency: dict[str, Callable[[float], None]] = {}

    def answered(self, backend: str, status: int, seconds: float) -> None:
        """One client request is done: count and time it (hot path: label children are cached)."""
        inc = self._answered.get((backend, status))
        if inc is None:
            inc = self._answered[(backend, status)] = self.requests.labels(backend, str(status)).inc
        inc(1)
        observe = self._latency.get(backend)
        if observe is None:
            observe = self._latency[backend] = self.duration.labels(backend).observe
        observe(seconds)


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
