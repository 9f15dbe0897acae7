"""The engine as a reverse proxy, on real sockets: bodies, keep-alive, headers, shutdown."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from targets.http.client import fetch
from tests.http.conftest import (
    Echo,
    Proxy,
    exchange,
    parse_responses,
    read_responses,
    start_proxy,
)

pytestmark = pytest.mark.inprocess


async def test_content_length_body_is_streamed_through_intact(proxy: Proxy) -> None:
    """A 3 MiB Content-Length upload reaches the upstream byte for byte."""
    body = bytes(range(256)) * (3 * 4096)
    reply = await fetch(*proxy.address, "POST", "/upload", body=body, timeout_s=10)
    assert reply.status == 200
    assert reply.json()["sha"] == hashlib.sha256(body).hexdigest()
    seen = proxy.echo.seen[-1]
    assert seen.header(b"content-length") == str(len(body)).encode()
    assert seen.header(b"transfer-encoding") is None


async def test_chunked_request_body_is_forwarded_chunked() -> None:
    """A chunked upload (with chunk extensions) arrives whole and still chunked upstream."""
    echo = Echo()
    upstream, server, pool = await start_proxy(echo)
    try:
        raw = (
            b"POST /c HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        data, _ = await exchange(
            server.address, raw + b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", timeout=1
        )
        responses = parse_responses(data)
        assert [r.status for r in responses] == [200, 200]
        assert responses[0].json()["sha"] == hashlib.sha256(b"hello world").hexdigest()
        assert echo.seen[0].header(b"transfer-encoding") == b"chunked"
    finally:
        pool.close()
        await server.shutdown(1)
        await upstream.shutdown(1)


async def test_response_of_unknown_length_is_chunked_to_the_client(proxy: Proxy) -> None:
    """An upstream body without Content-Length reaches an HTTP/1.1 client chunked and complete."""
    total = 2 * 1024 * 1024 + 17
    raw = f"GET /stream/{total} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
    data, closed = await exchange(proxy.address, raw)
    (response,) = parse_responses(data)
    assert closed
    assert response.header(b"transfer-encoding") == b"chunked"
    assert len(response.body) == total


async def test_http10_client_gets_a_close_delimited_body(proxy: Proxy) -> None:
    """An HTTP/1.0 client cannot read chunked: it gets the body until the connection closes."""
    data, closed = await exchange(proxy.address, b"GET /stream/1000 HTTP/1.0\r\n\r\n")
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert body == b"x" * 1000


async def test_keep_alive_reuses_one_upstream_connection(proxy: Proxy) -> None:
    """Three requests on one client connection travel over one pooled upstream connection."""
    reader, writer = await asyncio.open_connection(*proxy.address)
    for _ in range(3):
        writer.write(b"GET /k HTTP/1.1\r\nHost: a\r\n\r\n")
        (response,) = await read_responses(reader, 1)
        assert response.status == 200
        assert response.header(b"connection") is None
    writer.close()
    assert len({s.client_port for s in proxy.echo.seen}) == 1
    assert proxy.pool.open_connections == 1


async def test_pipelined_requests_are_answered_in_order(proxy: Proxy) -> None:
    """Requests sent back to back on one connection get their responses in the same order."""
    raw = b"".join(f"GET /p{i} HTTP/1.1\r\nHost: a\r\n\r\n".encode() for i in range(5))
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(raw)
    responses = await read_responses(reader, 5)
    writer.close()
    assert [r.json()["path"] for r in responses] == [f"/p{i}" for i in range(5)]


async def test_hop_by_hop_headers_are_dropped_and_forwarding_headers_added(proxy: Proxy) -> None:
    """Connection-named, hop-by-hop and proxy auth headers stop at the proxy; XFF is appended."""
    raw = (
        b"GET /h HTTP/1.1\r\nHost: shop.local\r\nConnection: keep-alive, X-Secret\r\n"
        b"X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: x\r\n"
        b"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Keep: yes\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(raw)
    (response,) = await read_responses(reader, 1)
    writer.close()
    assert response.status == 200
    assert response.header(b"x-upstream") == b"echo"
    seen = proxy.echo.seen[-1]
    names = {n for n, _ in seen.headers}
    assert not names & {b"x-secret", b"keep-alive", b"te", b"proxy-authorization"}
    assert seen.header(b"connection") is None
    assert seen.header(b"host") == b"shop.local"
    assert seen.header(b"x-keep") == b"yes"
    assert seen.header(b"x-forwarded-for") == b"203.0.113.9, 127.0.0.1"
    assert seen.header(b"x-forwarded-proto") == b"http"


async def test_head_request_has_no_body_but_keeps_the_length(proxy: Proxy) -> None:
    """HEAD gets the headers of GET, Content-Length included, and not a byte of body."""
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    following = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length: " in head.lower()
    assert following.startswith(b"HTTP/1.1 200")  # the next response at once: no HEAD body


async def test_expect_continue_is_answered_before_the_body(proxy: Proxy) -> None:
    """A client that waits for 100 Continue gets it, sends its body, and gets the response."""
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(
        b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"hello")
    (response,) = await read_responses(reader, 1)
    writer.close()
    assert response.json()["len"] == 5
    assert proxy.echo.seen[-1].header(b"expect") is None


async def test_graceful_shutdown_finishes_in_flight_requests(proxy: Proxy) -> None:
    """On shutdown the listener closes at once, but a request in flight still completes."""
    held = asyncio.create_task(exchange(proxy.address, b"GET /wait HTTP/1.1\r\nHost: a\r\n\r\n"))
    await proxy.echo.arrived.wait()  # in flight: the upstream holds it until released
    idle_reader, idle_writer = await asyncio.open_connection(*proxy.address)
    idle_writer.write(b"GET /k HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [r.status for r in await read_responses(idle_reader, 1)] == [200]
    shutdown = asyncio.create_task(proxy.server.shutdown(5.0))
    # The server closes idle connections right after its listener: this EOF says both happened.
    assert await asyncio.wait_for(idle_reader.read(), 2) == b""
    idle_writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection(*proxy.address)
    assert not held.done()
    proxy.echo.release.set()
    data, closed = await held
    await shutdown
    (response,) = parse_responses(data)
    assert response.status == 200
    assert response.header(b"connection") == b"close"
    assert closed
