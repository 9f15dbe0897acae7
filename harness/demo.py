"""The showcase: a load balancer with servers joining and leaving while traffic flows.

Three servers behind the load balancer take a bounded load; mid-run one is killed with SIGKILL,
a new one boots and registers, and one is stopped gracefully (deregister, drain, exit). Each
second of the run is a row: requests, failures, latency, how many targets the load balancer
could route to, and who served what.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from harness.lab import Lab, ServerSpec, start_lab
from harness.loadgen import LoadResult, quantile, run_load
from harness.supervisor import Supervisor


@dataclass(frozen=True, slots=True)
class DemoSettings:
    seconds: float = 12.0
    servers: int = 3
    users: int = 24
    service_ms: float = 20.0
    slots: int = 8


@dataclass(slots=True)
class DemoResult:
    settings: DemoSettings
    load: LoadResult
    events: list[tuple[float, str]] = field(default_factory=list)
    routable: dict[int, int] = field(default_factory=dict)  # second -> routable targets


Action = Callable[[Lab], Awaitable[str]]


async def _kill(lab: Lab) -> str:
    victim = lab.servers["shop-2"]
    victim.kill()
    return "kill -9 shop-2"


async def _add(lab: Lab) -> str:
    await lab.add_server(ServerSpec(service_ms=20.0), name="shop-4")
    return "shop-4 joined"


async def _stop(lab: Lab) -> str:
    code = await lab.servers["shop-1"].stop()
    return f"shop-1 drained, exit {code}"


def timeline(seconds: float) -> list[tuple[float, str, Action]]:
    """When each chaos step happens, scaled to the run's length."""
    return [
        (seconds * 0.25, "kill -9 shop-2", _kill),
        (seconds * 0.45, "add shop-4", _add),
        (seconds * 0.65, "stop shop-1", _stop),
    ]


async def run_demo(settings: DemoSettings, run_dir: Path) -> DemoResult:
    spec = ServerSpec(service_ms=settings.service_ms, slots=settings.slots)
    async with Supervisor(run_dir) as supervisor:
        lab = await start_lab(supervisor, settings.servers, spec)
        await _wait_routable(lab, settings.servers)
        start = time.monotonic()
        load = asyncio.create_task(
            run_load(*lab.address, duration_s=settings.seconds, concurrency=settings.users)
        )
        result = DemoResult(settings, LoadResult([]))
        watcher = asyncio.create_task(_watch(lab, start, result))
        for at, _, action in timeline(settings.seconds):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - start)))
            began = time.monotonic() - start
            result.events.append((began, await action(lab)))
        result.load = await load
        watcher.cancel()
    return result


async def _wait_routable(lab: Lab, count: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (await lab.targets())["counts"]["healthy"] < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} servers not healthy after {timeout_s:g} s")
        await asyncio.sleep(0.1)


async def _watch(lab: Lab, start: float, result: DemoResult) -> None:
    """Sample the load balancer's routable-target count; keep each second's last value."""
    while True:
        second = int(time.monotonic() - start)
        routable = int((await lab.targets())["routable"])
        result.routable[second] = routable
        await asyncio.sleep(0.2)


def render(result: DemoResult) -> RenderableType:
    """The per-second table and the summary, ready to print."""
    table = Table(title="load balancer under chaos, one row per second", title_justify="left")
    for column in ("t", "req", "ok", "failed", "p50 ms", "p95 ms", "up"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("served by shop-N", no_wrap=True)
    table.add_column("event", no_wrap=True)
    events: dict[int, list[str]] = {}
    for at, text in result.events:
        events.setdefault(int(at), []).append(text)
    for i, s in enumerate(result.load.seconds):
        failed = ", ".join(f"{n} x {kind}" for kind, n in sorted(s.failed.items())) or "0"
        served = " ".join(
            f"{name.removeprefix('shop-')}:{n}" for name, n in sorted(s.instances.items())
        )
        table.add_row(
            str(i),
            str(s.total),
            str(s.ok),
            Text(failed, style="red" if s.failed else ""),
            f"{quantile(s.latencies, 0.5) * 1000:.1f}",
            f"{quantile(s.latencies, 0.95) * 1000:.1f}",
            str(result.routable.get(i, "")),
            served,
            "; ".join(events.get(i, [])),
        )
    load = result.load
    failures = load.failures()
    methods = load.failed_methods()
    summary = Text()
    summary.append(f"\n{load.total} requests in {result.settings.seconds:g} s, ")
    summary.append(f"{load.ok} ok, ")
    summary.append(
        f"{sum(failures.values())} failed",
        style="red" if failures else "green",
    )
    if failures:
        summary.append(
            " ("
            + ", ".join(f"{n} x {k}" for k, n in failures.items())
            + "; by method: "
            + ", ".join(f"{m} {n}" for m, n in methods.items())
            + ")"
        )
    summary.append(
        f"\nlatency p50 {load.latency_quantile(0.5) * 1000:.1f} ms, "
        f"p95 {load.latency_quantile(0.95) * 1000:.1f} ms, "
        f"p99 {load.latency_quantile(0.99) * 1000:.1f} ms"
    )
    summary.append(
        "\n'up' is how many servers the load balancer could route to (its healthy targets)."
        "\nGETs caught by the kill are retried on another server; a POST already sent to the"
        " killed server cannot be retried safely, so it fails with 502. The graceful stop"
        " drops nothing: the server deregisters first and finishes what it holds."
    )
    return Group(table, summary)
