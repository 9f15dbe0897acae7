"""Errors the engine produces itself, and request-smuggling attempts, on real sockets."""

from __future__ import annotations

import asyncio
import socket

import pytest

from targets.http.proxy import forward
from targets.http.server import HttpServer, ServerLimits
from targets.http.upstream import UpstreamError, UpstreamPool
from tests.http.conftest import Echo, Proxy, exchange, parse_responses, start_proxy

pytestmark = pytest.mark.inprocess


def check_error(data: bytes, status: int, error: str) -> None:
    """`data` holds exactly one response: `status`, a JSON body naming `error`, then close."""
    (response,) = parse_responses(data)
    assert response.status == status, response.body
    assert response.json()["error"] == error
    assert response.header(b"connection") == b"close"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            "ambiguous_framing",
            id="CL.TE",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
            b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            "ambiguous_framing",
            id="TE.CL",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
            "ambiguous_framing",
            id="duplicate-CL",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            "ambiguous_framing",
            id="TE-not-chunked",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            "malformed_request",
            id="space-before-colon",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nabc\r\n0\r\n\r\n",
            "bad_chunk",
            id="bad-chunk-size",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
            "ambiguous_framing",
            id="negative-CL",
        ),
        pytest.param(b"GARBAGE\r\n\r\n", "malformed_request", id="bad-request-line"),
        pytest.param(b"GET / HTTP/1.1\nHost: a\n\n", "malformed_request", id="bare-LF"),
    ],
)
async def test_ambiguous_or_malformed_requests_get_400_and_never_reach_upstream(
    proxy: Proxy, raw: bytes, error: str
) -> None:
    """Framing the proxy could read differently from the upstream is refused with 400."""
    data, closed = await exchange(proxy.address, raw)
    check_error(data, 400, error)
    assert closed
    assert not any(s.target == b"/smuggled" for s in proxy.echo.seen)


async def test_bad_chunk_mid_body_gets_400() -> None:
    """A broken chunk after a good one fails the upload with 400, not a hang or a 502."""
    echo = Echo()
    upstream, server, pool = await start_proxy(echo)
    try:
        raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nXYZ\r\n"
        data, _ = await exchange(server.address, raw, timeout=3)
        check_error(data, 400, "bad_chunk")
    finally:
        pool.close()
        await server.shutdown(1)
        await upstream.shutdown(1)


async def test_oversized_head_gets_431() -> None:
    """A request head over the limit is refused with 431, whether one header or many."""
    echo = Echo()
    upstream, server, pool = await start_proxy(echo, ServerLimits(max_header_bytes=8192))
    try:
        big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
        data, _ = await exchange(server.address, big)
        check_error(data, 431, "headers_too_large")
        many = b"GET / HTTP/1.1\r\n" + b"".join(
            b"X-H%d: %s\r\n" % (i, b"v" * 50) for i in range(400)
        )
        data, _ = await exchange(server.address, many + b"\r\n")
        check_error(data, 431, "headers_too_large")
        assert echo.seen == []
    finally:
        pool.close()
        await server.shutdown(1)
        await upstream.shutdown(1)


