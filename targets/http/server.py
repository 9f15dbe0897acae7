"""The server side of the HTTP/1.1 engine: an asyncio Protocol on httptools.

One `_Connection` per client socket parses requests with httptools (llhttp, strict mode) and runs
the handler for one request at a time; pipelined requests wait in order. The handler receives the
`Request` (head plus streamed body) and a `ResponseWriter`, which chooses the framing:
Content-Length when the length is known, chunked otherwise (close-delimited for HTTP/1.0).

Errors the engine answers itself, with a JSON body naming the error:
    400  malformed request, ambiguous framing (Content-Length with Transfer-Encoding, duplicate
         Content-Length), bad chunk size, unsupported Transfer-Encoding
    408  the request head did not arrive within `header_timeout_s`
    413  the body is larger than `max_body_bytes` (when set)
    431  the request head is larger than `max_header_bytes`
    500  the handler failed before it started a response

Shutdown (`HttpServer.shutdown`): stop accepting, close idle connections, let in-flight requests
finish (their responses carry `Connection: close`), then abort whatever is left after the grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import httptools

from targets.http.body import EMPTY_BODY, BodyReader
from targets.http.deadline import Deadline
from targets.http.messages import Headers, Request, error_body, status_line
from targets.http.netem import Delays, Network
from targets.http.simple import SimpleReader

log = logging.getLogger(__name__)

Handler = Callable[[Request, "ResponseWriter"], Awaitable[None] | None]
"""Answers one request through its writer. A coroutine handler runs as a task; a plain function
may answer at once, or later from callbacks (the proxy's fast path), and returns None. Either
way the request is over when the writer ends (or aborts), not when the handler returns."""

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_MAX_PIPELINE = 32


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Limits and timeouts of the server side; `name` is the `source` in error bodies."""

    name: str = "http"
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int | None = None
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 60.0


class HttpError(Exception):
    """A request the engine refuses; becomes a response with `status` and a JSON body."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


def _parser_error(exc: httptools.HttpParserError) -> HttpError:
    detail = str(exc) or type(exc).__name__
    lowered = detail.lower()
    if "content-length" in lowered or "transfer-encoding" in lowered:
        return HttpError(400, "ambiguous_framing", detail)
    if "chunk" in lowered:
        return HttpError(400, "bad_chunk", detail)
    return HttpError(400, "malformed_request", detail)


class ResponseWriter:
    """Writes one response: `start`, any number of `write`, then `end` (or `send` for all three)."""

    __slots__ = (
        "_chunked",
        "_conn",
        "_has_body",
        "_head",
        "bytes_sent",
        "finished",
        "keep_alive",
        "on_client_gone",
        "on_writable",
        "request",
        "started",
        "status",
    )

    def __init__(self, conn: _Connection, request: Request | None, keep_alive: bool) -> None:
        self._conn = conn
        self.request = request
        # Called when the client disconnects before the response ends (cancel the work).
        self.on_client_gone: Callable[[], object] | None = None
        # Called when a client that was too slow can take more bytes (callback flow control).
        self.on_writable: Callable[[], object] | None = None
        self._chunked = False
        self._has_body = True
        self._head = b""  # held back to go out in one write with the first body bytes
        self.keep_alive = keep_alive
        self.started = False
        self.finished = False
        self.status = 0
        self.bytes_sent = 0

    def start(
        self,
        status: int,
        headers: Headers,
        content_length: int | None = None,
        *,
        head_only: bool = False,
    ) -> None:
        """Send the status line and headers. Framing headers are the writer's job, not the caller's.

        `content_length=None` means the length is unknown: the body goes chunked (HTTP/1.1) or
        until the connection closes (HTTP/1.0). `head_only` is for responses without a body
        (HEAD, 204, 304) that still report the length the body would have.
        """
        parts = [status_line(status)]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(self._framing(status, content_length, head_only))
        self._head = b"".join(parts)

    def _framing(self, status: int, content_length: int | None, head_only: bool) -> bytes:
        """Mark the response started; the framing and Connection lines that end its head."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        no_body = head_only or status in (204, 304) or 100 <= status < 200
        self._has_body = not no_body
        conn = self._conn
        length = b""
        if content_length is not None:
            if status != 204 and status >= 200:
                length = b"content-length: %d\r\n" % content_length
        elif not no_body:
            if conn.http11:
                self._chunked = True
                length = b"transfer-encoding: chunked\r\n"
            else:
                self.keep_alive = False
        self.keep_alive = keep_alive = self.keep_alive and conn.may_keep_alive()
        if not keep_alive:
            return length + b"connection: close\r\n\r\n"
        if not conn.http11:
            return length + b"connection: keep-alive\r\n\r\n"
        return length + b"\r\n"

    def write(self, data: bytes) -> None:
        if not data or not self._has_body:
            return
        self.bytes_sent += len(data)
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if self._head:
            data = self._head + data
            self._head = b""
        self._conn.write(data)

    async def drain(self) -> None:
        """Wait while the client is slower than we are (transport write buffer above its mark)."""
        self._flush_head()
        await self._conn.drain()

    @property
    def blocked(self) -> bool:
        """True while the client's socket buffer is full (callback writers: await on_writable)."""
        return self._conn.write_paused

    def end(self) -> None:
        """The response is complete: the connection moves on to its next request."""
        if self.finished:
            return
        self.finished = True
        tail = b"0\r\n\r\n" if self._chunked else b""
        if self._head or tail:
            self._conn.write(self._head + tail)
            self._head = b""
        self._conn.response_done(self)

    def continue_in(self, pending: Awaitable[None]) -> None:
        """Finish this response from a coroutine (a callback handler that must now wait)."""
        self._conn.run_handler(pending, self)

    def abort(self) -> None:
        """The response cannot be completed: drop the connection, the only honest signal left."""
        if not self.finished:
            self.finished = True
            self._conn.response_aborted()

    def _flush_head(self) -> None:
        if self._head:
            self._conn.write(self._head)
            self._head = b""

    def send(self, status: int, headers: Headers, body: bytes = b"") -> None:
        self.start(status, headers, len(body))
        self.write(body)
        self.end()

    def send_encoded(
        self, status: int, fields: bytes, body: bytes = b"", *, head_only: bool = False
    ) -> None:
        """`send` with the header lines already encoded: `fields` is ``name: value\\r\\n``
        lines, as `start` writes `headers`, without the framing and Connection ones (added
        here as there). For a head made once and sent many times (a cache's hits); the
        whole response goes out in one write."""
        data = status_line(status) + fields + self._framing(status, len(body), head_only)
        if body and self._has_body:  # `write` and `end`, inlined: this is every cache hit
            self.bytes_sent += len(body)
            data += body
        elif self.finished:  # aborted already: as `end` does, nothing more goes out
            return
        self._conn.write(data)
        if not self.finished:
            self.finished = True
            self._conn.response_done(self)

    def send_json(self, status: int, payload: object, headers: Headers | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send(status, [(b"content-type", b"application/json"), *(headers or [])], body)

    def send_error(self, status: int, error: str, detail: str) -> None:
        """A response the engine itself makes; the JSON body says which error, and who made it."""
        body = error_body(status, error, detail, self._conn.server.limits.name)
        self.send(status, [(b"content-type", b"application/json")], body)


def fail_handler(exc: Exception, writer: ResponseWriter) -> None:
    """A handler raised `exc`: its `HttpError`'s answer, else a 500 (logged), if nothing was
    sent yet; a response already started is aborted."""
    if isinstance(exc, HttpError):
        if not writer.started:
            writer.keep_alive = False
            writer.send_error(exc.status, exc.error, exc.detail)
    elif not isinstance(exc, ConnectionError):
        request = writer.request
        log.error("handler failed on %s", request and request.path, exc_info=exc)
        if not writer.started:
            writer.send_error(500, "handler_failed", "the request handler raised an error")
    if not writer.finished:
        writer.abort()


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs them in order, keeps alive or closes."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] = ("", 0)
        self.http11 = True
        # parsing state of the request being read
        self._url = b""
        self._headers: Headers = []
        self._head_bytes = 0
        self._in_head = True
        self._started = False  # bytes of a request arrived, its head is not complete
        self._content_length: int | None = None
        self._chunked = False
        self._expect_continue = False
        self._current: Request | None = None
        self._discarding = False
        # running state
        self._pipeline: deque[Request | HttpError] = deque()
        self._busy = False
        self._closing = False
        self._upgraded = False
        self._deadline = Deadline(self.loop, self._on_deadline)
        self.write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._reading_paused = False
        self._writer: ResponseWriter | None = None
        # False once httptools read a request that does not keep the connection alive: after
        # it llhttp refuses more bytes, so they must all go to it (`_simple_requests`).
        self._simple = True
        # Half the limit: what `on_header` counts per line is at most twice its length.
        self._simple_reader = SimpleReader(self.limits.max_header_bytes // 2)

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = (str(peer[0]), int(peer[1]))
        self.server._connections.add(self)
        self._deadline.set(self.limits.keepalive_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._closed(self)
        self._deadline.cancel()
        self._closing = True
        if self._current is not None:
            self._current.body.fail(ConnectionResetError("client closed the connection"))
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("client closed the connection"))
        self._drain_waiters.clear()
        self.transport = None
        writer = self._writer
        if self._busy and writer is not None and writer.on_client_gone is not None:
            # The client is gone: stop working for it (a proxy then drops its upstream
            # connection too, so the abandonment travels down the chain, as with nginx).
            writer.on_client_gone()

    def eof_received(self) -> bool:
        # A client that shuts down its side has gone away (as nginx and uvicorn treat it).
        return False

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        writer = self._writer
        if writer is not None and writer.on_writable is not None:
            writer.on_writable()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    def data_received(self, data: bytes) -> None:
        if self._upgraded:
            return
        if self._in_head and not self._started and self._simple:
            rest = self._simple_requests(data)
            if rest is not data:  # one simple request or more taken: the rest to httptools
                if rest:
                    self._feed(rest)
                return
        if self._in_head:
            self._head_bytes += len(data)
        self._feed(data)

    def _simple_requests(self, data: bytes) -> bytes:
        """Run the simple requests (`targets.http.simple`) at the start of `data` as httptools'
        callbacks would; what is left of `data` (`data` itself when none was there).

        Called between two requests only, so the parser, which never sees these bytes, is
        where it was: between two requests. The state the callbacks leave is left the same."""
        pos = 0
        size = len(data)
        read = self._simple_reader.read
        while pos < size:
            simple = read(data, pos)
            if simple is None:
                break
            method, target, headers, pos = simple
            self.http11 = True
            self._discarding = False
            # method, target, headers, version, keep_alive, client, body, length, chunked
            request = Request(
                method, target, headers, "1.1", True, self.client, EMPTY_BODY, None, False
            )
            if self._busy:
                self._deadline.clear()  # as `on_headers_complete` does (`_start` does it too)
                self._enqueue(request)
            else:
                self._start(request)
        if pos == 0:
            return data
        self._head_bytes = 0  # as `on_message_begin` and `on_message_complete` leave it
        return data[pos:]

    def _feed(self, data: bytes) -> None:
        """Parse `data` with httptools (its callbacks below run the requests)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # We do not tunnel upgrades: the request is answered as a plain one, then we close.
            self._upgraded = True
            self._closing = True
        except httptools.HttpParserCallbackError as exc:
            self._reject(exc.__context__ if isinstance(exc.__context__, HttpError) else None)
        except httptools.HttpParserError as exc:
            self._reject(_parser_error(exc))
        else:
            if self._in_head and self._head_bytes > self.limits.max_header_bytes:
                self._reject(_too_large_head(self.limits.max_header_bytes))

    # -- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._in_head = True
        self._started = True
        self._content_length = None
        self._chunked = False
        self._expect_continue = False
        self._deadline.set(self.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.max_header_bytes:
            raise _too_large_head(self.limits.max_header_bytes)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.limits.max_header_bytes:
            raise _too_large_head(self.limits.max_header_bytes)
        name = name.lower()
        if name == b"content-length":
            # llhttp already refuses a second Content-Length and one beside Transfer-Encoding.
            self._content_length = int(value)
        elif name == b"transfer-encoding":
            self._chunked = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._started = False
        self._deadline.clear()
        parser = self.parser
        self.http11 = parser.get_http_version() == "1.1"
        limit = self.limits.max_body_bytes
        if limit is not None and self._content_length is not None and self._content_length > limit:
            raise HttpError(413, "body_too_large", f"Content-Length over the {limit} byte limit")
        has_body = self._chunked or bool(self._content_length)
        body = (
            BodyReader(
                self._pause_reading,
                self._resume_reading,
                self._send_continue if self._expect_continue else None,
            )
            if has_body
            else EMPTY_BODY
        )
        keep_alive = parser.should_keep_alive()
        if not keep_alive:
            self._simple = False
        request = Request(  # by position (see `Request.__init__`), in its order
            parser.get_method().decode("ascii"),
            self._url,
            self._headers,
            "1.1" if self.http11 else "1.0",
            keep_alive,
            self.client,
            body,
            self._content_length,
            self._chunked,
        )
        self._current = request if has_body else None
        self._enqueue(request)

    def on_body(self, data: bytes) -> None:
        request = self._current
        if request is None or self._discarding:
            return
        limit = self.limits.max_body_bytes
        if limit is not None and request.body.received + len(data) > limit:
            error = HttpError(413, "body_too_large", f"body over the {limit} byte limit")
            request.body.fail(error)
            self._closing = True
            self._discarding = True
            return
        request.body.feed(data)

    def on_message_complete(self) -> None:
        self._in_head = True  # whatever comes next is the head of the next request
        self._head_bytes = 0
        if self._current is not None:
            self._current.body.feed_eof()
            self._current = None
        self._discarding = False

    # -- running requests -------------------------------------------------------------------
    def _enqueue(self, item: Request | HttpError) -> None:
        if self._busy:
            self._pipeline.append(item)
            if len(self._pipeline) >= _MAX_PIPELINE:
                self._pause_reading()
            return
        self._start(item)

    def _start(self, item: Request | HttpError) -> None:
        self._busy = True
        self._deadline.clear()
        if isinstance(item, HttpError):
            writer = self._writer = ResponseWriter(self, None, False)
            writer.send_error(item.status, item.error, item.detail)
            return
        writer = self._writer = ResponseWriter(self, item, item.keep_alive)
        try:
            pending = self.server.handler(item, writer)
        except Exception as exc:  # any handler failure becomes a response
            self._handler_failed(exc, writer)
            return
        if pending is not None:
            self.run_handler(pending, writer)

    def run_handler(self, pending: Awaitable[None], writer: ResponseWriter) -> None:
        task = self.loop.create_task(self._run(pending, writer))
        writer.on_client_gone = task.cancel

    async def _run(self, pending: Awaitable[None], writer: ResponseWriter) -> None:
        try:
            await pending
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # any handler failure becomes a response
            self._handler_failed(exc, writer)
        if not writer.finished:
            writer.abort()  # the handler returned without completing its response

    def _handler_failed(self, exc: Exception, writer: ResponseWriter) -> None:
        fail_handler(exc, writer)

    def response_done(self, writer: ResponseWriter) -> None:
        """The writer ended its response: keep alive for the next request, or close."""
        if writer is not self._writer:
            return
        self._busy = False
        self._writer = None
        if self.transport is None:
            return
        if not writer.keep_alive or self._closing:
            self.transport.close()
            return
        request = writer.request
        if request is not None and not request.body.done:
            # The handler did not read the whole body: skip the rest of it on the wire.
            self._discarding = True
            self._resume_reading()
        if self._pipeline:
            if self._reading_paused and len(self._pipeline) < _MAX_PIPELINE // 2:
                self._resume_reading()
            # Not from inside the previous handler's call stack: pipelines could nest deep.
            self.loop.call_soon(self._start_next)
        elif not self._started:
            self._deadline.set(self.limits.keepalive_timeout_s)

    def _start_next(self) -> None:
        if self._pipeline and not self._busy and self.transport is not None:
            self._start(self._pipeline.popleft())

    def response_aborted(self) -> None:
        self._busy = False
        self._writer = None
        if self.transport is not None:
            self.transport.abort()

    def _reject(self, error: HttpError | None) -> None:
        """The byte stream cannot be parsed further: answer in turn if possible, then close."""
        error = error or HttpError(400, "malformed_request", "request could not be parsed")
        self._closing = True
        self._upgraded = True  # ignore any further bytes
        if self._current is not None:
            self._current.body.fail(error)
            self._current = None
            return
        self._enqueue(error)

    # -- helpers used by ResponseWriter and the server --------------------------------------
    def may_keep_alive(self) -> bool:
        return not self._closing

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is None:
            raise ConnectionResetError("client closed the connection")
        if self.write_paused:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def shutdown(self) -> None:
        """Finish the request in progress (if any) with `Connection: close`, then close."""
        self._closing = True
        if not self._busy and self.transport is not None and self._in_head:
            self.transport.close()

    def _send_continue(self) -> None:
        self.write(_CONTINUE)

    def _pause_reading(self) -> None:
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.transport is not None and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()

    def _on_deadline(self) -> None:
        """The head took too long (408), or the connection sat idle too long (close)."""
        if self.transport is None or self._busy:
            return
        if not self._started:
            self.transport.close()  # idle keep-alive connection
            return
        self._closing = True
        self._upgraded = True
        self._start(HttpError(408, "header_timeout", "request head not received in time"))


def _too_large_head(limit: int) -> HttpError:
    return HttpError(431, "headers_too_large", f"request head over the {limit} byte limit")


class HttpServer:
    """Listens on one address and serves every connection with `handler`."""

    def __init__(self, handler: Handler, limits: ServerLimits | None = None) -> None:
        self.handler = handler
        self.limits = limits or ServerLimits()
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._all_closed: asyncio.Event | None = None
        self.address: tuple[str, int] = ("", 0)

    def _closed(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    async def listen(self, host: str = "127.0.0.1", port: int = 0, backlog: int = 4096) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.protocol, host, port, backlog=backlog, reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))

    def protocol(self) -> asyncio.Protocol:
        """A new connection handler (what `listen` gives each accepted socket)."""
        return _Connection(self)

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def shutdown(self, grace_s: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish for up to `grace_s`, then close all."""
        if self._server is not None:
            self._server.close()
        self._all_closed = asyncio.Event()
        for conn in list(self._connections):
            conn.shutdown()
        if self._connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), grace_s)
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)


def delayed(handler: Handler, network: Network | Delays | None) -> Handler:
    """`handler`, after each request's round trip from its client's region and any latency
    chaos added (`handler` itself without a network or delays). The wait is a timer, not a
    task: a handler that answers from callbacks stays one, and one that returns a coroutine
    continues as a task."""
    if network is None:
        return handler
    loop: asyncio.AbstractEventLoop | None = None

    def run(request: Request, writer: ResponseWriter) -> Awaitable[None] | None:
        nonlocal loop
        delay = network.delay_s(request.client[0])
        if delay <= 0:
            return handler(request, writer)
        if loop is None:
            loop = asyncio.get_running_loop()
        loop.call_later(delay, _go, request, writer)
        return None

    def _go(request: Request, writer: ResponseWriter) -> None:
        if writer.finished:  # the client went away meanwhile
            return
        try:
            pending = handler(request, writer)
        except Exception as exc:  # as the engine does for a handler it calls itself
            fail_handler(exc, writer)
            return
        if pending is not None:
            writer.continue_in(pending)

    return run
