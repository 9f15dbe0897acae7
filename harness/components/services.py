"""Services: N identical servers (targets/server) behind one load balancer (targets/lb).

Topology: `services: {name: ServiceSpec}`. Each service is a `Lab` (harness/lab.py): its load
balancer `<service>-lb`, then its servers `<service>-1` ... `<service>-<replicas>`, each told to
register with it after boot. A service some DNS record answers server by server gets its own
loopback network (`127.<10+i>.0.<n>`, one port for all). Chaos acts on the servers; only here
can it inject faults (latency, errors) or resize one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field, model_validator

from harness.components import providers, queue, topics
from harness.components.base import (
    Component,
    Group,
    Instance,
    Problem,
    Process,
    ServiceTimeSpec,
    Shape,
    Strict,
    admin_call,
    set_admin_faults,
    unknown,
)
from harness.diagram import SERVICES, Arrow, Box, Diagram, Gauge, both, rate_of
from harness.lab import Lab, ServerSpec, start_lab
from harness.prometheus import ScrapeTarget
from harness.promql import Line, PlotQuery, quantile_lines, summed
from harness.supervisor import free_port
from targets.autoscaler.core import ConfigError, Policy
from targets.http.upstream import UpstreamError
from targets.lb.core import Algorithm, GroupConfig, HealthPolicy
from targets.lb.core import ConfigError as LbConfigError

if TYPE_CHECKING:
    from harness.topology import Topology

WHAT = "a service (servers behind a load balancer)"
LB_KIND = "lb"  # a service's load balancer, a chaos group of its own (`<service>-lb`)
LB_WHAT = "a load balancer"
VERSION_FLAG = "--content-version="


class CapacitySpec(Strict):
    """One replica's size: requests served at once, requests that may wait."""

    slots: int = Field(default=8, ge=1, le=100_000)
    backlog: int = Field(default=64, ge=0, le=1_000_000)


class HealthSpec(Strict):
    interval_s: float = Field(default=1.0, gt=0, le=300)
    timeout_s: float = Field(default=0.5, gt=0, le=120)
    healthy_threshold: int = Field(default=3, ge=1, le=10)
    unhealthy_threshold: int = Field(default=2, ge=1, le=10)
    path: str = Field(default="/health", pattern=r"^/")


class LoadBalancerSpec(Strict):
    """The load balancer's settings; the rules across fields are its core's
    (`targets.lb.core.GroupConfig`), so the topology and the process refuse the same."""

    algorithm: Algorithm = Algorithm.ROUND_ROBIN
    health: HealthSpec = HealthSpec()
    deregistration_delay_s: float = Field(default=5.0, ge=0, le=3600)
    slow_start_s: float = Field(default=0.0, ge=0, le=900)
    response_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_retries: int = Field(default=2, ge=0, le=10)

    @model_validator(mode="after")
    def _the_core_accepts_it(self) -> LoadBalancerSpec:
        health = HealthPolicy(**self.health.model_dump())
        try:
            GroupConfig(self.algorithm, health, self.deregistration_delay_s, self.slow_start_s)
        except LbConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def args(self) -> list[str]:
        """The `python -m targets.lb` flags for these settings."""
        h = self.health
        return [
            f"--algorithm={self.algorithm.value}",
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


class AutoscalingSpec(Strict):
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


class EmailSpec(Strict):
    """The receipt email after a payment (targets/server/email.py): `sync` calls `provider`
    before the payment answers; `async` enqueues it on `queue` for the workers; `publish`
    publishes a PaymentCompleted event to `topic`, which fans it out to its subscribers."""

    mode: Literal["sync", "async", "publish"]
    provider: str | None = None
    queue: str | None = None
    topic: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=600)

    @property
    def target(self) -> tuple[str, str | None]:
        """The field the mode sends to, and its value."""
        field = {"sync": "provider", "async": "queue", "publish": "topic"}[self.mode]
        return field, getattr(self, field)

    @model_validator(mode="after")
    def _target_of_the_mode(self) -> EmailSpec:
        field, value = self.target
        others = [f for f in ("provider", "queue", "topic") if f != field and getattr(self, f)]
        if value is None or others:
            raise ValueError(f"mode {self.mode} sends to a {field}: give `{field}` only")
        return self


