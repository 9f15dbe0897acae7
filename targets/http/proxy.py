"""Forwarding one request through an `UpstreamPool`, streaming both bodies.

`forward` rewrites the head the way a reverse proxy must (RFC 9110 section 7.6): hop-by-hop
headers and the ones `Connection` names are dropped, `X-Forwarded-For` gets the client address
appended, `X-Forwarded-Proto` is set, `Host` is kept. Framing is re-derived on each side: a
Content-Length body stays Content-Length, a chunked body is re-chunked.

Until the response head has been written to the client, a failure raises `UpstreamError`, so the
caller can retry elsewhere or answer 502/504. After that, `UpstreamError` still propagates but
`writer.started` is true: the engine then aborts the client connection, the only honest signal left.

`Exchange` is the same forwarding on callbacks alone, for a bodiless request on an idle pooled
connection; `targets.http.hop.Hop` (what the proxies build on) chooses between the two.
"""

from __future__ import annotations

from targets.http.messages import HOP_BY_HOP, Headers, Request, connection_tokens
from targets.http.server import ResponseWriter
from targets.http.upstream import UpstreamConnection, UpstreamError, UpstreamPool

# Rewritten by the proxy rather than copied through.
_REWRITTEN = frozenset({b"content-length", b"x-forwarded-for", b"x-forwarded-proto", b"expect"})
_DROP_REQUEST = HOP_BY_HOP | _REWRITTEN
_DROP_RESPONSE = HOP_BY_HOP | {b"content-length"}
_NEVER_DROPPED = frozenset({b"host"})
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})


def upstream_head(request: Request, proto: bytes = b"http") -> bytes:
    """The request head to send upstream."""
    parts = [request.method.encode("ascii"), b" ", request.target, b" HTTP/1.1\r\n"]
    named = _named_by_connection(request.headers)
    forwarded_for = []
    has_host = False
    for name, value in request.headers:
        if name in _DROP_REQUEST or name in named:
            if name == b"x-forwarded-for":
                forwarded_for.append(value)
            continue
        if name == b"host":
            has_host = True
        parts += (name, b": ", value, b"\r\n")
    if not has_host:
        parts.append(b"host: unknown\r\n")
    forwarded_for.append(request.client[0].encode("ascii"))
    parts += (b"x-forwarded-for: ", b", ".join(forwarded_for), b"\r\n")
    parts += (b"x-forwarded-proto: ", proto, b"\r\n")
    if request.chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    elif request.content_length is not None:
        parts += (b"content-length: ", str(request.content_length).encode(), b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def response_headers(headers: Headers) -> Headers:
    """The upstream's response headers minus hop-by-hop and framing ones."""
    kept = []
    plain = True
    for name, value in headers:
        if name in _DROP_RESPONSE:
            if name == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                plain = False
            continue
        kept.append((name, value))
    if plain:
        return kept
    named = _named_by_connection(headers)
    return [(n, v) for n, v in kept if n not in named]


def _named_by_connection(headers: Headers) -> frozenset[bytes]:
    """Extra headers the `Connection` header names (beyond the usual keep-alive/close)."""
    for name, value in headers:
        if name == b"connection" and value.lower() not in _PLAIN_CONNECTION:
            return connection_tokens(headers) - _NEVER_DROPPED - HOP_BY_HOP
    return frozenset()


async def forward(
    request: Request,
    writer: ResponseWriter,
    pool: UpstreamPool,
    *,
    response_timeout_s: float,
    proto: bytes = b"http",
) -> int:
    """Proxy `request` to `pool`'s upstream and stream the answer; returns the upstream status."""
    conn = await pool.acquire()
    try:
        return await _exchange(request, writer, conn, response_timeout_s, proto)
    finally:
        pool.release(conn)


async def _exchange(
    request: Request,
    writer: ResponseWriter,
    conn: UpstreamConnection,
    timeout_s: float,
    proto: bytes,
) -> int:
    head_only = request.method == "HEAD"
    pending = conn.start(upstream_head(request, proto), head_only=head_only, timeout_s=timeout_s)
    if request.has_body:
        await send_body(request, conn)
    response = await pending.wait()
    writer.start(
        response.status,
        response_headers(response.headers),
        response.content_length,
        head_only=head_only,
    )
    body = response.body
    try:
        while chunk := await body.read():
            writer.write(chunk)
            await writer.drain()
    except UpstreamError as exc:
        exc.detail += " (after the response started)"
        raise
    writer.end()
    return response.status


async def send_body(request: Request, conn: UpstreamConnection) -> None:
    """A forwarded request's body, framed as it came (chunked or Content-Length). An HttpError
    from the client's body (bad chunk, too large) propagates to the engine as-is."""
    if request.chunked:
        while chunk := await request.body.read():
            conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            await conn.drain()
        conn.write(b"0\r\n\r\n")
    else:
        while chunk := await request.body.read():
            conn.write(chunk)
            await conn.drain()


class Exchange:
    """Bodiless requests proxied on idle pooled connections, with callbacks only.

    The fast path: no task, no future, no coroutine. `start` sends the request on a connection
    the pool had idle; the connection's parser events go straight to the client's writer, and
    `exchanged(status, error)` is called exactly once at the end, with `error` set when the
    exchange failed (`writer.started` then tells whether the client saw anything yet). What
    that means is a subclass's to say (`targets.http.hop.Hop`); one object may carry several
    exchanges one after the other (a retry on another connection), never two at once. A client
    too slow to keep up pauses the upstream socket until it drains.
    """

    __slots__ = ("conn", "pool", "request", "status", "writer")

    def __init__(self, request: Request, writer: ResponseWriter) -> None:
        self.request = request
        self.writer = writer

    def start(
        self,
        pool: UpstreamPool,
        conn: UpstreamConnection,
        timeout_s: float,
        proto: bytes = b"http",
    ) -> None:
        """Send the request on `conn`, an idle connection of `pool` (`take_idle`)."""
        self.pool = pool
        self.conn = conn
        self.status = 0
        self.writer.on_client_gone = conn.abort  # the upstream side then reports "reset"
        head_only = self.request.method == "HEAD"
        conn.send(
            upstream_head(self.request, proto), self, head_only=head_only, timeout_s=timeout_s
        )

    def exchanged(self, status: int, error: UpstreamError | None) -> None:
        """The exchange ended: `status` went to the client, or `error` says why not."""
        raise NotImplementedError

    def response_head(self, status: int, headers: Headers, content_length: int | None) -> None:
        self.status = status
        self.writer.start(
            status,
            response_headers(headers),
            content_length,
            head_only=self.request.method == "HEAD",
        )

    def response_body(self, data: bytes) -> None:
        writer = self.writer
        writer.write(data)
        if writer.blocked:
            self.conn.pause_reading()
            writer.on_writable = self.conn.resume_reading

    def response_end(self) -> None:
        writer = self.writer
        writer.on_client_gone = None
        self.pool.release(self.conn)
        self.exchanged(self.status, None)
        writer.end()

    def response_failed(self, error: UpstreamError) -> None:
        self.writer.on_client_gone = None
        if self.writer.started:
            error.detail += " (after the response started)"
        self.pool.release(self.conn)
        self.exchanged(self.status, error)
