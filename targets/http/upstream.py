"""The upstream side of the HTTP/1.1 engine: a bounded keep-alive connection pool per target.

`UpstreamPool.acquire()` hands out an idle connection (most recently used first) or opens one, up
to `max_connections`; beyond that, callers wait for a release. A connection sends one request at a
time and parses the response with httptools; its body streams through a `BodyReader`.

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
from typing import cast

import httptools

from targets.http.body import BodyReader
from targets.http.deadline import Deadline
from targets.http.messages import Headers

TIMEOUT_REASONS = frozenset({"connect_timeout", "timeout", "pool_timeout"})


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


@dataclass(slots=True, eq=False)
class UpstreamResponse:
    status: int
    headers: Headers
    content_length: int | None
    body: BodyReader
    keep_alive: bool


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an upstream; one request at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.requests_sent = 0
        self.idle_since = 0.0
        self._head: asyncio.Future[UpstreamResponse] | None = None
        self._headers: Headers = []
        self._content_length: int | None = None
        self._response: UpstreamResponse | None = None
        self._head_only = False
        self._complete = True
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
        response = self._response
        if (
            response is not None
            and not self._complete
            and self._content_length is None
            and not response.body.done
            and not _is_chunked(response.headers)
        ):
            # A close-delimited body (no length, not chunked) ends with the connection.
            self._complete = True
            response.body.feed_eof()
            return
        self._fail(UpstreamError("reset", "upstream closed the connection", reached=True))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("bad_response", f"malformed response: {exc}", reached=True))
            self.abort()
            return
        if not self._complete and self._timeout_s > 0:
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
        if self._head is None or self._head.done():
            self._fail(UpstreamError("bad_response", "response without a request", reached=True))
            return
        body = BodyReader(self._pause_reading, self._resume_reading)
        response = UpstreamResponse(
            status=status,
            headers=self._headers,
            content_length=self._content_length,
            body=body,
            keep_alive=self.parser.should_keep_alive(),
        )
        self._response = response
        if self._head_only or status in (204, 304):
            # llhttp cannot be told the request was HEAD: end the message here, drop the link.
            self._complete = True
            body.feed_eof()
            self._broken = True
        self._head.set_result(response)

    def on_body(self, data: bytes) -> None:
        if self._response is not None and not self._complete:
            self._response.body.feed(data)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 or self._response is None:
            return
        if not self._complete:
            self._complete = True
            self._response.body.feed_eof()
        self._deadline.clear()

    # -- used by the proxy ------------------------------------------------------------------
    def send(self, head: bytes, *, head_only: bool, timeout_s: float) -> None:
        """Start a request: write its head; the body (if any) follows with `write`."""
        assert self.transport is not None
        self.requests_sent += 1
        self._head = self.loop.create_future()
        self._head.add_done_callback(_retrieve)  # a body-send failure may leave it unawaited
        self._response = None
        self._complete = False
        self._head_only = head_only
        self._timeout_s = timeout_s
        if self._timeout_s > 0:
            self._deadline.set(self._timeout_s)
        self.transport.write(head)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is None:
            raise UpstreamError("reset", "upstream closed the connection", reached=True)
        if self._write_paused:
            self._drain = self.loop.create_future()
            await self._drain

    async def response(self) -> UpstreamResponse:
        """Wait for the response head, up to the timeout given to `send`."""
        assert self._head is not None
        return await self._head

    @property
    def reusable(self) -> bool:
        return (
            self.transport is not None
            and not self._broken
            and self._complete
            and self._response is not None
            and self._response.keep_alive
            and self._response.body.done
        )

    def abort(self) -> None:
        self._broken = True
        if self.transport is not None:
            self.transport.abort()

    # -- internals --------------------------------------------------------------------------
    def _fail(self, error: UpstreamError) -> None:
        self._broken = True
        self._deadline.clear()
        error.reused = self.requests_sent > 1
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        elif self._response is not None and not self._complete:
            self._complete = True
            self._response.body.fail(error)
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(error)

    def _on_timeout(self) -> None:
        self._fail(
            UpstreamError("timeout", f"no response within {self._timeout_s:g} s", reached=True)
        )
        self.abort()

    def _pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()


def _retrieve(future: asyncio.Future[UpstreamResponse]) -> None:
    if not future.cancelled():
        future.exception()


def _is_chunked(headers: Headers) -> bool:
    return any(n == b"transfer-encoding" for n, _ in headers)


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
    ) -> None:
        self.host = host
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

    async def acquire(self) -> UpstreamConnection:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        while True:
            if self.closed:
                raise UpstreamError("refused", "target removed from the pool", reached=False)
            now = loop.time()
            while self._idle:
                conn = self._idle.pop()
                if conn.transport is None or conn.transport.is_closing():
                    continue
                if now - conn.idle_since > self.idle_timeout_s:
                    conn.abort()
                    continue
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
        loop = asyncio.get_running_loop()
        self._connecting += 1
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port),
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
