"""The running lab: every service of a topology as processes, and what chaos may do to them.

`LabRuntime` starts one load balancer per service and its replicas (through `harness/lab.py`),
keeps the state of every instance it started, and applies the actions of `chaos/actions.py`.
It is the one object the control API, the CLI and the scenario runner share; Prometheus and
Locust hang off it when they run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.dns import fqdn, zone_file
from harness.lab import Lab, ServerSpec, start_lab, write_token
from harness.prometheus import LAB_RULES, Prometheus, ScrapeTarget
from harness.supervisor import Child, Supervisor, free_port
from harness.topology import (
    QUEUE_GROUP,
    DnsSpec,
    GatewaySpec,
    QueueSpec,
    ServiceSpec,
    Topology,
    WorkerSpec,
)
from targets.http.client import fetch_json
from targets.http.upstream import UpstreamError


class ChaosRefused(Exception):
    """An action that cannot be done: `status` 404 (unknown name) or 409 (not possible now)."""

    def __init__(self, status: int, message: str, choices: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.choices = choices or []


@dataclass(slots=True)
class Instance:
    """A server the lab started, and what the lab did to it."""

    name: str
    service: str
    child: Child
    slots: int  # its capacity: changes only across a stop and a start (resize)
    state: str = "running"  # running | paused | stopped | killed

    @property
    def alive(self) -> bool:
        return self.child.alive and self.state in ("running", "paused")

    @property
    def shown_state(self) -> str:
        """The state for status: `exited` when it died with nobody's chaos to blame."""
        return self.state if self.child.alive or self.state != "running" else "exited"


@dataclass(slots=True)
class Service:
    name: str
    spec: ServiceSpec
    pool: Lab
    instances: dict[str, Instance] = field(default_factory=dict)

    def live(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.alive]

    @property
    def min_replicas(self) -> int:
        return self.spec.min_replicas

    @property
    def max_replicas(self) -> int:
        return self.spec.max_replicas


@dataclass(slots=True)
class Pool:
    """Instances with no load balancer in front: a worker pool, or the queue service (one
    instance, `queue-1`). `boot(name)` starts instance `name`: a new one, or one chaos
    restarts under its old name (the queue on its old port and database)."""

    name: str
    role: str  # worker | queue: the scrape label, and what chaos names in refusals
    min_replicas: int
    max_replicas: int
    boot: Callable[[str], Awaitable[Child]]
    instances: dict[str, Instance] = field(default_factory=dict)

    def live(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.alive]

    def next_name(self) -> str:
        return f"{self.name}-{max(map(_number, self.instances), default=0) + 1}"


Group = Service | Pool


@dataclass(frozen=True, slots=True)
class Event:
    """One chaos action as it happened."""

    at: float  # epoch seconds when the action began
    action: str
    service: str
    instances: tuple[str, ...]
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "action": self.action,
            "service": self.service,
            "instances": list(self.instances),
            "detail": self.detail,
        }


