"""Regions: where clients and CDN edges are, and how far apart (targets/http/netem.py).

Topology: `regions: RegionsSpec`. Region *i* of `rtt_ms`'s keys owns the source addresses
`127.(100+i).0.0/16`: Locust users of that region send from there (their share of users is
`clients`), an edge in it fetches from there, and the DNS server answers latency records by
it. The gateway (with everything behind it: the origin) is in `origin`. The edges and the
gateway hold each request for the round trip from its sender's region, so distance shows in
what clients measure. No process: `start` writes the network file the others read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pydantic import Field, model_validator

from harness.components.base import Component, Problem, Strict, unknown
from targets.http.netem import NetworkError, Regions, source

if TYPE_CHECKING:
    from harness.topology import Topology

FILE = "network.json"


class RegionsSpec(Strict):
    """The regions, their round trips (ms, symmetric: a pair once), and who is where."""

    rtt_ms: dict[str, dict[str, float]] = Field(min_length=1)
    jitter_ms: float = Field(default=2.0, ge=0, le=1000)
    origin: str  # the region of the gateway and everything behind it
    clients: dict[str, float] = Field(default_factory=dict)  # users' share by region
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> RegionsSpec:
        regions = self.regions()  # NetworkError (a ValueError) names the field
        for name in (self.origin, *self.clients):
            if name not in regions.names:
                raise ValueError(unknown("region", name, regions.names))
        if any(share <= 0 for share in self.clients.values()):
            raise ValueError("clients: each region's share must be > 0")
        return self

    def regions(self) -> Regions:
        data = {"regions": list(self.rtt_ms), "rtt_ms": self.rtt_ms}
        try:
            return Regions.from_json(data | {"jitter_ms": self.jitter_ms, "seed": self.seed})
        except NetworkError as exc:
            raise ValueError(str(exc).removeprefix("network.")) from None

    def client_sources(self) -> dict[str, tuple[str, float]]:
        """Each client region's source address and share of the users (every region when
        `clients` is empty, equal shares)."""
        names = list(self.rtt_ms)
        shares = self.clients or dict.fromkeys(names, 1.0)
        return {name: (source(names.index(name)), share) for name, share in shares.items()}


def spec_of(topology: Topology) -> RegionsSpec | None:
    return cast(RegionsSpec | None, topology.spec(RegionsPart))


def known(topology: Topology) -> list[str]:
    spec = spec_of(topology)
    return [] if spec is None else list(spec.rtt_ms)


def check_region(topology: Topology, where: tuple[Any, ...], region: str | None) -> list[Problem]:
    """A part's `region` against the topology's regions (None is fine without regions)."""
    names = known(topology)
    if region is None:
        return [(where, "set a region: the topology has regions")] if names else []
    if not names:
        return [(where, "a region needs the topology's regions section")]
    return [] if region in names else [(where, unknown("region", region, names))]


class RegionsPart(Component):
    kind: ClassVar[str] = "regions"
    section: ClassVar[str | None] = "regions"
    spec: ClassVar[Any] = RegionsSpec | None
    default: ClassVar[Any] = None

    async def start(self) -> None:
        spec = spec_of(self.lab.topology)
        if spec is not None:
            self.path.write_text(json.dumps(spec.regions().to_json(), indent=2))

    @property
    def path(self) -> Path:
        return self.lab.run_dir / FILE

    def args(self, region: str | None) -> list[str]:
        """The flags that put a process in `region` (none without regions)."""
        if spec_of(self.lab.topology) is None or region is None:
            return []
        return [f"--network-file={self.path}", f"--region={region}"]

    def origin_args(self) -> list[str]:
        """The flags of the gateway: in the origin's region."""
        spec = spec_of(self.lab.topology)
        return [] if spec is None else self.args(spec.origin)
