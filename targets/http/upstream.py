"""The upstream side of the HTTP/1.1 engine: a bounded keep-alive connection pool per target.

`UpstreamPool.acquire()` hands out an idle connection (most recently used first) or opens one, up
to `max_connections`; beyond that, callers wait for a release. A connection sends one request at a
time, parses the response with httptools and hands its events to a `ResponseSink`: either a
`PendingResponse` (await the head, read a `BodyReader`) or a callback object (the proxy's fast
path, which needs no task and no future).

Errors form one small tree:

    UpstreamError(reason, reached)
        "refused", "connect_timeout", "pool_timeout"   reached=False: safe to retry anywhere
        "reset", "timeout", "bad_response"             reached=True: the server may have acted

`status` maps the reason to what a proxy answers: 504 for the timeouts, 502 for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from dataclasses import dataclass
from typing import Protocol, cast

import httptools

from targets.http.body import BodyReader
from targets.http.deadline import Deadline
from targets.http.messages import Headers

TIMEOUT_REASONS = frozenset({"connect_timeout", "timeout", "pool_timeout"})
UPSTREAM_REASONS = (
    "refused",
    "connect_timeout",
    "pool_timeout",
    "reset",
    "timeout",
    "bad_response",
)


class UpstreamError(Exception):
    """The upstream could not give a (complete) response; `reason` says why."""

    def __init__(self, reason: str, detail: str, *, reached: bool) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.reached = reached
        # The connection had carried earlier requests: a reset may just be a keep-alive race.
        self.reused = False

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"

    @property
    def status(self) -> int:
        return 504 if self.reason in TIMEOUT_REASONS else 502


class ResponseSink(Protocol):
    """Where a connection delivers the events of one response, in this order:
    `response_head`, any number of `response_body`, then `response_end`; or `response_failed`
    at any point instead of the rest. Exactly one of `response_end`/`response_failed` comes."""

    def response_head(self, status: int, headers: Headers, content_length: int | None) -> None: ...

    def response_body(self, data: bytes) -> None: ...

    def response_end(self) -> None: ...

    def response_failed(self, error: UpstreamError) -> None: ...


@dataclass(slots=True, eq=False)
class UpstreamResponse:
    status: int
    headers: Headers
    content_length: int | None
    body: BodyReader


class PendingResponse:
    """The sink for coroutine callers: `await wait()` for the head, then read `body`."""

    __slots__ = ("_conn", "_future", "_response")

    def __init__(self, conn: UpstreamConnection) -> None:
        self._conn = conn
        self._future: asyncio.Future[UpstreamResponse] = conn.loop.create_future()
        self._response: UpstreamResponse | None = None

    async def wait(self) -> UpstreamResponse:
        return await self._future

    def response_head(self, status: int, headers: Headers, content_length: int | None) -> None:
        body = BodyReader(self._conn.pause_reading, self._conn.resume_reading)
        self._response = UpstreamResponse(status, headers, content_length, body)
        self._future.set_result(self._response)

    def response_body(self, data: bytes) -> None:
        assert self._response is not None
        self._response.body.feed(data)

    def response_end(self) -> None:
        assert self._response is not None
        self._response.body.feed_eof()

    def response_failed(self, error: UpstreamError) -> None:
        if self._response is not None:
            self._response.body.fail(error)
        elif not self._future.done():
            self._future.add_done_callback(_retrieve)  # the caller may never await it
            self._future.set_exception(error)


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an upstream; one request at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.requests_sent = 0
        self.idle_since = 0.0
        self._sink: ResponseSink | None = None  # None between requests
        self._headers: Headers = []
        self._content_length: int | None = None
        self._close_delimited = False
        self._head_only = False
        self._keep_alive = False
        self._broken = False
        self._deadline = Deadline(self.loop, self._on_timeout)
        self._timeout_s = 0.0
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._broken = True
        self._deadline.cancel()
        self.pool._forget(self)
        if self._close_delimited and self._sink is not None:
            self._finish()  # a body without length or chunking ends with the connection
        else:
            self._fail(UpstreamError("reset", "upstream closed the connection", reached=True))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(
                UpstreamError("reset", "upstream closed the connection", reached=True)
            )

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("bad_response", f"malformed response: {exc}", reached=True))
            self.abort()
            return
        if self._sink is not None and self._timeout_s > 0:
            self._deadline.set(self._timeout_s)  # the upstream is alive: the clock restarts

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # -- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._headers = []
        self._content_length = None

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self._content_length = int(value)
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim response (100 Continue): the real one follows
        sink = self._sink
        if sink is None:
            self._fail(UpstreamError("bad_response", "response without a request", reached=True))
            self.abort()
            return
        self._keep_alive = self.parser.should_keep_alive()
        no_body = self._head_only or status in (204, 304)
        self._close_delimited = (
            not no_body
            and self._content_length is None
            and not any(n == b"transfer-encoding" for n, _ in self._headers)
        )
        sink.response_head(status, self._headers, self._content_length)
        if no_body and self._sink is sink:
            # llhttp cannot be told the request was HEAD: end the message here, drop the link.
            self._broken = True
            self._finish()

    def on_body(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink.response_body(data)

    def on_message_complete(self) -> None:
        if not 100 <= self.parser.get_status_code() < 200 and self._sink is not None:
            self._finish()

    # -- used by the proxy ------------------------------------------------------------------
    def send(self, head: bytes, sink: ResponseSink, *, head_only: bool, timeout_s: float) -> None:
        """Start a request: write its head; the body (if any) follows with `write`."""
        self.requests_sent += 1
        self._sink = sink
        if self.transport is None:  # closed after the pool handed it out: nothing was sent
            self._fail(UpstreamError("reset", "upstream closed before the request", reached=False))
            return
        self._close_delimited = False
        self._head_only = head_only
        self._timeout_s = timeout_s
        if timeout_s > 0:
            self._deadline.set(timeout_s)
        self.transport.write(head)

    def start(self, head: bytes, *, head_only: bool, timeout_s: float) -> PendingResponse:
        """`send` for coroutine callers: returns what to await."""
        pending = PendingResponse(self)
        self.send(head, pending, head_only=head_only, timeout_s=timeout_s)
        return pending

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is None:
            raise UpstreamError("reset", "upstream closed the connection", reached=True)
        if self._write_paused:
            self._drain = self.loop.create_future()
            await self._drain

    @property
    def reusable(self) -> bool:
        """Idle, intact and kept alive by the upstream: may carry the next request."""
        return (
            self._sink is None
            and self.transport is not None
            and not self._broken
            and self._keep_alive
        )

    def abort(self) -> None:
        self._broken = True
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    # -- internals --------------------------------------------------------------------------
    def _finish(self) -> None:
        sink, self._sink = self._sink, None
        self._deadline.clear()
        self._close_delimited = False
        if sink is not None:
            sink.response_end()

    def _fail(self, error: UpstreamError) -> None:
        self._broken = True
        sink, self._sink = self._sink, None
        self._deadline.clear()
        if sink is not None:
            error.reused = self.requests_sent > 1
            sink.response_failed(error)

    def _on_timeout(self) -> None:
        self._fail(
            UpstreamError("timeout", f"no response within {self._timeout_s:g} s", reached=True)
        )
        self.abort()


def _retrieve(future: asyncio.Future[UpstreamResponse]) -> None:
    if not future.cancelled():
        future.exception()


class UpstreamPool:
    """Keep-alive connections to one `host:port`, at most `max_connections` open at once."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int = 256,
        connect_timeout_s: float = 2.0,
        idle_timeout_s: float = 30.0,
        source: str | None = None,
    ) -> None:
        self.host = host
        self.source = None if source is None else (source, 0)  # the local address to bind
        self.port = port
        self.max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._idle: list[UpstreamConnection] = []
        self._open: set[UpstreamConnection] = set()
        self._connecting = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def take_idle(self) -> UpstreamConnection | None:
        """An idle kept-alive connection, at once, or None (then `acquire` may connect)."""
        if self.closed:
            return None
        now = self.loop.time()
        while self._idle:
            conn = self._idle.pop()
            if conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self.idle_timeout_s:
                conn.abort()
                continue
            return conn
        return None

    async def acquire(self) -> UpstreamConnection:
        loop = self.loop
        while True:
            if self.closed:
                raise UpstreamError("refused", "target removed from the pool", reached=False)
            conn = self.take_idle()
            if conn is not None:
                return conn
            if len(self._open) + self._connecting < self.max_connections:
                return await self._connect()
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, self.connect_timeout_s)
            except TimeoutError:
                raise UpstreamError(
                    "pool_timeout",
                    f"all {self.max_connections} connections busy for {self.connect_timeout_s:g} s",
                    reached=False,
                ) from None
            finally:
                if not waiter.done():
                    waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    async def _connect(self) -> UpstreamConnection:
        loop = self.loop
        self._connecting += 1
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(self), self.host, self.port, local_addr=self.source
                ),
                self.connect_timeout_s,
            )
        except TimeoutError:
            raise UpstreamError(
                "connect_timeout",
                f"no connection to {self.host}:{self.port} within {self.connect_timeout_s:g} s",
                reached=False,
            ) from None
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise UpstreamError(
                "refused", f"connect to {self.host}:{self.port}: {why}", reached=False
            ) from None
        finally:
            self._connecting -= 1
        self._open.add(conn)
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """Give a connection back: kept if it can carry another request, closed otherwise."""
        if conn.reusable and not self.closed:
            conn.idle_since = conn.loop.time()
            self._idle.append(conn)
        else:
            conn.abort()
            self._open.discard(conn)
        self._wake()

    def _forget(self, conn: UpstreamConnection) -> None:
        self._open.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close_idle(self) -> None:
        """Close the connections nobody uses right now (busy ones stay until released)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.abort()

    def abort_all(self) -> None:
        """Close every connection now, busy ones included (their requests fail with "reset")."""
        self.close()
        for conn in list(self._open):
            conn.abort()

    def close(self) -> None:
        """Close idle connections now; busy ones close when released."""
        self.closed = True
        self.close_idle()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
