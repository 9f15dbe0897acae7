"""Health checks for the DNS server: one asyncio task per check, HTTP GET every interval.

A probe passes when `host:port` answers `path` with a status of 200..399 within `timeout_s`
(Route 53's HTTP check); a refused connection, a reset or a timeout fails it. Results go to
`Zone.observe`, which applies the thresholds. Probes are spaced on a fixed schedule (a slow
probe does not push the next ones back), one checker per check rather than Route 53's fleet.
"""

from __future__ import annotations

import asyncio
import logging

from targets.dns.core import HealthCheckConfig, Zone
from targets.dns.metrics import DnsMetrics
from targets.http.client import fetch
from targets.http.upstream import UpstreamError

log = logging.getLogger(__name__)


async def probe(config: HealthCheckConfig) -> bool:
    """One HTTP GET; True when the status is 200..399 in time."""
    try:
        reply = await asyncio.wait_for(
            fetch(config.host, config.port, "GET", config.path, timeout_s=config.timeout_s),
            config.timeout_s,
        )
    except (UpstreamError, TimeoutError, OSError):
        return False
    return 200 <= reply.status < 400


class HealthChecker:
    def __init__(self, zone: Zone, metrics: DnsMetrics) -> None:
        self.zone = zone
        self.metrics = metrics
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """One probe loop per health check of the zone."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._loop(check)) for check in self.zone.health]

    async def check(self, check_id: str) -> bool:
        """Probe once and feed the result to the zone; returns the probe's result."""
        state = self.zone.health[check_id]
        ok = await probe(state.config)
        self.metrics.health_checks.labels(check_id, "ok" if ok else "fail").inc()
        if self.zone.observe(check_id, ok):
            log.info("health check %s -> %s", check_id, "healthy" if ok else "unhealthy")
        return ok

    async def _loop(self, check_id: str) -> None:
        interval = self.zone.health[check_id].config.interval_s
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.check(check_id)
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
