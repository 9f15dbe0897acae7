"""The autoscaler's I/O: sample the load balancer, decide with the core, act through the lab.

Like the HPA controller, it owns no process: it reads and asks. Every `sample_interval_s` it
reads the service's load balancer (`GET /targets`: health, in-flight and answered requests per
target) into a `LoadWindow`; every `policy.evaluation_interval_s` it reads which replicas the
lab runs (`GET /status` of the harness control API), evaluates the `Autoscaler` core and, when
the desired count differs from the current one, posts `add` or `remove` to the harness's
`POST /chaos` with a `cause` naming the decision. The harness applies it like any chaos
action (remove = deregister, drain, stop), so every scaling decision is an event in the run's
log, on Grafana and in the report. An action completes before the next evaluation: a replica
added is registered by then, and one removed has drained.

Metrics (its own registry, `GET /metrics`): current, desired and ready replicas, the metric and
its target, decisions by direction and reason, actions by result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from targets.autoscaler.core import Autoscaler, Decision, Direction, Policy, Reason
from targets.autoscaler.observe import LoadWindow, TargetSample
from targets.autoscaler.observe import Metric as LoadMetric
from targets.http.client import Client, fetch_json
from targets.http.upstream import UpstreamError

log = logging.getLogger(__name__)

ALIVE = ("running", "paused")  # the harness's instance states that are a replica


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the autoscaler reads and acts; one bearer token serves both."""

    lb_control: tuple[str, int]
    lab_control: tuple[str, int]
    token: str


class AutoscalerMetrics(Collector):
    """The autoscaler's state as gauges, plus decision and action counters."""

    def __init__(self, registry: CollectorRegistry, scaler: ServiceAutoscaler) -> None:
        self.scaler = scaler
        service = scaler.service
        self.decisions = Counter(
            "autoscaler_decisions_total",
            "Evaluations, by the decision's direction (out, in, none) and reason.",
            ["service", "direction", "reason"],
            registry=registry,
        )
        for direction in Direction:  # every series from 0: rate() sees the first one
            for reason in Reason:
                self.decisions.labels(service, direction.value, reason.value)
        self.actions = Counter(
            "autoscaler_actions_total",
            "Scaling actions asked of the lab, by action (add, remove) and result "
            "(ok, refused, failed).",
            ["service", "action", "result"],
            registry=registry,
        )
        for action in ("add", "remove"):
            for result in ("ok", "refused", "failed"):
                self.actions.labels(service, action, result)
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        scaler, service = self.scaler, self.scaler.service
        last = scaler.last
        labels = ["service"]
        for name, doc, value in (
            ("autoscaler_current_replicas", "Replicas running (ready + warming).", last.current),
            ("autoscaler_desired_replicas", "Replicas the last decision asked for.", last.desired),
            ("autoscaler_ready_replicas", "Replicas healthy for at least warmup_s.", scaler.ready),
        ):
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric([service], value)
            yield family
        metric = GaugeMetricFamily(
            "autoscaler_metric",
            "The load metric per ready replica at the last evaluation (NaN when missing).",
            labels=["service", "metric"],
        )
        seen = scaler.value
        metric.add_metric([service, scaler.window.metric], math.nan if seen is None else seen)
        yield metric
        target = GaugeMetricFamily(
            "autoscaler_metric_target",
            "The per-replica value of the load metric the autoscaler holds.",
            labels=["service", "metric"],
        )
        target.add_metric([service, scaler.window.metric], scaler.core.policy.target)
        yield target


