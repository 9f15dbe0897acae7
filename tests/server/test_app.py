"""Tests for the shop application server (targets.server.app) over real loopback sockets.

Timing assertions are lower bounds only: the machine running the tests is noisy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from targets.http.client import Reply, fetch, fetch_json
from targets.http.server import HttpServer, ServerLimits
from targets.server.app import MAX_BODY_BYTES, ServerConfig, ShopServer
from targets.server.core import Capacity, Distribution, ServiceTime

pytestmark = pytest.mark.inprocess

TOKEN = "s3cret-token"
AUTH = [(b"authorization", f"Bearer {TOKEN}".encode())]
CONSTANT = Distribution.CONSTANT
INSTANT = ServiceTime(CONSTANT, 0)


# --- fixtures ------------------------------------------------------------------------------------


@dataclass
class Shop:
    """A running ShopServer and how to reach it."""

    app: ShopServer
    host: str
    port: int

    async def call(
        self, method: str, path: str, payload: Any = None, *, timeout_s: float = 5.0, **kw: Any
    ) -> Reply:
        return await fetch_json(
            self.host, self.port, method, path, payload, timeout_s=timeout_s, **kw
        )

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def raw(self, method: str, path: str, body: bytes, **kw: Any) -> Reply:
        return await fetch(self.host, self.port, method, path, body=body, timeout_s=5.0, **kw)

    async def faults(self, method: str, payload: Any = None, **kw: Any) -> Reply:
        return await self.call(method, "/admin/faults", payload, headers=AUTH, **kw)

    async def metrics(self) -> str:
        """/metrics as Prometheus sees it from its second scrape on (a series is exposed at 0
        the first time: targets.fastmetrics.BornAtZeroRegistry)."""
        await self.get("/metrics")
        reply = await self.get("/metrics")
        assert reply.status == 200
        return reply.body.decode()


Start = Callable[..., Awaitable[Shop]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start ShopServers on 127.0.0.1:0 (instant service time unless told); stop them after."""
    running: list[tuple[ShopServer, HttpServer]] = []

    async def _start(**config: Any) -> Shop:
        config.setdefault("service_time", INSTANT)
        app = ShopServer(ServerConfig(**config))
        http = HttpServer(app, ServerLimits(name="test-server", max_body_bytes=MAX_BODY_BYTES))
        await http.listen("127.0.0.1", 0)
        running.append((app, http))
        return Shop(app, *http.address)

    yield _start
    for app, http in running:
        app.release_hung()
        await http.shutdown(2.0)


@pytest.fixture
async def shop(start: Start) -> Shop:
    """A server without an admin token (admin API disabled)."""
    return await start()


@pytest.fixture
async def admin(start: Start) -> Shop:
    """A server whose admin API accepts TOKEN."""
    return await start(admin_token=TOKEN)


def check(reply: Reply, code: int, /, **fields: Any) -> dict[str, Any]:
    """Assert the status code, a JSON body naming the instance and service, and the fields."""
    assert reply.status == code, reply.body
    body = reply.json()
    assert body["service"] == "shop"
    assert body["instance"] == "server-1"
    for name, value in fields.items():
        assert body[name] == value, (name, body)
    return body


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll `condition` until it holds (fails the test after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.01)


# --- shop endpoints ------------------------------------------------------------------------------

SHOP_CALLS = [
    # method, path, payload, status, expected fields
    ("POST", "/auth/login", {"user": "ana"}, 200, {"user": "ana"}),
    ("GET", "/auth/verify", None, 200, {"valid": True}),
    ("GET", "/orders", None, 200, {}),
    ("POST", "/orders", {"items": [1, 2, 3]}, 201, {"status": "created", "items": 3}),
    ("GET", "/orders/o-77", None, 200, {"id": "o-77", "status": "confirmed"}),
    ("POST", "/payments", {"order": "o-1"}, 201, {"order": "o-1", "status": "captured"}),
    ("POST", "/pay", {"order": "o-2"}, 201, {"order": "o-2", "status": "captured"}),
    ("GET", "/payments/p-9", None, 200, {"id": "p-9", "status": "captured"}),
]


@pytest.mark.parametrize("prefix", ["", "/api"])
@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "fields"),
    SHOP_CALLS,
    ids=[f"{m} {p}" for m, p, *_ in SHOP_CALLS],
)
async def test_shop_endpoints_answer_json(shop, prefix, method, path, payload, status, fields):
    """Every shop endpoint answers JSON naming instance and service, with or without /api."""
    reply = await shop.call(method, prefix + path, payload)
    check(reply, status, **fields)
    assert reply.header(b"content-type").startswith(b"application/json")


