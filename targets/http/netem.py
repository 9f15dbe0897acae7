"""Simulated distance: the round trip between regions, added by the engine that serves a request.

The lab runs on one machine, so "far" has to be made. A process in a region (the CDN edges,
the API gateway for the origin) reads the network file and delays each request by the
round-trip time from the region its client is in, plus jitter from a seeded RNG: the client
waits one round trip per request, as on a kept-alive connection across that distance.

A client's region is its source address: region ``i`` of the file's ``regions`` list owns
the loopback subnet ``127.(100+i).0.0/16`` (`subnet`), and a client there binds a source
address in it (Locust users, an edge fetching from its origin, DNS queries), as an IP address
tells a CDN or Route 53 where a client is. A peer outside every region's subnet (127.0.0.1:
`curl`, the load balancers, Prometheus) is not delayed. The file (JSON, written by the
harness from the topology's ``regions`` section)::

    {"regions": ["us-east", "eu-west", "ap-south"],
     "rtt_ms": {"us-east": {"us-east": 4, "eu-west": 80, "ap-south": 200}, ...},
     "jitter_ms": 2, "seed": 7}

``rtt_ms`` is symmetric: a pair given once counts both ways; a region's own entry is its
in-region round trip. Every pair must be given. `Network.from_json` checks it and names the
field; `Network.delay_s(peer_ip)` is the whole per-request cost (a dict lookup without a
region); `targets.http.server.delayed(handler, network)` applies it to a handler. `Delays`
adds what chaos injects: latency on the link from one region, or on every request. This
module imports no HTTP engine: the DNS server reads its `Regions` too.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

FIRST_OCTET: Final = 100  # region i's clients: 127.(100+i).0.0/16
MAX_REGIONS: Final = 100
MAX_RTT_MS: Final = 60_000.0


def source(index: int, host: int = 1) -> str:
    """A source address in the `index`-th region's subnet (`host` 1..65534)."""
    return f"127.{FIRST_OCTET + index}.{host // 256}.{host % 256}"


def region_of(ip: str, regions: Sequence[str]) -> str | None:
    """The region whose subnet holds `ip`, or None (not in any region)."""
    parts = ip.split(".")
    if len(parts) != 4 or parts[0] != "127" or not parts[1].isdigit():
        return None
    index = int(parts[1]) - FIRST_OCTET
    return regions[index] if 0 <= index < len(regions) else None