class ServiceAutoscaler:
    """One service's target tracking, sampling and acting over HTTP."""

    def __init__(
        self,
        service: str,
        policy: Policy,
        metric: LoadMetric,
        endpoints: Endpoints,
        registry: CollectorRegistry,
        *,
        sample_interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.core = Autoscaler(policy)
        self.window = LoadWindow(metric)
        self.endpoints = endpoints
        self.sample_interval_s = min(sample_interval_s, policy.evaluation_interval_s)
        self.clock = clock
        replicas = policy.min_replicas
        self.last = Decision(replicas, replicas, Direction.NONE, Reason.MISSING_METRICS, replicas)
        self.ready = 0
        self.value: float | None = None
        self.metrics = AutoscalerMetrics(registry, self)
        self._auth = [(b"authorization", f"Bearer {endpoints.token}".encode())]
        self._lb = Client(*endpoints.lb_control, max_connections=1, timeout_s=2.0)

    async def run(self) -> None:
        """Sample and evaluate until cancelled."""
        sampler = asyncio.get_running_loop().create_task(self._sample_forever())
        try:
            while True:
                await asyncio.sleep(self.core.policy.evaluation_interval_s)
                try:
                    await self.evaluate()
                except (UpstreamError, ValueError, KeyError) as exc:
                    log.warning("evaluation skipped: %s", exc)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            self._lb.close()

    async def _sample_forever(self) -> None:
        while True:
            try:
                await self.sample()
            except (UpstreamError, ValueError, KeyError) as exc:
                log.warning("load balancer not sampled: %s", exc)
            await asyncio.sleep(self.sample_interval_s)

    async def sample(self) -> None:
        """One reading of the load balancer's targets."""
        reply = await self._lb.request("GET", "/targets", headers=self._auth)
        if reply.status != 200:
            raise ValueError(f"GET /targets answered {reply.status}")
        targets = [TargetSample.of(t) for t in reply.json()["targets"]]
        self.window.add(self.clock(), targets)

    async def evaluate(self) -> Decision:
        """Decide from the replicas the lab runs and the load sampled since the last time."""
        now = self.clock()
        replicas = await self._replicas()
        policy = self.core.policy
        since = self.window.healthy_since
        ready_set = [r for r in replicas if r in since and now - since[r] >= policy.warmup_s]
        self.ready, warming = len(ready_set), len(replicas) - len(ready_set)
        self.value = self.window.per_replica(ready_set)
        decision = self.core.evaluate(now, self.ready, warming, self.value)
        self.last = decision
        self.metrics.decisions.labels(
            self.service, decision.direction.value, decision.reason.value
        ).inc()
        if decision.direction is not Direction.NONE:
            await self._act(decision)
        return decision

    async def _replicas(self) -> list[str]:
        host, port = self.endpoints.lab_control
        reply = await fetch_json(host, port, "GET", "/status", headers=self._auth)
        if reply.status != 200:
            raise ValueError(f"GET /status answered {reply.status}")
        instances = reply.json()["services"][self.service]["instances"]
        return [i["name"] for i in instances if i["state"] in ALIVE]

    async def _act(self, decision: Decision) -> None:
        out = decision.direction is Direction.OUT
        action = "add" if out else "remove"
        count = abs(decision.desired - decision.current)
        value = "missing" if self.value is None else f"{self.value:.2f}"
        cause = (
            f"autoscaler: {decision.reason.value}, {self.window.metric} {value} per replica"
            f" vs target {self.core.policy.target:g}; {decision.current} -> {decision.desired}"
        )
        log.info("%s %d (%s)", action, count, cause)
        body: dict[str, Any] = {
            "action": action,
            "service": self.service,
            "count": count,
            "cause": cause,
        }
        host, port = self.endpoints.lab_control
        try:
            # A remove waits for the drain: allow for the deregistration delay and more.
            reply = await fetch_json(
                host, port, "POST", "/chaos", body, headers=self._auth, timeout_s=120.0
            )
        except UpstreamError as exc:
            self.metrics.actions.labels(self.service, action, "failed").inc()
            log.warning("%s not applied: %s", action, exc)
            return
        result = "ok" if reply.status == 200 else "refused" if reply.status == 409 else "failed"
        self.metrics.actions.labels(self.service, action, result).inc()
        if result != "ok":
            log.warning("%s %s: %s %s", action, result, reply.status, reply.body[:300])