async def test_login_defaults_to_guest_and_issues_tokens(shop):
    """Login without a user logs in a guest; each login gets a fresh token."""
    first = check(await shop.call("POST", "/api/auth/login"), 200, user="guest")
    second = check(await shop.call("POST", "/api/auth/login", {"user": "bo"}), 200)
    assert first["token"] != second["token"]


async def test_orders_list_has_three_orders(shop):
    """GET /orders lists three orders with ids and totals."""
    body = check(await shop.get("/api/orders"), 200)
    assert len(body["orders"]) == 3
    assert all({"id", "total"} <= order.keys() for order in body["orders"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/api/nope"),
        ("DELETE", "/orders"),
        ("GET", "/orders/a/b"),
        ("GET", "/orders/"),
        ("POST", "/auth/verify"),
        ("GET", "/"),
    ],
)
async def test_unknown_path_is_404_json(shop, method, path):
    """A path or method no endpoint serves answers 404 JSON naming the path."""
    check(await shop.call(method, path), 404, error="not_found", path=path)


@pytest.mark.parametrize(
    ("body", "detail"),
    [(b"{not json", "not JSON"), (b"[1, 2]", "JSON object"), (b'"text"', "JSON object")],
)
async def test_bad_json_body_is_400(shop, body, detail):
    """A shop request whose body is not a JSON object answers 400 bad_json."""
    reply = await shop.raw("POST", "/api/orders", body)
    assert detail in check(reply, 400, error="bad_json")["detail"]


async def test_empty_body_is_fine(shop):
    """A POST without a body is served as an empty JSON object."""
    check(await shop.raw("POST", "/api/orders", b""), 201, items=0)


# --- capacity ------------------------------------------------------------------------------------


async def test_overload_rejects_beyond_slots_and_backlog(start):
    """slots=1, backlog=1: of three concurrent requests two are served and one gets 503."""
    shop = await start(
        capacity=Capacity(slots=1, backlog=1), service_time=ServiceTime(CONSTANT, 0.4)
    )
    replies = await asyncio.gather(*(shop.get("/api/orders") for _ in range(3)))
    assert sorted(r.status for r in replies) == [200, 200, 503]
    rejected = next(r for r in replies if r.status == 503)
    check(rejected, 503, error="overloaded")
    assert rejected.header(b"retry-after") == b"1"
    assert all(r.header(b"retry-after") is None for r in replies if r.status == 200)
    text = await shop.metrics()
    assert sample(text, "server_requests_total", endpoint="orders_list", code="503") == 1
    assert (shop.app.admission.served, shop.app.admission.rejected) == (2, 1)


async def test_requests_beyond_slots_wait_their_turn(start):
    """slots=1 and 0.2 s service: the second of two concurrent requests finishes after the first."""
    shop = await start(
        capacity=Capacity(slots=1, backlog=4), service_time=ServiceTime(CONSTANT, 0.2)
    )
    t0 = time.perf_counter()

    async def timed() -> tuple[Reply, float]:
        reply = await shop.get("/api/orders")
        return reply, time.perf_counter() - t0

    results = sorted(await asyncio.gather(timed(), timed()), key=lambda r: r[1])
    (first, first_s), (second, second_s) = results
    assert (first.status, second.status) == (200, 200)
    assert first_s >= 0.18
    assert second_s >= 0.35
    # the one that finished last was served second (ids come from a per-server counter)
    assert first.json()["orders"][0]["id"] == "o-1"
    assert second.json()["orders"][0]["id"] == "o-2"
    assert "server_queue_wait_seconds_count 1.0" in await shop.metrics()


# --- management plane ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/api/health"])
async def test_health_ok_then_draining(shop, path):
    """/health answers 200 ok, then 503 draining once the app drains."""
    check(await shop.get(path), 200, status="ok", in_service=0, waiting=0)
    shop.app.draining = True
    check(await shop.get(path), 503, status="draining")


async def test_draining_still_serves_shop_requests(shop):
    """Draining fails the health check only: in-flight and new shop requests are still served."""
    shop.app.draining = True
    check(await shop.get("/api/orders"), 200)