class ContentSpec(Strict):
    """How long caches may keep the servers' content (targets/server/content.py): catalogue
    pages (max-age, then the stale-while-revalidate and stale-if-error windows) and product
    images, by their Cache-Control; `version` is in every ETag."""

    catalogue_max_age_s: int = Field(default=30, ge=0, le=31_536_000)
    stale_while_revalidate_s: int = Field(default=30, ge=0, le=31_536_000)
    stale_if_error_s: int = Field(default=600, ge=0, le=31_536_000)
    image_max_age_s: int = Field(default=3600, ge=0, le=31_536_000)
    version: int = Field(default=1, ge=1)
    catalogue_private: bool = False  # the pages as a framework's default: no CDN keeps them

    def args(self) -> list[str]:
        return [
            *(["--catalogue-private"] if self.catalogue_private else []),
            f"--catalogue-max-age={self.catalogue_max_age_s}",
            f"--catalogue-stale-while-revalidate={self.stale_while_revalidate_s}",
            f"--catalogue-stale-if-error={self.stale_if_error_s}",
            f"--image-max-age={self.image_max_age_s}",
            f"--content-version={self.version}",
        ]


class ServiceSpec(Strict):
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
    content: ContentSpec = ContentSpec()

    @model_validator(mode="after")
    def _replicas_within_bounds(self) -> ServiceSpec:
        within_bounds(self.replicas, self.min_replicas, self.max_replicas)
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
            *self.content.args(),
        ]


def within_bounds(replicas: int, min_replicas: int, max_replicas: int) -> None:
    """ValueError unless min_replicas <= replicas <= max_replicas."""
    if not min_replicas <= replicas <= max_replicas:
        raise ValueError(
            f"replicas ({replicas}) must be between min_replicas ({min_replicas})"
            f" and max_replicas ({max_replicas})"
        )


def lb_group(service: str) -> str:
    """The name of service `service`'s load balancer: its process and its chaos group."""
    return f"{service}-lb"


def service_box(name: str) -> str:
    """The map's id of service `name`'s box."""
    return f"service:{name}"


def specs(topology: Topology) -> dict[str, ServiceSpec]:
    return cast(dict[str, ServiceSpec], topology.spec(Services))


# -- PromQL (report, Elasticity dashboard, SLO examples) -----------------------------------


def lb_requests(service: str, matchers: str = "") -> str:
    """Requests per second the service's load balancer answered (`matchers`: e.g. a code)."""
    return summed(
        "lb_requests_total", ", ".join(m for m in (f'service="{service}"', matchers) if m)
    )


def traffic_share(service: str) -> str:
    """Each backend's share of the requests the service's servers answered."""
    answered = f'service="{service}",backend!="lb"'
    return (
        f"{summed('lb_requests_total', answered, by='backend')}"
        f" / scalar({summed('lb_requests_total', answered)})"
    )


