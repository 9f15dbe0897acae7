"""HTTP requests on the engine, for probes, control calls and load generation.

`fetch` opens a connection, sends one request with `Connection: close`, reads the whole answer
and closes, the way an ALB health check does. `Client` keeps connections alive through an
`UpstreamPool`, for callers that send many requests (the lab's load generator, tests).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from targets.http.messages import Headers, header_value
from targets.http.upstream import PendingResponse, UpstreamError, UpstreamPool


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Headers
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return header_value(self.headers, name)

    def json(self) -> Any:
        return json.loads(self.body)


def _request_head(
    method: str, path: str, host: str, headers: Headers | None, body: bytes, *, close: bool
) -> bytes:
    parts = [f"{method} {path} HTTP/1.1\r\nhost: {host}\r\n".encode()]
    for name, value in headers or []:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"content-length: %d\r\n" % len(body))
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


async def _read_reply(pending: PendingResponse, timeout_s: float, max_body_bytes: int) -> Reply:
    response = await pending.wait()
    try:
        data = await asyncio.wait_for(response.body.read_all(max_body_bytes), timeout_s)
    except ValueError as exc:
        raise UpstreamError("bad_response", str(exc), reached=True) from None
    except TimeoutError:
        raise UpstreamError("timeout", "body not complete in time", reached=True) from None
    return Reply(response.status, response.headers, data)


class Client:
    """Keep-alive requests to one `host:port`."""

    def __init__(
        self, host: str, port: int, *, max_connections: int = 64, timeout_s: float = 10.0
    ) -> None:
        self.pool = UpstreamPool(
            host, port, max_connections=max_connections, connect_timeout_s=timeout_s
        )
        self.authority = f"{host}:{port}"
        self.timeout_s = timeout_s

    async def request(
        self, method: str, path: str, *, body: bytes = b"", headers: Headers | None = None
    ) -> Reply:
        conn = await self.pool.acquire()
        try:
            head = _request_head(method, path, self.authority, headers, body, close=False)
            pending = conn.start(head + body, head_only=method == "HEAD", timeout_s=self.timeout_s)
            return await _read_reply(pending, self.timeout_s, 64 * 1024 * 1024)
        finally:
            self.pool.release(conn)

    def close(self) -> None:
        self.pool.abort_all()


async def fetch(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: Headers | None = None,
    timeout_s: float = 2.0,
    max_body_bytes: int = 4 * 1024 * 1024,
    source: str | None = None,
) -> Reply:
    """Send one request and return the whole reply; `UpstreamError` if there is none in time.
    `source`: the local address to send from (a region's, targets/http/netem.py)."""
    pool = UpstreamPool(host, port, max_connections=1, connect_timeout_s=timeout_s, source=source)
    conn = await pool.acquire()
    try:
        head = _request_head(method, path, f"{host}:{port}", headers, body, close=True)
        pending = conn.start(head + body, head_only=method == "HEAD", timeout_s=timeout_s)
        return await _read_reply(pending, timeout_s, max_body_bytes)
    finally:
        conn.abort()
        pool.close()


async def fetch_json(
    host: str,
    port: int,
    method: str,
    path: str,
    payload: Any = None,
    *,
    headers: Headers | None = None,
    timeout_s: float = 2.0,
) -> Reply:
    """`fetch` with a JSON request body (when `payload` is not None)."""
    all_headers = list(headers or [])
    body = b""
    if payload is not None:
        body = json.dumps(payload).encode()
        all_headers.append((b"content-type", b"application/json"))
    return await fetch(
        host, port, method, path, body=body, headers=all_headers, timeout_s=timeout_s
    )
