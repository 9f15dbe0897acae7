"""The running lab's control API (FastAPI on loopback, bearer token from the run folder).

    GET  /status   every instance: service, role, pid, address, state, load balancer view
    POST /chaos    one action of chaos/actions.py: {"action", "service", "instance"?, "count"?,
                   "all"?, "latency_ms"?, "error_rate"?, "slots"?}; 404 names the valid
                   choices, 409 says why not, 422 names the field that is wrong
    GET  /events   the event log
    GET  /map      the live map page (its data needs the token: /map#token=...)
    GET  /map/state  the map's data: boxes, states, arrows and their rates (harness/livemap.py)
    GET  /metrics  harness_chaos_events_total{action,service} and instance counts (no token)

The CLI, the scenario runner and the Locust chaos tab all act through it. Every action is an
event: appended to `events.jsonl` in the run folder, counted for Prometheus, and posted to
Grafana as an annotation (tagged "chaos") when a Grafana URL is configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, create_model

from chaos.actions import ChaosRequest, apply
from chaos.vocabulary import ANY, NAMES, PARAMS, as_json
from dashboards.elasticity import CHAOS_TAG
from dashboards.grafana import post_annotation
from harness.errors import ChaosRefused, GrafanaError
from harness.livemap import PAGE, LiveMap
from harness.runtime import Event, LabRuntime
from targets.asgi import bearer_guard, control_api
from targets.fastmetrics import BornAtZeroRegistry, FastCounter

log = logging.getLogger(__name__)


class EventLog:
    """Chaos events in order: in memory, in `events.jsonl`, and as a Prometheus counter."""

    def __init__(self, path: Path, registry: CollectorRegistry) -> None:
        self.path = path
        self.events: list[Event] = []
        self.counter = FastCounter(
            "harness_chaos_events_total",
            "Chaos actions applied, by action and service.",
            ["action", "service"],
        )
        registry.register(self.counter)

    def record(self, event: Event) -> None:
        self.events.append(event)
        self.counter.inc((event.action, event.service))
        with self.path.open("a") as f:
            f.write(json.dumps(event.as_dict()) + "\n")


class InstanceCollector(Collector):
    """`harness_instances{service,state}`: what the lab believes it runs, per state."""

    def __init__(self, lab: LabRuntime) -> None:
        self.lab = lab

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "harness_instances",
            "Instances the lab started (servers, workers, the queue), by service and state.",
            labels=["service", "state"],
        )
        for service in self.lab.groups():
            for state in ANY:
                count = sum(1 for i in service.instances.values() if i.state == state)
                family.add_metric([service.name, state], count)
        yield family


class _ChaosFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str  # one of the vocabulary's names (the model below narrows it)
    service: str = Field(min_length=1, max_length=64)
    instance: str | None = Field(default=None, max_length=64)
    count: int = Field(default=1, ge=1, le=64)
    cause: str | None = Field(default=None, max_length=300)  # who asked, e.g. the autoscaler
    all: bool = False  # every instance in a state the action acts on (not with instance)

    def request(self) -> ChaosRequest:
        given = self.model_dump(include=set(PARAMS), exclude_none=True)
        return ChaosRequest(**self.model_dump(exclude=set(PARAMS)), params=given)


def _body_model() -> type[_ChaosFields]:
    """`POST /chaos`'s body: the action by name, every parameter of the vocabulary optional
    (chaos/actions.py checks which the action needs)."""
    params: dict[str, Any] = {
        p.name: (p.type | None, Field(default=None, description=p.help, **p.bounds()))
        for p in PARAMS.values()
    }
    names: Any = Literal[NAMES]
    model: type[_ChaosFields] = create_model(
        "ChaosBody", __base__=_ChaosFields, action=(names, ...), **params
    )
    return model


ChaosBody = _body_model()


@dataclass(frozen=True, slots=True)
class Grafana:
    """Where chaos events go as annotations (a service-account token for its HTTP API)."""

    url: str
    token: str


class Controller:
    """Applies chaos one action at a time per service (no two actions race on the same
    instances); services do not wait for each other, so a slow drain in one blocks no other."""

    def __init__(self, lab: LabRuntime, grafana: Grafana | None = None) -> None:
        self.lab = lab
        self.grafana = grafana
        self.registry = BornAtZeroRegistry()
        self.events = EventLog(lab.run_dir / "events.jsonl", self.registry)
        self.registry.register(InstanceCollector(lab))
        self._locks: dict[str, asyncio.Lock] = {}
        self._annotating: set[asyncio.Task[None]] = set()

    async def chaos(self, request: ChaosRequest) -> Event:
        async with self._locks.setdefault(request.service, asyncio.Lock()):
            try:
                event = await apply(self.lab, request)
            finally:
                self.lab.notify()  # even a half-done action may have changed the processes
        self.events.record(event)
        if self.grafana is not None:
            task = asyncio.get_running_loop().create_task(self._annotate(self.grafana, event))
            self._annotating.add(task)
            task.add_done_callback(self._annotating.discard)
        return event

    async def _annotate(self, grafana: Grafana, event: Event) -> None:
        """Best effort: a Grafana that is down must not stop the chaos."""
        text = f"{event.action} {event.service} {' '.join(event.instances)}: {event.detail}"
        try:
            await post_annotation(
                grafana.url,
                grafana.token,
                text,
                [CHAOS_TAG, event.action, event.service],
                int(event.at * 1000),
            )
        except GrafanaError as exc:
            log.warning("chaos annotation not posted to Grafana: %s", exc)


def control_app(controller: Controller) -> FastAPI:
    lab = controller.lab
    app = control_api(
        "rushlab control API",
        "Status and chaos for the running lab. Loopback only; bearer token in the run folder's"
        " control.token.",
    )

    guarded = bearer_guard(lab.token, "token from control.token")
    refusals: dict[int | str, dict[str, Any]] = {
        401: {"description": "missing or bad token"},
        404: {"description": "unknown action, service or instance; `choices` lists valid ones"},
        409: {"description": "not possible now (limits, state); `detail` says why"},
    }

    @app.get("/status", dependencies=guarded, responses={401: refusals[401]})
    async def status() -> dict[str, Any]:
        return await lab.status()

    @app.post("/chaos", dependencies=guarded, responses=refusals)
    async def chaos(body: ChaosBody) -> dict[str, Any]:  # type: ignore[valid-type]
        request = body.request()  # type: ignore[attr-defined]
        try:
            event = await controller.chaos(request)
        except ChaosRefused as exc:
            return JSONResponse(  # type: ignore[return-value]
                {"detail": exc.message, "choices": exc.choices}, status_code=exc.status
            )
        return {"event": event.as_dict()}

    @app.get("/events", dependencies=guarded, responses={401: refusals[401]})
    async def events() -> dict[str, Any]:
        return {"events": [e.as_dict() for e in controller.events.events]}

    live = LiveMap(lab, lambda: controller.events.events)

    @app.get("/map", response_class=HTMLResponse, include_in_schema=False)
    async def map_page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    @app.get("/map/state", dependencies=guarded, responses={401: refusals[401]})
    async def map_state() -> dict[str, Any]:
        return await live.state()

    @app.get("/actions")
    async def actions() -> dict[str, Any]:
        """The chaos vocabulary: each action, the states it picks from and leaves, the kinds
        it applies to and its parameters (the chaos page builds its buttons from it)."""
        return {"actions": as_json()}

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(controller.registry), media_type="text/plain")

    return app
