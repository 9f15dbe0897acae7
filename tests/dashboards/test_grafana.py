"""The Grafana HTTP API client against a fake Grafana (the lab's own HTTP engine on loopback):
exact paths, the bearer token, the JSON bodies, and errors that say what went wrong."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from dashboards.build import build_all
from dashboards.grafana import GrafanaError, post_annotation, push_dashboard
from harness.supervisor import free_port
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter

pytestmark = pytest.mark.inprocess

TOKEN = "glsa_test-token"  # a fake


@dataclass
class Seen:
    method: str
    target: str
    authorization: str | None
    content_type: str | None
    body: Any


@dataclass
class FakeGrafana:
    """Records each request and answers with `status` and `reply`."""

    status: int = 200
    reply: Any = field(default_factory=lambda: {"id": 7, "message": "Annotation added"})
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        body = b""
        while chunk := await request.body.read():
            body += chunk
        self.seen.append(
            Seen(
                request.method,
                request.target.decode(),
                _text(request.header(b"authorization")),
                _text(request.header(b"content-type")),
                json.loads(body) if body else None,
            )
        )
        writer.send_json(self.status, self.reply)


def _text(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


@pytest.fixture
async def grafana() -> AsyncIterator[FakeGrafana]:
    fake = FakeGrafana()
    server = HttpServer(fake)
    await server.listen()
    fake.url = "http://{}:{}".format(*server.address)
    yield fake
    await server.shutdown(1.0)


async def test_post_annotation_sends_time_tags_and_text(grafana: FakeGrafana) -> None:
    """POST /api/annotations with the bearer token and {time, tags, text}; returns the id."""
    annotation_id = await post_annotation(
        grafana.url, TOKEN, "kill orders-2", ["chaos", "kill", "orders"], 1_700_000_000_123
    )
    assert annotation_id == 7
    [seen] = grafana.seen
    assert (seen.method, seen.target) == ("POST", "/api/annotations")
    assert seen.authorization == f"Bearer {TOKEN}"
    assert seen.content_type == "application/json"
    assert seen.body == {
        "time": 1_700_000_000_123,
        "tags": ["chaos", "kill", "orders"],
        "text": "kill orders-2",
    }


async def test_post_annotation_region_on_one_dashboard(grafana: FakeGrafana) -> None:
    """timeEnd and dashboardUID are sent only when given."""
    await post_annotation(
        grafana.url + "/",
        TOKEN,
        "rush",
        [],
        1000,
        time_end_ms=5000,
        dashboard_uid="rushlab-elasticity",
    )
    assert grafana.seen[0].body == {
        "time": 1000,
        "timeEnd": 5000,
        "tags": [],
        "text": "rush",
        "dashboardUID": "rushlab-elasticity",
    }


async def test_grafana_under_a_sub_path(grafana: FakeGrafana) -> None:
    """A Grafana served at /grafana gets /grafana/api/annotations."""
    await post_annotation(grafana.url + "/grafana", TOKEN, "x", ["chaos"], 1)
    assert grafana.seen[0].target == "/grafana/api/annotations"


async def test_push_dashboard_overwrites_by_uid(grafana: FakeGrafana) -> None:
    """POST /api/dashboards/db with the dashboard (no numeric id) and overwrite true."""
    grafana.reply = {"id": 3, "uid": "rushlab-elasticity", "url": "/d/x", "status": "success"}
    dashboard = {**build_all()["elasticity.json"], "id": 42}
    reply = await push_dashboard(grafana.url, TOKEN, dashboard, folder_uid="rushlab")
    assert reply["uid"] == "rushlab-elasticity"
    [seen] = grafana.seen
    assert (seen.method, seen.target) == ("POST", "/api/dashboards/db")
    assert seen.authorization == f"Bearer {TOKEN}"
    sent = {k: v for k, v in dashboard.items() if k != "id"}
    assert seen.body == {
        "dashboard": sent,
        "overwrite": True,
        "message": "pushed by rushlab",
        "folderUid": "rushlab",
    }


async def test_refusal_names_status_and_grafanas_message(grafana: FakeGrafana) -> None:
    """A 401 becomes a GrafanaError carrying the status and Grafana's message."""
    grafana.status, grafana.reply = 401, {"message": "invalid API key"}
    with pytest.raises(GrafanaError, match=r"/api/annotations: HTTP 401: invalid API key"):
        await post_annotation(grafana.url, "wrong", "x", [], 1)


async def test_a_reply_without_an_id_is_an_error(grafana: FakeGrafana) -> None:
    """A 200 that is not what Grafana answers is reported, not returned as an id."""
    grafana.reply = {"message": "ok"}
    with pytest.raises(GrafanaError, match="no annotation id"):
        await post_annotation(grafana.url, TOKEN, "x", [], 1)


async def test_dashboard_without_uid_is_refused_before_any_request(grafana: FakeGrafana) -> None:
    """Without a uid a pushed dashboard could never be overwritten: refused locally."""
    with pytest.raises(GrafanaError, match="no uid"):
        await push_dashboard(grafana.url, TOKEN, {"title": "x"})
    assert grafana.seen == []


async def test_unreachable_grafana_and_bad_urls() -> None:
    """A closed port and a URL that is not http(s) both raise GrafanaError."""
    with pytest.raises(GrafanaError, match="ConnectError"):
        await post_annotation(f"http://127.0.0.1:{free_port()}", TOKEN, "x", [], 1)
    with pytest.raises(GrafanaError, match="expected a Grafana URL"):
        await post_annotation("ftp://grafana", TOKEN, "x", [], 1)
