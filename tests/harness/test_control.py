"""The lab runtime and its control API, on real processes: status, chaos, refusals, events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from chaos.actions import ChaosRequest
from harness.components.services import Services
from harness.control import Controller, Grafana, control_app
from harness.runtime import LabRuntime
from harness.supervisor import Supervisor
from harness.topology import topology_from
from targets.http.client import fetch
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter

pytestmark = pytest.mark.e2e

SMALL = topology_from(
    {
        "name": "small",
        "services": {
            "orders": {
                "replicas": 2,
                "min_replicas": 1,
                "max_replicas": 3,
                "service_time": {"mean_ms": 2},
            }
        },
    }
)


class Api:
    def __init__(self, client: httpx2.AsyncClient, lab: LabRuntime, controller: Controller):
        self.client = client
        self.lab = lab
        self.controller = controller

    async def chaos(self, **body: Any) -> httpx2.Response:
        return await self.client.post("/chaos", json=body)

    async def instances(self) -> dict[str, dict[str, Any]]:
        status = (await self.client.get("/status")).json()
        return {i["name"]: i for i in status["services"]["orders"]["instances"]}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with Supervisor(tmp_path / "run") as supervisor:
        lab = LabRuntime(SMALL, supervisor, seed=3)
        await lab.start()
        await lab.wait_healthy()
        controller = Controller(lab)
        transport = httpx2.ASGITransport(app=control_app(controller))
        headers = {"authorization": f"Bearer {lab.token}"}
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://lab", headers=headers
        ) as client:
            yield Api(client, lab, controller)


async def test_status_lists_every_process_with_pid_and_state(api: Api) -> None:
    """Status names each service's load balancer and servers, their pids, states, LB view."""
    status = (await api.client.get("/status")).json()
    orders = status["services"]["orders"]
    assert orders["lb"]["state"] == "running"
    assert orders["lb"]["pid"] > 0
    assert [i["name"] for i in orders["instances"]] == ["orders-1", "orders-2"]
    assert all(i["state"] == "running" and i["target"] == "healthy" for i in orders["instances"])


async def test_control_api_needs_the_token(api: Api) -> None:
    """Without the bearer token the control API refuses with 401."""
    response = await api.client.get("/status", headers={"authorization": "Bearer wrong"})
    assert response.status_code == 401


async def test_unknown_names_get_404_with_the_valid_choices(api: Api) -> None:
    """An unknown service or instance is a 404 whose body lists what exists."""
    response = await api.chaos(action="kill", service="nope")
    assert response.status_code == 404
    assert response.json()["choices"] == ["orders", "orders-lb"]
    response = await api.chaos(action="kill", service="orders", instance="orders-9")
    assert response.status_code == 404
    assert response.json()["choices"] == ["orders-1", "orders-2"]
    response = await api.chaos(action="explode", service="orders")
    assert response.status_code == 422  # not an action: the body is invalid


async def test_impossible_actions_get_409_with_the_reason(api: Api) -> None:
    """Removing below min_replicas or adding beyond max_replicas is a 409 saying why."""
    response = await api.chaos(action="remove", service="orders", count=2)
    assert response.status_code == 409
    assert "min_replicas" in response.json()["detail"]
    response = await api.chaos(action="add", service="orders", count=2)
    assert response.status_code == 409
    assert "max_replicas" in response.json()["detail"]
    response = await api.chaos(action="resume", service="orders")
    assert response.status_code == 409  # nothing is paused


async def test_kill_pause_resume_act_on_the_real_processes(api: Api) -> None:
    """kill SIGKILLs the pid, pause stops answering, resume brings it back."""
    killed = (await api.chaos(action="kill", service="orders", instance="orders-1")).json()
    assert killed["event"]["instances"] == ["orders-1"]
    child = api.lab.part(Services).by_name["orders"].instances["orders-1"].child
    assert await asyncio.wait_for(child.process.wait(), 5) == -9
    await api.chaos(action="pause", service="orders", instance="orders-2")
    host, port = api.lab.part(Services).by_name["orders"].instances["orders-2"].child.address()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(fetch(host, port, "GET", "/health", timeout_s=5), 0.5)
    await api.chaos(action="resume", service="orders", instance="orders-2")
    assert (await fetch(host, port, "GET", "/health")).status == 200
    states = {name: i["state"] for name, i in (await api.instances()).items()}
    assert states == {"orders-1": "killed", "orders-2": "running"}


async def test_add_and_remove_change_what_the_load_balancer_routes_to(api: Api) -> None:
    """add boots a replica that registers; remove drains one out of the load balancer."""
    added = (await api.chaos(action="add", service="orders")).json()["event"]
    assert added["instances"] == ["orders-3"]
    await api.lab.wait_healthy()
    removed = (await api.chaos(action="remove", service="orders")).json()["event"]
    gone = removed["instances"][0]
    view = await api.lab.part(Services).labs["orders"].targets()
    assert gone not in {t["id"] for t in view["targets"]}
    assert (await api.instances())[gone]["state"] == "stopped"


async def test_faults_reach_the_server_and_clear(api: Api) -> None:
    """latency and errors are injected through the server's admin API; clear removes them."""
    await api.chaos(action="latency", service="orders", instance="orders-1", latency_ms=250)
    await api.chaos(action="errors", service="orders", instance="orders-2", error_rate=1.0)
    instances = api.lab.part(Services).by_name["orders"].instances
    auth = [(b"authorization", f"Bearer {api.lab.token}".encode())]
    host, port = instances["orders-1"].child.address()
    faults = (await fetch(host, port, "GET", "/admin/faults", headers=auth)).json()
    assert faults["latency_ms"] == 250
    host, port = instances["orders-2"].child.address()
    assert (await fetch(host, port, "GET", "/api/orders")).status == 500
    await api.chaos(action="clear", service="orders")
    assert (await fetch(host, port, "GET", "/api/orders")).status == 200


