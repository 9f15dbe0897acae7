"""The gateway's configuration file (JSON; the harness writes it from the topology).

    {"name": "gateway",
     "client_header": "x-client-id",
     "routes": [
       {"name": "orders", "path": "/api/orders", "service": "orders",
        "upstream": "127.0.0.1:4002",
        "match": "prefix", "methods": ["GET", "POST"], "strip_prefix": false, "timeout_s": 30,
        "limits": [{"name": "per-client", "key": "client",
                    "algorithm": "token_bucket", "rate": 50, "burst": 20}]}]}

`match` is `prefix` (default) or `exact`; a path with `{param}` segments is a param route.
`key` is `client` (the client header, else the address), `address` or `route`. `algorithm` is
one of `targets.limiter.core.ALGORITHM_NAMES`. Every error names its field:
`routes[1].limits[0].rate: must be > 0 ... (got 0)`.
"""

from __future__ import annotations

from typing import Any

from targets.gateway.gateway import GatewayConfig, RouteConfig, RouteLimit
from targets.gateway.routes import Route, RouteError, Router
from targets.limiter.core import ConfigError, LimitConfig
from targets.runtime import parse_hostport

_ROUTE_FIELDS = frozenset(
    {
        "name",
        "path",
        "service",
        "upstream",
        "match",
        "methods",
        "strip_prefix",
        "timeout_s",
        "limits",
    }
)
_LIMIT_FIELDS = frozenset({"name", "key", "algorithm", "rate", "burst"})


def _object(
    data: object, where: str, allowed: frozenset[str], required: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RouteError(f"{where or '(file)'}: expected a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RouteError(f"{where}.{unknown[0]}: unknown field".lstrip("."))
    for name in required:
        if name not in data:
            raise RouteError(f"{where}.{name}: required".lstrip("."))
    return data


def _limit(data: object, where: str) -> RouteLimit:
    obj = _object(data, where, _LIMIT_FIELDS, ("rate",))
    key = obj.get("key", "client")
    if key not in ("client", "address", "route"):
        raise RouteError(f"{where}.key: must be client, address or route (got {key!r})")
    try:
        config = LimitConfig(obj["rate"], obj.get("burst", 1), obj.get("algorithm", "token_bucket"))
    except ConfigError as exc:
        raise RouteError(f"{where}.{exc}") from None
    name = obj.get("name", f"{key}-{config.algorithm}")
    if not isinstance(name, str) or not name:
        raise RouteError(f"{where}.name: must be a non-empty string (got {name!r})")
    return RouteLimit(name, config, key)


def _route(data: object, where: str) -> RouteConfig:
    obj = _object(data, where, _ROUTE_FIELDS, ("name", "path", "service", "upstream"))
    methods = obj.get("methods", [])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise RouteError(f"{where}.methods: must be a list of method names")
    match = obj.get("match", "prefix")
    if match not in ("prefix", "exact"):
        raise RouteError(f"{where}.match: must be prefix or exact (got {match!r})")
    timeout = obj.get("timeout_s", 30.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise RouteError(f"{where}.timeout_s: must be > 0 and <= 3600 (got {timeout!r})")
    try:
        upstream = parse_hostport(str(obj["upstream"]), flag=f"{where}.upstream")
    except ValueError as exc:
        raise RouteError(str(exc)) from None
    limits = obj.get("limits", [])
    if not isinstance(limits, list):
        raise RouteError(f"{where}.limits: must be a list")
    route = Route(
        str(obj["name"]),
        str(obj["path"]),
        str(obj["service"]),
        match=match,
        methods=frozenset(m.upper() for m in methods),
        strip_prefix=bool(obj.get("strip_prefix", False)),
    )
    return RouteConfig(
        route,
        upstream,
        float(timeout),
        tuple(_limit(item, f"{where}.limits[{i}]") for i, item in enumerate(limits)),
    )


def config_from_json(data: object) -> GatewayConfig:
    """The gateway's config from its JSON; RouteError naming the field when it is wrong."""
    obj = _object(data, "", frozenset({"name", "client_header", "routes"}), ("routes",))
    routes = obj["routes"]
    if not isinstance(routes, list):
        raise RouteError("routes: must be a list")
    parsed = tuple(_route(item, f"routes[{i}]") for i, item in enumerate(routes))
    names = [r.route.name for r in parsed]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise RouteError(f"routes[{i}].name: {name!r} is used by another route")
    Router([r.route for r in parsed])  # overlaps and malformed paths, by route index
    header = str(obj.get("client_header", "x-client-id")).lower().encode("latin-1")
    return GatewayConfig(name=str(obj.get("name", "gateway")), routes=parsed, client_header=header)


def config_to_json(config: GatewayConfig) -> dict[str, Any]:
    """What `config_from_json` reads back (for GET /routes)."""
    return {
        "name": config.name,
        "client_header": config.client_header.decode("latin-1"),
        "routes": [
            {
                "name": r.route.name,
                "path": r.route.path,
                "service": r.route.service,
                "upstream": f"{r.upstream[0]}:{r.upstream[1]}",
                "match": r.route.match,
                "methods": sorted(r.route.methods),
                "strip_prefix": r.route.strip_prefix,
                "timeout_s": r.timeout_s,
                "limits": [
                    {
                        "name": limit.name,
                        "key": limit.key,
                        "algorithm": limit.config.algorithm,
                        "rate": limit.config.rate,
                        "burst": limit.config.burst,
                    }
                    for limit in r.limits
                ],
            }
            for r in config.routes
        ],
    }
