"""CDN edges (targets/cdn): caches in front of the shop. Topology: `edges: {name: EdgeSpec}`.

"If present in the edge's cache it answers, otherwise it goes to the load balancer, takes the
data and saves it in the cache": each edge is a group chaos names by the edge's name, one
instance `<name>-1` on a port fixed for the lab's life (a restarted edge comes back where its
clients look, with an empty cache: an edge's cache is memory). Its origin is the API gateway
or one service's load balancer, or another edge: its origin shield (CloudFront's Origin Shield,
off unless named: a regional cache in front of the origin, so the origin sees one fetch per
object for all the edges behind it, not one per edge; one tier, a shield's own origin is the
gateway or a service; it serves edges only, so DNS answers and users leave it out).
Chaos: kill, stop, pause, resume, restart as any process, `invalidate` (every cached object,
`/*`, as CloudFront's invalidation of that path), and `latency` (with `region`: on the link
between that region's clients and the edge; `clear` removes it).
Prometheus scrapes `/_edge/metrics` as `service=<name>`, `role=edge`, `instance=<name>-1`.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field, model_validator

from harness.components import cdn_queries, gateway, regions, services
from harness.components.base import (
    Component,
    Group,
    Instance,
    Problem,
    Shape,
    Strict,
    admin_call,
    pool_status,
    set_admin_faults,
    unknown,
)
from harness.diagram import EDGES, Arrow, Box, Diagram, Gauge, both, rate_of
from harness.promql import Line, PlotQuery
from harness.supervisor import free_port

if TYPE_CHECKING:
    from harness.topology import Topology

WHAT = "a CDN edge"
GATEWAY = "gateway"
METRICS_PATH = "/_edge/metrics"
FAULTS_PATH = "/_edge/faults"


class EdgeSpec(Strict):
    """One edge: its origin and its cache settings (CloudFront's names, lab-sized)."""

    origin: str = GATEWAY  # "gateway", a service (its load balancer), or an edge: its shield
    max_mb: float = Field(default=64, gt=0, le=4096)
    min_ttl_s: float = Field(default=0, ge=0)
    default_ttl_s: float = Field(default=86_400, ge=0)
    max_ttl_s: float = Field(default=31_536_000, ge=0)
    origin_timeout_s: float = Field(default=10, gt=0, le=180)
    cache_query: Literal["none", "all", "allow-list"] = "none"
    query_names: list[str] = Field(default_factory=list)
    region: str | None = None  # where it is (the topology's regions: components/regions.py)

    @model_validator(mode="after")
    def _ttls_in_order(self) -> EdgeSpec:
        if not self.min_ttl_s <= self.default_ttl_s <= self.max_ttl_s:
            raise ValueError(
                f"min_ttl_s ({self.min_ttl_s:g}) <= default_ttl_s ({self.default_ttl_s:g})"
                f" <= max_ttl_s ({self.max_ttl_s:g}) must hold"
            )
        if (self.cache_query == "allow-list") != bool(self.query_names):
            raise ValueError("query_names go with cache_query allow-list, and only with it")
        return self

    def args(self) -> list[str]:
        return [
            f"--max-bytes={int(self.max_mb * 1024 * 1024)}",
            f"--min-ttl={self.min_ttl_s:g}",
            f"--default-ttl={self.default_ttl_s:g}",
            f"--max-ttl={self.max_ttl_s:g}",
            f"--origin-timeout={self.origin_timeout_s:g}",
            f"--cache-query={self.cache_query}",
            *([f"--query-names={','.join(self.query_names)}"] if self.query_names else []),
        ]


def box(name: str) -> str:
    """The map's id of edge `name`'s box."""
    return f"edge:{name}"


def specs(topology: Topology) -> dict[str, EdgeSpec]:
    return cast(dict[str, EdgeSpec], topology.spec(Edges))


def shields(topology: Topology) -> set[str]:
    """The edges that are other edges' origin (origin shields): they serve edges, not viewers,
    so DNS answers and users leave them out."""
    edges = specs(topology)
    return {spec.origin for spec in edges.values() if spec.origin in edges}


# -- report plots (PromQL: harness/components/cdn_queries.py, shared with the CDN dashboard) --
def _plots() -> list[PlotQuery]:
    return [
        PlotQuery(
            "Edge requests per second by result",
            "req/s",
            (Line("{service} {result}", cdn_queries.requests_per_s()),),
        ),
        PlotQuery("Edge hit ratio", "ratio", (Line("{service}", cdn_queries.hit_ratio()),)),
        PlotQuery(
            "Origin fetches per second (edges)",
            "req/s",
            (Line("{service}", cdn_queries.origin_fetches_per_s()),),
        ),
        PlotQuery(
            "Edge latency p95 by result",
            "s",
            (Line("{service} {result}", cdn_queries.latency(0.95)),),
        ),
    ]


class Edges(Component):
    kind: ClassVar[str] = "edge"
    section: ClassVar[str | None] = "edges"
    spec: ClassVar[Any] = dict[str, EdgeSpec]
    names_its: ClassVar[str | None] = "edge"
    default: ClassVar[Any] = {}
    metrics_path: ClassVar[str] = METRICS_PATH

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.by_name: dict[str, Group] = {}
        self.hosts: dict[str, str] = {}
        self.shields: set[str] = set()
        self.port = 0

    @classmethod
    def check(cls, topology: Topology) -> list[Problem]:
        known = services.specs(topology)
        edges = specs(topology)
        problems: list[Problem] = []
        for name, spec in edges.items():
            problems += regions.check_region(topology, ("edges", name, "region"), spec.region)
            where = ("edges", name, "origin")
            if spec.origin in edges:  # its origin shield
                if spec.origin == name:
                    problems.append((where, "an edge cannot be its own origin"))
                elif edges[spec.origin].origin in edges:
                    problems.append(
                        (
                            where,
                            f"{spec.origin} is an edge whose origin is an edge: one shield tier"
                            " only (a shield's origin is the gateway or a service)",
                        )
                    )
            elif spec.origin == GATEWAY:
                if gateway.spec_of(topology) is None:
                    problems.append((where, "origin gateway, but the topology has no gateway"))
            elif spec.origin not in known:
                choices = [GATEWAY, *known, *edges]
                problems.append((where, unknown("origin", spec.origin, choices)))
        return problems

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        return {name: Shape(cls.kind, WHAT, 1, 1, 1) for name in specs(topology)}

    @classmethod
    def plots(cls, topology: Topology) -> list[PlotQuery]:
        return _plots() if specs(topology) else []

    async def start(self) -> None:
        edges = specs(self.lab.topology)
        self.port = common_port(len(edges))
        # fixed: a restarted edge comes back where its clients (and DNS answers) point
        self.hosts = {name: edge_host(i) for i, name in enumerate(edges)}
        self.shields = shields(self.lab.topology)
        for name, spec in sorted(edges.items(), key=lambda item: item[0] not in self.shields):
            group = self.by_name[name] = self._group(name, spec)
            await group.launch(f"{name}-1")

    def _origin(self, spec: EdgeSpec) -> tuple[str, int]:
        if spec.origin in self.hosts:  # its origin shield
            return self.hosts[spec.origin], self.port
        if spec.origin == GATEWAY:
            child = self.lab.part(gateway.Gateway).child
            assert child is not None  # checked: the topology has a gateway
            return child.address()
        return self.lab.part(services.Services).labs[spec.origin].address

    def _group(self, name: str, spec: EdgeSpec) -> Group:
        host = self.hosts[name]
        supervisor = self.lab.supervisor
        fixed = [
            f"--listen={host}:{self.port}",
            "--origin={}:{}".format(*self._origin(spec)),
            f"--token-file={self.lab.token_file}",
            *spec.args(),
            *self.lab.part(regions.RegionsPart).args(spec.region),
        ]

        async def boot(instance: str, slots: int | None) -> Instance:
            child = await supervisor.spawn(
                instance, "edge", "targets.cdn", [f"--name={instance}", *fixed]
            )
            return Instance(instance, name, child)

        invalidate = partial(invalidate_all, self.lab.token)
        faults = partial(set_admin_faults, self.lab.token, path=FAULTS_PATH)
        return Group(
            name, self.kind, WHAT, 1, 1, boot, set_faults=faults, own={"invalidate": invalidate}
        )

    def url(self, name: str) -> str:
        """Where edge `name` serves viewers (fixed for the lab's life)."""
        return f"http://{self.hosts[name]}:{self.port}"

    def addresses(self) -> dict[str, tuple[str, int]]:
        """Each viewer edge's address, by edge name (what a DNS record of the edges answers;
        no shield)."""
        return {n: (host, self.port) for n, host in self.hosts.items() if n not in self.shields}

    def region(self, name: str) -> str | None:
        return specs(self.lab.topology)[name].region

    def entry_urls(self) -> dict[str, str]:
        """Each viewer edge's base URL, by edge name: where clients of the CDN go."""
        return {name: self.url(name) for name in self.by_name if name not in self.shields}

    def groups(self) -> list[Group]:
        return list(self.by_name.values())

    def diagram(self) -> Diagram:
        """A box per edge (its hit ratio), an arrow to its origin: the gateway, a service's
        load balancer, or its shield (origin fetches, failed ones as errors)."""
        made = Diagram()
        for name, spec in specs(self.lab.topology).items():
            edge = f'service="{name}"'
            made.boxes.append(
                Box(
                    box(name),
                    name,
                    self.kind,
                    EDGES,
                    "origin shield" if name in self.shields else "CDN edge",
                    name,
                    gauges=(Gauge("hit ratio", cdn_queries.hit_ratio(edge, by=""), "%"),),
                )
            )
            if spec.origin in self.hosts:
                origin = box(spec.origin)
            elif spec.origin == GATEWAY:
                origin = gateway.BOX
            else:
                origin = services.service_box(spec.origin)
            made.arrows.append(
                Arrow(
                    box(name),
                    origin,
                    rate_of("cdn_origin_fetches_total", edge),
                    rate_of("cdn_origin_fetches_total", both(edge, cdn_queries.ORIGIN_FAILED)),
                    label="misses",
                )
            )
        return made

    async def status(self) -> dict[str, Any]:
        if not self.by_name:
            return {}
        return {"edges": {name: pool_status(g) for name, g in self.by_name.items()}}

    def urls(self) -> dict[str, str]:
        urls = {f"edge {name}": url for name, url in self.entry_urls().items()}
        return urls | {f"origin shield {name}": self.url(name) for name in self.shields}


def edge_host(index: int) -> str:
    """The loopback address of the `index`-th edge: each its own, one port for all, so a DNS
    answer (an address) picks the edge."""
    return f"127.200.0.{index + 1}"


def common_port(edges: int) -> int:
    """A port free on every edge's address."""
    for _ in range(50):
        port = free_port(edge_host(0))
        if all(_free(edge_host(i), port) for i in range(1, edges)):
            return port
    raise RuntimeError("no port free on every edge address")


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def invalidate_all(token: str, instance: Instance, _: Mapping[str, float | str]) -> str:
    """Invalidate `/*` on one edge (chaos `invalidate`): every object it holds goes at once;
    the answer says how many."""
    body = {"paths": ["/*"]}
    made = await admin_call(
        token, instance, "POST", "/_edge/invalidations", body, what="the invalidation"
    )
    return f"/* invalidated: {made.get('removed', '?')} object(s) removed"
