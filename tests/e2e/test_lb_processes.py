"""End to end: real server and load balancer processes on loopback, under a bounded load."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from harness.lab import Lab, ServerSpec, start_lab
from harness.loadgen import GET_ONLY, run_load
from harness.supervisor import Supervisor
from targets.http.client import Client
from tests.helpers import eventually, running, stop_process

pytestmark = pytest.mark.e2e


async def view_when(lab: Lab, holds: Callable[[dict[str, Any]], bool], what: str) -> None:
    """Poll the load balancer's `GET /targets` until `holds(view)` (fail after a deadline)."""

    async def check() -> bool:
        return holds(await lab.targets())

    await eventually(check, deadline_s=15, what=what)


def target(view: dict[str, Any], target_id: str) -> dict[str, Any]:
    return next(t for t in view["targets"] if t["id"] == target_id)


async def wait_healthy(lab: Lab, count: int) -> None:
    await view_when(lab, lambda v: v["counts"]["healthy"] == count, f"{count} healthy targets")


async def running_lab(tmp_path: Path, spec: ServerSpec) -> AsyncIterator[Lab]:
    async with Supervisor(tmp_path / "run") as supervisor:
        lab = await start_lab(supervisor, servers=3, spec=spec)
        await wait_healthy(lab, 3)
        yield lab


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async for lab in running_lab(tmp_path, ServerSpec(service_ms=5, slots=16)):
        yield lab


@pytest.fixture
async def slow_lab(tmp_path: Path) -> AsyncIterator[Lab]:
    spec = ServerSpec(service_ms=400, slots=16, extra=("--distribution", "constant"))
    async for lab in running_lab(tmp_path, spec):
        yield lab


async def test_traffic_is_spread_over_every_server(lab: Lab) -> None:
    """Round robin: each of the three servers serves about a third of the requests."""
    result = await run_load(*lab.address, duration_s=2, concurrency=6, calls=GET_ONLY)
    served = result.instances()
    assert result.failures() == {}
    assert set(served) == {"shop-1", "shop-2", "shop-3"}
    assert min(served.values()) > result.ok / 3 * 0.8


async def test_kill_9_of_a_server_gives_no_client_error_for_gets(lab: Lab) -> None:
    """SIGKILL one server mid-load: GETs are retried elsewhere, the client sees no error."""
    load = asyncio.create_task(run_load(*lab.address, duration_s=5, concurrency=16, calls=GET_ONLY))
    await view_when(lab, lambda v: target(v, "shop-2")["requests"] > 0, "shop-2 serving the load")
    victim = lab.servers["shop-2"]
    victim.kill()
    result = await load
    assert result.failures() == {}, result.failures()
    assert result.seconds[0].instances["shop-2"] > 0
    assert result.seconds[-1].instances["shop-2"] == 0
    assert result.seconds[-1].ok > 0
    view = await lab.targets()
    states = {t["id"]: t["state"] for t in view["targets"]}
    assert states["shop-2"] == "unhealthy"
    assert view["routable"] == 2


async def test_graceful_stop_completes_every_request_in_flight(slow_lab: Lab) -> None:
    """SIGTERM a server holding requests: it deregisters, drains them all, then exits 0."""
    load = asyncio.create_task(
        run_load(*slow_lab.address, duration_s=4, concurrency=12, calls=GET_ONLY)
    )
    await view_when(slow_lab, lambda v: target(v, "shop-1")["in_flight"] > 0, "shop-1 busy")
    victim = slow_lab.servers["shop-1"]
    code = await victim.stop()
    result = await load
    assert code == 0
    assert result.failures() == {}, result.failures()
    assert result.instances()["shop-1"] > 0
    view = await slow_lab.targets()
    assert {t["id"] for t in view["targets"]} == {"shop-2", "shop-3"}


async def test_deregistered_target_finishes_its_requests_and_gets_no_new_ones(
    slow_lab: Lab,
) -> None:
    """Deregistering through the control API drains: in-flight complete, new ones go elsewhere."""
    client = Client(*slow_lab.address, max_connections=12)
    try:
        in_flight = [asyncio.create_task(client.request("GET", "/api/orders/1")) for _ in range(12)]
        await view_when(
            slow_lab,
            lambda v: sum(t["in_flight"] for t in v["targets"]) == 12,
            "the 12 requests in flight",
        )
        answer = await slow_lab.deregister("shop-3")
        assert answer["state"] == "draining"
        replies = await asyncio.gather(*in_flight)
        assert [r.status for r in replies] == [200] * 12
        assert sum(r.json()["instance"] == "shop-3" for r in replies) == 4
        after = await asyncio.gather(*(client.request("GET", "/api/orders/2") for _ in range(6)))
        assert all(r.json()["instance"] != "shop-3" for r in after)
        again = await slow_lab.deregister("shop-3")
        assert again["state"] == "unused"  # idempotent: an unknown target is a success
    finally:
        client.close()


async def test_new_server_registers_and_serves_within_two_seconds(lab: Lab) -> None:
    """A server started mid-load registers itself and gets traffic within 2 s of serving."""
    load = asyncio.create_task(run_load(*lab.address, duration_s=4, concurrency=8, calls=GET_ONLY))
    await view_when(lab, lambda v: any(t["requests"] for t in v["targets"]), "the load on")
    await lab.add_server(ServerSpec(service_ms=5, slots=16), name="shop-new")
    registered = time.monotonic()
    client = Client(*lab.address, max_connections=1)
    first_served = None
    try:
        while time.monotonic() - registered < 2.0:
            reply = await client.request("GET", "/api/orders/7")
            if reply.json()["instance"] == "shop-new":
                first_served = time.monotonic() - registered
                break
    finally:
        client.close()
    result = await load
    assert first_served is not None, "the new server got no request within 2 s"
    assert result.failures() == {}
    assert result.instances()["shop-new"] > 0


async def test_no_registered_target_gives_503_then_service_resumes(tmp_path: Path) -> None:
    """With every server gone the LB answers 503 itself; a new server brings service back."""
    async with Supervisor(tmp_path / "run") as supervisor:
        lab = await start_lab(supervisor, servers=1, spec=ServerSpec(service_ms=1))
        await wait_healthy(lab, 1)
        await lab.servers["shop-1"].stop()
        client = Client(*lab.address, max_connections=1)
        try:
            reply = await client.request("GET", "/api/orders/1")
            assert reply.status == 503
            assert reply.json()["error"] == "no_targets"
            await lab.add_server(ServerSpec(service_ms=1))
            await wait_healthy(lab, 1)
            reply = await client.request("GET", "/api/orders/1")
            assert reply.status == 200
        finally:
            client.close()


async def test_children_die_with_a_killed_harness(tmp_path: Path) -> None:
    """Processes the supervisor started never outlive it, even when it is SIGKILLed."""
    script = (
        "import asyncio, pathlib, sys\n"
        "from harness.supervisor import Supervisor\n"
        "async def main():\n"
        "    sup = Supervisor(pathlib.Path(sys.argv[1]))\n"
        "    child = await sup.spawn('s', 'server', 'targets.server', [])\n"
        "    print(child.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdout=subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        child_pid = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)

        async def gone() -> bool:
            return not running(child_pid)

        try:
            await eventually(gone, deadline_s=10, what="the child to die with its parent")
        except AssertionError:
            os.kill(child_pid, signal.SIGKILL)
            raise
    finally:
        stop_process(proc, grace_s=0)