async def test_oversized_body_gets_413_for_both_framings() -> None:
    """With a body limit, a large Content-Length is refused at once and a chunked one mid-way."""
    echo = Echo()
    upstream, server, pool = await start_proxy(echo, ServerLimits(max_body_bytes=1000))
    try:
        data, _ = await exchange(
            server.address, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n"
        )
        check_error(data, 413, "body_too_large")
        chunked = (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"400\r\n"
            + b"a" * 1024
            + b"\r\n0\r\n\r\n"
        )
        data, _ = await exchange(server.address, chunked)
        check_error(data, 413, "body_too_large")
        small, _ = await exchange(
            server.address, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"
        )
        assert parse_responses(small)[0].status == 200
    finally:
        pool.close()
        await server.shutdown(1)
        await upstream.shutdown(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_refused_upstream_gets_502_naming_it() -> None:
    """When nothing listens upstream, the client gets 502 whose body says the connect failed."""
    pool = UpstreamPool("127.0.0.1", _free_port(), connect_timeout_s=1)

    async def handler(request, writer):  # type: ignore[no-untyped-def]
        try:
            await forward(request, writer, pool, response_timeout_s=1)
        except UpstreamError as exc:
            writer.send_error(exc.status, f"upstream_{exc.reason}", exc.detail)

    server = HttpServer(handler)
    await server.listen()
    try:
        data, _ = await exchange(server.address, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", timeout=1)
        (response,) = parse_responses(data)
        assert response.status == 502
        assert response.json()["error"] == "upstream_refused"
        assert "refused" in str(response.json()["detail"]).lower()
    finally:
        await server.shutdown(1)


async def test_slow_upstream_gets_504_and_reset_upstream_aborts_client() -> None:
    """No answer within the response timeout is a 504; a crash mid-body aborts the client."""
    echo = Echo()
    upstream = HttpServer(echo)
    await upstream.listen()
    pool = UpstreamPool(*upstream.address)

    async def handler(request, writer):  # type: ignore[no-untyped-def]
        try:
            await forward(request, writer, pool, response_timeout_s=0.3)
        except UpstreamError as exc:
            if not writer.started:
                writer.send_error(exc.status, f"upstream_{exc.reason}", exc.detail)
            else:
                raise

    server = HttpServer(handler)
    await server.listen()
    try:
        data, _ = await exchange(server.address, b"GET /slow?s=2 HTTP/1.1\r\nHost: a\r\n\r\n")
        (response,) = parse_responses(data)
        assert response.status == 504
        assert response.json()["error"] == "upstream_timeout"
        data, closed = await exchange(server.address, b"GET /reset HTTP/1.1\r\nHost: a\r\n\r\n")
        assert closed
        assert parse_responses(data) == []  # a head arrived, but never a complete response
        assert data.startswith(b"HTTP/1.1 200")
    finally:
        pool.close()
        await server.shutdown(1)
        await upstream.shutdown(1)


async def test_slow_request_head_gets_408_and_idle_connection_closes() -> None:
    """A head that trickles past the header timeout gets 408; an idle keep-alive one is closed."""
    echo = Echo()
    limits = ServerLimits(header_timeout_s=0.3, keepalive_timeout_s=0.3)
    upstream, server, pool = await start_proxy(echo, limits)
    try:
        data, closed = await exchange(server.address, b"GET / HTTP/1.1\r\nHost: a\r\n", timeout=3)
        check_error(data, 408, "header_timeout")
        assert closed
        data, closed = await exchange(
            server.address, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", timeout=3
        )
        assert parse_responses(data)[0].status == 200
        assert closed  # closed by the server after 0.3 s idle, well before our 3 s
    finally:
        pool.close()
        await server.shutdown(1)
        await upstream.shutdown(1)


async def test_pool_waits_for_a_free_connection_then_times_out() -> None:
    """With every pooled connection busy, a request waits, and gets 504 when none frees up."""
    echo = Echo()
    upstream, server, _ = await start_proxy(echo)
    pool = UpstreamPool(*upstream.address, max_connections=1, connect_timeout_s=0.2)
    try:
        conn = await pool.acquire()
        with pytest.raises(UpstreamError) as err:
            await pool.acquire()
        assert err.value.reason == "pool_timeout"
        assert err.value.status == 504
        assert not err.value.reached
        conn.abort()
        pool.release(conn)
        again = await asyncio.wait_for(pool.acquire(), 1)
        again.abort()
    finally:
        pool.close()
        await server.shutdown(1)
        await upstream.shutdown(1)


async def test_a_connection_closed_after_acquire_fails_as_not_sent() -> None:
    """A pooled connection the upstream closed before the request went out fails the request
    as never sent (reset, reached=False: safe to retry), never as a crash of the caller."""
    upstream = HttpServer(Echo())
    await upstream.listen()
    pool = UpstreamPool(*upstream.address)
    try:
        conn = await pool.acquire()
        conn.connection_lost(None)  # the upstream went away between acquire and send
        pending = conn.start(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", head_only=False, timeout_s=1)
        with pytest.raises(UpstreamError) as failed:
            await pending.wait()
        assert (failed.value.reason, failed.value.reached) == ("reset", False)
    finally:
        pool.close()
        await upstream.shutdown(1)
