"""The system under test, as one typed object: services, their replicas and load balancers.

A topology file is YAML (see `harness/topologies/shop.yaml`, the default). It is parsed once,
at the edge, by `load_topology`; errors name file:line:col and the field path, and nothing
starts. Later steps add the gateway, queues, topics, CDN edges and DNS records here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.yamlfile import load_model
from targets.autoscaler.core import ConfigError, Policy
from targets.gateway.config import config_from_json
from targets.gateway.routes import RouteError

DEFAULT_TOPOLOGY = Path(__file__).resolve().parent / "topologies" / "shop.yaml"

_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapacitySpec(_Strict):
    """One replica's size: requests served at once, requests that may wait."""

    slots: int = Field(default=8, ge=1, le=100_000)
    backlog: int = Field(default=64, ge=0, le=1_000_000)


class ServiceTimeSpec(_Strict):
    distribution: Literal["constant", "exponential", "lognormal"] = "lognormal"
    mean_ms: float = Field(default=20.0, ge=0, le=600_000)
    sigma: float = Field(default=0.5, ge=0, le=3)


class HealthSpec(_Strict):
    interval_s: float = Field(default=1.0, gt=0, le=300)
    timeout_s: float = Field(default=0.5, gt=0, le=120)
    healthy_threshold: int = Field(default=3, ge=1, le=10)
    unhealthy_threshold: int = Field(default=2, ge=1, le=10)
    path: str = Field(default="/health", pattern=r"^/")

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> HealthSpec:
        if self.timeout_s >= self.interval_s:
            raise ValueError(
                f"timeout_s ({self.timeout_s}) must be shorter than interval_s ({self.interval_s})"
            )
        return self


class LoadBalancerSpec(_Strict):
    algorithm: Literal["round_robin", "least_outstanding_requests", "weighted_random"] = (
        "round_robin"
    )
    health: HealthSpec = HealthSpec()
    deregistration_delay_s: float = Field(default=5.0, ge=0, le=3600)
    slow_start_s: float = Field(default=0.0, ge=0, le=900)
    response_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_retries: int = Field(default=2, ge=0, le=10)

    @model_validator(mode="after")
    def _no_slow_start_with_lor(self) -> LoadBalancerSpec:
        if self.algorithm == "least_outstanding_requests" and self.slow_start_s > 0:
            raise ValueError("slow_start_s cannot be combined with least_outstanding_requests")
        return self

    def args(self) -> list[str]:
        """The `python -m targets.lb` flags for these settings."""
        h = self.health
        return [
            f"--algorithm={self.algorithm}",
            f"--health-interval={h.interval_s}",
            f"--health-timeout={h.timeout_s}",
            f"--healthy-threshold={h.healthy_threshold}",
            f"--unhealthy-threshold={h.unhealthy_threshold}",
            f"--health-path={h.path}",
            f"--deregistration-delay={self.deregistration_delay_s}",
            f"--slow-start={self.slow_start_s}",
            f"--response-timeout={self.response_timeout_s}",
            f"--max-retries={self.max_retries}",
        ]


class AutoscalingSpec(_Strict):
    """Target tracking (targets/autoscaler): hold `metric` per ready replica near `target`.

    The replica bounds are the service's `min_replicas` (at least 1) and `max_replicas`; the
    other fields are `targets.autoscaler.core.Policy`'s, with lab-scale defaults.
    """

    metric: Literal["in_flight", "request_rate"] = "in_flight"
    target: float = Field(gt=0, le=1_000_000)
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    scale_out_step_max: int = Field(default=4, ge=1, le=64)
    scale_out_period_s: float = Field(default=15.0, gt=0, le=1800)
    scale_in_stabilization_s: float = Field(default=30.0, ge=0, le=3600)
    warmup_s: float = Field(default=5.0, ge=0, le=3600)
    evaluation_interval_s: float = Field(default=1.0, gt=0, le=60)

    def policy(self, min_replicas: int, max_replicas: int) -> Policy:
        """The core's policy for a service with these bounds (ConfigError naming a field)."""
        fields = self.model_dump(exclude={"metric"})
        return Policy(min_replicas=min_replicas, max_replicas=max_replicas, **fields)


