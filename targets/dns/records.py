"""The zone's data and its checks: records, health check settings, the zone file's JSON.

Pure, like the core. A record is Route 53's ResourceRecordSet, flattened: `name` (FQDN inside the
zone, any case), `type` ("A", the default and only type), `ttl` (0..86400, default 60), `values`
(1..16 distinct IPv4 addresses), and for routed records `set_id` plus one of `weight` (0..255),
`failover` (PRIMARY / SECONDARY) or `region` (latency routing: one of the zone's `regions`),
and an optional `health_check` id. The policy follows from
the fields: no weight and no failover is simple. A health check has `id` and `port` (required),
`host` (loopback, default 127.0.0.1), `path` (default /health), `interval_s` (default 1),
`timeout_s` (default 0.5, at most the interval), `failure_threshold` (1..10, default 3) and
`success_threshold` (1..10, default: the failure threshold, as Route 53 uses one number both
ways). The zone file's schema is in targets/dns/core.py.

Every error is a `ZoneError` whose message starts with the field's path, in the shape of
targets/checks.py: `records[2].weight: must be 0..255 (got 300)`. Record-set rules (one policy
per name, unique set ids, one TTL per set, exactly one PRIMARY and one SECONDARY, known health
check ids) name the record that breaks them.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from targets.checks import finite, require
from targets.http.netem import NetworkError, Regions

MAX_TTL: Final = 86_400
MAX_WEIGHT: Final = 255
MAX_VALUES: Final = 16  # an answer of 16 A records still fits a 512-byte UDP message
MAX_WEIGHTED: Final = 100  # Route 53's limit of weighted records per name and type
DEFAULT_TTL: Final = 60

_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SET_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_LOCAL: Final = "a loopback address (lab traffic stays local unless --allow-remote)"


class ZoneError(ValueError):
    """A zone, record or health check that cannot be served; the message names the field."""


class Policy(enum.StrEnum):
    SIMPLE = "simple"
    WEIGHTED = "weighted"
    FAILOVER = "failover"
    LATENCY = "latency"


class Failover(enum.StrEnum):
    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"


@dataclass(frozen=True, slots=True)
class Record:
    """One A record set entry; `set_id` and `weight` or `failover` make it a routed one."""

    name: str
    values: tuple[str, ...]
    ttl: int = DEFAULT_TTL
    set_id: str | None = None
    weight: int | None = None
    failover: Failover | None = None
    health_check: str | None = None
    region: str | None = None
    type: str = "A"

    @property
    def policy(self) -> Policy:
        if self.weight is not None:
            return Policy.WEIGHTED
        if self.failover is not None:
            return Policy.FAILOVER
        if self.region is not None:
            return Policy.LATENCY
        return Policy.SIMPLE

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "ttl": self.ttl}
        out["values"] = list(self.values)
        for key in ("set_id", "weight", "failover", "health_check", "region"):
            value = getattr(self, key)
            if value is not None:
                out[key] = str(value) if key == "failover" else value
        return out


@dataclass(frozen=True, slots=True)
class HealthCheckConfig:
    """An HTTP health check: GET `path` on `host:port`; 200..399 within `timeout_s` passes."""

    id: str
    port: int
    host: str = "127.0.0.1"
    path: str = "/health"
    interval_s: float = 1.0
    timeout_s: float = 0.5
    failure_threshold: int = 3
    success_threshold: int | None = None  # None: the failure threshold

    @property
    def rise(self) -> int:
        """Consecutive successes that make an unhealthy check healthy again."""
        return self.failure_threshold if self.success_threshold is None else self.success_threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "port": self.port,
            "path": self.path,
            "interval_s": self.interval_s,
            "timeout_s": self.timeout_s,
            "failure_threshold": self.failure_threshold,
            "success_threshold": self.rise,
        }


# --- validation ----------------------------------------------------------------------------------


def _require(ok: bool, field: str, rule: str, got: object) -> None:
    require(ok, field, rule, got, ZoneError)


def fqdn(value: object, field: str) -> str:
    """`value` as a lowercase fully qualified name."""
    _require(isinstance(value, str), field, "a domain name", value)
    assert isinstance(value, str)
    name = value.lower()
    _require(name.endswith("."), field, "a fully qualified name ending in '.'", value)
    labels = [] if name == "." else name[:-1].split(".")
    _require(
        len(name) <= 254 and all(_LABEL.fullmatch(label) for label in labels),
        field,
        "a domain name of labels of 1..63 letters, digits, '-' or '_'",
        value,
    )
    return name


def in_zone(name: str, origin: str) -> bool:
    return origin in (".", name) or name.endswith("." + origin)


def _ipv4(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _loopback(host: object) -> bool:
    if host == "localhost":
        return True
    try:
        return isinstance(host, str) and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _int_in(value: object, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def check_record(rec: Record, path: str, origin: str, allow_remote: bool = False) -> Record:
    """`rec` with every field checked on its own and normalized (lowercase name, enum)."""
    name = fqdn(rec.name, f"{path}.name")
    _require(in_zone(name, origin), f"{path}.name", f"a name inside the zone {origin}", rec.name)
    kind = rec.type
    _require(isinstance(kind, str) and kind.upper() == "A", f"{path}.type", "A", kind)
    _require(_int_in(rec.ttl, 0, MAX_TTL), f"{path}.ttl", f"0..{MAX_TTL}", rec.ttl)
    values = rec.values
    _require(
        isinstance(values, list | tuple) and 1 <= len(values) <= MAX_VALUES,
        f"{path}.values",
        f"a list of 1..{MAX_VALUES} IPv4 addresses",
        values,
    )
    for i, value in enumerate(values):
        _require(_ipv4(value), f"{path}.values[{i}]", "an IPv4 address like 127.0.0.1", value)
        _require(allow_remote or _loopback(value), f"{path}.values[{i}]", _LOCAL, value)
    _require(len(set(values)) == len(values), f"{path}.values", "distinct addresses", values)
    set_id = rec.set_id
    _require(
        set_id is None or (isinstance(set_id, str) and bool(_SET_ID.fullmatch(set_id))),
        f"{path}.set_id",
        "1..128 letters, digits or ._:-",
        set_id,
    )
    weight = rec.weight
    _require(weight is None or _int_in(weight, 0, MAX_WEIGHT), f"{path}.weight", "0..255", weight)
    failover = rec.failover
    if failover is not None:
        known = isinstance(failover, str) and failover.upper() in Failover.__members__
        _require(known, f"{path}.failover", "PRIMARY or SECONDARY", failover)
        failover = Failover(failover.upper())
    check = rec.health_check
    _require(check is None or isinstance(check, str), f"{path}.health_check", "an id", check)
    region = rec.region
    _require(
        region is None or (isinstance(region, str) and bool(region)), f"{path}.region",
        "a region's name", region,
    )  # fmt: skip
    routing = {"weight": weight, "failover": rec.failover, "region": region}
    _require(
        sum(v is not None for v in routing.values()) <= 1,
        path,
        "one of weight, failover and region (one routing policy)",
        {k: v for k, v in routing.items() if v is not None},
    )
    simple = weight is None and failover is None and region is None
    if simple:
        _require(set_id is None, f"{path}.set_id", "absent on a simple record", set_id)
        _require(check is None, f"{path}.health_check", "absent on a simple record", check)
    else:
        _require(set_id is not None, f"{path}.set_id", "set on a routed record", None)
    return Record(name, tuple(values), rec.ttl, set_id, weight, failover, check, region)


def check_sets(
    records: Iterable[tuple[int, Record]], checks: Mapping[str, object]
) -> dict[str, tuple[Record, ...]]:
    """Group checked records by name and check the rules of each record set."""
    groups: dict[str, list[tuple[int, Record]]] = {}
    for i, rec in records:
        groups.setdefault(rec.name, []).append((i, rec))
    return {name: _check_set(name, group, checks) for name, group in groups.items()}


def _check_set(
    name: str, group: list[tuple[int, Record]], checks: Mapping[str, object]
) -> tuple[Record, ...]:
    first_i, first = group[0]
    set_ids: dict[str, int] = {}
    roles: dict[Failover, int] = {}
    for i, rec in group:
        path = f"records[{i}]"
        if i != first_i:
            if rec.policy is not first.policy:
                raise ZoneError(
                    f"{path}: {name} is a {first.policy} record set (records[{first_i}]); "
                    f"one name has one routing policy (got {rec.policy})"
                )
            if rec.policy is Policy.SIMPLE:
                raise ZoneError(
                    f"{path}.name: {name} already has a simple record (records[{first_i}]); "
                    "put every address in its values"
                )
            _require(rec.ttl == first.ttl, f"{path}.ttl", f"{first.ttl}, as in {name}", rec.ttl)
        if rec.set_id is not None:
            if rec.set_id in set_ids:
                raise ZoneError(
                    f"{path}.set_id: {rec.set_id!r} is already used by "
                    f"records[{set_ids[rec.set_id]}] of {name}"
                )
            set_ids[rec.set_id] = i
        if rec.health_check is not None:
            known = ", ".join(sorted(checks)) or "none defined"
            _require(
                rec.health_check in checks,
                f"{path}.health_check",
                f"the id of a health check ({known})",
                rec.health_check,
            )
        if rec.failover is not None:
            if rec.failover in roles:
                raise ZoneError(
                    f"{path}.failover: {name} already has a {rec.failover} record "
                    f"(records[{roles[rec.failover]}])"
                )
            roles[rec.failover] = i
            if rec.failover is Failover.PRIMARY:
                _require(
                    rec.health_check is not None,
                    f"{path}.health_check",
                    "set on a PRIMARY record (without one it never fails over)",
                    None,
                )
    if first.policy is Policy.FAILOVER and len(roles) != 2:
        raise ZoneError(
            f"records[{first_i}].failover: {name} needs one PRIMARY and one SECONDARY record "
            f"(got only {first.failover})"
        )
    if first.policy is Policy.WEIGHTED and len(group) > MAX_WEIGHTED:
        raise ZoneError(
            f"records[{group[MAX_WEIGHTED][0]}]: {name} has more than {MAX_WEIGHTED} weighted "
            "records (Route 53's limit)"
        )
    return tuple(rec for _, rec in group)


def check_health(
    cfg: HealthCheckConfig, path: str, allow_remote: bool = False
) -> HealthCheckConfig:
    _require(
        isinstance(cfg.id, str) and bool(_ID.fullmatch(cfg.id)),
        f"{path}.id",
        "1..64 letters, digits or ._:-",
        cfg.id,
    )
    _require(isinstance(cfg.host, str) and bool(cfg.host), f"{path}.host", "a host", cfg.host)
    _require(allow_remote or _loopback(cfg.host), f"{path}.host", _LOCAL, cfg.host)
    _require(_int_in(cfg.port, 1, 65535), f"{path}.port", "1..65535", cfg.port)
    _require(
        isinstance(cfg.path, str) and cfg.path.startswith("/"),
        f"{path}.path",
        "a path starting with '/'",
        cfg.path,
    )
    interval = cfg.interval_s
    _require(
        finite(interval) and 0 < interval <= 300, f"{path}.interval_s", "> 0 and <= 300", interval
    )
    _require(
        finite(cfg.timeout_s) and 0 < cfg.timeout_s <= interval,
        f"{path}.timeout_s",
        f"> 0 and at most interval_s ({interval})",
        cfg.timeout_s,
    )
    _require(
        _int_in(cfg.failure_threshold, 1, 10),
        f"{path}.failure_threshold",
        "1..10",
        cfg.failure_threshold,
    )
    rise = cfg.success_threshold
    _require(rise is None or _int_in(rise, 1, 10), f"{path}.success_threshold", "1..10", rise)
    return cfg


# --- JSON ----------------------------------------------------------------------------------------

_RECORD_FIELDS: Final = tuple(f.name for f in fields(Record))
_CHECK_FIELDS: Final = tuple(f.name for f in fields(HealthCheckConfig))
_ZONE_FIELDS: Final = ("zone", "records", "health_checks", "regions")


def _object(
    data: object, path: str, known: Sequence[str], required: Sequence[str]
) -> dict[str, Any]:
    """`data` as a JSON object with only `known` keys and every one of `required`; a `path`
    of "" is the top level."""
    _require(isinstance(data, dict), path or "zone file", "an object", data)
    assert isinstance(data, dict)
    prefix = f"{path}." if path else ""
    for key in data:
        if key not in known:
            raise ZoneError(f"{prefix}{key}: unknown field (known: {', '.join(known)})")
    for key in required:
        if key not in data:
            raise ZoneError(f"{prefix}{key}: required")
    return data


def _list(data: object, path: str) -> list[Any]:
    _require(isinstance(data, list), path, "a list", data)
    assert isinstance(data, list)
    return data


def record_from_json(data: object, path: str, name: str | None = None) -> Record:
    """A `Record` from its JSON object (fields not yet checked); `name` is the default name."""
    obj = _object(data, path, _RECORD_FIELDS, ("values",) if name else ("name", "values"))
    values = obj["values"]
    return Record(
        name=obj.get("name", name or ""),
        values=tuple(values) if isinstance(values, list) else values,
        ttl=obj.get("ttl", DEFAULT_TTL),
        set_id=obj.get("set_id"),
        weight=obj.get("weight"),
        failover=obj.get("failover"),
        health_check=obj.get("health_check"),
        region=obj.get("region"),
        type=obj.get("type", "A"),
    )


def _health_from_json(data: object, path: str) -> HealthCheckConfig:
    obj = _object(data, path, _CHECK_FIELDS, ("id", "port"))
    return HealthCheckConfig(**obj)


def zone_from_json(
    data: object,
) -> tuple[Any, list[Record], list[HealthCheckConfig], Regions | None]:
    """The origin, records, health checks and regions of a zone file's JSON (fields not yet
    checked, except the regions')."""
    obj = _object(data, "", _ZONE_FIELDS, ("zone", "records"))
    records = [
        record_from_json(item, f"records[{i}]")
        for i, item in enumerate(_list(obj["records"], "records"))
    ]
    checks = [
        _health_from_json(item, f"health_checks[{i}]")
        for i, item in enumerate(_list(obj.get("health_checks", []), "health_checks"))
    ]
    regions = None
    if "regions" in obj:
        try:
            regions = Regions.from_json(obj["regions"], "regions")
        except NetworkError as exc:
            raise ZoneError(str(exc)) from None
    return obj["zone"], records, checks, regions
