"""Health checks against a real HTTP server on loopback that a test flips from 200 to 500."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from targets.dns.core import HealthCheckConfig, Zone
from targets.dns.health import probe
from targets.dns.server import DnsServer
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter

pytestmark = pytest.mark.inprocess


@dataclass
class Endpoint:
    """/health answers `status`; `hang` makes it never answer."""

    status: int = 200
    hang: bool = False
    probes: int = 0

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        self.probes += 1
        if self.hang:
            await asyncio.Event().wait()
        writer.send_json(self.status, {"status": self.status})


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, int]]:
    handler = Endpoint()
    http = HttpServer(handler)
    await http.listen("127.0.0.1", 0)
    try:
        yield handler, http.address[1]
    finally:
        await http.shutdown(0.1)


def failover_server(port: int, interval_s: float = 1.0) -> DnsServer:
    zone = Zone.from_json(
        {
            "zone": "lab.",
            "records": [
                {
                    "name": "www.lab.",
                    "set_id": "main",
                    "failover": "PRIMARY",
                    "values": ["127.0.0.1"],
                    "health_check": "gw",
                },
                {
                    "name": "www.lab.",
                    "set_id": "spare",
                    "failover": "SECONDARY",
                    "values": ["127.0.0.2"],
                },
            ],
            "health_checks": [
                {
                    "id": "gw",
                    "port": port,
                    "interval_s": interval_s,
                    "timeout_s": min(interval_s, 0.5),
                    "failure_threshold": 3,
                    "success_threshold": 2,
                },
            ],
        },
        rng=random.Random(0),
    )
    return DnsServer(zone, CollectorRegistry())


def answered(server: DnsServer) -> str | None:
    return server.zone.resolve("www.lab.", "A").set_id


async def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_probe_passes_on_2xx_and_3xx_only(endpoint):
    """200..399 passes; 404 and 500 fail (Route 53's HTTP check)."""
    handler, port = endpoint
    config = HealthCheckConfig(id="x", port=port)
    results = {}
    for status in (200, 302, 399, 404, 500):
        handler.status = status
        results[status] = await probe(config)
    assert results == {200: True, 302: True, 399: True, 404: False, 500: False}


async def test_probe_fails_on_timeout_and_refused_connection(endpoint):
    """No answer within timeout_s, or nobody listening, is a failure."""
    handler, port = endpoint
    handler.hang = True
    assert await probe(HealthCheckConfig(id="x", port=port, timeout_s=0.2)) is False
    closed = HttpServer(Endpoint())
    await closed.listen("127.0.0.1", 0)
    free_port = closed.address[1]
    await closed.shutdown(0)
    assert await probe(HealthCheckConfig(id="x", port=free_port)) is False


async def test_failover_switches_on_the_third_failed_check(endpoint):
    """After the endpoint turns 500: checks 1 and 2 keep the primary, check 3 fails over;
    two passes bring the primary back."""
    handler, port = endpoint
    server = failover_server(port)
    assert await server.checker.check("gw") is True
    handler.status = 500
    seen = []
    for _ in range(3):
        assert await server.checker.check("gw") is False
        seen.append(answered(server))
    assert seen == ["main", "main", "spare"]
    handler.status = 200
    seen = []
    for _ in range(2):
        assert await server.checker.check("gw") is True
        seen.append(answered(server))
    assert seen == ["spare", "main"]


async def test_probe_loop_fails_over_and_counts_checks(endpoint):
    """Started checks run on their own: failover happens, metrics count each result."""
    handler, port = endpoint
    server = failover_server(port, interval_s=0.1)
    server.start_health_checks()
    try:
        await wait_for(lambda: handler.probes >= 2)
        handler.status = 500
        await wait_for(lambda: answered(server) == "spare")
        fails = server.registry.get_sample_value(
            "dns_health_checks_total", {"check": "gw", "result": "fail"}
        )
        assert fails is not None
        assert fails >= 3
        assert server.registry.get_sample_value("dns_health_check_healthy", {"check": "gw"}) == 0
        handler.status = 200
        await wait_for(lambda: answered(server) == "main")
        assert server.registry.get_sample_value("dns_health_check_healthy", {"check": "gw"}) == 1
    finally:
        await server.close()
