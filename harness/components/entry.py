"""Where clients enter the lab: the one module that knows how the front door (the gateway),
the names (DNS) and the services' load balancers fit together for a load generator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.components import regions
from harness.components.dns import Dns, DnsSpec
from harness.components.edges import Edges
from harness.components.gateway import Gateway
from harness.components.services import Services

if TYPE_CHECKING:
    from harness.runtime import LabRuntime
    from harness.topology import Topology


def resolvable(topology: Topology) -> bool:
    """Whether clients can reach the lab by DNS names (the topology has records)."""
    return topology.spec(Dns) is not None


def nearest_edge(topology: Topology) -> bool:
    """Whether a DNS record answers the nearest CDN edge (latency routing via edges)."""
    spec = topology.spec(Dns)
    return isinstance(spec, DnsSpec) and any(r.via == "edges" for r in spec.records)


def client_regions(lab: LabRuntime) -> dict[str, tuple[str, float]]:
    """Each client region's source address and share of the users (none without regions)."""
    spec = regions.spec_of(lab.topology)
    return {} if spec is None else spec.client_sources()


def entry_points(
    lab: LabRuntime, *, side_by_side: bool = False, via_dns: bool = False, by_region: bool = False
) -> tuple[dict[str, str], str | None]:
    """Where load generators send requests: (name -> base URL, Locust's --host).

    Users that compare side by side get one entry each: each CDN edge and, as `origin`, the
    gateway behind them (cached against uncached); else every gateway route that strips its
    prefix (routes compared, e.g. one per rate-limit algorithm), else every service. The
    others go through the API gateway when one runs (relative paths on `--host`), else
    straight to each load balancer. With `via_dns`, by DNS name where a record gives one.
    Users `by_region` get `cdn`, the name that answers each region its nearest edge.
    """
    urls = lab.part(Services).entry_urls()
    if via_dns:
        urls |= lab.part(Dns).names()
    front = lab.part(Gateway)
    gateway = urls.pop("gateway", None) or front.url
    if by_region:
        return {"cdn": urls["cdn"]}, gateway
    if gateway is None:
        return urls, None
    if not side_by_side:
        return {}, gateway
    edges = lab.part(Edges).entry_urls()
    if edges:
        return {**edges, "origin": gateway}, None
    return front.side_by_side() or urls, None


def known_hosts(lab: LabRuntime) -> dict[str, str]:
    """Every base URL a person may point the users at (RUSHLAB_HOSTS), named as `harness up`
    prints it: the gateway, each service's load balancer, each CDN edge."""
    front = lab.part(Gateway).url
    entries = {*lab.part(Services).entry_urls().values(), *lab.part(Edges).entry_urls().values()}
    entries |= set() if front is None else {front}
    return {name: url for name, url in lab.urls().items() if url in entries}


def resolver(lab: LabRuntime) -> str | None:
    """HOST:PORT (UDP) of the DNS server clients resolve the lab's names with, when one runs."""
    return lab.part(Dns).address
