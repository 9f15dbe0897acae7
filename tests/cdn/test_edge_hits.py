"""The edge's hit path in one process, on a clock the test moves: answers from the cache carry
the stored headers, X-Cache, the Age of that moment and Via, as every other answer's head is
built (`Edge._answer_headers`), although the hit path encodes its head once per entry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from targets.cdn.core import Result
from targets.cdn.edge import Edge, EdgeConfig
from targets.http.client import Reply, fetch
from targets.http.messages import Headers, Request
from targets.http.server import HttpServer, ResponseWriter

pytestmark = pytest.mark.inprocess

NAME = "edge-h"
BODY = b"cached body"
ORIGIN_HEADERS: Headers = [
    (b"cache-control", b"max-age=60"),
    (b"etag", b'"v1"'),
    (b"via", b"1.1 upstream"),
    (b"age", b"3"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def served() -> AsyncIterator[tuple[Edge, HttpServer, Clock]]:
    def origin(request: Request, writer: ResponseWriter) -> None:
        status = 404 if request.path == "/missing" else 200
        writer.send(status, ORIGIN_HEADERS, BODY)

    upstream = HttpServer(origin)
    await upstream.listen()
    clock = Clock()
    edge = Edge(EdgeConfig(name=NAME, origin=upstream.address), clock=clock)
    server = HttpServer(edge)
    await server.listen()
    yield edge, server, clock
    await server.shutdown(0.5)
    await edge.close()
    await upstream.shutdown(0.5)


async def get(server: HttpServer, path: str, method: str = "GET") -> Reply:
    return await fetch(*server.address, method, path, timeout_s=5.0)


def expected(edge: Edge, result: Result, age: float) -> Headers:
    """The head any answer from the cache with these origin headers gets, built field by field
    (`fetch` asks to close the connection)."""
    stored = tuple((n.decode(), v.decode()) for n, v in ORIGIN_HEADERS)
    framing = [(b"content-length", b"11"), (b"connection", b"close")]
    return [*edge._answer_headers(stored, result, age), *framing]


@pytest.mark.parametrize(("path", "result"), [("/a", Result.HIT), ("/missing", Result.ERROR)])
async def test_hits_carry_the_age_of_each_moment(
    served: tuple[Edge, HttpServer, Clock], path: str, result: Result
) -> None:
    edge, server, clock = served
    first = await get(server, path)
    assert (first.header(b"x-cache") or b"").startswith(b"Miss" if result is Result.HIT else b"Er")
    for elapsed in (0, 5, 17, 17.9, 40):
        clock.now = 1_000_000.0 + elapsed
        for method in ("GET", "HEAD"):
            reply = await get(server, path, method)
            assert reply.status == (200 if result is Result.HIT else 404)
            assert reply.headers == expected(edge, result, 3 + elapsed)
            assert reply.body == (BODY if method == "GET" else b"")
    assert reply.header(b"age") == b"43"
    assert reply.header(b"via") == f"1.1 upstream, 1.1 {NAME} (rushlab)".encode()
    misses_counted_alike = 1 if result is Result.ERROR else 0  # the first answer was Error too
    assert edge.metrics.requests.values[(result.value,)] == 10 + misses_counted_alike
