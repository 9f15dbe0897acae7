"""One-shot HTTP requests on the engine: registration calls, health probes, small control calls.

Each call opens a connection, sends one request with `Connection: close`, reads the whole answer
and closes, the way an ALB health check does. Hot paths use `UpstreamPool` instead.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from targets.http.messages import Headers, header_value
from targets.http.upstream import UpstreamError, UpstreamPool


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Headers
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return header_value(self.headers, name)

    def json(self) -> Any:
        return json.loads(self.body)


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
) -> Reply:
    """Send one request and return the whole reply; `UpstreamError` if there is none in time."""
    pool = UpstreamPool(host, port, max_connections=1, connect_timeout_s=timeout_s)
    conn = await pool.acquire()
    try:
        parts = [f"{method} {path} HTTP/1.1\r\nhost: {host}:{port}\r\n".encode()]
        for name, value in headers or []:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        conn.send(b"".join(parts) + body, head_only=method == "HEAD", timeout_s=timeout_s)
        response = await conn.response()
        try:
            data = await asyncio.wait_for(response.body.read_all(max_body_bytes), timeout_s)
        except ValueError as exc:
            raise UpstreamError("bad_response", str(exc), reached=True) from None
        except TimeoutError:
            raise UpstreamError("timeout", "body not complete in time", reached=True) from None
        return Reply(response.status, response.headers, data)
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
