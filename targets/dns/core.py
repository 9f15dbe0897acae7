"""Sans-I/O core of the lab's authoritative DNS server: one zone of A records routed with Route 53's
simple, weighted and failover policies, and health checks as plain state.

No I/O, no clock: a `Zone` answers `resolve(qname, qtype)` from its records, the health of its
checks and the `random.Random` it was given; the adapter feeds probe results to `observe`.

The zone file (JSON; `Zone.from_json` reads it, `Zone.to_json` writes it back)::

    {"zone": "lab.",
     "records": [
       {"name": "shop.lab.", "ttl": 5, "values": ["127.0.0.1", "127.0.0.2"]},
       {"name": "api.lab.", "ttl": 5, "set_id": "blue", "weight": 200,
        "values": ["127.0.0.1"], "health_check": "blue"},
       {"name": "api.lab.", "ttl": 5, "set_id": "green", "weight": 55, "values": ["127.0.0.2"]},
       {"name": "www.lab.", "set_id": "main", "failover": "PRIMARY",
        "values": ["127.0.0.1"], "health_check": "gw-1"},
       {"name": "www.lab.", "set_id": "backup", "failover": "SECONDARY", "values": ["127.0.0.2"]}],
     "health_checks": [
       {"id": "gw-1", "host": "127.0.0.1", "port": 8080, "path": "/health",
        "interval_s": 1.0, "timeout_s": 0.5, "failure_threshold": 3, "success_threshold": 3}]}

Fields, defaults and limits of records and health checks are in targets/dns/records.py: a
record is Route 53's ResourceRecordSet flattened, its policy follows from its fields (`weight`:
weighted, `failover`: failover, neither: simple). Every error names its field:
`records[2].weight: must be 0..255 (got 300)`; nothing is served from an invalid zone.

Semantics (reference/semantics.md sections 8 and 10.8):

* simple: one record per name, every value answered; it has no health (plain DNS round robin
  keeps answering a dead address);
* weighted: one record per query, with probability weight / sum of weights among the healthy
  records of non-zero weight; zero-weight records only when no non-zero record is healthy (all
  zero: uniform); when every record is unhealthy, all count as healthy (Route 53 "needs to
  return something");
* failover: the primary while it is healthy, else the secondary if healthy, else the primary;
* latency: the healthy record whose `region` has the lowest round trip from the client's
  region (the zone's `regions`, targets/http/netem.py: the client's region is the region
  whose loopback subnet holds the query's source address, as Route 53 places a resolver by
  its IP; a source in no region is answered as the first region); all unhealthy: the
  nearest of all;
* a record without a health check is always healthy; a new check starts healthy (Route 53
  "considers a new health check to be healthy until there's enough data"), turns unhealthy after
  `failure_threshold` consecutive failures and healthy again after `success_threshold` successes;
* NOERROR with the values; NOERROR and no values (NODATA) for another type at a name that exists
  (a record name, an ancestor of one, or the apex); NXDOMAIN for other names in the zone;
  REFUSED outside it.

Record values and health-checked hosts must be loopback addresses unless the zone is built with
`allow_remote` (`--allow-remote`): the load that follows DNS answers stays on this machine.

Deliberate differences from Route 53: lab-scale check intervals (1 s, not 30 or 10 s) and one
checker instead of a fleet voting (no 18 % rule); TTL limited to a day; only A records, no
SOA/NS (so negative answers carry no SOA and are not cached by resolvers), no alias,
geolocation or multivalue policies; latency is the lab's round-trip matrix, not measured; a
PRIMARY failover record must have a health check (without one it can never fail over);
`replace` swaps a name's whole record set at once, like a ChangeResourceRecordSets batch
that deletes and creates.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from targets.checks import require
from targets.dns.records import (
    Failover,
    HealthCheckConfig,
    Policy,
    Record,
    ZoneError,
    check_health,
    check_record,
    check_sets,
    fqdn,
    in_zone,
    record_from_json,
    zone_from_json,
)
from targets.http.netem import Regions

__all__ = [
    "Answer",
    "Failover",
    "HealthCheckConfig",
    "HealthState",
    "Policy",
    "Rcode",
    "Record",
    "Zone",
    "ZoneError",
    "record_from_json",
]


class Rcode(enum.IntEnum):
    """DNS response codes (RFC 1035 numbers)."""

    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


class HealthState:
    """The status of one check: healthy at first, flipped by consecutive results."""

    __slots__ = ("config", "fail_streak", "healthy", "ok_streak")

    def __init__(self, config: HealthCheckConfig) -> None:
        self.config = config
        self.healthy = True
        self.ok_streak = 0
        self.fail_streak = 0

    def observe(self, ok: bool) -> bool:
        """Count one probe result; True when it changed the status."""
        if ok:
            self.ok_streak, self.fail_streak = self.ok_streak + 1, 0
            flips = not self.healthy and self.ok_streak >= self.config.rise
        else:
            self.ok_streak, self.fail_streak = 0, self.fail_streak + 1
            flips = self.healthy and self.fail_streak >= self.config.failure_threshold
        if flips:
            self.healthy = not self.healthy
        return flips


@dataclass(frozen=True, slots=True)
class Answer:
    """What to answer: `records` are the A values, `set_id` the routed record chosen."""

    rcode: Rcode
    records: tuple[str, ...] = ()
    ttl: int = 0
    set_id: str | None = None
    region: str | None = None  # the client's region, for a latency answer

    @property
    def authoritative(self) -> bool:
        """True for answers from the zone (AA set); REFUSED comes from outside it."""
        return self.rcode in (Rcode.NOERROR, Rcode.NXDOMAIN)


def _require(ok: bool, field: str, rule: str, got: object) -> None:
    require(ok, field, rule, got, ZoneError)


# --- the zone ------------------------------------------------------------------------------------


class Zone:
    """The records of one zone, their health, and the answers they give."""

    def __init__(
        self,
        origin: str,
        records: Sequence[Record],
        health_checks: Sequence[HealthCheckConfig] = (),
        *,
        rng: random.Random,
        allow_remote: bool = False,
        regions: Regions | None = None,
    ) -> None:
        self.origin = fqdn(origin, "zone")
        self.regions = regions
        self.allow_remote = allow_remote
        self.health: dict[str, HealthState] = {}
        for i, given in enumerate(health_checks):
            cfg = check_health(given, f"health_checks[{i}]", allow_remote)
            if cfg.id in self.health:
                raise ZoneError(f"health_checks[{i}].id: {cfg.id!r} is defined twice")
            self.health[cfg.id] = HealthState(cfg)
        checked = [
            (i, check_record(rec, f"records[{i}]", self.origin, allow_remote))
            for i, rec in enumerate(records)
        ]
        self._check_regions(checked)
        self.sets: dict[str, tuple[Record, ...]] = check_sets(checked, self.health)
        self.rng = rng
        self._nodes = self._existing_names()

    @classmethod
    def from_json(cls, data: object, *, rng: random.Random, allow_remote: bool = False) -> Zone:
        """The zone of a zone file's parsed JSON (schema in the module docstring)."""
        origin, records, checks, regions = zone_from_json(data)
        return cls(origin, records, checks, rng=rng, allow_remote=allow_remote, regions=regions)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "zone": self.origin,
            "records": [rec.to_json() for recs in self.sets.values() for rec in recs],
            "health_checks": [state.config.to_json() for state in self.health.values()],
        }
        if self.regions is not None:
            out["regions"] = self.regions.to_json()
        return out

    def _check_regions(self, checked: Sequence[tuple[int, Record]]) -> None:
        for i, rec in checked:
            if rec.region is None:
                continue
            if self.regions is None:
                raise ZoneError(f"records[{i}].region: latency records need the zone's regions")
            known = self.regions.names
            _require(rec.region in known, f"records[{i}].region", f"one of {known}", rec.region)

    # -- queries -----------------------------------------------------------------------------
    def client_region(self, source: str | None) -> str | None:
        """The region a query from `source` is answered for: the one whose subnet holds the
        address (targets/http/netem.py), else the zone's first region; None without regions."""
        if self.regions is None:
            return None
        found = None if source is None else self.regions.region_of(source)
        return found or self.regions.names[0]

    def resolve(self, qname: str, qtype: str, source: str | None = None) -> Answer:
        """The answer to one question from the client address `source`; `qname` in any
        case, with or without the final dot."""
        name = qname.lower() if qname.endswith(".") else qname.lower() + "."
        if not in_zone(name, self.origin):
            return Answer(Rcode.REFUSED)
        records = self.sets.get(name)
        if records is None:
            return Answer(Rcode.NOERROR if name in self._nodes else Rcode.NXDOMAIN)
        if qtype.upper() not in ("A", "ANY"):
            return Answer(Rcode.NOERROR)  # NODATA
        chosen = self._route(records, source)
        region = self.client_region(source) if chosen.region is not None else None
        return Answer(Rcode.NOERROR, chosen.values, chosen.ttl, chosen.set_id, region)

    def _route(self, records: tuple[Record, ...], source: str | None) -> Record:
        policy = records[0].policy
        if policy is Policy.SIMPLE:
            return records[0]
        if policy is Policy.FAILOVER:
            return _failover(records, self._healthy)
        if policy is Policy.LATENCY:
            assert self.regions is not None  # checked: latency records need regions
            regions, here = self.regions, self.client_region(source) or ""
            return _latency(records, self._healthy, lambda r: regions.rtt(here, r.region or ""))
        return _weighted(records, self._healthy, self.rng)

    def _healthy(self, rec: Record) -> bool:
        return rec.health_check is None or self.health[rec.health_check].healthy

    # -- health ------------------------------------------------------------------------------
    def observe(self, check_id: str, ok: bool) -> bool:
        """One probe result of a health check; True when its status changed."""
        return self.health[check_id].observe(ok)

    def healthy(self, check_id: str) -> bool:
        return self.health[check_id].healthy

    # -- changes -----------------------------------------------------------------------------
    def replace(self, name: str, records: Sequence[Record]) -> None:
        """Make `records` the whole record set of `name` (none: delete it). All or nothing."""
        key = fqdn(name, "name")
        _require(in_zone(key, self.origin), "name", f"a name inside the zone {self.origin}", name)
        checked = []
        for i, given in enumerate(records):
            rec = check_record(given, f"records[{i}]", self.origin, self.allow_remote)
            _require(rec.name == key, f"records[{i}].name", f"{key} (the name replaced)", rec.name)
            checked.append((i, rec))
        self._check_regions(checked)
        sets = dict(self.sets)
        if checked:
            sets[key] = check_sets(checked, self.health)[key]
        else:
            sets.pop(key, None)
        self.sets = sets
        self._nodes = self._existing_names()

    def _existing_names(self) -> frozenset[str]:
        """Names that exist: the apex, every record name and every name between the two."""
        nodes = {self.origin}
        for record_name in self.sets:
            name = record_name
            while name != self.origin and name not in nodes:
                nodes.add(name)
                name = name.split(".", 1)[1] or "."
        return frozenset(nodes)


# --- routing policies ----------------------------------------------------------------------------


def _failover(records: tuple[Record, ...], healthy: Callable[[Record], bool]) -> Record:
    primary, secondary = sorted(records, key=lambda r: r.failover != Failover.PRIMARY)
    if healthy(primary) or not healthy(secondary):
        return primary
    return secondary


def _latency(
    records: tuple[Record, ...], healthy: Callable[[Record], bool], rtt: Callable[[Record], float]
) -> Record:
    """The healthy record nearest the client (the first listed on a tie); every record when
    none is healthy."""
    candidates = [rec for rec in records if healthy(rec)] or list(records)
    return min(candidates, key=rtt)


def _weighted(
    records: tuple[Record, ...], healthy: Callable[[Record], bool], rng: random.Random
) -> Record:
    candidates = [rec for rec in records if healthy(rec)] or list(records)
    weighted = [rec for rec in candidates if rec.weight]
    if not weighted:
        return rng.choice(candidates)  # only zero weights left: equally likely
    point = rng.randrange(sum(rec.weight or 0 for rec in weighted))
    for rec in weighted:
        point -= rec.weight or 0
        if point < 0:
            return rec
    raise AssertionError("unreachable: point < total weight")
