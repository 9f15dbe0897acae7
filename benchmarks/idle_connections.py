"""Memory of our LB holding many idle keep-alive client connections.

Goal (from the issue): 5,000 idle keep-alive connections cost the LB process less than 100 MB
resident memory (VmRSS), all included.

One app server (fastest mode) registers itself with the LB (`--lb-control`). Once it is
healthy, the LB's VmRSS is read (`lb_rss_mb_before`), then this process opens 5,000 TCP
connections to the LB's data port (at most `OPEN_CONCURRENCY` at a time), sends
`GET /api/orders/1 HTTP/1.1` on each and reads the whole 200 response, then leaves every
connection open and idle: they are real keep-alive connections the LB has parsed a request on
and proxied it for, not bare accepted sockets. After a short settle time the LB's VmRSS is read
again (`lb_rss_mb`) and its `lb_client_connections` gauge is checked to equal `connections`.

File descriptors: this process raises its soft RLIMIT_NOFILE to the hard limit before starting
the LB, which inherits it (the LB needs one descriptor per client connection plus its pool).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from typing import Any

from benchmarks.support import (
    PYTHON,
    BenchError,
    Proc,
    ProcessGroup,
    log,
    raise_nofile_limit,
    rss_mb,
    wait_http,
    wait_lb_healthy,
)

CONNECTIONS = 5000
LIMIT_MB = 100.0
OPEN_CONCURRENCY = 200
SETTLE_S = 2.0
PATH = "/api/orders/1"

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _open_one(host: str, port: int) -> Stream:
    """Connect, do one keep-alive GET, read the whole response; the still-open stream."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if status != b"200" or length is None or re.search(rb"(?im)^connection:\s*close", head):
        writer.close()
        raise BenchError(f"unexpected reply from the LB: {head[:200]!r}")
    await reader.readexactly(int(length.group(1)))
    return reader, writer


async def open_idle(host: str, port: int, count: int) -> list[Stream]:
    """`count` connections to host:port, each left idle after one complete exchange."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    opened = 0

    async def one() -> Stream:
        nonlocal opened
        async with gate:
            stream = await asyncio.wait_for(_open_one(host, port), 30.0)
        opened += 1
        if opened % 1000 == 0:
            log(f"{opened} connections open")
        return stream

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    streams = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await close_all(streams)
        raise BenchError(f"{len(errors)} of {count} connections failed, first: {errors[0]!r}")
    return streams


async def close_all(streams: list[Stream]) -> None:
    for _, writer in streams:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in streams), return_exceptions=True)


async def gauge(lb: Proc, name: str) -> float:
    """One unlabelled gauge from the LB's /metrics (control API)."""
    host, port = lb.address("control")
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    text = (await reader.read()).decode()
    writer.close()
    match = re.search(rf"(?m)^{name} (\S+)$", text)
    if match is None:
        raise BenchError(f"{name} is not in the LB's /metrics")
    return float(match.group(1))


async def hold(lb: Proc, count: int) -> dict[str, Any]:
    """`measure` with SIGTERM cancelling it cleanly, as asyncio.run does for Ctrl-C."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await measure(lb, count)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def measure(lb: Proc, count: int) -> dict[str, Any]:
    """Open the connections, measure, close them; the measurements."""
    host, port = lb.address()
    before = rss_mb(lb.pid)
    log(f"LB VmRSS before: {before:.1f} MiB; opening {count} keep-alive connections")
    started = time.monotonic()
    streams = await open_idle(host, port, count)
    opened_s = time.monotonic() - started
    try:
        log(f"{len(streams)} connections open and idle after {opened_s:.1f} s; settling")
        await asyncio.sleep(SETTLE_S)
        after = rss_mb(lb.pid)
        peak = rss_mb(lb.pid, "VmHWM")
        seen = await gauge(lb, "lb_client_connections")
        alive = sum(not reader.at_eof() for reader, _ in streams)
    finally:
        await close_all(streams)
    log(f"LB VmRSS with {count} idle connections: {after:.1f} MiB (peak {peak:.1f} MiB)")
    if alive != count or int(seen) < count:
        raise BenchError(f"{alive} of {count} connections still open, LB counts {seen:g}")
    return {
        "lb_rss_mb": round(after, 1),
        "lb_rss_mb_before": round(before, 1),
        "lb_rss_peak_mb": round(peak, 1),
        "kb_per_connection": round((after - before) * 1024 / count, 2),
        "lb_client_connections": int(seen),
        "open_seconds": round(opened_s, 2),
    }


def run(connections: int = CONNECTIONS) -> dict[str, Any]:
    """Run the measurement; the result object (see the README for its fields)."""
    nofile = raise_nofile_limit()
    if nofile < connections * 2 + 100:
        raise BenchError(
            f"RLIMIT_NOFILE hard limit {nofile} is too low for {connections} connections "
            f"(this process and the LB each need one descriptor per connection)"
        )
    with ProcessGroup("bench-idle-") as group:
        lb = group.spawn("lb", [PYTHON, "-m", "targets.lb", "--name", "lb-idle"])
        server_argv = [
            PYTHON,
            "-m",
            "targets.server",
            "--name",
            "idle-1",
            "--service-ms",
            "0",
            "--slots",
            "10000",
            "--backlog",
            "10000",
            "--lb-control",
            lb.ready["control"],
        ]
        group.spawn("server", server_argv)
        wait_lb_healthy(lb, 1)
        wait_http(f"http://{lb.ready['address']}{PATH}", "the LB to proxy", lb)
        try:
            measured = asyncio.run(hold(lb, connections))
        except asyncio.CancelledError:  # SIGTERM
            raise KeyboardInterrupt from None
    return {
        "benchmark": "idle_connections",
        "connections": connections,
        **measured,
        "limit_mb": LIMIT_MB,
        "nofile_limit": nofile,
        "ok": measured["lb_rss_mb"] < LIMIT_MB,
    }
