"""How many microseconds of Python the load balancer spends per proxied request.

No sockets: the LB's client connection and a pooled upstream connection get fake transports,
and the benchmark feeds them a request and the upstream's answer in a loop. What remains is the
interpreter's share of a request (parsing callbacks, routing, header rewriting, metrics), the
part our code controls, measured without the noise of syscalls, wakeups and other processes.
Useful to compare two versions of the data path: it moves by a few percent when they differ.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.support import log

REQUEST = b"GET /api/orders/1 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: bench\r\n\r\n"
BODY = b'{"id":"1","status":"confirmed","total":42,"instance":"nginx"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Fri, 27 Nov 2026 17:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%b"
    % (len(BODY), BODY)
)


class _Transport:
    """Stands in for a socket: keeps what is written, never blocks."""

    def __init__(self) -> None:
        self.last = b""
        self.closing = False

    def write(self, data: bytes) -> None:
        self.last = data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


async def _measure(requests: int) -> float:
    from targets.http.server import HttpServer, ServerLimits  # noqa: PLC0415
    from targets.http.upstream import UpstreamConnection  # noqa: PLC0415
    from targets.lb.balancer import LbConfig, LoadBalancer  # noqa: PLC0415

    lb = LoadBalancer(LbConfig())
    http = HttpServer(lb, ServerLimits(name="lb"))
    lb.http = http
    lb.register("backend", "127.0.0.1", 9)
    lb.group.health_result("backend", True, time.monotonic())
    await lb.close()  # no probes: nothing listens on port 9
    pool = lb.pools["backend"]
    upstream = UpstreamConnection(pool)
    upstream_transport = _Transport()
    upstream.connection_made(upstream_transport)  # type: ignore[arg-type]
    pool.closed = False
    pool._open.add(upstream)
    client = http.protocol()
    client_transport = _Transport()
    client.connection_made(client_transport)  # type: ignore[arg-type]
    upstream._keep_alive = True  # as if it had carried a kept-alive exchange already
    pool.release(upstream)
    started = time.perf_counter()
    for _ in range(requests):
        client.data_received(REQUEST)
        upstream.data_received(RESPONSE)
    elapsed = time.perf_counter() - started
    if not client_transport.last.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {client_transport.last[:80]!r}")
    return elapsed / requests * 1e6


def run(requests: int = 50_000, rounds: int = 5) -> dict[str, Any]:
    import uvloop  # noqa: PLC0415

    samples = []
    for i in range(rounds):
        samples.append(uvloop.run(_measure(requests)))
        log(f"round {i + 1}: {samples[-1]:.1f} us per request")
    return {
        "benchmark": "proxy_python_cost",
        "us_per_request": round(statistics.median(samples), 2),
        "us_min": round(min(samples), 2),
        "requests": requests,
        "rounds": rounds,
    }


if __name__ == "__main__":
    print(run())
