"""The load balancer's Prometheus metrics, in its own registry.

The per-request series (requests by backend and code, latency by backend) are lock-free
(targets/fastmetrics.py); rare events use ordinary prometheus-client counters. Target gauges
are read from the core at scrape time, so they never drift from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from targets.fastmetrics import FastCounter, FastHistogram
from targets.http.upstream import UPSTREAM_REASONS
from targets.lb.core import TargetGroup, TargetState


class LbMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = FastCounter(
            "lb_requests_total",
            "Client requests answered, by backend (target id, or 'lb' when the load balancer "
            "answered itself) and status code.",
            ["backend", "code"],
        )
        self.duration = FastHistogram(
            "lb_request_duration_seconds",
            "Time from request head received to response complete, by backend.",
            ["backend"],
        )
        registry.register(self.requests)
        registry.register(self.duration)
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
        # Series exist at 0 before their first event, so rate() sees the first one too (a
        # counter that appears already at 5 has no increase in Prometheus's eyes).
        for reason in UPSTREAM_REASONS:
            self.retries.labels(reason)
        for status in (502, 503, 504):
            self.requests.inc(("lb", str(status)), 0)
        self.duration.declare(("lb",))

    def target_added(self, backend: str) -> None:
        """Zero series for a new target's failures (see above)."""
        for reason in UPSTREAM_REASONS:
            self.upstream_errors.labels(backend, reason)
        for status in (500, 502, 503, 504):
            self.requests.inc((backend, str(status)), 0)
        self.duration.declare((backend,))  # a quantile without traffic is NaN, not "no data"
        self.health_checks.labels(backend, "fail")

    def answered_by(self) -> dict[str, int]:
        """Client requests answered so far, per backend (every status code)."""
        totals: dict[str, int] = {}
        for (backend, _code), value in self.requests.values.items():
            totals[backend] = totals.get(backend, 0) + int(value)
        return totals

    def answered(self, backend: str, status: int, seconds: float) -> None:
        """One client request is done."""
        self.requests.inc((backend, _CODES.get(status) or str(status)))
        self.duration.observe((backend,), seconds)


_CODES = {code: str(code) for code in range(100, 600)}


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
