"""End to end: real Locust processes (started by the harness) load a real lab on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.lab import Lab, ServerSpec, start_lab
from harness.locust import LocustHandles, LocustPlan, start_locust
from harness.supervisor import Supervisor, free_port
from locustfiles.stages import Stage
from targets.http.client import fetch
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter

pytestmark = pytest.mark.e2e

FAST_WAIT = (0.05, 0.2)
STAGES = (Stage(2.0, 4, 20.0), Stage(2.0, 8, 20.0))  # ~4 s, then the run ends by itself


@dataclass
class Running:
    supervisor: Supervisor
    lab: Lab
    services: dict[str, str]
    run_dir: Path


async def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 10.0) -> Any:
    """Poll the async `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Running]:
    """One LB with two servers; every service points at it (any server answers every route)."""
    async with Supervisor(tmp_path / "run") as supervisor:
        lab = await start_lab(supervisor, servers=2, spec=ServerSpec(service_ms=2, slots=32))

        async def healthy() -> bool:
            view = await lab.targets()
            return bool(view["counts"]["healthy"] == 2)

        await wait_for(healthy, "2 healthy servers")
        host, port = lab.address
        url = f"http://{host}:{port}"
        services = {"auth": url, "orders": url, "payments": url}
        yield Running(supervisor, lab, services, tmp_path / "run")


async def scrape(address: tuple[str, int]) -> dict[str, list[tuple[dict[str, str], float]]]:
    """`GET /metrics` parsed: sample name -> [(labels, value)]."""
    reply = await fetch(*address, "GET", "/metrics", timeout_s=5.0)
    assert reply.status == 200, reply.body[:200]
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def requests_ok(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> float:
    samples = metrics.get("locust_requests_total", [])
    return sum(value for labels, value in samples if labels["result"] == "ok")


def gauge(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    ((_, value),) = metrics[name]
    return value


async def test_headless_staged_run_exports_metrics_and_stops_by_itself(lab: Running) -> None:
    """A ~4 s staged headless run: ok requests grow on /metrics, then Locust exits with 0.

    Payments point at a port nobody listens on: those requests fail, counted by error class."""
    services = {**lab.services, "payments": f"http://127.0.0.1:{free_port()}"}
    plan = LocustPlan(services=services, stages=STAGES, wait_s=FAST_WAIT)
    handles = await start_locust(lab.supervisor, plan, lab.run_dir)
    address = handles.metrics["locust"]

    first = await wait_for(lambda: _ok_after(address, 0), "first ok requests")
    await asyncio.sleep(1.0)
    second = await scrape(address)
    assert requests_ok(second) > first
    names = {labels["name"] for labels, _ in second["locust_requests_total"]}
    assert {"/api/orders", "/api/orders/{id}", "/api/auth/login"} <= names  # by route, not id
    assert gauge(second, "locust_users") > 0
    assert "locust_request_duration_seconds_bucket" in second
    failed = {
        (labels["name"], labels["result"])
        for labels, value in second["locust_requests_total"]
        if labels["result"] == "fail" and value > 0
    }
    assert failed == {("/api/payments", "fail")}
    assert [labels for labels, _ in second["locust_failures_total"]] == [
        {"name": "/api/payments", "method": "POST", "error_class": "ConnectionRefusedError"}
    ]

    assert await handles.wait(timeout_s=20) == 0
    assert handles.reports is not None
    stats = json.loads(handles.reports.json.read_text())
    assert any(row["name"] == "/api/orders" and row["num_requests"] > 0 for row in stats)
    assert handles.reports.stats_csv.exists()
    assert handles.reports.html.exists()


CUMULATIVE = ("_total", "_bucket", "_count", "_sum")
SHOP_ENDPOINTS = {
    ("POST", "/api/auth/login"), ("GET", "/api/auth/verify"), ("GET", "/api/orders"),
    ("GET", "/api/orders/{id}"), ("POST", "/api/orders"), ("POST", "/api/payments"),
    ("GET", "/api/payments/{id}"),
}  # fmt: skip


async def test_held_run_waits_for_its_scrapes_and_release_and_no_series_starts_above_zero(
    lab: Running,
) -> None:
    """With a release file (the scenario runner), Locust starts its test only after two
    scrapes, every endpoint's ok and fail series exist at 0 before the first request, no
    counter series is ever first seen above 0 (the payments failures, a series born mid-run,
    included), `locust_counts_final` turns 1 after the stop, and the process stays until the
    file exists."""
    services = {**lab.services, "payments": f"http://127.0.0.1:{free_port()}"}
    release = lab.run_dir / "release"
    plan = LocustPlan(services=services, stages=STAGES, wait_s=FAST_WAIT, release_file=release)
    handles = await start_locust(lab.supervisor, plan, lab.run_dir)
    address = handles.metrics["locust"]
    first = await scrape(address)
    declared = {(labels["method"], labels["name"], labels["result"])
                for labels, _ in first["locust_requests_total"]}  # fmt: skip
    assert declared == {(m, n, r) for m, n in SHOP_ENDPOINTS for r in ("ok", "fail")}
    assert {value for _, value in first["locust_requests_total"]} == {0}
    await asyncio.sleep(1.0)
    second = await scrape(address)  # the second scrape: the test may start from here on
    assert requests_ok(second) == 0  # held: one scrape is not enough
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for metrics in (first, second):  # what was there before the start, at its first value
        for name, samples in metrics.items():
            for labels, value in samples:
                if name.endswith(CUMULATIVE):
                    seen.setdefault((name, tuple(sorted(labels.items()))), value)
    final_at = None
    deadline = time.monotonic() + 30
    while final_at is None and time.monotonic() < deadline:
        metrics = await scrape(address)
        for name, samples in metrics.items():
            for labels, value in samples:
                if name.endswith(CUMULATIVE):
                    seen.setdefault((name, tuple(sorted(labels.items()))), value)
        if gauge(metrics, "locust_counts_final") == 1:
            final_at = time.monotonic()
        await asyncio.sleep(0.1)
    assert final_at is not None, "locust_counts_final never turned 1"
    late = {key: value for key, value in seen.items() if value != 0}
    assert not late, f"series first seen above 0: {late}"
    assert requests_ok(metrics) > 0
    failed = [
        v for labels, v in metrics["locust_failures_total"] if labels["name"] == "/api/payments"
    ]
    assert sum(failed) > 0  # born mid-run, first seen at 0 above
    await asyncio.sleep(1.0)
    assert handles.main.process.returncode is None, "left before its release"
    release.touch()
    assert await handles.wait(timeout_s=20) == 0


async def _short_run(lab: Running, host: str) -> tuple[list[dict[str, Any]], str, str]:
    """A 3 s headless run of the shop's users at `host`, the lab's load balancer listed as
    its one known base (as `harness up` lists its own): (stats rows, failures csv, log)."""
    known = {"orders (load balancer)": lab.services["orders"]}
    plan = LocustPlan(services={}, host=host, hosts=known, users=4, spawn_rate=20.0,
                      run_time_s=3, wait_s=FAST_WAIT)  # fmt: skip
    handles = await start_locust(lab.supervisor, plan, lab.run_dir)
    assert await handles.wait(timeout_s=20) == 0
    assert handles.reports is not None
    stats = json.loads(handles.reports.json.read_text())
    failures = handles.reports.csv_prefix.with_name("locust_failures.csv").read_text()
    return stats, failures, handles.main.log_path.read_text(errors="replace")


async def test_a_host_with_a_trailing_slash_loads_the_lab(lab: Running) -> None:
    """`--host http://127.0.0.1:PORT/` (as `harness up` once printed the gateway): the users
    reach every route, no request is an `invalid request URI`."""
    stats, failures, log = await _short_run(lab, lab.services["orders"] + "/")
    assert sum(row["num_requests"] for row in stats) > 0
    assert {"/api/auth/login", "/api/orders"} <= {row["name"] for row in stats}
    assert sum(row["num_failures"] for row in stats) == 0, failures
    assert "invalid request URI" not in log


async def test_a_host_the_lab_does_not_know_is_refused_and_counted(lab: Running) -> None:
    """Another port on loopback (not the lab's): every request is a failure whose message
    says why and what to paste; users keep running (no silent 0 users) and the log says it."""
    stray = f"http://127.0.0.1:{free_port()}/"
    stats, failures, log = await _short_run(lab, stray)
    reason = f"host {stray!r} refused: not a URL of this lab; paste one of: orders (load balancer)"
    assert sum(row["num_failures"] for row in stats) > 0
    assert sum(row["num_requests"] for row in stats) == sum(row["num_failures"] for row in stats)
    assert "HostRefused" in failures
    assert reason in failures
    assert reason in log


async def _ok_after(address: tuple[str, int], floor: float) -> float:
    count = requests_ok(await scrape(address))
    return count if count > floor else 0


@dataclass
class FakeControl:
    """A stand-in for the harness control API: GET /status, POST /chaos, bearer token."""

    token: str
    received: list[tuple[str, str, dict[str, Any] | None, str]] = field(default_factory=list)
    status: dict[str, Any] = field(
        default_factory=lambda: {
            "services": {
                "orders": {
                    "instances": [
                        {
                            "name": "orders-1",
                            "role": "server",
                            "state": "running",
                            "pid": 4242,
                            "address": "127.0.0.1:5001",
                        }
                    ]
                }
            }
        }
    )

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        raw = await request.body.read_all(1 << 20) if request.has_body else b""
        body = json.loads(raw) if raw else None
        auth = (request.header(b"authorization") or b"").decode()
        self.received.append((request.method, request.path, body, auth))
        if auth != f"Bearer {self.token}":
            writer.send_json(401, {"error": "unauthorized"})
        elif request.method == "GET" and request.path == "/status":
            writer.send_json(200, self.status)
        elif request.method == "GET" and request.path in ("/map/state", "/actions"):
            writer.send_json(200, {"answered": request.path})
        elif request.method == "POST" and request.path == "/chaos":
            writer.send_json(200, {"event": "chaos", "done": body})
        else:
            writer.send_json(404, {"error": "not_found"})


async def test_web_ui_serves_metrics_chaos_and_swarms(lab: Running) -> None:
    """Web UI mode: /, /metrics and /chaos answer, chaos calls are forwarded, /swarm and /stop."""
    token = "s3cret-token"
    token_file = lab.run_dir / "locust-control.token"
    token_file.write_text(token + "\n")
    control = FakeControl(token)
    server = HttpServer(control)
    await server.listen("127.0.0.1", 0)
    try:
        plan = LocustPlan(
            services=lab.services,
            headless=False,
            wait_s=FAST_WAIT,
            control_url=f"http://127.0.0.1:{server.address[1]}",
            control_token_file=token_file,
        )
        handles = await start_locust(lab.supervisor, plan, lab.run_dir)
        await _check_web_ui(handles, control, token)
        await handles.stop()
    finally:
        await server.shutdown(grace_s=1.0)


async def _check_web_ui(handles: LocustHandles, control: FakeControl, token: str) -> None:
    assert handles.web_url is not None
    web = handles.metrics["locust"]  # in web UI mode the main process also has its own port
    host, port = handles.web_url.removeprefix("http://").split(":")
    ui = (host, int(port))

    index = await fetch(*ui, "GET", "/", timeout_s=5.0)
    assert index.status == 200
    assert b"rushlab-chaos" in index.body  # the Chaos tab is in Locust's template args

    metrics = await fetch(*ui, "GET", "/metrics")
    assert metrics.status == 200
    assert b"locust_users" in metrics.body
    assert b"locust_cpu_percent" in metrics.body
    assert (await fetch(*web, "GET", "/metrics")).status == 200

    page = await fetch(*ui, "GET", "/chaos")
    assert page.status == 200
    assert (page.header(b"content-type") or b"").startswith(b"text/html")
    assert b"<title>rushlab: live map</title>" in page.body
    assert b'data-api="/chaos/api"' in page.body
    svg = b"http://www.w3.org/2000/svg"  # a namespace name, not fetched
    assert b"http" not in page.body.replace(svg, b"")  # nothing from the network

    status = await fetch(*ui, "GET", "/chaos/api/status")
    assert status.status == 200
    assert status.json() == control.status
    for path in ("/map/state", "/actions"):  # the map's own calls, through the proxy too
        reply = await fetch(*ui, "GET", "/chaos/api" + path)
        assert reply.status == 200
        assert reply.json() == {"answered": path}
    action = {"action": "kill", "service": "orders", "instance": "orders-1"}
    reply = await fetch(
        *ui,
        "POST",
        "/chaos/api/chaos",
        body=json.dumps(action).encode(),
        headers=[(b"content-type", b"application/json")],
    )
    assert reply.status == 200, reply.body
    assert reply.json() == {"event": "chaos", "done": action}
    assert control.received[-1] == ("POST", "/chaos", action, f"Bearer {token}")
    assert token.encode() not in page.body + status.body + reply.body

    bad = await fetch(*ui, "POST", "/chaos/api/chaos", body=b'{"action": "nuke"}')
    assert bad.status == 400
    forged = await fetch(
        *ui,
        "POST",
        "/chaos/api/chaos",
        body=json.dumps(action).encode(),
        headers=[(b"origin", b"http://evil.example")],
    )
    assert forged.status == 403
    assert len([r for r in control.received if r[0] == "POST"]) == 1

    form = b"user_count=4&spawn_rate=20"
    swarm = await fetch(
        *ui,
        "POST",
        "/swarm",
        body=form,
        headers=[(b"content-type", b"application/x-www-form-urlencoded")],
    )
    assert swarm.status == 200
    assert swarm.json()["success"] is True
    await wait_for(lambda: _ok_after(ui, 0), "requests counted on the web UI's /metrics")

    async def tab_rows() -> list[Any]:
        stats = (await fetch(*ui, "GET", "/stats/requests")).json()
        tabs = {t["key"]: t["data"] for t in stats.get("extended_stats", [])}
        return list(tabs.get("rushlab-chaos", []))

    rows = await wait_for(tab_rows, "the Chaos tab's rows")
    assert rows[0]["instance"] == "orders-1"
    assert rows[0]["state"] == "running"

    stop = await fetch(*ui, "POST", "/stop")
    assert stop.status == 200

    async def stopped() -> bool:
        return gauge(await scrape(ui), "locust_users") == 0

    await wait_for(stopped, "users to stop")


async def test_distributed_headless_run_each_worker_exports_its_requests(lab: Running) -> None:
    """1 master + 2 workers for ~4 s: each worker's /metrics counts its own requests."""
    plan = LocustPlan(services=lab.services, stages=STAGES, wait_s=FAST_WAIT, workers=2)
    handles = await start_locust(lab.supervisor, plan, lab.run_dir)
    assert [w.name for w in handles.workers] == ["locust-worker-1", "locust-worker-2"]

    master = handles.metrics["locust-master"]

    async def both_workers() -> bool:
        return gauge(await scrape(master), "locust_workers") == 2

    await wait_for(both_workers, "2 workers on the master")
    for worker in handles.workers:
        address = handles.metrics[worker.name]
        await wait_for(lambda a=address: _ok_after(a, 0), f"{worker.name} requests")
        metrics = await scrape(address)
        assert ("worker",) in {tuple(labels.values()) for labels, _ in metrics["locust_info"]}
    assert requests_ok(await scrape(master)) == 0  # the master makes no requests itself

    assert await handles.wait(timeout_s=25) == 0
    assert [w.process.returncode for w in handles.workers] == [0, 0]
    assert handles.reports is not None
    assert handles.reports.json.exists()
