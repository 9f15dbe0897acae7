"""The load balancer adapter: the core's decisions, applied to real sockets and timers.

`LoadBalancer` is the data-plane handler (a `Handler` for `HttpServer`): pick a target and send
the request there through the engine's shared proxy hop (`targets.http.hop.Hop`: the fast path
or a task, the 502/503/504 answers), which reports each try's outcome to `_TargetHop`, the
policy: per-target accounting, passive detection, and the retry decision. It also runs the I/O
the core asks for: one probe loop per target and a housekeeping tick that ends draining.

Retry rule: a failed try is repeated on another target, at most `max_retries` times, when no byte
of a response has reached the client and either the request never reached the server (refused,
connect timeout, pool wait) or it is idempotent and has no body. When no untried target is left,
the answer is the last failure's (502, or 504 for a timeout). Passive detection: a refused
connection, or a reset on a fresh one, marks the target unhealthy at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from targets.fastmetrics import BornAtZeroRegistry
from targets.http.client import fetch
from targets.http.hop import Hop
from targets.http.messages import IDEMPOTENT_METHODS, Request
from targets.http.server import HttpServer, ResponseWriter
from targets.http.upstream import UpstreamError, UpstreamPool
from targets.lb.core import GroupConfig, Target, TargetGroup, TargetState, probe_ok
from targets.lb.metrics import LbMetrics, TargetCollector

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 0.1


@dataclass(frozen=True, slots=True)
class LbConfig:
    name: str = "lb"
    group: GroupConfig = field(default_factory=GroupConfig)
    matcher: str = "200"
    connect_timeout_s: float = 1.0
    response_timeout_s: float = 30.0
    max_retries: int = 2
    max_connections_per_target: int = 512
    seed: int | None = None


class LoadBalancer:
    def __init__(self, config: LbConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.group = TargetGroup(config.group)
        self.registry = registry or BornAtZeroRegistry()
        self.metrics = LbMetrics(self.registry)
        self.rng = random.Random(config.seed)
        self.pools: dict[str, UpstreamPool] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self.http: HttpServer | None = None  # the data-plane server, once listening
        self.registry.register(TargetCollector(self.group, self._client_connections))
        probe_ok(None, config.matcher)  # validate the matcher now, not at the first probe

    def _client_connections(self) -> int:
        return self.http.connections if self.http is not None else 0

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def start(self) -> None:
        self._housekeeping = asyncio.get_running_loop().create_task(self._tick())

    async def close(self) -> None:
        tasks = [*self._probes.values()]
        if self._housekeeping is not None:
            tasks.append(self._housekeeping)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pool in self.pools.values():
            pool.close()

    # -- control: registration --------------------------------------------------------------
    def register(self, target_id: str, host: str, port: int, weight: int = 1) -> Target:
        """Add or update a target; it gets traffic once its first probe passes."""
        target = self.group.register(target_id, host, port, self.now(), weight)
        self.metrics.target_added(target_id)
        pool = self.pools.get(target_id)
        if pool is None or pool.closed or (pool.host, pool.port) != (host, port):
            if pool is not None:
                pool.close()
            self.pools[target_id] = UpstreamPool(
                host,
                port,
                max_connections=self.config.max_connections_per_target,
                connect_timeout_s=self.config.connect_timeout_s,
            )
        probe = self._probes.get(target_id)
        if probe is None or probe.done():
            self._probes[target_id] = asyncio.get_running_loop().create_task(
                self._probe_loop(target_id)
            )
        log.info("registered %s at %s:%d (%s)", target_id, host, port, target.state)
        return target

    def deregister(self, target_id: str) -> TargetState | None:
        """Start draining; None when the target was unknown (which is still a success)."""
        if not self.group.deregister(target_id, self.now()):
            return None
        target = self.group.targets[target_id]
        self._stop_probe(target_id)
        pool = self.pools.get(target_id)
        if pool is not None:
            pool.close()  # idle connections now; busy ones when their response completes
        log.info("deregistering %s: %d in flight", target_id, target.in_flight)
        if target.in_flight == 0:
            self._forget(target_id)
            return None
        return TargetState.DRAINING

    def _forget(self, target_id: str) -> None:
        self.group.remove(target_id)
        self._stop_probe(target_id)
        pool = self.pools.pop(target_id, None)
        if pool is not None:
            pool.close()

    def _stop_probe(self, target_id: str) -> None:
        task = self._probes.pop(target_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # -- data plane -------------------------------------------------------------------------
    def __call__(self, request: Request, writer: ResponseWriter) -> Awaitable[None] | None:
        """Route one request: pick a target and send it there (`Hop`: the fast path when it
        applies, else a task); `_TargetHop` retries elsewhere when safe."""
        started = time.perf_counter()
        target = self.group.pick(self.now(), self.rng)
        hop = _TargetHop(self, request, writer, started, target)
        if target is None:
            hop.give_up(503, "no_targets", f"{self.config.name} has no registered target")
            return None
        self.group.begin(target)
        return hop.send(self.pools[target.id])

    def _upstream_failed(self, target: Target, exc: UpstreamError) -> None:
        self.metrics.upstream_errors.labels(target.id, exc.reason).inc()
        if exc.reason == "refused" or (exc.reason == "reset" and not exc.reused):
            transition = self.group.connection_failed(target.id, self.now())
            if transition is not None:
                self._log_transition(target, transition.new.value, transition.reason)

    def _end(self, target: Target) -> None:
        if self.group.end(target, self.now()):
            log.info("drained %s", target.id)
            self._forget(target.id)

    # -- health checks and housekeeping -----------------------------------------------------
    async def _probe_loop(self, target_id: str) -> None:
        policy = self.config.group.health
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            target = self.group.targets.get(target_id)
            if target is None or target.state is TargetState.DRAINING:
                return
            status = await self._probe(target.host, target.port)
            ok = probe_ok(status, self.config.matcher)
            self.metrics.health_checks.labels(target_id, "ok" if ok else "fail").inc()
            transition = self.group.health_result(target_id, ok, self.now())
            if transition is not None:
                self._log_transition(target, transition.new.value, transition.reason)
            next_at += policy.interval_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def _probe(self, host: str, port: int) -> int | None:
        policy = self.config.group.health
        try:
            reply = await asyncio.wait_for(
                fetch(host, port, "GET", policy.path, timeout_s=policy.timeout_s),
                policy.timeout_s,
            )
        except (UpstreamError, TimeoutError, OSError):
            return None
        return reply.status

    def _log_transition(self, target: Target, state: str, reason: str) -> None:
        self.metrics.transitions.labels(state).inc()
        log.info("target %s -> %s (%s)", target.id, state, reason or "ok")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            for target in self.group.expire(self.now()):
                log.warning(
                    "deregistration delay over for %s: aborting %d request(s) in flight",
                    target.id,
                    target.in_flight,
                )
                pool = self.pools.pop(target.id, None)
                if pool is not None:
                    pool.abort_all()
                self._stop_probe(target.id)


def _retryable(request: Request, exc: UpstreamError) -> bool:
    if not exc.reached:
        return True
    return request.method in IDEMPOTENT_METHODS and not request.has_body


class _TargetHop(Hop):
    """One client request through the load balancer: its target, the ones it tried, and the
    retry decision (the only one: both the fast path and the task path ask `failed`)."""

    __slots__ = ("lb", "retries", "started", "target", "tried")

    def __init__(
        self,
        lb: LoadBalancer,
        request: Request,
        writer: ResponseWriter,
        started: float,
        target: Target | None,
    ) -> None:
        # Hop.__init__'s three fields, set here: one call less per request.
        self.request = request
        self.writer = writer
        self.timeout_s = lb.config.response_timeout_s
        self.lb = lb
        self.started = started
        self.target = target  # the target of the try in flight (or of the last one)
        self.tried: set[str] | None = None
        self.retries = 0

    def answered(self, status: int) -> None:
        target = self.target
        assert target is not None
        self.lb._end(target)
        self.lb.metrics.answered(target.id, status, time.perf_counter() - self.started)

    def failed(self, error: UpstreamError) -> UpstreamPool | None:
        """Count the failure on its target; retry elsewhere when nothing reached the client,
        retries are left and the request is safe to send again (`_retryable`)."""
        lb, target = self.lb, self.target
        assert target is not None
        lb._upstream_failed(target, error)
        lb._end(target)
        if (
            self.writer.started
            or self.retries >= lb.config.max_retries
            or not _retryable(self.request, error)
        ):
            return None
        self.retries += 1
        lb.metrics.retries.labels(error.reason).inc()
        if self.tried is None:
            self.tried = set()
        self.tried.add(target.id)
        retry = lb.group.pick(lb.now(), lb.rng, self.tried)
        if retry is None:
            return None  # no untried target: the answer is this failure's
        self.target = retry
        lb.group.begin(retry)
        return lb.pools[retry.id]

    def gave_up(self, status: int, own: bool) -> None:
        backend = "lb" if own or self.target is None else self.target.id
        self.lb.metrics.answered(backend, status, time.perf_counter() - self.started)

    def abandoned(self) -> None:
        if self.target is not None:
            self.lb._end(self.target)
