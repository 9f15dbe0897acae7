"""The gateway's configuration, in one schema: the pydantic models below.

The harness validates a topology's `gateway:` section with `GatewaySpec` and writes the
gateway's JSON file with `gateway_file` (each route's `upstream` filled in from its service's
load balancer); the gateway reads the file back with `config_from_json`. The file:

    {"name": "gateway",
     "client_header": "x-client-id",
     "routes": [
       {"name": "orders", "path": "/api/orders", "service": "orders",
        "upstream": "127.0.0.1:4002",
        "match": "prefix", "methods": ["GET", "POST"], "strip_prefix": false, "timeout_s": 30,
        "limits": [{"name": "per-client", "key": "client",
                    "algorithm": "token_bucket", "rate": 50, "burst": 20}]}]}

`match` is `prefix` (default) or `exact`; a path with `{param}` segments is a param route
(targets/http/router.py). `key` is `client` (the client header, else the address), `address`
or `route`. `algorithm` is a key of `targets.limiter.registry.ALGORITHMS`.

What the shape cannot say is checked by the cores that own it, inside validation: the route
table by `Router` (overlaps, malformed paths) and each limit by `LimitConfig`; those errors
carry the field's location like pydantic's own (`routes.1.path`), with the error type
`gateway` and a message that already names the value. `config_from_json` raises `RouteError`
naming every bad field: `routes[1].limits[0].rate: Input should be greater than 0 (got 0)`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from targets.gateway.gateway import GatewayConfig, KeyKind, RouteConfig, RouteLimit
from targets.http.router import Route, RouteError, Router
from targets.limiter.core import ConfigError, LimitConfig
from targets.limiter.registry import AlgorithmName
from targets.runtime import parse_hostport

__all__ = [
    "ERROR_TYPE",
    "GatewaySpec",
    "LimitSpec",
    "RouteSpec",
    "config_from_json",
    "config_to_json",
    "gateway_file",
]

ERROR_TYPE = "gateway"
"""The pydantic error type of the checks the cores make; its message names the value."""

_NAME = r"^[a-z][a-z0-9_-]{0,40}$"
_ROUTE_FIELD = re.compile(r"routes\[(\d+)\]\.([a-z_]+): (.*)", re.DOTALL)

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _invalid(title: str, loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """A validation error at `loc` (relative to the model being validated)."""
    error = PydanticCustomError(ERROR_TYPE, "{message}", {"message": message})
    return ValidationError.from_exception_data(
        title, [InitErrorDetails(type=error, loc=loc, input=value)]
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitSpec(_Strict):
    """A rate limit on a gateway route (targets/limiter): `rate` per second, `burst` at once,
    per `key`: `client` (the X-Client-Id header, else the address), `address`, or the route."""

    name: str | None = Field(default=None, pattern=_NAME)
    key: KeyKind = "client"
    algorithm: AlgorithmName = "token_bucket"
    rate: float = Field(gt=0, le=1_000_000)
    burst: int = Field(default=1, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _limiter_accepts(self) -> LimitSpec:
        try:
            self.config()
        except ConfigError as exc:
            field, _, message = str(exc).partition(": ")
            raise _invalid("LimitSpec", (field,), message, getattr(self, field, None)) from None
        return self

    @property
    def label(self) -> str:
        """Its name in metrics, headers and 429 bodies: `name`, else `<key>-<algorithm>`."""
        return self.name or f"{self.key}-{self.algorithm}"

    def config(self) -> LimitConfig:
        """The limiter core's settings (ConfigError naming the field when it refuses them)."""
        return LimitConfig(self.rate, self.burst, self.algorithm)