class Services(Component):
    kind: ClassVar[str] = "service"
    section: ClassVar[str | None] = "services"
    spec: ClassVar[Any] = dict[str, ServiceSpec]
    names_its: ClassVar[str | None] = "service"
    default: ClassVar[Any] = Field(min_length=1)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.labs: dict[str, Lab] = {}
        self.by_name: dict[str, Group] = {}
        self.lbs: dict[str, Group] = {}  # each service's load balancer, by service

    @classmethod
    def check(cls, topology: Topology) -> list[Problem]:
        problems: list[Problem] = []
        for name, service in specs(topology).items():
            email = service.email
            if email is None:
                continue
            what, value = email.target
            known = {
                "provider": set(providers.specs(topology)),
                "queue": set(queue.specs(topology)),
                "topic": set(topics.specs(topology)),
            }[what]
            if value not in known:
                problems.append((("services", name, "email", what), unknown(what, value, known)))
        return problems

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        servers = {name: Shape.of(cls.kind, WHAT, spec) for name, spec in specs(topology).items()}
        lbs = {lb_group(name): Shape(LB_KIND, LB_WHAT, 1, 1, 1) for name in specs(topology)}
        return servers | lbs

    @classmethod
    def plots(cls, topology: Topology) -> list[PlotQuery]:
        names = list(specs(topology))
        plots = [
            PlotQuery(
                "Requests per second", "req/s", tuple(Line(s, lb_requests(s)) for s in names)
            ),
            PlotQuery(
                "Errors per second (client failures, load balancer 5xx)",
                "req/s",
                tuple(Line(f"{s} 5xx", lb_requests(s, 'code=~"5.."')) for s in names),
            ),
        ]
        for s in names:
            selector = f'service="{s}"'
            plots += [
                PlotQuery(
                    f"{s}: latency at the load balancer",
                    "s",
                    quantile_lines("lb_request_duration_seconds", selector),
                ),
                PlotQuery(
                    f"{s}: instances and targets",
                    "count",
                    (
                        Line("instances up", f'sum(up{{{selector},role="server"}})'),
                        *(
                            Line(
                                f"{state} targets", f'sum(lb_targets{{{selector},state="{state}"}})'
                            )
                            for state in ("healthy", "unhealthy", "draining")
                        ),
                    ),
                ),
                PlotQuery(
                    f"{s}: share of traffic per instance",
                    "fraction",
                    (Line("{backend}", traffic_share(s)),),
                ),
            ]
        return plots

    async def start(self) -> None:
        own = self.lab.own_addresses()
        started = await asyncio.gather(
            *(
                # a service DNS answers server by server: each on its own 127.<10+i>.0.<n>
                self._start(name, spec, f"127.{10 + i}.0." if name in own else None)
                for i, (name, spec) in enumerate(specs(self.lab.topology).items())
            )
        )
        for group, lab in started:  # in the topology's order, whichever booted first
            self.by_name[group.name], self.labs[group.name] = group, lab

    async def _start(
        self, name: str, spec: ServiceSpec, ip_prefix: str | None
    ) -> tuple[Group, Lab]:
        server = ServerSpec.of(name, spec)
        server = dataclasses.replace(server, extra=(*server.extra, *self._email_args(spec)))
        # Its ports fixed for the lab's life: restarted after chaos, it is where clients look.
        fixed = (f"--listen=127.0.0.1:{free_port()}", f"--control-listen=127.0.0.1:{free_port()}")
        lab = await start_lab(
            self.lab.supervisor,
            spec.replicas,
            server,
            (*fixed, *spec.load_balancer.args()),
            lb_name=lb_group(name),
            token=(self.lab.token, self.lab.token_file),
            ip_prefix=ip_prefix,
        )

        async def boot(instance: str, slots: int | None) -> Instance:
            size = lab.default if slots is None else dataclasses.replace(lab.default, slots=slots)
            child = await lab.add_server(size, name=instance)
            return Instance(instance, name, child, size.slots)

        async def publish(instance: Instance, params: Mapping[str, float | str]) -> str:
            """PUT the new content version on the instance's `/admin/content`; servers booted
            from now on start with it too (a deploy, not one server's state)."""
            version = int(params["version"])
            body = {"version": version}
            await admin_call(
                self.lab.token, instance, "PUT", "/admin/content", body, what="the new content"
            )
            kept = tuple(f for f in lab.default.extra if not f.startswith(VERSION_FLAG))
            lab.default = dataclasses.replace(
                lab.default, extra=(*kept, f"{VERSION_FLAG}{version}")
            )
            return f"content version {version} published"

        group = Group(
            name,
            self.kind,
            WHAT,
            spec.min_replicas,
            spec.max_replicas,
            boot,
            set_faults=partial(set_admin_faults, self.lab.token),
            own={"publish": publish},
        )
        for child in lab.servers.values():
            group.instances[child.name] = Instance(child.name, name, child, lab.default.slots)
        self.lbs[name] = self._lb(group, lab)
        return group, lab

    @staticmethod
    def _lb(servers: Group, lab: Lab) -> Group:
        """The service's load balancer as a group of one: started again, it gets the live
        servers registered (they registered once, when they booted)."""
        name = lab.lb.name

        async def boot(instance: str, slots: int | None) -> Instance:
            live = {i.name: i.child for i in servers.live()}
            return Instance(instance, name, await lab.restart_lb(live))

        lb = Group(name, LB_KIND, LB_WHAT, 1, 1, boot)
        lb.instances[name] = Instance(name, name, lab.lb)
        return lb

    def _email_args(self, spec: ServiceSpec) -> tuple[str, ...]:
        """The server flags for the service's receipt email (none without `email`)."""
        email = spec.email
        if email is None:
            return ()
        timeout = f"--email-timeout-s={email.timeout_s}"
        if email.mode == "sync":
            host, port = self.lab.part(providers.Providers).children[email.provider or ""].address()
            return ("--email=sync", f"--email-provider={host}:{port}", timeout)
        if email.mode == "publish":
            host, port = self.lab.part(topics.Topics).address or ("", 0)
            arn = topics.topic_arn(email.topic or "")
            return (
                "--email=publish",
                f"--email-topic={host}:{port}",
                f"--email-topic-arn={arn}",
                timeout,
            )
        host, port = self.lab.part(queue.Queues).address or ("", 0)
        return (
            "--email=async",
            f"--email-queue={host}:{port}",
            f"--email-queue-name={email.queue}",
            timeout,
        )

    async def wait_ready(self, deadline: float) -> None:
        """Until every load balancer sees all of its replicas healthy."""
        for name, group in self.by_name.items():
            want = len(group.live())
            while True:
                view = await self.labs[name].targets()
                if view["counts"]["healthy"] >= want:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{name}: {view['counts']['healthy']} of {want} targets healthy"
                    )
                await asyncio.sleep(0.1)

    def groups(self) -> list[Group]:
        return [*self.by_name.values(), *self.lbs.values()]

    def processes(self) -> list[Process]:
        return [Process(name, lab.lb, "control") for name, lab in self.labs.items()]

    def scrape_targets(self) -> Iterable[ScrapeTarget]:
        """The servers, and each load balancer on its control listener (as a process: its
        group's main address is the data plane, which would forward /metrics to a server)."""
        yield from self.group_targets(self.by_name.values())
        yield from self.process_targets()

    def entry_urls(self) -> dict[str, str]:
        """Each service's entry point (its load balancer), by service."""
        return {name: "http://{}:{}".format(*lab.address) for name, lab in self.labs.items()}

    def urls(self) -> dict[str, str]:
        return {f"{name} (load balancer)": url for name, url in self.entry_urls().items()}

    def diagram(self) -> Diagram:
        """A box per service (its load balancer and servers, each server's request rate),
        and the arrow of its receipt emails: to a provider, a queue or a topic."""
        made = Diagram()
        for name, spec in specs(self.lab.topology).items():
            service = f'service="{name}"'
            made.boxes.append(
                Box(
                    service_box(name),
                    name,
                    self.kind,
                    SERVICES,
                    "load balancer + servers",
                    name,
                    gauges=(Gauge("routable", f"max(lb_routable_targets{{{service}}})"),),
                    per_instance=rate_of("server_requests_total", 'instance="$instance"'),
                    process=lb_group(name),
                    process_group=lb_group(name),
                    process_kind=LB_KIND,
                )
            )
            if spec.email is not None:
                target, to = spec.email.target
                emails = rate_of("server_emails_total", service)
                failed = rate_of("server_emails_total", both(service, 'outcome="failed"'))
                made.arrows.append(
                    Arrow(
                        service_box(name),
                        f"{target}:{to}",
                        emails,
                        failed,
                        "msg/s",
                        spec.email.mode,
                    )
                )
        return made

    async def status(self) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for name, group in self.by_name.items():
            lab = self.labs[name]
            try:
                view = await lab.targets()
            except UpstreamError:
                view = {"targets": [], "routable": 0}
            targets = {t["id"]: t for t in view["targets"]}
            services[name] = {
                "lb": {
                    "name": lab.lb.name,
                    "role": lab.lb.role,
                    "pid": lab.lb.pid,
                    "address": lab.lb.ready.get("address"),
                    "control": lab.lb.ready.get("control"),
                    "state": self.lbs[name].instances[lab.lb.name].shown_state,
                    "routable": view.get("routable", 0),
                },
                "instances": [
                    {
                        **row,
                        "target": targets.get(row["name"], {}).get("state", "unregistered"),
                        "in_flight": targets.get(row["name"], {}).get("in_flight", 0),
                        "slots": group.instances[row["name"]].slots,
                    }
                    for row in group.status_rows()
                ],
                "replicas": {"min": group.min_replicas, "max": group.max_replicas},
            }
        return {"services": services} if services else {}
