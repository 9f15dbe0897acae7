"""A small closed-model load generator for the lab's own checks (Locust drives the real rushes).

`concurrency` virtual users each send one request after another for `duration_s`, over
keep-alive connections, and every answer lands in a one-second bucket: status, latency, and the
instance that served it (the shop's JSON names it). It always stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from targets.http.client import Client
from targets.http.upstream import UpstreamError


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    body: bytes = b""
    weight: int = 1


SHOP_MIX = (
    Call("GET", "/api/orders/42", weight=6),
    Call("GET", "/api/orders", weight=3),
    Call("POST", "/api/auth/login", b'{"user": "ann"}', weight=1),
)
GET_ONLY = (Call("GET", "/api/orders/42"),)


@dataclass(slots=True)
class Second:
    """What happened during one second of the run."""

    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # "502", "503", "reset", ...
    failed_methods: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    instances: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.ok + sum(self.failed.values())


@dataclass(slots=True)
class LoadResult:
    seconds: list[Second]

    @property
    def total(self) -> int:
        return sum(s.total for s in self.seconds)

    @property
    def ok(self) -> int:
        return sum(s.ok for s in self.seconds)

    def failures(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for s in self.seconds:
            out.update(s.failed)
        return out

    def failed_methods(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for s in self.seconds:
            out.update(s.failed_methods)
        return out

    def instances(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for s in self.seconds:
            out.update(s.instances)
        return out

    def latency_quantile(self, q: float) -> float:
        return quantile([x for s in self.seconds for x in s.latencies], q)


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return ordered[rank]


async def run_load(
    host: str,
    port: int,
    *,
    duration_s: float,
    concurrency: int,
    calls: tuple[Call, ...] = SHOP_MIX,
    seed: int = 1,
    timeout_s: float = 10.0,
) -> LoadResult:
    """Drive `concurrency` users at host:port for `duration_s` seconds."""
    seconds = [Second() for _ in range(max(1, int(duration_s + 0.999)))]
    client = Client(host, port, max_connections=concurrency, timeout_s=timeout_s)
    start = time.monotonic()
    deadline = start + duration_s
    weights = [c.weight for c in calls]

    async def user(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        while (now := time.monotonic()) < deadline:
            call = rng.choices(calls, weights)[0]
            bucket = seconds[min(len(seconds) - 1, int(now - start))]
            try:
                reply = await client.request(call.method, call.path, body=call.body)
            except UpstreamError as exc:
                bucket.failed[exc.reason] += 1
                bucket.failed_methods[call.method] += 1
                await asyncio.sleep(0.01)  # a refused connection fails fast: don't spin
                continue
            latency = time.monotonic() - now
            if reply.status >= 500:
                bucket.failed[str(reply.status)] += 1
                bucket.failed_methods[call.method] += 1
                continue
            bucket.ok += 1
            bucket.latencies.append(latency)
            bucket.instances[_instance(reply.body)] += 1

    try:
        await asyncio.gather(*(user(n) for n in range(concurrency)))
    finally:
        client.close()
    return LoadResult(seconds)


def _instance(body: bytes) -> str:
    try:
        return str(json.loads(body).get("instance", "?"))
    except (ValueError, AttributeError):
        return "?"
