"""The gateway in one process on real sockets: routing, limits, 429/502/504, metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from targets.gateway.config import config_from_json
from targets.gateway.gateway import Gateway
from targets.http.client import Client
from targets.http.messages import Request
from targets.http.router import RouteError
from targets.http.server import HttpServer, ResponseWriter

pytestmark = pytest.mark.inprocess


@dataclass
class Upstream:
    """A stand-in for a service's load balancer: echoes the target it got, maybe slowly."""

    name: str
    delay_s: float = 0.0
    seen: list[str] = field(default_factory=list)
    server: HttpServer | None = None

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        await request.body.read_all()
        self.seen.append(request.target.decode())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        writer.send_json(200, {"service": self.name, "target": request.target.decode()})


@dataclass
class Setup:
    gateway: Gateway
    upstreams: dict[str, Upstream]
    client: Client

    async def call(
        self, path: str, method: str = "GET", client_id: str | None = None
    ) -> tuple[int, dict[str, Any], dict[bytes, bytes]]:
        headers = [(b"x-client-id", client_id.encode())] if client_id else None
        reply = await self.client.request(method, path, headers=headers)
        return reply.status, json.loads(reply.body), dict(reply.headers)


Start = Callable[[list[dict[str, Any]]], Awaitable[Setup]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    servers: list[HttpServer] = []
    clients: list[Client] = []
    gateways: list[Gateway] = []

    async def _start(routes: list[dict[str, Any]]) -> Setup:
        upstreams: dict[str, Upstream] = {}
        for route in routes:
            service = route["service"]
            if service not in upstreams:
                upstream = Upstream(service)
                upstream.server = HttpServer(upstream)
                await upstream.server.listen()
                servers.append(upstream.server)
                upstreams[service] = upstream
            host, port = upstreams[service].server.address  # type: ignore[union-attr]
            route.setdefault("upstream", f"{host}:{port}")
        gateway = Gateway(config_from_json({"routes": routes}))
        http = HttpServer(gateway)
        await http.listen()
        servers.append(http)
        gateways.append(gateway)
        client = Client(*http.address, max_connections=64)
        clients.append(client)
        return Setup(gateway, upstreams, client)

    yield _start
    for client in clients:
        client.close()
    for gateway in gateways:
        gateway.close()
    for server in servers:
        await server.shutdown(1)


SHOP = [
    {"name": "auth", "path": "/api/auth", "service": "auth"},
    {"name": "orders", "path": "/api/orders", "service": "orders"},
    {"name": "legacy", "path": "/legacy", "service": "orders", "strip_prefix": True},
]


async def test_routes_go_to_their_service_with_the_path_they_should(start: Start) -> None:
    """Each prefix reaches its own upstream; strip_prefix forwards the rest, query kept."""
    setup = await start([dict(r) for r in SHOP])
    status, body, _ = await setup.call("/api/auth/login", "POST")
    assert (status, body["service"], body["target"]) == (200, "auth", "/api/auth/login")
    status, body, _ = await setup.call("/api/orders/7?full=1")
    assert (body["service"], body["target"]) == ("orders", "/api/orders/7?full=1")
    status, body, _ = await setup.call("/legacy/orders/9?x=2")
    assert (body["service"], body["target"]) == ("orders", "/orders/9?x=2")


async def test_no_route_is_a_json_404(start: Start) -> None:
    """A path no route takes: 404 {"message": "Not Found"} naming the path; nothing forwarded."""
    setup = await start([dict(r) for r in SHOP])
    status, body, _ = await setup.call("/api/nothing")
    assert (status, body["message"], body["path"]) == (404, "Not Found", "/api/nothing")
    assert all(not u.seen for u in setup.upstreams.values())


async def test_a_burst_gets_burst_allowed_and_the_rest_429_per_client(start: Start) -> None:
    """Token bucket, burst 5: 8 at once from one client give 5 x 200 and 3 x 429 with
    Retry-After and RateLimit fields; another client still has its whole burst."""
    limit = {"name": "per-client", "key": "client", "rate": 1, "burst": 5}
    setup = await start(
        [{"name": "orders", "path": "/api", "service": "orders", "limits": [limit]}]
    )
    replies = await asyncio.gather(*(setup.call("/api/x", client_id="ann") for _ in range(8)))
    statuses = sorted(status for status, _, _ in replies)
    assert statuses == [200] * 5 + [429] * 3
    _, body, headers = next(r for r in replies if r[0] == 429)
    assert body == {"message": "Too Many Requests", "route": "orders", "limit": "per-client"}
    assert headers[b"retry-after"] == b"1"
    assert headers[b"ratelimit-policy"] == b'"per-client";q=5;w=5'
    assert headers[b"ratelimit"].startswith(b'"per-client";r=0;t=')
    others = await asyncio.gather(*(setup.call("/api/x", client_id="bob") for _ in range(5)))
    assert [status for status, _, _ in others] == [200] * 5


async def test_shaping_delays_the_excess_instead_of_rejecting_it(start: Start) -> None:
    """Leaky bucket (shaping), rate 20/s, burst 3: 3 at once all pass, spaced by the rate."""
    limit = {"key": "route", "algorithm": "leaky_bucket_shaping", "rate": 20, "burst": 3}
    setup = await start([{"name": "r", "path": "/", "service": "s", "limits": [limit]}])
    loop = asyncio.get_running_loop()
    began = loop.time()
    replies = await asyncio.gather(*(setup.call("/x") for _ in range(3)))
    assert [status for status, _, _ in replies] == [200, 200, 200]
    assert loop.time() - began >= 2 / 20 * 0.9  # the third waited two intervals
    counted = setup.gateway.metrics.limits.values
    assert counted[("r", "route-leaky_bucket_shaping", "delayed")] == 2


async def test_route_timeout_is_504_and_a_dead_upstream_502_naming_the_route(
    start: Start,
) -> None:
    """A slow upstream beyond the route's timeout_s: 504; a refused one: 502; bodies say which."""
    setup = await start(
        [
            {"name": "slow", "path": "/slow", "service": "slow", "timeout_s": 0.2},
            {"name": "gone", "path": "/gone", "service": "gone", "upstream": "127.0.0.1:1"},
        ]
    )
    setup.upstreams["slow"].delay_s = 1.0
    status, body, _ = await setup.call("/slow")
    assert (status, body["error"], body["route"], body["service"]) == (
        504,
        "upstream_timeout",
        "slow",
        "slow",
    )
    status, body, _ = await setup.call("/gone")
    assert (status, body["error"], body["route"]) == (502, "upstream_refused", "gone")
    codes = setup.gateway.metrics.requests.values
    assert codes[("slow", "504")] == 1
    assert codes[("gone", "502")] == 1


async def test_a_timeout_on_a_kept_alive_connection_is_the_same_504(start: Start) -> None:
    """The fast path (an idle pooled connection, no body) times out with the same 504 body and
    counts as the task path does."""
    setup = await start([{"name": "slow", "path": "/slow", "service": "slow", "timeout_s": 0.2}])
    assert (await setup.call("/slow"))[0] == 200  # leaves the connection idle in the pool
    setup.upstreams["slow"].delay_s = 1.0
    status, body, _ = await setup.call("/slow")
    assert (status, body["message"], body["error"], body["route"], body["service"]) == (
        504,
        "Gateway Timeout",
        "upstream_timeout",
        "slow",
        "slow",
    )
    assert setup.gateway.metrics.requests.values[("slow", "504")] == 1
    assert setup.gateway.metrics.upstream_errors.labels("slow", "timeout")._value.get() == 1


@pytest.mark.core
@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (
            [
                {
                    "name": "a",
                    "path": "/a",
                    "service": "s",
                    "upstream": "h:1",
                    "limits": [{"rate": 0}],
                }
            ],
            r"routes\[0\].limits\[0\].rate: Input should be greater than 0",
        ),
        (
            [
                {"name": "a", "path": "/a", "service": "s", "upstream": "h:1", "match": "exact"},
                {"name": "b", "path": "/a", "service": "t", "upstream": "h:2", "match": "exact"},
            ],
            r"routes\[1\].path: '/a' overlaps routes\[0\]",
        ),
        ([{"name": "a", "path": "/a", "service": "s"}], r"routes\[0\].upstream: required"),
        (
            [{"name": "a", "path": "/a", "service": "s", "upstream": "h:1", "colour": 1}],
            r"routes\[0\].colour: unknown field",
        ),
        (
            [{"name": "a", "path": "/a", "service": "s", "upstream": "nope"}],
            r"routes\[0\].upstream: expected HOST:PORT",
        ),
    ],
)
def test_bad_config_names_the_field(routes: list[dict[str, Any]], message: str) -> None:
    """Invalid limits, overlapping exact routes, missing or unknown fields: RouteError by path."""
    with pytest.raises(RouteError, match=message):
        config_from_json({"routes": routes})
