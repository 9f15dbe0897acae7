"""The shared proxy hop on real sockets: which path a try takes, what the policy hears, answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from targets.http.client import Client
from targets.http.hop import Hop
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter, ServerLimits
from targets.http.upstream import UpstreamError, UpstreamPool
from tests.http.conftest import Echo, exchange, parse_responses, read_responses

pytestmark = pytest.mark.inprocess


@dataclass
class Trail:
    """What a test's policy heard, in order, and which path each request's first try took."""

    heard: list[tuple[object, ...]] = field(default_factory=list)
    fast: list[bool] = field(default_factory=list)
    abandoned: asyncio.Event = field(default_factory=asyncio.Event)


class Recording(Hop):
    """A policy that records every outcome and retries on the pools it was given, in order."""

    __slots__ = ("body", "retries", "trail")

    def __init__(
        self,
        request: Request,
        writer: ResponseWriter,
        trail: Trail,
        retries: list[UpstreamPool],
        body: bool,
    ) -> None:
        Hop.__init__(self, request, writer, 2.0)
        self.trail = trail
        self.retries = retries
        self.body = body

    def answered(self, status: int) -> None:
        self.trail.heard.append(("answered", status))

    def failed(self, error: UpstreamError) -> UpstreamPool | None:
        self.trail.heard.append(("failed", error.reason, error.reached))
        return self.retries.pop(0) if self.retries else None

    def gave_up(self, status: int, own: bool) -> None:
        self.trail.heard.append(("gave_up", status, own))

    def abandoned(self) -> None:
        self.trail.heard.append(("abandoned",))
        self.trail.abandoned.set()

    def failure_body(self, status: int, error: str, detail: str) -> object | None:
        return {"mine": error} if self.body else None


@dataclass
class Lab:
    address: tuple[str, int]
    echo: Echo
    pool: UpstreamPool  # to the echo upstream
    trail: Trail
    route: Callable[[Request], tuple[UpstreamPool, list[UpstreamPool]]]
    body: bool = False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _crashing_upstream() -> HttpServer:
    """An upstream that answers /warm and drops the connection on anything else."""

    async def handler(request: Request, writer: ResponseWriter) -> None:
        await request.body.read_all()
        if request.path != "/warm":
            raise ConnectionResetError("crash before answering")
        writer.send_json(200, {"warm": True})

    server = HttpServer(handler, ServerLimits(name="crashing"))
    await server.listen()
    return server


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    echo = Echo()
    upstream = HttpServer(echo, ServerLimits(name="echo"))
    await upstream.listen()
    pool = UpstreamPool(*upstream.address, max_connections=8, connect_timeout_s=1.0)
    trail = Trail()
    made = Lab(("", 0), echo, pool, trail, lambda _: (pool, []))

    def handler(request: Request, writer: ResponseWriter) -> Awaitable[None] | None:
        first, retries = made.route(request)
        pending = Recording(request, writer, trail, retries, made.body).send(first)
        trail.fast.append(pending is None)
        return pending

    proxy = HttpServer(handler, ServerLimits(name="proxy"))
    await proxy.listen()
    made.address = proxy.address
    yield made
    echo.release.set()
    pool.close()
    await proxy.shutdown(1)
    await upstream.shutdown(1)


async def test_a_bodiless_request_on_an_idle_connection_takes_the_fast_path(lab: Lab) -> None:
    """The first request connects (a task); the next, kept alive upstream, runs on callbacks;
    a request with a body always runs as a task. Each try is answered once."""
    client = Client(*lab.address, max_connections=1)
    try:
        for method, body in (("GET", b""), ("GET", b""), ("POST", b"x")):
            reply = await client.request(method, "/a", body=body)
            assert reply.status == 200
    finally:
        client.close()
    assert lab.trail.fast == [False, True, False]
    assert lab.trail.heard == [("answered", 200)] * 3


async def test_a_refused_upstream_is_one_failure_then_the_hops_own_502(lab: Lab) -> None:
    """Nothing listens: the policy hears `failed` (not reached) once, then `gave_up` with the
    502 the hop wrote: the engine's error body, or the policy's own body when it has one."""
    gone = UpstreamPool("127.0.0.1", _free_port(), connect_timeout_s=1)
    lab.route = lambda _: (gone, [])
    data, _ = await exchange(lab.address, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", timeout=1)
    (response,) = parse_responses(data)
    assert response.status == 502
    assert response.json()["error"] == "upstream_refused"
    assert response.json()["source"] == "proxy"
    lab.body = True
    data, _ = await exchange(lab.address, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", timeout=1)
    (response,) = parse_responses(data)
    assert (response.status, response.json()) == (502, {"mine": "upstream_refused"})
    assert lab.trail.heard == [("failed", "refused", False), ("gave_up", 502, True)] * 2


async def test_a_failed_fast_try_is_retried_where_the_policy_says(lab: Lab) -> None:
    """A reset on the fast path, and a refusal in a task, each go on to the pool `failed`
    returned, and the client gets that upstream's answer."""
    crashing = await _crashing_upstream()
    flaky = UpstreamPool(*crashing.address)
    gone = UpstreamPool("127.0.0.1", _free_port(), connect_timeout_s=1)
    lab.route = lambda request: (
        (flaky, [lab.pool]) if request.method == "GET" else (gone, [lab.pool])
    )
    reader, writer = await asyncio.open_connection(*lab.address)
    try:
        writer.write(b"GET /warm HTTP/1.1\r\nHost: a\r\n\r\n")  # leaves flaky a kept-alive link
        writer.write(b"GET /crash HTTP/1.1\r\nHost: a\r\n\r\n")
        writer.write(b"POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
        responses = await read_responses(reader, 3)
    finally:
        writer.close()
        flaky.close()
        await crashing.shutdown(1)
    assert [r.status for r in responses] == [200, 200, 200]
    assert [r.json().get("path") for r in responses] == [None, "/crash", "/post"]
    assert lab.trail.fast == [False, True, False]
    assert lab.trail.heard == [
        ("answered", 200),
        ("failed", "reset", True),
        ("answered", 200),
        ("failed", "refused", False),
        ("answered", 200),
    ]


async def test_a_failure_after_the_head_was_sent_aborts_the_client(lab: Lab) -> None:
    """The upstream crashes mid-body: no answer of the hop's own, the client connection is
    cut, and the policy hears `gave_up` with the upstream's status, not its own."""
    data, closed = await exchange(lab.address, b"GET /reset HTTP/1.1\r\nHost: a\r\n\r\n")
    assert closed
    assert data.startswith(b"HTTP/1.1 200")
    assert parse_responses(data) == []
    assert lab.trail.heard == [("failed", "reset", True), ("gave_up", 200, False)]


async def test_a_client_that_goes_away_abandons_the_try(lab: Lab) -> None:
    """A client closing while its request waits upstream cancels the task: `abandoned`, no
    failure, nothing answered."""
    _, writer = await asyncio.open_connection(*lab.address)
    writer.write(b"POST /wait HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
    await lab.echo.arrived.wait()
    writer.close()
    await asyncio.wait_for(lab.trail.abandoned.wait(), 2)
    assert lab.trail.heard == [("abandoned",)]
