"""The load balancer adapter in one process: real sockets, real probes, fake-free."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from targets.http.client import Client, fetch
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter, ServerLimits
from targets.lb.balancer import LbConfig, LoadBalancer
from targets.lb.control import control_app
from targets.lb.core import Algorithm, GroupConfig, HealthPolicy

pytestmark = pytest.mark.inprocess

FAST_HEALTH = HealthPolicy(
    interval_s=0.1, timeout_s=0.05, healthy_threshold=2, unhealthy_threshold=2
)


@dataclass
class Backend:
    """An upstream whose behaviour a test can change: healthy or not, slow or not, crashing."""

    name: str
    healthy: bool = True
    delay_s: float = 0.0
    crash: bool = False
    served: list[str] = field(default_factory=list)
    server: HttpServer | None = None

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        if request.path == "/health":
            writer.send_json(200 if self.healthy else 500, {"ok": self.healthy})
            return
        await request.body.read_all()
        self.served.append(request.method)
        if self.crash:
            raise ConnectionResetError("crash before answering")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        writer.send_json(200, {"instance": self.name})


@dataclass
class Setup:
    lb: LoadBalancer
    http: HttpServer
    backends: dict[str, Backend]
    client: Client

    async def get(
        self, path: str = "/x", method: str = "GET", body: bytes = b""
    ) -> tuple[int, dict[str, Any]]:
        reply = await self.client.request(method, path, body=body)
        return reply.status, reply.json()


Start = Callable[..., Awaitable[Setup]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    made: list[Setup] = []

    async def _start(names: tuple[str, ...] = ("a", "b"), **config: object) -> Setup:
        group = GroupConfig(
            health=FAST_HEALTH,
            algorithm=config.pop("algorithm", Algorithm.ROUND_ROBIN),  # type: ignore[arg-type]
            deregistration_delay_s=config.pop("delay", 5.0),  # type: ignore[arg-type]
        )
        lb = LoadBalancer(LbConfig(group=group, seed=1, **config))  # type: ignore[arg-type]
        http = HttpServer(lb, ServerLimits(name=lb.config.name))
        await http.listen()
        lb.http = http
        lb.start()
        backends = {}
        for name in names:
            backend = Backend(name)
            backend.server = HttpServer(backend)
            await backend.server.listen()
            backends[name] = backend
            lb.register(name, *backend.server.address)
        setup = Setup(lb, http, backends, Client(*http.address, max_connections=32))
        made.append(setup)
        await until(lambda: all(t.state.value == "healthy" for t in lb.group.targets.values()))
        return setup

    yield _start
    for setup in made:
        setup.client.close()
        await setup.http.shutdown(1)
        await setup.lb.close()
        for backend in setup.backends.values():
            assert backend.server is not None
            await backend.server.shutdown(1)


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def test_get_that_hits_a_crash_is_retried_on_another_target(start: Start) -> None:
    """A GET whose target resets the connection is answered by another target."""
    s = await start()
    s.backends["a"].crash = True
    results = [await s.get() for _ in range(4)]
    assert [status for status, _ in results] == [200] * 4
    assert {body["instance"] for _, body in results} == {"b"}
    assert s.backends["a"].served  # a really was tried
    assert s.lb.metrics.retries.labels("reset")._value.get() >= 1


async def test_the_only_target_failing_gives_one_answer_on_either_path(start: Start) -> None:
    """A GET reset by the only target: on the fast path (a kept-alive connection) and in a
    task (a new one) alike, one retry is decided, no target is left, and the answer is the
    failure's own: 502 upstream_reset, from the load balancer."""
    s = await start(("a",))
    assert (await s.get())[0] == 200  # leaves an idle pooled connection: the fast path next
    s.backends["a"].crash = True
    for _ in range(2):  # the first on the fast path, the second on a new connection
        status, body = await s.get()
        assert (status, body["error"], body["source"]) == (502, "upstream_reset", "lb")
    assert s.lb.metrics.retries.labels("reset")._value.get() == 2
    assert s.lb.metrics.requests.values[("lb", "502")] == 2
    assert len(s.backends["a"].served) == 3


async def test_retries_stop_at_max_retries(start: Start) -> None:
    """With max_retries=1 a GET every target resets is tried twice, one retry is counted, and
    the client gets the last failure's 502."""
    s = await start(("a", "b", "c"), max_retries=1)
    for backend in s.backends.values():
        backend.crash = True
    status, body = await s.get()
    assert (status, body["error"]) == (502, "upstream_reset")
    assert sum(len(b.served) for b in s.backends.values()) == 2
    assert s.lb.metrics.retries.labels("reset")._value.get() == 1


async def test_post_that_reached_a_crashing_target_is_not_retried(start: Start) -> None:
    """A POST that reached a target is never sent twice: the client gets 502 naming the reset."""
    s = await start()
    s.backends["a"].crash = True
    statuses = []
    for _ in range(2):
        status, body = await s.get(method="POST", body=b'{"x": 1}')
        statuses.append(status)
        if status == 502:
            assert body["error"] == "upstream_reset"
            assert body["source"] == "lb"
    assert sorted(statuses) == [200, 502]
    assert s.backends["b"].served == ["POST"]


