"""The Grafana HTTP API client against a fake Grafana (the lab's own HTTP engine on loopback):
exact paths, the bearer token, the JSON bodies, and errors that say what went wrong."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from dashboards.build import build_all
from dashboards.grafana import (
    DATASOURCE_NAME,
    DATASOURCE_UID,
    GrafanaError,
    check_grafana,
    post_annotation,
    provision,
    push_dashboard,
)
from harness.supervisor import free_port
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter
from tests.dashboards.fake_grafana import FakeGrafana11, serving

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
    sent = {**dashboard, "id": None}  # Grafana's own numeric id is never sent
    assert seen.body == {
        "dashboard": sent,
        "overwrite": True,
        "message": "pushed by rushlab",
        "folderUid": "rushlab",
    }


async def test_refusal_names_status_and_grafanas_message(grafana: FakeGrafana) -> None:
    """A 401 becomes a GrafanaError naming the Grafana, the status and Grafana's message."""
    grafana.status, grafana.reply = 401, {"message": "invalid API key"}
    refused = rf"Grafana at {grafana.url} refused the token \(401 on POST /api/annotations: "
    with pytest.raises(GrafanaError, match=refused + "invalid API key"):
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
    with pytest.raises(GrafanaError, match="does not answer POST /api/annotations: ConnectError"):
        await post_annotation(f"http://127.0.0.1:{free_port()}", TOKEN, "x", [], 1)
    with pytest.raises(GrafanaError, match="expected a Grafana URL"):
        await post_annotation("ftp://grafana", TOKEN, "x", [], 1)


@pytest.fixture
async def grafana11() -> AsyncIterator[FakeGrafana11]:
    async with serving(FakeGrafana11(TOKEN)) as fake:
        yield fake


async def test_check_grafana_reads_the_version_and_tries_the_token(
    grafana11: FakeGrafana11,
) -> None:
    """/api/health without the token, then one read of rushlab's data source with it."""
    assert await check_grafana(grafana11.url, TOKEN) == "11.6.1"
    assert grafana11.calls == [
        ("GET", "/api/health"),
        ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"),
    ]
    assert grafana11.violations == []


async def test_a_wrong_token_is_refused_by_name(grafana11: FakeGrafana11) -> None:
    """A token Grafana answers 401 to: "Grafana at URL refused the token (401 ...)"."""
    refused = rf"^Grafana at {grafana11.url} refused the token \(401 on GET /api/datasources/"
    with pytest.raises(GrafanaError, match=refused):
        await check_grafana(grafana11.url, "glsa_wrong")
    with pytest.raises(GrafanaError, match=refused):
        await provision(grafana11.url, "glsa_wrong", "http://127.0.0.1:9090")
    assert (grafana11.datasources, grafana11.dashboards) == ({}, {})


async def test_an_old_grafana_is_refused_naming_its_version(grafana11: FakeGrafana11) -> None:
    """Grafana 10 (or a health answer without a version) is refused before any token use."""
    grafana11.version = "10.4.2"
    with pytest.raises(GrafanaError, match=rf"Grafana at {grafana11.url} is version 10.4.2: .* 11"):
        await check_grafana(grafana11.url, TOKEN)
    assert grafana11.calls == [("GET", "/api/health")]


async def test_an_unreachable_grafana_names_its_url() -> None:
    """Nothing listening: the message names the URL the user gave."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GrafanaError, match=rf"Grafana at {url} does not answer GET /api/health"):
        await check_grafana(url, TOKEN)


async def test_the_datasource_is_created_then_updated(grafana11: FakeGrafana11) -> None:
    """The first push POSTs the data source, the next (a new lab's Prometheus) PUTs it by uid,
    keeping its id and whether the user made it the default."""
    shown = await provision(grafana11.url, TOKEN, "http://127.0.0.1:9091")
    assert shown["grafana data source"] == f"{DATASOURCE_NAME} (created) -> http://127.0.0.1:9091"
    created = dict(grafana11.datasources[DATASOURCE_UID])
    assert created["type"] == "prometheus"
    assert created["url"] == "http://127.0.0.1:9091"
    assert (created["access"], created["isDefault"]) == ("proxy", False)
    grafana11.datasources[DATASOURCE_UID]["isDefault"] = True  # the user's choice
    shown = await provision(grafana11.url, TOKEN, "http://127.0.0.1:9092")
    assert shown["grafana data source"] == f"{DATASOURCE_NAME} (updated) -> http://127.0.0.1:9092"
    updated = grafana11.datasources[DATASOURCE_UID]
    assert (updated["url"], updated["id"], updated["isDefault"]) == (
        "http://127.0.0.1:9092",
        created["id"],
        True,
    )
    writes = [call for call in grafana11.calls if "datasources" in call[1] and call[0] != "GET"]
    assert writes == [
        ("POST", "/api/datasources"),
        ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}"),
    ]
    assert grafana11.violations == []


async def test_every_generated_dashboard_is_pushed_on_the_datasource(
    grafana11: FakeGrafana11,
) -> None:
    """Each dashboard of `dashboards build` is saved with overwrite, id null, and its
    `datasource` variable on rushlab's data source (what every panel's `${datasource}` is)."""
    generated = {d["uid"]: d for n, d in build_all().items() if n.endswith(".json")}
    shown = await provision(grafana11.url, TOKEN, "http://127.0.0.1:9091")
    await provision(grafana11.url, TOKEN, "http://127.0.0.1:9091")  # overwritten, no conflict
    assert set(grafana11.dashboards) == set(generated)
    assert len(grafana11.pushes) == 2 * len(generated)
    assert all(push["overwrite"] is True for push in grafana11.pushes)
    for uid, pushed in grafana11.dashboards.items():
        assert pushed["version"] == 2
        [variable] = [v for v in pushed["templating"]["list"] if v["type"] == "datasource"]
        assert variable["current"]["value"] == DATASOURCE_UID
        uids = {ref["uid"] for ref in _datasource_refs(pushed) if ref.get("type") == "prometheus"}
        assert uids == {"${datasource}"}, uid
        assert shown[f"grafana {pushed['title']}"] == f"{grafana11.url}/d/{uid}/{uid}"
    assert grafana11.violations == []


def _datasource_refs(value: Any) -> list[dict[str, Any]]:
    """Every `datasource` reference object in a dashboard."""
    if isinstance(value, list):
        return [ref for item in value for ref in _datasource_refs(item)]
    if not isinstance(value, dict):
        return []
    own = [value["datasource"]] if isinstance(value.get("datasource"), dict) else []
    return own + [ref for item in value.values() for ref in _datasource_refs(item)]


async def test_the_fake_refuses_what_grafana_would(grafana11: FakeGrafana11) -> None:
    """The fake is strict: a data source without a url, a dashboard with a numeric id and a
    save without overwrite are refused and recorded, so the tests above would catch them."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(base_url=grafana11.url, headers=headers) as client:
        source = {"name": "x", "type": "prometheus", "uid": "u", "access": "proxy"}
        assert (await client.post("/api/datasources", json=source)).status_code == 400
        saved = {"dashboard": {"id": 3, "uid": "d", "title": "t"}, "overwrite": True}
        assert (await client.post("/api/dashboards/db", json=saved)).status_code == 400
        saved = {"dashboard": {"id": None, "uid": "d", "title": "t"}}
        assert (await client.post("/api/dashboards/db", json=saved)).status_code == 412
    assert len(grafana11.violations) == 2
    assert (grafana11.datasources, grafana11.dashboards) == ({}, {})