def sample_line(text: str, name: str, **labels: str) -> str | None:
    """The line of metric `name` with exactly these labels (any label order), or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, _value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        found = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if part)
        if metric == name and {k: v.strip('"') for k, v in found.items()} == labels:
            return line
    return None


def sample(text: str, name: str, **labels: str) -> float | None:
    line = sample_line(text, name, **labels)
    return None if line is None else float(line.rpartition(" ")[2])


async def test_metrics_count_requests_by_endpoint(start):
    """/metrics is Prometheus text with request counts by endpoint and code, and the capacity."""
    shop = await start(capacity=Capacity(slots=3, backlog=5))
    await shop.get("/api/orders")
    await shop.get("/orders")
    await shop.call("POST", "/api/payments", {"order": "o-1"})
    await shop.get("/nope")
    reply = await shop.get("/metrics")
    assert reply.status == 200
    assert reply.header(b"content-type").startswith(b"text/plain")
    text = await shop.metrics()
    assert sample(text, "server_requests_total", endpoint="orders_list", code="200") == 2
    assert sample(text, "server_requests_total", endpoint="payments_create", code="201") == 1
    assert sample(text, "server_requests_total", endpoint="unknown", code="404") == 1
    assert sample(text, "server_slots") == 3
    assert sample(text, "server_backlog_limit") == 5
    assert sample(text, "server_in_service") == 0
    assert sample(text, "server_info", service="shop", instance="server-1") == 1
    assert sample(text, "server_request_duration_seconds_count", endpoint="orders_list") == 2
    assert sample(text, "server_fault_active") == 0


async def test_metrics_are_per_server(start):
    """Two servers in one process keep separate registries and counts."""
    one = await start(instance="server-1")
    two = await start(instance="server-2")
    await one.get("/api/orders")
    assert sample(await one.metrics(), "server_requests_total", endpoint="orders_list", code="200")
    assert (
        sample(await two.metrics(), "server_requests_total", endpoint="orders_list", code="200")
        is None
    )
    assert sample(await two.metrics(), "server_info", service="shop", instance="server-2") == 1


# --- admin: faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_admin_disabled_without_token(shop, method):
    """Without a configured admin token /admin/faults answers 403, whatever is sent."""
    reply = await shop.call(method, "/admin/faults", {"error_rate": 1}, headers=AUTH)
    assert reply.status == 403
    assert reply.json()["error"] == "admin_disabled"
    assert not shop.app.faults.active


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"authorization", b"Bearer wrong")],
        [(b"authorization", TOKEN.encode())],
        [(b"authorization", f"Basic {TOKEN}".encode())],
    ],
    ids=["none", "wrong", "no-scheme", "basic"],
)
async def test_admin_wrong_token_is_401(admin, headers):
    """A missing or wrong bearer token answers 401 and changes nothing."""
    reply = await admin.call("PUT", "/admin/faults", {"error_rate": 1}, headers=headers)
    assert reply.status == 401
    assert reply.json()["error"] == "unauthorized"
    assert not admin.app.faults.active


async def test_admin_faults_get_put_delete(admin):
    """GET shows the current faults, PUT replaces them, DELETE clears them."""
    check(await admin.faults("GET"), 200, latency_ms=0, error_rate=0, hang=False)
    put = await admin.faults("PUT", {"latency_ms": 150, "error_rate": 0.25})
    check(put, 200, latency_ms=150, error_rate=0.25, hang=False)
    check(await admin.faults("GET"), 200, latency_ms=150, error_rate=0.25, hang=False)
    assert sample(await admin.metrics(), "server_fault_active") == 1
    check(await admin.faults("PUT", {"error_rate": 0.5}), 200, latency_ms=0, error_rate=0.5)
    check(await admin.faults("DELETE"), 200, latency_ms=0, error_rate=0, hang=False)
    check(await admin.faults("GET"), 200, latency_ms=0, error_rate=0, hang=False)
    assert sample(await admin.metrics(), "server_fault_active") == 0


async def test_admin_under_api_prefix(admin):
    """The admin API also answers under /api."""
    reply = await admin.call("GET", "/api/admin/faults", headers=AUTH)
    check(reply, 200, hang=False)


async def test_admin_other_method_is_405(admin):
    """Methods other than GET, PUT and DELETE answer 405."""
    reply = await admin.faults("POST", {"error_rate": 1})
    assert reply.status == 405
    assert not admin.app.faults.active


async def test_injected_latency_slows_requests(admin):
    """PUT latency_ms=300 adds at least 0.3 s to every shop request."""
    check(await admin.faults("PUT", {"latency_ms": 300}), 200)
    started = time.perf_counter()
    check(await admin.get("/api/orders"), 200)
    assert time.perf_counter() - started >= 0.28
    text = await admin.metrics()
    assert sample(text, "server_faults_injected_total", kind="latency") == 1


async def test_injected_error_rate_one_fails_every_shop_request(admin):
    """PUT error_rate=1 makes every shop request 500 injected_fault; health is unaffected."""
    check(await admin.faults("PUT", {"error_rate": 1}), 200)
    for method, path, payload, *_ in SHOP_CALLS:
        check(await admin.call(method, "/api" + path, payload), 500, error="injected_fault")
    check(await admin.get("/health"), 200, status="ok")
    text = await admin.metrics()
    assert sample(text, "server_faults_injected_total", kind="error") == len(SHOP_CALLS)
    check(await admin.faults("DELETE"), 200)
    check(await admin.get("/api/orders"), 200)


async def test_hang_holds_requests_until_cleared(admin):
    """PUT hang=true holds shop requests (no answer in 0.5 s); DELETE lets them complete."""
    check(await admin.faults("PUT", {"hang": True}), 200, hang=True)
    hung = asyncio.create_task(admin.get("/api/orders", timeout_s=10))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(hung), 0.5)
    # the management plane still answers while the shop hangs
    check(await admin.get("/health"), 200, in_service=1)
    check(await admin.faults("GET"), 200, hang=True)
    check(await admin.faults("DELETE"), 200, hang=False)
    check(await asyncio.wait_for(hung, 5), 200)
    assert sample(await admin.metrics(), "server_faults_injected_total", kind="hang") == 1


async def test_hang_released_by_put_without_hang(admin):
    """A PUT that turns hang off also releases the held requests."""
    check(await admin.faults("PUT", {"hang": True}), 200)
    hung = asyncio.create_task(admin.get("/api/auth/verify", timeout_s=10))
    await wait_until(lambda: admin.app.admission.in_service == 1)
    check(await admin.faults("PUT", {"latency_ms": 1}), 200, hang=False)
    check(await asyncio.wait_for(hung, 5), 200, valid=True)


@pytest.mark.parametrize(
    ("payload", "field_name"),
    [
        ({"error_rate": 2}, "error_rate"),
        ({"error_rate": -0.5}, "error_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": 600_001}, "latency_ms"),
        ({"hang": "maybe"}, "hang"),
        ({"colour": "red"}, "colour"),
        ([], "body"),
    ],
)
async def test_invalid_faults_body_is_400_naming_field(admin, payload, field_name):
    """An invalid PUT body answers 400 whose detail names the field, and changes nothing."""
    check(await admin.faults("PUT", {"latency_ms": 5}), 200)
    reply = await admin.faults("PUT", payload)
    assert reply.status == 400
    body = reply.json()
    assert body["error"] == "invalid_faults"
    assert body["detail"].startswith(f"{field_name}:"), body["detail"]
    check(await admin.faults("GET"), 200, latency_ms=5)


async def test_faults_body_not_json_is_400(admin):
    """A PUT body that is not JSON answers 400 invalid_faults."""
    reply = await admin.raw("PUT", "/admin/faults", b"{oops", headers=AUTH)
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_faults"
    assert "JSON" in reply.json()["detail"]


# --- known problems ------------------------------------------------------------------------------


async def test_cancel_serving_and_waiting_requests_together():
    """Cancelling a serving and a waiting request in one tick raises only CancelledError."""
    app = ShopServer(
        ServerConfig(capacity=Capacity(slots=1, backlog=1), service_time=ServiceTime(CONSTANT, 30))
    )
    serving = asyncio.create_task(app._serve("orders_list", "", {}))
    waiting = asyncio.create_task(app._serve("orders_list", "", {}))
    await wait_until(lambda: (app.admission.in_service, app.admission.waiting) == (1, 1))
    serving.cancel()
    waiting.cancel()  # e.g. asyncio.run() cancelling leftover handler tasks at exit
    results = await asyncio.gather(serving, waiting, return_exceptions=True)
    assert [type(r) for r in results] == [asyncio.CancelledError, asyncio.CancelledError]
    assert (app.admission.in_service, app.admission.waiting) == (0, 0)


async def test_waiter_whose_client_left_frees_backlog(start):
    """A request waiting for a slot leaves the backlog when its client goes away."""
    shop = await start(capacity=Capacity(slots=1, backlog=1), admin_token=TOKEN)
    check(await shop.faults("PUT", {"hang": True}), 200)
    holder = asyncio.create_task(shop.get("/api/orders", timeout_s=10))
    await wait_until(lambda: shop.app.admission.in_service == 1)
    with pytest.raises(TimeoutError):  # the client gives up and closes its connection
        await asyncio.wait_for(shop.get("/api/orders", timeout_s=10), 0.3)
    try:
        await wait_until(lambda: shop.app.admission.waiting == 0, timeout_s=1.0)
    finally:
        await shop.faults("DELETE")
        await asyncio.wait_for(holder, 5)