async def test_every_action_is_an_event_and_a_counter(api: Api) -> None:
    """Each applied action lands in events.jsonl, /events and harness_chaos_events_total."""
    await api.chaos(action="pause", service="orders", instance="orders-1")
    await api.chaos(action="resume", service="orders", instance="orders-1")
    await api.chaos(action="remove", service="orders", count=5)  # refused: not an event
    lines = (api.lab.run_dir / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["pause", "resume"]
    events = (await api.client.get("/events")).json()["events"]
    assert [e["instances"] for e in events] == [["orders-1"], ["orders-1"]]
    await api.client.get("/metrics")  # a counter series is exposed at 0 the first time
    metrics = (await api.client.get("/metrics")).text
    assert 'harness_chaos_events_total{action="pause",service="orders"} 1.0' in metrics
    assert 'harness_instances{service="orders",state="running"} 2.0' in metrics


async def test_chaos_events_become_grafana_annotations(tmp_path: Path) -> None:
    """With a Grafana configured, each chaos event is posted as an annotation tagged chaos."""
    posted: list[tuple[str, bytes | None, dict[str, Any]]] = []

    async def grafana(request: Request, writer: ResponseWriter) -> None:
        body = json.loads(await request.body.read_all())
        posted.append((request.path, request.header(b"authorization"), body))
        writer.send_json(200, {"id": len(posted), "message": "Annotation added"})

    fake = HttpServer(grafana)
    await fake.listen()
    try:
        async with Supervisor(tmp_path / "run") as supervisor:
            lab = LabRuntime(SMALL, supervisor, seed=3)
            await lab.start()
            url = "http://{}:{}".format(*fake.address)
            controller = Controller(lab, Grafana(url, "svc-token"))
            event = await controller.chaos(ChaosRequest("pause", "orders", instance="orders-1"))
            for _ in range(100):
                if posted:
                    break
                await asyncio.sleep(0.05)
    finally:
        await fake.shutdown(1)
    ((path, auth, body),) = posted
    assert path == "/api/annotations"
    assert auth == b"Bearer svc-token"
    assert body["tags"] == ["chaos", "pause", "orders"]
    assert body["time"] == int(event.at * 1000)
    assert "orders-1" in body["text"]


async def test_resize_restarts_the_instance_with_its_new_capacity(api: Api) -> None:
    """resize is a stop and a start: a new process, the new slots, registered again."""
    before = (await api.instances())["orders-1"]
    response = await api.chaos(action="resize", service="orders", instance="orders-1", slots=2)
    assert response.status_code == 200, response.text
    after = (await api.instances())["orders-1"]
    assert after["pid"] != before["pid"]
    assert after["slots"] == 2
    host, port = api.lab.part(Services).by_name["orders"].instances["orders-1"].child.address()
    metrics = (await fetch(host, port, "GET", "/metrics")).body.decode()
    assert "server_slots 2.0" in metrics
    await api.lab.wait_healthy()
    refused = await api.chaos(action="resize", service="orders", instance="orders-2")
    assert refused.status_code == 409  # no slots given


async def test_all_acts_on_every_instance_the_action_can_act_on(api: Api) -> None:
    """`all` pauses every running instance and resumes every paused one; with an instance,
    or for add and remove, it is refused."""
    paused = await api.chaos(action="pause", service="orders", all=True)
    assert paused.status_code == 200, paused.text
    assert paused.json()["event"]["instances"] == ["orders-1", "orders-2"]
    both = await api.chaos(action="pause", service="orders", instance="orders-1", all=True)
    assert both.status_code == 409
    assert (await api.chaos(action="remove", service="orders", all=True)).status_code == 409
    resumed = await api.chaos(action="resume", service="orders", all=True)
    assert resumed.json()["event"]["instances"] == ["orders-1", "orders-2"]
    assert {i["state"] for i in (await api.instances()).values()} == {"running"}


async def test_a_malformed_request_is_one_readable_sentence(api: Api) -> None:
    """A request that fails validation answers 422 naming the field and the valid values."""
    reply = await api.chaos(action="foo", service="orders", count=0)
    assert reply.status_code == 422
    assert reply.json()["detail"] == (
        "unknown action 'foo'; actions: add, clear, errors, invalidate, kill, latency, pause,"
        " publish, remove, resize, restart, resume, stop; count: Input should be greater than or"
        " equal to 1"
    )


async def test_the_map_page_is_served_and_its_state_needs_the_token(api: Api) -> None:
    """GET /map is the page (no token: it reads it from its fragment); GET /map/state needs
    the token and holds every instance with its state, the load balancer's view, and no
    number without Prometheus (null, shown as "no data")."""
    page = await api.client.get("/map", headers={"authorization": ""})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/map/state" in page.text
    assert "http" not in page.text.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    refused = await api.client.get("/map/state", headers={"authorization": "Bearer wrong"})
    assert refused.status_code == 401
    await api.chaos(action="kill", service="orders", instance="orders-2")
    state = (await api.client.get("/map/state")).json()
    orders = next(b for b in state["boxes"] if b["id"] == "service:orders")
    assert orders["state"] == "running"  # its load balancer
    shown = {i["name"]: (i["state"], i["target"]) for i in orders["instances"]}
    assert shown["orders-1"] == ("running", "healthy")
    assert shown["orders-2"][0] == "killed"
    assert state["prometheus"] is False
    assert all(g["value"] is None for b in state["boxes"] for g in b["gauges"])
    assert [e["action"] for e in state["events"]] == ["kill"]