async def test_refused_target_is_ejected_and_requests_succeed(start: Start) -> None:
    """A target whose port refuses connections is skipped, marked unhealthy, and costs no error."""
    s = await start()
    server = s.backends["a"].server
    assert server is not None
    await server.shutdown(0.1)
    statuses = [(await s.get())[0] for _ in range(6)]
    assert statuses == [200] * 6
    assert s.lb.group.targets["a"].state.value == "unhealthy"


async def test_every_target_unhealthy_fails_open(start: Start) -> None:
    """When every health check fails, the load balancer still routes to all targets."""
    s = await start()
    for backend in s.backends.values():
        backend.healthy = False
    await until(lambda: all(t.state.value == "unhealthy" for t in s.lb.group.targets.values()))
    served = {(await s.get())[1]["instance"] for _ in range(4)}
    assert served == {"a", "b"}


async def test_slow_target_times_out_with_504(start: Start) -> None:
    """A target slower than the response timeout gives 504, and the GET is retried elsewhere."""
    s = await start(response_timeout_s=0.2, max_retries=0)
    s.backends["a"].delay_s = 1.0
    statuses = sorted([(await s.get())[0] for _ in range(2)])
    assert statuses == [200, 504]


async def test_least_outstanding_avoids_the_busy_target(start: Start) -> None:
    """With least outstanding requests, a slow target gets fewer of concurrent requests."""
    s = await start(algorithm=Algorithm.LEAST_OUTSTANDING)
    s.backends["a"].delay_s = 0.3
    replies = await asyncio.gather(*(s.get() for _ in range(20)))
    served = [body["instance"] for _, body in replies]
    assert served.count("b") > served.count("a")


async def test_drain_deadline_cuts_off_requests_still_in_flight(start: Start) -> None:
    """A request still running when the deregistration delay ends gets 502, like ALB."""
    s = await start(delay=0.3, max_retries=0)
    s.backends["a"].delay_s = s.backends["b"].delay_s = 2.0
    pending = [asyncio.create_task(s.get()) for _ in range(2)]
    await until(lambda: s.lb.group.targets["a"].in_flight == 1)
    assert s.lb.deregister("a") is not None
    results = await asyncio.gather(*pending)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 502]
    assert "a" not in s.lb.group.targets


async def test_no_target_registered_gives_503() -> None:
    """A load balancer with no target answers 503 itself, naming the reason."""
    lb = LoadBalancer(LbConfig())
    http = HttpServer(lb)
    await http.listen()
    try:
        reply = await fetch(*http.address, "GET", "/")
        assert reply.status == 503
        assert reply.json()["error"] == "no_targets"
    finally:
        await http.shutdown(1)
        await lb.close()


# -- the control API ----------------------------------------------------------------------------


@pytest.fixture
async def control() -> AsyncIterator[tuple[LoadBalancer, httpx2.AsyncClient]]:
    lb = LoadBalancer(LbConfig(group=GroupConfig(health=FAST_HEALTH)))
    app = control_app(lb, token="s3cret")
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(
        transport=transport,
        base_url="http://lb",
        headers={"authorization": "Bearer s3cret"},
    ) as client:
        yield lb, client
    await lb.close()


async def test_control_api_needs_the_token(
    control: tuple[LoadBalancer, httpx2.AsyncClient],
) -> None:
    """Without the bearer token the control API answers 401 (health excepted)."""
    _, client = control
    assert (
        await client.get("/targets", headers={"authorization": "Bearer nope"})
    ).status_code == 401
    assert (await client.get("/health", headers={"authorization": ""})).status_code == 200


async def test_register_validates_and_names_the_field(
    control: tuple[LoadBalancer, httpx2.AsyncClient],
) -> None:
    """Bad registrations are refused with the offending field named; nothing is registered."""
    lb, client = control
    bad = [
        ({"id": "x", "port": 0}, "port"),
        ({"id": "x", "port": 70000}, "port"),
        ({"id": "bad id!", "port": 80}, "id"),
        ({"id": "x", "port": 80, "weight": 0}, "weight"),
        ({"id": "x", "port": 80, "colour": "red"}, "colour"),
    ]
    for payload, field_name in bad:
        response = await client.post("/targets", json=payload)
        assert response.status_code == 422, payload
        assert field_name in str(response.json()["detail"])
    response = await client.post("/targets", json={"id": "x", "host": "10.0.0.5", "port": 80})
    assert response.status_code == 400
    assert "loopback" in response.json()["detail"]
    assert lb.group.targets == {}


async def test_register_list_and_idempotent_deregister(
    control: tuple[LoadBalancer, httpx2.AsyncClient],
) -> None:
    """Registration returns the target in 'initial'; deregistering twice succeeds twice."""
    _, client = control
    created = await client.post("/targets", json={"id": "t1", "port": 9})
    assert created.status_code == 201
    assert created.json()["state"] == "initial"
    again = await client.post("/targets", json={"id": "t1", "port": 9, "weight": 3})
    assert again.status_code == 200
    listing = (await client.get("/targets")).json()
    assert [t["id"] for t in listing["targets"]] == ["t1"]
    assert listing["targets"][0]["weight"] == 3
    first = await client.delete("/targets/t1")
    second = await client.delete("/targets/t1")
    assert first.status_code == second.status_code == 200
    assert second.json() == {"id": "t1", "state": "unused"}