class EmailSpec(_Strict):
    """The receipt email after a payment (targets/server/email.py): `sync` calls `provider`
    before the payment answers; `async` enqueues it on `queue` for the workers."""

    mode: Literal["sync", "async"]
    provider: str | None = None
    queue: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=600)

    @model_validator(mode="after")
    def _target_of_the_mode(self) -> EmailSpec:
        if self.mode == "sync" and (self.provider is None or self.queue is not None):
            raise ValueError("mode sync sends to a provider: give `provider`, not `queue`")
        if self.mode == "async" and (self.queue is None or self.provider is not None):
            raise ValueError("mode async enqueues: give `queue`, not `provider`")
        return self


class ServiceSpec(_Strict):
    """A horizontally scaled service: N identical replicas behind one load balancer."""

    replicas: int = Field(default=3, ge=0, le=64)
    min_replicas: int = Field(default=0, ge=0, le=64)
    max_replicas: int = Field(default=16, ge=1, le=64)
    capacity: CapacitySpec = CapacitySpec()
    service_time: ServiceTimeSpec = ServiceTimeSpec()
    boot_delay_s: float = Field(default=0.0, ge=0, le=600)
    drain_timeout_s: float = Field(default=10.0, ge=0, le=3600)
    load_balancer: LoadBalancerSpec = LoadBalancerSpec()
    autoscaling: AutoscalingSpec | None = None
    email: EmailSpec | None = None

    @model_validator(mode="after")
    def _replicas_within_bounds(self) -> ServiceSpec:
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(
                f"replicas ({self.replicas}) must be between min_replicas ({self.min_replicas})"
                f" and max_replicas ({self.max_replicas})"
            )
        if self.autoscaling is not None:
            if self.min_replicas < 1:
                raise ValueError("autoscaling needs min_replicas >= 1 (no scale to zero)")
            try:
                self.autoscaling.policy(self.min_replicas, self.max_replicas)
            except ConfigError as exc:
                raise ValueError(f"autoscaling: {exc}") from None
        return self

    def autoscaler_policy(self) -> Policy | None:
        """The autoscaler core's policy, when the service autoscales."""
        if self.autoscaling is None:
            return None
        return self.autoscaling.policy(self.min_replicas, self.max_replicas)

    def server_args(self) -> list[str]:
        """The `python -m targets.server` flags for one replica (identity flags excluded)."""
        t = self.service_time
        return [
            f"--slots={self.capacity.slots}",
            f"--backlog={self.capacity.backlog}",
            f"--service-ms={t.mean_ms}",
            f"--distribution={t.distribution}",
            f"--sigma={t.sigma}",
            f"--boot-delay={self.boot_delay_s}",
            f"--drain-timeout={self.drain_timeout_s}",
        ]


class LimitSpec(_Strict):
    """A rate limit on a gateway route (targets/limiter): `rate` per second, `burst` at once,
    per `key`: `client` (the X-Client-Id header, else the address), `address`, or the route."""

    name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]{0,40}$")
    key: Literal["client", "address", "route"] = "client"
    algorithm: Literal[
        "token_bucket", "leaky_bucket_shaping", "leaky_bucket_policing", "gcra", "sliding_window"
    ] = "token_bucket"
    rate: float = Field(gt=0, le=1_000_000)
    burst: int = Field(default=1, ge=1, le=1_000_000)

    @property
    def label(self) -> str:
        return self.name or f"{self.key}-{self.algorithm}"


class RouteSpec(_Strict):
    """A gateway route to a service's load balancer (targets/gateway/routes.py): `path` is a
    prefix (default), `exact`, or has `{param}` segments; the most specific route wins."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,40}$")
    path: str = Field(pattern=r"^/")
    service: str
    match: Literal["prefix", "exact"] = "prefix"
    methods: list[Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]] = []
    strip_prefix: bool = False
    timeout_s: float = Field(default=30.0, gt=0, le=3600)  # API Gateway HTTP API's default
    limits: list[LimitSpec] = []


class GatewaySpec(_Strict):
    """The API gateway in front of the services' load balancers (targets/gateway)."""

    client_header: str = Field(default="x-client-id", pattern=r"^[A-Za-z0-9-]{1,64}$")
    routes: list[RouteSpec] = Field(min_length=1)

    def config(self, upstreams: dict[str, tuple[str, int]]) -> dict[str, object]:
        """The gateway's config file, each route aimed at its service's load balancer."""
        return {
            "name": "gateway",
            "client_header": self.client_header,
            "routes": [
                {
                    **route.model_dump(exclude={"limits"}),
                    "upstream": "{}:{}".format(*upstreams[route.service]),
                    "limits": [
                        {**limit.model_dump(exclude={"name"}), "name": limit.label}
                        for limit in route.limits
                    ],
                }
                for route in self.routes
            ],
        }


