"""The lab's authoritative DNS server (targets/dns) and the names it serves.

Topology: `dns: DnsSpec`. A record points at a service's load balancer, at the gateway, or at
a service's servers one by one (`via: servers`: those servers then each listen on a loopback
address of their own). `zone_file` (pure) writes the zone from where the lab put each process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field, model_validator

from harness.components import edges, gateway, regions, services
from harness.components.base import Problem, Shape, Singleton, Strict, unknown
from harness.diagram import NAMES, Box, Diagram, Gauge, rate_of

if TYPE_CHECKING:
    from harness.topology import Topology

NAME = "dns"
Address = tuple[str, int]


class DnsHealthSpec(Strict):
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


class DnsRecordSpec(Strict):
    """A name of the lab's zone pointing at a service.

    `via: load_balancer` answers the service's load balancer (one address: `simple`); `via:
    gateway` the API gateway (no `service`). `via: servers` answers its servers directly,
    each on its own loopback address: `simple` lists them all (DNS round robin, no health
    checks), `weighted` answers one healthy server per query (equal weights), `failover`
    answers the first server while its health check passes, else the second.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")  # relative to the zone
    service: str | None = None  # required, except via gateway or edges
    via: Literal["load_balancer", "servers", "gateway", "edges"] = "load_balancer"
    policy: Literal["simple", "weighted", "failover", "latency"] = "simple"
    ttl_s: int = Field(default=60, ge=0, le=86_400)
    health: DnsHealthSpec = DnsHealthSpec()
    health_checks: bool = True  # routed records: withdraw what fails its checks

    @model_validator(mode="after")
    def _one_address_behind_a_load_balancer(self) -> DnsRecordSpec:
        if self.via in ("load_balancer", "gateway") and self.policy != "simple":
            raise ValueError(f"via {self.via} is one address: it takes policy simple")
        if (self.via == "edges") != (self.policy == "latency"):
            raise ValueError("via edges takes policy latency (the nearest edge), and only it")
        if (self.service is None) != (self.via in ("gateway", "edges")):
            raise ValueError(
                "give the service, except for a record via gateway or edges (which have none)"
            )
        return self


class DnsSpec(Strict):
    """The lab's authoritative DNS server (targets/dns) and the names it serves."""

    zone: str = Field(default="lab", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    records: list[DnsRecordSpec] = Field(min_length=1)


def spec_of(topology: Topology) -> DnsSpec | None:
    return cast(DnsSpec | None, topology.spec(Dns))


def fqdn(dns: DnsSpec, record: DnsRecordSpec) -> str:
    """The record's name in the zone, without the final dot (as a URL host)."""
    return f"{record.name}.{dns.zone}"


def zone_file(
    dns: DnsSpec,
    load_balancers: Mapping[str, Address],
    servers: Mapping[str, Sequence[tuple[str, Address]]],
    gateway: Address | None = None,
    *,
    edges: Mapping[str, tuple[Address, str | None]] | None = None,
    network: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The zone as JSON: `servers[service]` lists (instance name, address) in instance order,
    `edges[name]` each edge's address and region, `network` the regions' JSON."""
    records: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for spec in dns.records:
        name = fqdn(dns, spec) + "."
        if spec.via == "edges":
            for edge, ((host, port), region) in (edges or {}).items():
                nearest = {"name": name, "ttl": spec.ttl_s, "set_id": edge, "values": [host]}
                nearest["region"] = region
                if spec.health_checks:
                    checks.append(_check(f"{spec.name}-{edge}", host, port, EDGE_HEALTH, spec))
                    nearest["health_check"] = checks[-1]["id"]
                records.append(nearest)
            continue
        if spec.via != "servers":
            entry = gateway if spec.via == "gateway" else load_balancers[spec.service or ""]
            if entry is None:
                raise ValueError(f"dns record {spec.name!r} is via gateway, and none runs")
            records.append({"name": name, "ttl": spec.ttl_s, "values": [entry[0]]})
            continue
        members = list(servers[spec.service or ""])
        if spec.policy == "simple":
            hosts = [host for _, (host, _port) in members]
            records.append({"name": name, "ttl": spec.ttl_s, "values": hosts})
            continue
        if spec.policy == "failover":
            members = members[:2]
        for i, (instance, (host, port)) in enumerate(members):
            checks.append(_check(f"{spec.name}-{instance}", host, port, "/health", spec))
            record: dict[str, Any] = {
                "name": name,
                "ttl": spec.ttl_s,
                "set_id": instance,
                "values": [host],
                "health_check": checks[-1]["id"],
            }
            if spec.policy == "weighted":
                record["weight"] = 1
            else:
                record["failover"] = "PRIMARY" if i == 0 else "SECONDARY"
            records.append(record)
    zone = {"zone": f"{dns.zone}.", "records": records, "health_checks": checks}
    return zone if network is None else zone | {"regions": network}


EDGE_HEALTH = "/_edge/health"


def _checked(record: DnsRecordSpec) -> bool:
    """Whether `record`'s answers are health-checked (as `zone_json` writes them)."""
    if record.via == "edges":
        return record.health_checks
    return record.via == "servers" and record.policy != "simple"


def _check(check: str, host: str, port: int, path: str, spec: DnsRecordSpec) -> dict[str, Any]:
    """A Route 53-style health check of one record's address, by the record's settings."""
    return {
        "id": check,
        "host": host,
        "port": port,
        "path": path,
        "interval_s": spec.health.interval_s,
        "timeout_s": spec.health.timeout_s,
        "failure_threshold": spec.health.failure_threshold,
        "success_threshold": spec.health.success_threshold,
    }


class Dns(Singleton):
    kind: ClassVar[str] = "dns"
    section: ClassVar[str | None] = "dns"
    spec: ClassVar[Any] = DnsSpec | None
    default: ClassVar[Any] = None
    reserved: ClassVar[tuple[str, ...]] = (NAME,)
    WHAT: ClassVar[str] = "the DNS server"

    @classmethod
    def own_addresses(cls, topology: Topology) -> set[str]:
        """Services some record answers with server addresses."""
        spec = spec_of(topology)
        records = spec.records if spec else []
        return {r.service for r in records if r.via == "servers" and r.service}

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        return {NAME: Shape(cls.kind, cls.WHAT, 1, 1, 1)} if spec_of(topology) else {}

    @classmethod
    def check(cls, topology: Topology) -> list[Problem]:
        spec = spec_of(topology)
        problems: list[Problem] = []
        known = services.specs(topology)
        seen: set[str] = set()
        for i, record in enumerate(spec.records if spec else []):
            where = ("dns", "records", i)
            if record.via == "gateway":
                if gateway.spec_of(topology) is None:
                    problems.append(
                        ((*where, "via"), "via gateway, but the topology has no gateway")
                    )
                continue
            if record.via == "edges":
                if not topology.spec(edges.Edges):
                    problems.append(((*where, "via"), "via edges, but the topology has no edges"))
                elif regions.spec_of(topology) is None:
                    problems.append(((*where, "policy"), "latency needs the topology's regions"))
                continue
            service = known.get(record.service or "")
            if service is None:
                problems.append(
                    (
                        (*where, "service"),
                        unknown("service", record.service, known),
                    )
                )
                continue
            if record.name in seen:
                problems.append(((*where, "name"), f"{record.name!r} is defined twice"))
            seen.add(record.name)
            if record.via == "servers" and record.policy == "failover" and service.replicas < 2:
                problems.append(
                    (
                        (*where, "policy"),
                        "failover needs a primary and a secondary server"
                        f" ({record.service} has {service.replicas} replica(s))",
                    )
                )
        return problems

    async def start(self) -> None:
        spec = spec_of(self.lab.topology)
        if spec is None:
            return
        part = self.lab.part(services.Services)
        servers = {
            group.name: [(i.name, i.child.address()) for i in group.sorted()]
            for group in part.groups()
        }
        lbs = {name: lab.address for name, lab in part.labs.items()}
        front = self.lab.part(gateway.Gateway).child
        path = self.lab.run_dir / "dns-zone.json"
        cdn = self.lab.part(edges.Edges)
        by_edge = {n: (a, cdn.region(n)) for n, a in cdn.addresses().items()}
        network = regions.spec_of(self.lab.topology)
        zone = zone_file(
            spec,
            lbs,
            servers,
            front.address() if front else None,
            edges=by_edge,
            network=None if network is None else network.regions().to_json(),
        )
        path.write_text(json.dumps(zone, indent=2))
        await self.launch(
            "dns",
            "targets.dns",
            [f"--zone-file={path}", f"--token-file={self.lab.token_file}", f"--name={NAME}"],
        )

    def names(self) -> dict[str, str]:
        """Each service a record names, by that name (`http://shop.lab:PORT`; the gateway as
        `gateway`): clients resolve it through the lab's DNS server (`address`)."""
        spec = spec_of(self.lab.topology)
        if spec is None:
            return {}
        labs = self.lab.part(services.Services).labs
        front = self.lab.part(gateway.Gateway).child
        urls: dict[str, str] = {}
        cdn = self.lab.part(edges.Edges)
        for record in spec.records:
            if record.via == "edges":  # the nearest edge, as `cdn` (one name for the edges)
                urls["cdn"] = f"http://{fqdn(spec, record)}:{cdn.port}"
                continue
            if record.service is None:  # via gateway
                if front is not None:
                    urls["gateway"] = f"http://{fqdn(spec, record)}:{front.address()[1]}"
                continue
            lab = labs[record.service]
            port = lab.address[1] if record.via == "load_balancer" else lab.port
            urls[record.service] = f"http://{fqdn(spec, record)}:{port}"
        return urls

    @property
    def address(self) -> str | None:
        """HOST:PORT (UDP) of the lab's DNS server, when it runs."""
        return None if self.child is None else str(self.child.ready["address"])

    def diagram(self) -> Diagram:
        """The DNS server's box: queries per second, and how many failed health checks."""
        spec = spec_of(self.lab.topology)
        if spec is None:
            return Diagram()
        gauges = [Gauge("queries/s", rate_of("dns_queries_total"))]
        if any(_checked(record) for record in spec.records):  # else the series never exist
            gauges.append(Gauge("checks failing", "sum(1 - dns_health_check_healthy)"))
        return Diagram(
            [
                Box(
                    NAME,
                    NAME,
                    self.kind,
                    NAMES,
                    "DNS server",
                    NAME,
                    process=NAME,
                    gauges=tuple(gauges),
                )
            ]
        )

    def urls(self) -> dict[str, str]:
        if self.address is None:
            return {}
        return {"dns (udp, e.g. dig @HOST -p PORT shop.lab)": self.address}