class RouteSpec(_Strict):
    """A gateway route to a service's load balancer (targets/http/router.py): `path` is a
    prefix (default), `exact`, or has `{param}` segments; the most specific route wins.
    `upstream` (HOST:PORT) is where the service's load balancer listens: the harness fills
    it in (`gateway_file`), a topology leaves it out."""

    name: str = Field(pattern=_NAME)
    path: str = Field(pattern=r"^/")
    service: str
    match: Literal["prefix", "exact"] = "prefix"
    methods: list[Method] = []
    strip_prefix: bool = False
    timeout_s: float = Field(default=30.0, gt=0, le=3600)  # API Gateway HTTP API's default
    limits: list[LimitSpec] = []
    upstream: str | None = None

    @field_validator("upstream")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_hostport(value, flag="upstream")
            except ValueError as exc:
                message = str(exc).partition(": ")[2]
                raise PydanticCustomError(ERROR_TYPE, "{message}", {"message": message}) from None
        return value

    def route(self) -> Route:
        """The router's entry for this route."""
        return Route(
            self.name,
            self.path,
            self.service,
            match=self.match,
            methods=frozenset(self.methods),
            strip_prefix=self.strip_prefix,
        )


class GatewaySpec(_Strict):
    """The API gateway in front of the services' load balancers (targets/gateway)."""

    name: str = Field(default="gateway", pattern=_NAME)
    client_header: str = Field(default="x-client-id", pattern=r"^[A-Za-z0-9-]{1,64}$")
    routes: list[RouteSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _route_table(self) -> GatewaySpec:
        first: dict[str, int] = {}
        for i, route in enumerate(self.routes):
            j = first.setdefault(route.name, i)
            if j != i:
                message = f"{route.name!r} is the name of routes[{j}] already"
                raise _invalid("GatewaySpec", ("routes", i, "name"), message, route.name)
        try:
            self.router()
        except RouteError as exc:
            raise _route_error(exc, self.routes) from None
        return self

    def router(self) -> Router:
        """The route table (RouteError naming the route by index when it cannot be built)."""
        return Router([route.route() for route in self.routes])


def _route_error(exc: RouteError, routes: list[RouteSpec]) -> ValidationError:
    """The router's `routes[i].field: message` at the location `routes.i.field`."""
    found = _ROUTE_FIELD.fullmatch(str(exc))
    if found is None:
        return _invalid("GatewaySpec", ("routes",), str(exc), None)
    i, field, message = int(found[1]), found[2], found[3]
    value = getattr(routes[i], field, None) if i < len(routes) else None
    return _invalid("GatewaySpec", ("routes", i, field), message, value)


def gateway_file(spec: GatewaySpec, upstreams: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The gateway's config file for `spec`: each route aimed at `upstreams[its service]`
    (its own `upstream` for a service not in `upstreams`), each limit named by its label."""
    routes = []
    for route in spec.routes:
        address = upstreams.get(route.service)
        routes.append(
            {
                **route.model_dump(mode="json", exclude={"limits", "upstream"}),
                "upstream": "{}:{}".format(*address) if address else route.upstream,
                "limits": [
                    {**limit.model_dump(mode="json", exclude={"name"}), "name": limit.label}
                    for limit in route.limits
                ],
            }
        )
    return {"name": spec.name, "client_header": spec.client_header, "routes": routes}


def config_from_json(data: object) -> GatewayConfig:
    """The gateway's config from its JSON; RouteError naming every field that is wrong (and
    the route, when one has no `upstream`)."""
    try:
        spec = GatewaySpec.model_validate(data)
    except ValidationError as exc:
        raise RouteError("; ".join(_describe(e) for e in exc.errors(include_url=False))) from None
    routes = []
    for i, route in enumerate(spec.routes):
        if route.upstream is None:
            raise RouteError(f"routes[{i}].upstream: required (route {route.name!r})")
        routes.append(
            RouteConfig(
                route.route(),
                parse_hostport(route.upstream, flag=f"routes[{i}].upstream"),
                route.timeout_s,
                tuple(RouteLimit(limit.label, limit.config(), limit.key) for limit in route.limits),
            )
        )
    header = spec.client_header.lower().encode("latin-1")
    return GatewayConfig(name=spec.name, routes=tuple(routes), client_header=header)


def _describe(error: Any) -> str:
    """`routes[1].limits[0].rate: Input should be greater than 0 (got 0)`."""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    where = where.lstrip(".") or "(file)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown field"
    message = str(error["msg"])
    if kind not in ("missing", ERROR_TYPE):
        message += f" (got {_short(error.get('input'))})"
    return f"{where}: {message}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