class DnsHealthSpec(_Strict):
    """Route 53-style health checks of the servers a record points at (lab-scale interval)."""

    interval_s: float = Field(default=1.0, gt=0, le=60)
    timeout_s: float = Field(default=0.5, gt=0, le=30)
    failure_threshold: int = Field(default=3, ge=1, le=10)
    success_threshold: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> DnsHealthSpec:
        if self.timeout_s > self.interval_s:
            raise ValueError(
                f"timeout_s ({self.timeout_s}) must not exceed interval_s ({self.interval_s})"
            )
        return self


class DnsRecordSpec(_Strict):
    """A name of the lab's zone pointing at a service.

    `via: load_balancer` answers the service's load balancer (one address: `simple`); `via:
    gateway` the API gateway (no `service`). `via: servers` answers its servers directly,
    each on its own loopback address: `simple` lists them all (DNS round robin, no health
    checks), `weighted` answers one healthy server per query (equal weights), `failover`
    answers the first server while its health check passes, else the second.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")  # relative to the zone
    service: str | None = None  # required, except via gateway
    via: Literal["load_balancer", "servers", "gateway"] = "load_balancer"
    policy: Literal["simple", "weighted", "failover"] = "simple"
    ttl_s: int = Field(default=60, ge=0, le=86_400)
    health: DnsHealthSpec = DnsHealthSpec()

    @model_validator(mode="after")
    def _one_address_behind_a_load_balancer(self) -> DnsRecordSpec:
        if self.via != "servers" and self.policy != "simple":
            raise ValueError(f"via {self.via} is one address: it takes policy simple")
        if (self.service is None) != (self.via == "gateway"):
            raise ValueError("give the service, except for a record via gateway (which has none)")
        return self


class DnsSpec(_Strict):
    """The lab's authoritative DNS server (targets/dns) and the names it serves."""

    zone: str = Field(default="lab", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    records: list[DnsRecordSpec] = Field(min_length=1)


class DeadLetterSpec(_Strict):
    """A dead-letter queue `<queue>-dlq`: a message received `max_receive_count` times
    without being deleted moves there (SQS RedrivePolicy)."""

    max_receive_count: int = Field(default=3, ge=1, le=1000)


class QueueSpec(_Strict):
    """A queue of the lab's queue service (targets/queue), with SQS's attributes."""

    visibility_timeout_s: int = Field(default=30, ge=0, le=43_200)
    receive_wait_s: int = Field(default=0, ge=0, le=20)  # ReceiveMessageWaitTimeSeconds
    delay_s: int = Field(default=0, ge=0, le=900)
    retention_s: int = Field(default=345_600, ge=60, le=1_209_600)
    dead_letter: DeadLetterSpec | None = None

    def attributes(self) -> dict[str, str]:
        return {
            "VisibilityTimeout": str(self.visibility_timeout_s),
            "ReceiveMessageWaitTimeSeconds": str(self.receive_wait_s),
            "DelaySeconds": str(self.delay_s),
            "MessageRetentionPeriod": str(self.retention_s),
        }


class ProviderSpec(_Strict):
    """A simulated delivery provider (targets/workers/provider.py): mail or WhatsApp, with
    a latency and a failure rate."""

    kind: Literal["email", "whatsapp"] = "email"
    latency: ServiceTimeSpec = ServiceTimeSpec(mean_ms=50)
    failure_rate: float = Field(default=0.0, ge=0, le=1)

    def args(self) -> list[str]:
        t = self.latency
        return [
            f"--kind={self.kind}",
            f"--latency={t.distribution}",
            f"--latency-ms={t.mean_ms}",
            f"--sigma={t.sigma}",
            f"--failure-rate={self.failure_rate}",
        ]


class WorkerSpec(_Strict):
    """A pool of queue workers (targets/workers): each receives from `queue`, rate-limits
    itself to `rate` messages per second, delivers to `provider` and deletes on success."""

    queue: str
    provider: str
    replicas: int = Field(default=2, ge=0, le=64)
    min_replicas: int = Field(default=0, ge=0, le=64)
    max_replicas: int = Field(default=16, ge=1, le=64)
    polling: Literal["long", "short"] = "long"
    wait_s: int = Field(default=20, ge=1, le=20)  # long polling
    empty_sleep_s: float = Field(default=0.1, ge=0, le=60)  # short polling
    batch: int = Field(default=10, ge=1, le=10)
    visibility_s: int | None = Field(default=None, ge=0, le=43_200)  # None: the queue's
    rate: float = Field(default=10.0, ge=0, le=1_000_000)  # 0: no limit
    burst: int = Field(default=1, ge=1, le=10_000)
    on_failure: Literal["return", "backoff"] = "return"
    backoff_s: float = Field(default=1.0, gt=0, le=3600)
    provider_timeout_s: float = Field(default=30.0, gt=0, le=600)
    ack: Literal["after_send", "before_send"] = "after_send"
    """When a message is deleted: after the provider took it, or before (a failed send is lost)."""

    @model_validator(mode="after")
    def _replicas_within_bounds(self) -> WorkerSpec:
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(
                f"replicas ({self.replicas}) must be between min_replicas ({self.min_replicas})"
                f" and max_replicas ({self.max_replicas})"
            )
        return self

    def args(self, queue_visibility_s: int) -> list[str]:
        """The `python -m targets.workers` flags (queue, provider and identity excluded);
        the visibility timeout is the queue's unless the pool sets its own."""
        visibility = queue_visibility_s if self.visibility_s is None else self.visibility_s
        return [
            f"--queue={self.queue}",
            f"--polling={self.polling}",
            f"--wait-s={self.wait_s}",
            f"--empty-sleep-s={self.empty_sleep_s}",
            f"--batch={self.batch}",
            f"--visibility-s={visibility}",
            f"--rate={self.rate}",
            f"--burst={self.burst}",
            f"--on-failure={self.on_failure}",
            f"--backoff-s={self.backoff_s}",
            f"--provider-timeout-s={self.provider_timeout_s}",
            f"--ack={self.ack}",
        ]


@dataclass(frozen=True, slots=True)
class Group:
    """Instances chaos can act on as one: a service's servers, a worker pool, or the queue
    service (one instance, `queue-1`)."""

    kind: Literal["service", "workers", "queue"]
    replicas: int
    min_replicas: int
    max_replicas: int


QUEUE_GROUP = "queue"
SERVER_ONLY_ACTIONS = ("resize", "latency", "errors", "clear")


class Topology(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")
    services: dict[str, ServiceSpec] = Field(min_length=1)
    gateway: GatewaySpec | None = None
    dns: DnsSpec | None = None
    queues: dict[str, QueueSpec] = {}
    providers: dict[str, ProviderSpec] = {}
    workers: dict[str, WorkerSpec] = {}

    @model_validator(mode="after")
    def _service_names(self) -> Topology:
        for name in self.services:
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"service name {name!r} must be lowercase letters, digits and '-' (max 31)"
                )
        return self

    @model_validator(mode="after")
    def _dns_records_name_services(self) -> Topology:
        seen: set[str] = set()
        for record in self.dns.records if self.dns else []:
            if record.via == "gateway":
                continue
            spec = self.services.get(record.service or "")
            if spec is None:
                raise ValueError(
                    f"dns record {record.name!r}: no service {record.service!r}"
                    f" (services: {', '.join(sorted(self.services))})"
                )
            if record.name in seen:
                raise ValueError(f"dns record {record.name!r} is defined twice")
            seen.add(record.name)
            if record.via == "servers" and record.policy == "failover" and spec.replicas < 2:
                raise ValueError(
                    f"dns record {record.name!r}: failover needs a primary and a secondary"
                    f" server ({record.service} has {spec.replicas} replica(s))"
                )
        return self

    @model_validator(mode="after")
    def _gateway_routes(self) -> Topology:
        if self.gateway is None:
            if any(r.via == "gateway" for r in (self.dns.records if self.dns else [])):
                raise ValueError("a dns record is via gateway, but the topology has no gateway")
            return self
        for i, route in enumerate(self.gateway.routes):
            if route.service not in self.services:
                raise ValueError(
                    f"gateway.routes[{i}].service: no service {route.service!r}"
                    f" (services: {', '.join(sorted(self.services))})"
                )
        upstreams = {name: ("127.0.0.1", 1) for name in self.services}
        try:
            config_from_json(self.gateway.config(upstreams))
        except RouteError as exc:
            raise ValueError(f"gateway.{exc}") from None
        return self

    @model_validator(mode="after")
    def _pipeline_names(self) -> Topology:
        """Queues, providers and worker pools: names unique across the lab, every reference
        resolvable."""
        names = {"queue": "the queue service", "gateway": "the gateway", "dns": "the DNS server"}
        for kind, group in (
            ("service", self.services),
            ("provider", self.providers),
            ("worker pool", self.workers),
        ):
            for name in group:
                if not _NAME.fullmatch(name):
                    raise ValueError(f"{kind} name {name!r} must be lowercase letters, digits, '-'")
                if name in names:
                    raise ValueError(f"{kind} name {name!r} is taken by {names[name]}")
                names[name] = f"{kind} {name!r}"
        for name in self.queues:
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,60}", name) or name.endswith("-dlq"):
                raise ValueError(
                    f"queue name {name!r}: lowercase letters, digits and '-', not ending in"
                    " -dlq (dead-letter queues are named after their source)"
                )

        def known(what: str, name: str | None, group: dict[str, object], where: str) -> None:
            if name not in group:
                choices = ", ".join(sorted(group)) or "none defined"
                raise ValueError(f"{where}: no {what} {name!r} ({what}s: {choices})")

        queues: dict[str, object] = {
            **self.queues,
            **{f"{q}-dlq": None for q, spec in self.queues.items() if spec.dead_letter},
        }
        for pool, worker in self.workers.items():
            known("queue", worker.queue, queues, f"workers.{pool}.queue")
            known("provider", worker.provider, dict(self.providers), f"workers.{pool}.provider")
        for name, service in self.services.items():
            email = service.email
            if email is None:
                continue
            if email.mode == "sync":
                where = f"services.{name}.email.provider"
                known("provider", email.provider, dict(self.providers), where)
            else:
                known("queue", email.queue, dict(self.queues), f"services.{name}.email.queue")
        return self

    def groups(self) -> dict[str, Group]:
        """Everything chaos can name: services, worker pools, and `queue` when queues exist."""
        groups = {
            name: Group("service", s.replicas, s.min_replicas, s.max_replicas)
            for name, s in self.services.items()
        }
        groups |= {
            name: Group("workers", w.replicas, w.min_replicas, w.max_replicas)
            for name, w in self.workers.items()
        }
        if self.queues:
            groups[QUEUE_GROUP] = Group("queue", 1, 1, 1)
        return groups

    def queues_file(self) -> dict[str, object]:
        """The queue service's `--queues-file` (targets/queue/setup.py) for `queues`: each
        queue with its attributes, and its `<queue>-dlq` when it has `dead_letter`."""
        entries: list[dict[str, object]] = []
        for name, spec in self.queues.items():
            entry: dict[str, object] = {"name": name, "attributes": spec.attributes()}
            if spec.dead_letter is not None:
                entry["dead_letter"] = {
                    "queue": f"{name}-dlq",
                    "max_receive_count": spec.dead_letter.max_receive_count,
                }
            entries.append(entry)
        return {"queues": entries}

    def direct_services(self) -> set[str]:
        """Services some DNS record answers with server addresses: each server then listens
        on its own loopback address, all on one port."""
        records = self.dns.records if self.dns else []
        return {r.service for r in records if r.via == "servers" and r.service}


def load_topology(path: Path | None = None) -> Topology:
    """The topology in `path` (the shipped `shop` topology when None)."""
    return load_model(path or DEFAULT_TOPOLOGY, Topology)