class NetworkError(ValueError):
    """A network file that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Regions:
    """The lab's regions and the round trips between them (the network file's content)."""

    names: tuple[str, ...]
    rtt_ms: Mapping[str, Mapping[str, float]]
    jitter_ms: float = 0.0
    seed: int = 0

    def rtt(self, a: str, b: str) -> float:
        """The round trip between regions `a` and `b`, in milliseconds."""
        return self.rtt_ms[a][b]

    def region_of(self, ip: str) -> str | None:
        """The region whose subnet holds `ip`, or None."""
        return region_of(ip, self.names)

    def to_json(self) -> dict[str, Any]:
        return {
            "regions": list(self.names),
            "rtt_ms": {a: dict(row) for a, row in self.rtt_ms.items()},
            "jitter_ms": self.jitter_ms,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: Any, path: str = "network") -> Regions:
        """The regions of a network file's JSON; NetworkError naming the field (under
        `path`) otherwise."""
        if not isinstance(data, dict):
            raise NetworkError(f"{path}: expected an object")
        unknown = sorted(set(data) - {"regions", "rtt_ms", "jitter_ms", "seed"})
        if unknown:
            raise NetworkError(f"{path}.{unknown[0]}: unknown field")
        names = data.get("regions")
        if (
            not isinstance(names, list)
            or not 1 <= len(names) <= MAX_REGIONS
            or not all(isinstance(r, str) and r for r in names)
            or len(set(names)) != len(names)
        ):
            raise NetworkError(f"{path}.regions: expected 1..{MAX_REGIONS} distinct names")
        given = data.get("rtt_ms")
        if not isinstance(given, dict):
            raise NetworkError(f"{path}.rtt_ms: expected an object of objects")
        matrix: dict[str, dict[str, float]] = {r: {} for r in names}
        for a, row in given.items():
            if a not in matrix or not isinstance(row, dict):
                raise NetworkError(f"{path}.rtt_ms.{a}: not a region, or not an object")
            for b, ms in row.items():
                if b not in matrix:
                    raise NetworkError(f"{path}.rtt_ms.{a}.{b}: not a region")
                if not isinstance(ms, int | float) or not 0 <= ms <= MAX_RTT_MS:
                    raise NetworkError(f"{path}.rtt_ms.{a}.{b}: must be 0..{MAX_RTT_MS:g} ms")
                matrix[a][b] = matrix[b][a] = float(ms)
        for a in names:
            for b in names:
                if b not in matrix[a]:
                    raise NetworkError(f"{path}.rtt_ms: the pair {a} - {b} is missing")
        jitter = data.get("jitter_ms", 0)
        if not isinstance(jitter, int | float) or not 0 <= jitter <= MAX_RTT_MS:
            raise NetworkError(f"{path}.jitter_ms: must be 0..{MAX_RTT_MS:g}")
        seed = data.get("seed", 0)
        if not isinstance(seed, int):
            raise NetworkError(f"{path}.seed: must be an integer")
        return cls(tuple(names), matrix, float(jitter), seed)


@dataclass(slots=True)
class Network:
    """The round trips from every region to `here`, the region this process is in."""

    regions: Regions
    here: str
    extra_ms: dict[str, float] = field(default_factory=dict)  # chaos: a slower link
    _rng: random.Random = field(default_factory=random.Random)
    _by_octet: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.here not in self.regions.names:
            known = ", ".join(self.regions.names)
            raise NetworkError(f"region: unknown {self.here!r} (known: {known})")
        self._rng.seed(f"{self.regions.seed}:{self.here}")
        self._refresh()

    def _refresh(self) -> None:
        self._by_octet.clear()
        for i, region in enumerate(self.regions.names):
            total = self.regions.rtt(region, self.here) + self.extra_ms.get(region, 0.0)
            self._by_octet[str(FIRST_OCTET + i)] = total / 1000

    @property
    def source_ip(self) -> str:
        """The address this process's own requests come from: in its region's subnet, so
        the next hop delays them by the round trip from here."""
        return source(self.regions.names.index(self.here))

    def slow(self, region: str, extra_ms: float) -> None:
        """Add `extra_ms` to every round trip from `region` (0: back to the matrix)."""
        if region not in self.regions.names:
            known = ", ".join(self.regions.names)
            raise NetworkError(f"region: unknown {region!r} (known: {known})")
        if extra_ms:
            self.extra_ms[region] = extra_ms
        else:
            self.extra_ms.pop(region, None)
        self._refresh()

    def clear(self) -> None:
        """Every round trip back to the matrix's."""
        self.extra_ms.clear()
        self._refresh()

    def delay_s(self, peer_ip: str) -> float:
        """Seconds to hold a request from `peer_ip`: its region's round trip to here, with
        jitter (0 for a peer in no region)."""
        if not peer_ip.startswith("127."):
            return 0.0
        base = self._by_octet.get(peer_ip[4 : peer_ip.find(".", 4)])
        if base is None:
            return 0.0
        jitter = self.regions.jitter_ms
        return base + self._rng.uniform(0, jitter) / 1000 if jitter else base

    @classmethod
    def load(cls, path: str, here: str) -> Network:
        """The network file at `path` as seen from region `here`; NetworkError naming the
        file and field."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise NetworkError(f"{path}: {exc}") from None
        try:
            return cls(Regions.from_json(data), here)
        except NetworkError as exc:
            raise NetworkError(f"{path}: {exc}") from None


@dataclass(slots=True)
class Delays:
    """What a process holds each request for: the round trip from its client's region (with
    a `network`) plus the latency chaos added, from one region (`Network.slow`: the link
    between that region and here) or from every client (`extra_s`)."""

    network: Network | None = None
    extra_s: float = 0.0

    def delay_s(self, peer_ip: str) -> float:
        if self.network is None:
            return self.extra_s
        return self.network.delay_s(peer_ip) + self.extra_s

    def add(self, latency_ms: float, region: str | None = None) -> None:
        """Chaos: `latency_ms` more on each request from `region` (None: from anyone);
        NetworkError naming `region` when it is not one of the network's."""
        if region is None:
            self.extra_s = latency_ms / 1000
        elif self.network is None:
            raise NetworkError("region: this process is in no region (the lab has no regions)")
        else:
            self.network.slow(region, latency_ms)

    def clear(self) -> None:
        self.extra_s = 0.0
        if self.network is not None:
            self.network.clear()

    def describe(self) -> dict[str, Any]:
        """The latency chaos added, as `GET /_edge/faults` answers it."""
        regions = {} if self.network is None else dict(self.network.extra_ms)
        return {"latency_ms": self.extra_s * 1000, "regions": regions}
