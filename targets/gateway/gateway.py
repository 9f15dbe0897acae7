"""The API gateway adapter: route, rate-limit, forward to the service's load balancer.

`Gateway` is an `HttpServer` handler. For each request:

1. `Router.match` picks the route (404 `{"message": "Not Found"}` when none, API Gateway's
   body, plus the path);
2. each of the route's limits decides for its key (the client id header, else the client
   address; or the client address; or the whole route): a rejection answers 429 with
   `Retry-After` and the rate-limit fields of draft-ietf-httpapi-ratelimit-headers-10
   (`RateLimit-Policy`, `RateLimit`), `{"message": "Too Many Requests"}` and the limit's name;
   a shaping limit may instead hold the request for `delay_s`;
3. the request goes to the route's upstream (its service's load balancer) with the route's
   path (prefix stripped when asked) through the engine's proxy hop (`targets.http.hop`):
   on the fast path when it has no body, no delay and an idle pooled connection, else as a
   task; `_RouteHop` is the gateway's side of it (metrics, error bodies). The route's
   `timeout_s` bounds the upstream's answer: 504 `upstream_timeout`; a refused or broken
   upstream is 502; both bodies name the route and the service.

The gateway never retries: the load balancer behind it does. Client keys never become metric
labels; routes and limit names do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, Counter

from targets.fastmetrics import BornAtZeroRegistry, FastCounter, FastHistogram
from targets.http.hop import Hop
from targets.http.messages import Request
from targets.http.router import Route, Router
from targets.http.server import ResponseWriter
from targets.http.upstream import UpstreamError, UpstreamPool
from targets.limiter.core import Decision, LimitConfig
from targets.limiter.headers import ratelimit_fields, retry_after
from targets.limiter.keyed import KeyedLimiter

KeyKind = Literal["client", "address", "route"]
NO_ROUTE = "none"


@dataclass(frozen=True, slots=True)
class RouteLimit:
    """One limit on a route: `config` per key of kind `key`."""

    name: str
    config: LimitConfig
    key: KeyKind = "client"


@dataclass(frozen=True, slots=True)
class RouteConfig:
    route: Route
    upstream: tuple[str, int]  # the service's load balancer
    timeout_s: float = 30.0  # API Gateway's HTTP API default integration timeout
    limits: tuple[RouteLimit, ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    name: str = "gateway"
    routes: tuple[RouteConfig, ...] = ()
    client_header: bytes = b"x-client-id"
    connect_timeout_s: float = 1.0
    max_connections_per_upstream: int = 512
    max_keys: int = 100_000


@dataclass(slots=True)
class _Limit:
    spec: RouteLimit
    keyed: KeyedLimiter


@dataclass(slots=True)
class _Route:
    config: RouteConfig
    pool: UpstreamPool
    limits: list[_Limit] = field(default_factory=list)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = FastCounter(
            "gateway_requests_total",
            "Requests answered, by route ('none' when no route matched) and status code.",
            ["route", "code"],
        )
        self.duration = FastHistogram(
            "gateway_request_duration_seconds",
            "Request head received to response complete, by route (limiter delays included).",
            ["route"],
        )
        self.limits = FastCounter(
            "gateway_limiter_decisions_total",
            "Rate-limit decisions, by route, limit name and outcome (allowed, delayed, rejected).",
            ["route", "limit", "outcome"],
        )
        registry.register(self.requests)
        registry.register(self.duration)
        registry.register(self.limits)
        self.upstream_errors = Counter(
            "gateway_upstream_errors_total",
            "Failed exchanges with a route's upstream, by route and reason.",
            ["route", "reason"],
            registry=registry,
        )

    def zero(self, route: str, limits: tuple[RouteLimit, ...]) -> None:
        """Series a route will need, from 0 (rate() misses a counter born non-zero)."""
        for code in ("429", "502", "504"):
            self.requests.inc((route, code), 0)
        self.duration.declare((route,))  # a quantile without traffic is NaN, not "no data"
        for limit in limits:
            for outcome in ("allowed", "delayed", "rejected"):
                self.limits.inc((route, limit.name, outcome), 0)

    def answered(self, route: str, status: int, seconds: float) -> None:
        self.requests.inc((route, _CODES.get(status) or str(status)))
        self.duration.observe((route,), seconds)


_CODES = {code: str(code) for code in range(100, 600)}


class Gateway:
    def __init__(self, config: GatewayConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.router = Router([r.route for r in config.routes])
        self.registry = registry or BornAtZeroRegistry()
        self.metrics = GatewayMetrics(self.registry)
        self.metrics.requests.inc((NO_ROUTE, "404"), 0)
        pools: dict[tuple[str, int], UpstreamPool] = {}
        self.routes: dict[str, _Route] = {}
        for rc in config.routes:
            pool = pools.get(rc.upstream)
            if pool is None:
                pool = pools[rc.upstream] = UpstreamPool(
                    *rc.upstream,
                    max_connections=config.max_connections_per_upstream,
                    connect_timeout_s=config.connect_timeout_s,
                )
            limits = [_Limit(s, KeyedLimiter(s.config, config.max_keys)) for s in rc.limits]
            self.routes[rc.route.name] = _Route(rc, pool, limits)
            self.metrics.zero(rc.route.name, rc.limits)
        self.pools = list(pools.values())

    def close(self) -> None:
        for pool in self.pools:
            pool.close()

    def __call__(self, request: Request, writer: ResponseWriter) -> Awaitable[None] | None:
        started = time.perf_counter()
        match = self.router.match(request.method, request.path, request.query)
        if match is None:
            body = {"message": "Not Found", "error": "no_route", "path": request.path}
            writer.send_json(404, body)
            self.metrics.answered(NO_ROUTE, 404, time.perf_counter() - started)
            return None
        route = self.routes[match.route.name]
        delay = 0.0
        if route.limits:
            now = time.monotonic()
            for limit in route.limits:
                decision = limit.keyed.decide(self._key(limit.spec.key, request), now)
                if not decision.allowed:
                    self._reject(writer, route, limit, decision, started)
                    return None
                outcome = "delayed" if decision.delay_s > 0 else "allowed"
                self.metrics.limits.inc((match.route.name, limit.spec.name, outcome))
                delay = max(delay, decision.delay_s)
        request.target = match.target
        hop = _RouteHop(self, route, request, writer, started)
        if delay > 0:
            return _after(delay, hop, route.pool)
        return hop.send(route.pool)

    def _key(self, kind: KeyKind, request: Request) -> str:
        if kind == "route":
            return ""
        if kind == "client":
            given = request.header(self.config.client_header)
            if given:
                return "id:" + given.decode("latin-1")
        return "ip:" + request.client[0]

    def _reject(
        self,
        writer: ResponseWriter,
        route: _Route,
        limit: _Limit,
        decision: Decision,
        started: float,
    ) -> None:
        name = route.config.route.name
        self.metrics.limits.inc((name, limit.spec.name, "rejected"))
        fields = ratelimit_fields(decision, limit.spec.config, limit.spec.name)
        after = retry_after(decision)
        if after is not None:
            fields.append(("Retry-After", after))
        headers = [(k.lower().encode(), v.encode()) for k, v in fields]
        body = {"message": "Too Many Requests", "route": name, "limit": limit.spec.name}
        writer.send_json(429, body, headers)
        self.metrics.answered(name, 429, time.perf_counter() - started)


class _RouteHop(Hop):
    """One request on its route's upstream: the route's timeout, metrics and error bodies.
    No retry: the load balancer behind the gateway retries."""

    __slots__ = ("gateway", "route", "started")

    def __init__(
        self,
        gateway: Gateway,
        route: _Route,
        request: Request,
        writer: ResponseWriter,
        started: float,
    ) -> None:
        # Hop.__init__'s three fields, set here: one call less per request.
        self.request = request
        self.writer = writer
        self.timeout_s = route.config.timeout_s
        self.gateway = gateway
        self.route = route
        self.started = started

    def answered(self, status: int) -> None:
        name = self.route.config.route.name
        self.gateway.metrics.answered(name, status, time.perf_counter() - self.started)

    def failed(self, error: UpstreamError) -> UpstreamPool | None:
        self.gateway.metrics.upstream_errors.labels(
            self.route.config.route.name, error.reason
        ).inc()
        return None

    def gave_up(self, status: int, own: bool) -> None:
        self.answered(status)

    def failure_body(self, status: int, error: str, detail: str) -> object:
        """502 or 504 naming the route and the service (API Gateway's message)."""
        return {
            "message": "Gateway Timeout" if status == 504 else "Bad Gateway",
            "error": error,
            "route": self.route.config.route.name,
            "service": self.route.config.route.service,
            "detail": detail,
        }


async def _after(delay: float, hop: _RouteHop, pool: UpstreamPool) -> None:
    """A shaping limit's delay, then the request (always as a task: it is one already)."""
    await asyncio.sleep(delay)
    await hop.run(pool)