class LabRuntime:
    def __init__(self, topology: Topology, supervisor: Supervisor, seed: int = 0) -> None:
        self.topology = topology
        self.supervisor = supervisor
        self.rng = random.Random(seed)
        self.services: dict[str, Service] = {}
        self.token, self.token_file = write_token(supervisor.run_dir)
        self.started_at = 0.0
        # Scrape targets beyond the services' own (the harness, Locust), and who to tell
        # when the set changes (Prometheus's file_sd).
        self.extra_targets: list[ScrapeTarget] = []
        self.listeners: list[Callable[[], None]] = []
        self.autoscalers: dict[str, Child] = {}  # by service
        self.dns: Child | None = None  # the DNS server, when the topology has `dns`
        self.gateway: Child | None = None  # the API gateway, when the topology has one
        self.pools: dict[str, Pool] = {}  # worker pools and the queue service, by name
        self.providers: dict[str, Child] = {}  # delivery providers, by name

    @property
    def run_dir(self) -> Path:
        return self.supervisor.run_dir

    async def start(self) -> None:
        """Every service's load balancer and replicas, started side by side."""
        self.started_at = time.time()
        topology = self.topology
        if topology.queues:
            await self._start_queue()
        for name, provider in topology.providers.items():
            self.providers[name] = await self.supervisor.spawn(
                name, "provider", "targets.workers.provider", [f"--name={name}", *provider.args()]
            )
        direct = self.topology.direct_services()
        pools = await asyncio.gather(
            *(
                # a service DNS answers server by server: each on its own 127.<10+i>.0.<n>
                self._start_service(name, spec, f"127.{10 + i}.0." if name in direct else None)
                for i, (name, spec) in enumerate(self.topology.services.items())
            )
        )
        for service in pools:
            self.services[service.name] = service
        if self.topology.gateway is not None:
            await self._start_gateway(self.topology.gateway)
        if self.topology.dns is not None:
            await self._start_dns(self.topology.dns)
        for name, workers in topology.workers.items():
            await self._start_workers(name, workers)

    async def _start_queue(self) -> None:
        """The queue service: one process for every queue, one SQLite file, its queues (and
        each `<queue>-dlq`) created from `queues.json` as it starts, restarts included."""
        port = free_port()  # fixed: a restarted queue comes back where its clients look
        db = self.run_dir / "queue.db"
        queues = self.run_dir / "queues.json"
        queues.write_text(json.dumps(self.topology.queues_file(), indent=2))

        async def boot(name: str) -> Child:
            args = [f"--db={db}", f"--port={port}", f"--name={name}", f"--queues-file={queues}"]
            return await self.supervisor.spawn(name, "queue", "targets.queue", args)

        pool = Pool(QUEUE_GROUP, "queue", 1, 1, boot)
        await self._boot(pool, f"{QUEUE_GROUP}-1")
        self.pools[QUEUE_GROUP] = pool

    @property
    def queue_address(self) -> tuple[str, int] | None:
        """HOST:PORT of the queue service, when the topology has queues (even while down)."""
        pool = self.pools.get(QUEUE_GROUP)
        if pool is None or not pool.instances:
            return None
        return next(iter(pool.instances.values())).child.address()

    async def _start_workers(self, name: str, spec: WorkerSpec) -> None:
        queue_host, queue_port = self.queue_address or ("", 0)
        provider = "http://{}:{}".format(*self.providers[spec.provider].address())
        queue = self.topology.queues.get(spec.queue)  # None: a dead-letter queue (default 30 s)
        visibility = queue.visibility_timeout_s if queue else QueueSpec().visibility_timeout_s

        async def boot(instance: str) -> Child:
            args = [
                f"--name={instance}",
                f"--queue-url=http://{queue_host}:{queue_port}",
                f"--provider={provider}",
                *spec.args(visibility),
            ]
            return await self.supervisor.spawn(instance, "worker", "targets.workers", args)

        pool = Pool(name, "worker", spec.min_replicas, spec.max_replicas, boot)
        self.pools[name] = pool
        names = [f"{name}-{n}" for n in range(1, spec.replicas + 1)]
        await asyncio.gather(*(self._boot(pool, instance) for instance in names))

    async def _boot(self, pool: Pool, name: str) -> Instance:
        instance = Instance(name, pool.name, await pool.boot(name), 0)
        pool.instances[name] = instance
        return instance

    def _email_args(self, spec: ServiceSpec) -> tuple[str, ...]:
        """The server flags for the service's receipt email (none without `email`)."""
        email = spec.email
        if email is None:
            return ()
        timeout = f"--email-timeout-s={email.timeout_s}"
        if email.mode == "sync":
            host, port = self.providers[email.provider or ""].address()
            return ("--email=sync", f"--email-provider={host}:{port}", timeout)
        host, port = self.queue_address or ("", 0)
        queue = f"--email-queue-name={email.queue}"
        return ("--email=async", f"--email-queue={host}:{port}", queue, timeout)

    async def _start_service(
        self, name: str, spec: ServiceSpec, ip_prefix: str | None = None
    ) -> Service:
        server = ServerSpec.of(name, spec)
        server = dataclasses.replace(server, extra=(*server.extra, *self._email_args(spec)))
        pool = await start_lab(
            self.supervisor,
            spec.replicas,
            server,
            tuple(spec.load_balancer.args()),
            lb_name=f"{name}-lb",
            token=(self.token, self.token_file),
            ip_prefix=ip_prefix,
        )
        service = Service(name, spec, pool)
        for child in pool.servers.values():
            service.instances[child.name] = Instance(child.name, name, child, pool.default.slots)
        return service

    async def _start_gateway(self, spec: GatewaySpec) -> None:
        """The API gateway, each route aimed at its service's load balancer."""
        upstreams = {name: service.pool.address for name, service in self.services.items()}
        path = self.run_dir / "gateway.json"
        path.write_text(json.dumps(spec.config(upstreams), indent=2))
        self.gateway = await self.supervisor.spawn(
            "gateway",
            "gateway",
            "targets.gateway",
            [f"--config={path}", f"--control-token-file={self.token_file}"],
        )

    @property
    def gateway_url(self) -> str | None:
        """The API gateway's base URL, when one runs."""
        if self.gateway is None:
            return None
        return "http://{}:{}".format(*self.gateway.address())

    async def _start_dns(self, dns: DnsSpec) -> None:
        """The DNS server, its zone written from where the services run now."""
        servers = {
            name: [
                (i.name, i.child.address())
                for i in sorted(service.instances.values(), key=lambda i: _number(i.name))
            ]
            for name, service in self.services.items()
        }
        lbs = {name: service.pool.address for name, service in self.services.items()}
        gateway = self.gateway.address() if self.gateway is not None else None
        path = self.run_dir / "dns-zone.json"
        path.write_text(json.dumps(zone_file(dns, lbs, servers, gateway), indent=2))
        self.dns = await self.supervisor.spawn(
            "dns",
            "dns",
            "targets.dns",
            [f"--zone-file={path}", f"--control-token-file={self.token_file}", "--name=dns"],
        )

    def dns_urls(self) -> dict[str, str]:
        """Each service a DNS record names, by that name (`http://shop.lab:PORT`): clients
        resolve it through the lab's DNS server (`dns_address`)."""
        dns = self.topology.dns
        if dns is None:
            return {}
        urls: dict[str, str] = {}
        for record in dns.records:
            if record.service is None:  # via gateway
                if self.gateway is not None:
                    urls["gateway"] = f"http://{fqdn(dns, record)}:{self.gateway.address()[1]}"
                continue
            pool = self.services[record.service].pool
            port = pool.address[1] if record.via == "load_balancer" else pool.port
            urls[record.service] = f"http://{fqdn(dns, record)}:{port}"
        return urls

    @property
    def dns_address(self) -> str | None:
        """HOST:PORT (UDP) of the lab's DNS server, when it runs."""
        return None if self.dns is None else str(self.dns.ready["address"])

    async def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Until every load balancer sees all of its replicas healthy."""
        deadline = time.monotonic() + timeout_s
        for service in self.services.values():
            want = len(service.live())
            while True:
                view = await service.pool.targets()
                if view["counts"]["healthy"] >= want:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{service.name}: {view['counts']['healthy']} of {want} targets healthy"
                        f" after {timeout_s:g} s"
                    )
                await asyncio.sleep(0.1)

    async def start_autoscalers(self, control: tuple[str, int]) -> None:
        """An autoscaler process for each service with `autoscaling`, acting through `control`
        (the harness control API, which must be serving)."""
        for name, service in self.services.items():
            policy = service.spec.autoscaler_policy()
            if policy is None or service.spec.autoscaling is None:
                continue
            lb_host, lb_port = service.pool.control
            self.autoscalers[name] = await self.supervisor.spawn(
                f"autoscaler-{name}",
                "autoscaler",
                "targets.autoscaler",
                [
                    f"--service={name}",
                    f"--lb-control={lb_host}:{lb_port}",
                    f"--lab-control={control[0]}:{control[1]}",
                    f"--token-file={self.token_file}",
                    f"--metric={service.spec.autoscaling.metric}",
                    f"--policy={json.dumps(dataclasses.asdict(policy))}",
                ],
            )
        if self.autoscalers:
            self.notify()

    def scrape_targets(self) -> list[ScrapeTarget]:
        """Every /metrics endpoint of the lab, labelled with service, role and instance."""
        targets = list(self.extra_targets)
        for service in self.services.values():
            lb = service.pool.lb
            if lb.alive:
                targets.append(
                    ScrapeTarget(
                        str(lb.ready["control"]),
                        {"service": service.name, "role": "lb", "instance": lb.name},
                    )
                )
            for instance in service.instances.values():
                if instance.alive:
                    targets.append(
                        ScrapeTarget(
                            str(instance.child.ready["address"]),
                            {"service": service.name, "role": "server", "instance": instance.name},
                        )
                    )
            scaler = self.autoscalers.get(service.name)
            if scaler is not None and scaler.alive:
                targets.append(
                    ScrapeTarget(
                        str(scaler.ready["address"]),
                        {"service": service.name, "role": "autoscaler", "instance": scaler.name},
                    )
                )
        if self.gateway is not None and self.gateway.alive:
            labels = {"service": "gateway", "role": "gateway", "instance": self.gateway.name}
            targets.append(ScrapeTarget(str(self.gateway.ready["control"]), labels))
        if self.dns is not None and self.dns.alive:
            labels = {"service": "dns", "role": "dns", "instance": self.dns.name}
            targets.append(ScrapeTarget(str(self.dns.ready["control"]), labels))
        for pool in self.pools.values():
            for instance in pool.live():
                labels = {"service": pool.name, "role": pool.role, "instance": instance.name}
                targets.append(ScrapeTarget(str(instance.child.ready["address"]), labels))
        for name, child in self.providers.items():
            if child.alive:
                labels = {"service": name, "role": "provider", "instance": child.name}
                targets.append(ScrapeTarget(str(child.ready["address"]), labels))
        return targets

    def service_urls(self) -> dict[str, str]:
        """Each service's entry point (its load balancer), as Locust is told."""
        return {
            name: "http://{}:{}".format(*service.pool.address)
            for name, service in self.services.items()
        }

    def entry_points(
        self, *, side_by_side: bool = False, via_dns: bool = False
    ) -> tuple[dict[str, str], str | None]:
        """Where load generators send requests: (name -> base URL, Locust's --host).

        Users that compare side by side get one entry each: every gateway route that strips
        its prefix (routes compared, e.g. one per rate-limit algorithm), else every service.
        The others go through the API gateway when one runs (relative paths on `--host`), else
        straight to each load balancer. With `via_dns`, by DNS name where a record gives one.
        """
        urls = self.service_urls()
        if via_dns:
            urls |= self.dns_urls()
        gateway = urls.pop("gateway", None) or self.gateway_url
        if gateway is None:
            return urls, None
        if not side_by_side:
            return {}, gateway
        spec = self.topology.gateway
        routes = [r for r in spec.routes if r.strip_prefix] if spec else []
        return ({r.name: gateway + r.path for r in routes} if routes else urls), None

    def scrape(self, address: str, **labels: str) -> None:
        """One more /metrics endpoint beyond the services' own (the harness, Locust)."""
        self.extra_targets.append(ScrapeTarget(address, labels))

    async def start_prometheus(self) -> Prometheus:
        """Prometheus scraping every process of the lab, its targets kept in step with chaos."""
        prometheus = Prometheus(self.run_dir, free_port())
        prometheus.write_config([LAB_RULES])
        prometheus.set_targets(self.scrape_targets())
        self.listeners.append(lambda: prometheus.set_targets(self.scrape_targets()))
        await prometheus.start(self.supervisor)
        return prometheus

    def notify(self) -> None:
        """The set of processes changed (chaos): tell whoever listens."""
        for listener in self.listeners:
            listener()

    # -- lookups used by the chaos actions ----------------------------------------------------
    def group(self, name: str) -> Group:
        """The service, worker pool or queue service chaos names."""
        group = self.services.get(name) or self.pools.get(name)
        if group is None:
            choices = sorted([*self.services, *self.pools])
            raise ChaosRefused(404, f"unknown service {name!r}", choices)
        return group

    def groups(self) -> list[Group]:
        return [*self.services.values(), *self.pools.values()]

    def pick(
        self,
        service: Group,
        instance: str | None,
        count: int,
        states: tuple[str, ...],
        *,
        every: bool = False,
    ) -> list[Instance]:
        """The named instance, or `count` random ones (seeded) among those in `states`, or
        with `every` all of those (at least one)."""
        if instance is not None:
            found = service.instances.get(instance)
            if found is None:
                raise ChaosRefused(
                    404,
                    f"unknown instance {instance!r} of {service.name}",
                    sorted(service.instances),
                )
            if found.state not in states:
                raise ChaosRefused(409, f"{instance} is {found.state}, not {' or '.join(states)}")
            return [found]
        candidates = sorted(
            (i for i in service.instances.values() if i.state in states), key=lambda i: i.name
        )
        if every and candidates:
            return candidates
        if len(candidates) < count:
            raise ChaosRefused(
                409,
                f"{service.name} has {len(candidates)} instance(s) {'/'.join(states)},"
                f" {count} asked",
                [i.name for i in candidates],
            )
        return self.rng.sample(candidates, count)

    async def add(self, group: Group) -> Instance:
        if isinstance(group, Pool):
            return await self._boot(group, group.next_name())
        child = await group.pool.add_server()
        instance = Instance(child.name, group.name, child, group.pool.default.slots)
        group.instances[child.name] = instance
        return instance

    async def boot_again(self, group: Group, instance: Instance) -> None:
        """Start `instance` anew under its name (after a stop or a kill)."""
        if isinstance(group, Pool):
            instance.child = await group.boot(instance.name)
        else:
            instance.child = await group.pool.add_server(name=instance.name)
        instance.state = "running"

    async def set_faults(self, instance: Instance, faults: dict[str, Any]) -> None:
        host, port = instance.child.address()
        auth = [(b"authorization", f"Bearer {self.token}".encode())]
        method = "PUT" if faults else "DELETE"
        try:
            reply = await fetch_json(
                host, port, method, "/admin/faults", faults or None, headers=auth
            )
        except UpstreamError as exc:
            raise ChaosRefused(409, f"{instance.name} did not answer: {exc}") from None
        if reply.status != 200:
            raise ChaosRefused(409, f"{instance.name} refused the faults: {reply.body[:200]!r}")

    # -- status -------------------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        """Every process the lab started, with the load balancer's view of each server."""
        services: dict[str, Any] = {}
        for service in self.services.values():
            try:
                view = await service.pool.targets()
            except UpstreamError:
                view = {"targets": [], "routable": 0}
            targets = {t["id"]: t for t in view["targets"]}
            lb = service.pool.lb
            services[service.name] = {
                "lb": {
                    "name": lb.name,
                    "pid": lb.pid,
                    "address": lb.ready.get("address"),
                    "control": lb.ready.get("control"),
                    "state": "running" if lb.alive else "exited",
                    "routable": view.get("routable", 0),
                },
                "instances": [
                    {
                        "name": i.name,
                        "role": "server",
                        "pid": i.child.pid,
                        "address": i.child.ready.get("address"),
                        "state": i.shown_state,
                        "target": targets.get(i.name, {}).get("state", "unregistered"),
                        "in_flight": targets.get(i.name, {}).get("in_flight", 0),
                        "slots": i.slots,
                    }
                    for i in sorted(service.instances.values(), key=lambda i: i.name)
                ],
                "replicas": {"min": service.spec.min_replicas, "max": service.spec.max_replicas},
                "autoscaler": _process(self.autoscalers.get(service.name)),
            }
        pools = {
            pool.name: {
                "role": pool.role,
                "instances": [
                    {
                        "name": i.name,
                        "role": pool.role,
                        "pid": i.child.pid,
                        "address": i.child.ready.get("address"),
                        "state": i.shown_state,
                    }
                    for i in sorted(pool.instances.values(), key=lambda i: _number(i.name))
                ],
                "replicas": {"min": pool.min_replicas, "max": pool.max_replicas},
            }
            for pool in self.pools.values()
        }
        providers = {name: _process(child) for name, child in self.providers.items()}
        shown = {
            *(service.pool.lb.pid for service in self.services.values()),
            *(i.child.pid for group in self.groups() for i in group.instances.values()),
            *(child.pid for child in self.autoscalers.values()),
            *(child.pid for child in self.providers.values()),
        }
        others = [  # the gateway, DNS, Prometheus, Locust: every other process the lab started
            {**_described(child), "role": child.role}
            for child in self.supervisor.children.values()
            if child.pid not in shown
        ]
        return {
            "started_at": self.started_at,
            "services": services,
            "pools": pools,
            "providers": providers,
            "processes": others,
        }


def _number(name: str) -> int:
    """n of `<service>-<n>`: instances in the order they were started."""
    number = name.rpartition("-")[2]
    return int(number) if number.isdigit() else 0


def _process(child: Child | None) -> dict[str, Any] | None:
    return None if child is None else _described(child)


def _described(child: Child) -> dict[str, Any]:
    return {
        "name": child.name,
        "pid": child.pid,
        "address": child.ready.get("address"),
        "state": "running" if child.alive else "exited",
    }
