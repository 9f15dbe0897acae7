"""Real sockets on loopback: an echo upstream, a proxy in front of it, a raw client."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httptools
import pytest

from targets.http.messages import Request
from targets.http.proxy import forward
from targets.http.server import HttpServer, ResponseWriter, ServerLimits
from targets.http.upstream import UpstreamPool


@dataclass
class Seen:
    """What the upstream saw of one request."""

    method: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body_len: int
    body_sha: str
    client_port: int

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)


@dataclass
class Echo:
    """An upstream that records requests and answers according to the path."""

    seen: list[Seen] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set at each request
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets /wait answer

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        digest = hashlib.sha256()
        size = 0
        while chunk := await request.body.read():
            digest.update(chunk)
            size += len(chunk)
        self.seen.append(
            Seen(
                request.method,
                request.target,
                request.headers,
                size,
                digest.hexdigest(),
                request.client[1],
            )
        )
        self.arrived.set()
        path = request.path
        if path == "/slow":
            await asyncio.sleep(float(request.query.removeprefix("s=") or "0.5"))
        if path == "/wait":
            await self.release.wait()
        if path.startswith("/stream/"):
            # Unknown length: the engine must send it chunked.
            total = int(path.rsplit("/", 1)[1])
            writer.start(200, [(b"content-type", b"application/octet-stream")])
            piece = b"x" * 65536
            sent = 0
            while sent < total:
                part = piece[: total - sent]
                writer.write(part)
                await writer.drain()
                sent += len(part)
            writer.end()
            return
        if path == "/reset":
            writer.start(200, [], content_length=1000)
            writer.write(b"partial")
            raise ConnectionResetError("simulated crash mid-response")
        payload = {"len": size, "sha": digest.hexdigest(), "path": path}
        writer.send(
            200,
            [(b"content-type", b"application/json"), (b"x-upstream", b"echo")],
            json.dumps(payload).encode(),
        )


@dataclass
class Proxy:
    address: tuple[str, int]
    upstream: tuple[str, int]
    echo: Echo
    pool: UpstreamPool
    server: HttpServer


async def start_proxy(
    echo: Echo, limits: ServerLimits | None = None, response_timeout_s: float = 5.0
) -> tuple[HttpServer, HttpServer, UpstreamPool]:
    upstream = HttpServer(echo, ServerLimits(name="echo"))
    await upstream.listen()
    pool = UpstreamPool(*upstream.address, max_connections=16, connect_timeout_s=1.0)

    async def handler(request: Request, writer: ResponseWriter) -> None:
        await forward(request, writer, pool, response_timeout_s=response_timeout_s)

    proxy = HttpServer(handler, limits or ServerLimits(name="proxy"))
    await proxy.listen()
    return upstream, proxy, pool


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    echo = Echo()
    upstream, server, pool = await start_proxy(echo)
    yield Proxy(server.address, upstream.address, echo, pool, server)
    echo.release.set()
    pool.close()
    await server.shutdown(1.0)
    await upstream.shutdown(1.0)


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n.lower() == name), None)

    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


class _Collector:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self._headers, self._body = [], []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, data: bytes) -> None:
        self._body.append(data)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        self.responses.append(Response(status, self._headers, b"".join(self._body)))


def parse_responses(data: bytes) -> list[Response]:
    """Every complete response in `data` (as a client reads them off one connection)."""
    collector = _Collector()
    collector.parser.feed_data(data)
    return collector.responses


async def exchange(
    address: tuple[str, int], data: bytes, *, timeout: float = 5.0
) -> tuple[bytes, bool]:
    """Send raw bytes, read until the server closes (or `timeout`); (bytes, closed_by_server)."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(data)
    await writer.drain()
    received = bytearray()
    closed = False
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                received += chunk
            closed = True
    except TimeoutError:
        pass
    except ConnectionResetError:
        closed = True
    writer.close()
    return bytes(received), closed


async def read_responses(
    reader: asyncio.StreamReader, count: int, timeout: float = 5.0
) -> list[Response]:
    """Read from a kept-alive connection until `count` responses are complete."""
    collector = _Collector()
    async with asyncio.timeout(timeout):
        while len(collector.responses) < count:
            chunk = await reader.read(65536)
            if not chunk:
                break
            collector.parser.feed_data(chunk)
    return collector.responses
