"""A small client for the Grafana 11 HTTP API calls the lab makes, on httpx2.

    check_grafana     GET  /api/health, GET /api/datasources/uid/<uid>
                                                 version 11 or later, and the token accepted
    put_datasource    GET  /api/datasources/uid/<uid>, then POST /api/datasources (created)
                      or PUT /api/datasources/uid/<uid> (updated): the lab's Prometheus
    push_dashboard    POST /api/dashboards/db    a generated dashboard, overwriting its uid
    provision         put_datasource, then push_dashboard for every generated dashboard,
                      its `datasource` variable set to that data source
    post_annotation   POST /api/annotations      a chaos event as an organisation annotation

Authentication is a service account token (`Authorization: Bearer <token>`). Not grafana-api
(no release since 2020) nor grafana-client (it swaps urllib3 in site-packages at interpreter
start, which breaks requests, boto3 and Locust): two calls do not need a library.

`harness up --grafana-url` calls `check_grafana` before the lab starts (a refusal starts
nothing) and `provision` once Prometheus is up. The data source is rushlab's own (uid
`rushlab-prometheus`, never the default), so a Grafana's other data sources are left alone;
its URL changes with each lab, hence the update on every `up`.

Annotations carry no dashboard uid, so they are organisation-wide; every lab dashboard shows
those tagged `dashboards.panels.CHAOS_TAG` ("chaos").
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx2

from dashboards.build import dashboards, prometheus_datasource
from harness.errors import GrafanaError

TIMEOUT_S = 10.0
DATASOURCE_UID = "rushlab-prometheus"
DATASOURCE_NAME = "rushlab Prometheus"
MIN_MAJOR_VERSION = 11
"""The Grafana the dashboards are built for (grafana-foundation-sdk's 11.6 flavour)."""


async def check_grafana(url: str, token: str, *, timeout_s: float = TIMEOUT_S) -> str:
    """Grafana's version, once its /api/health says 11 or later and it accepts the token (a
    read of rushlab's data source: 404 while it does not exist yet)."""
    base = _base_url(url)
    health = await _call(base, "", "GET", "/api/health", timeout_s=timeout_s)
    version = health.get("version") if health is not None else None
    if not isinstance(version, str):
        raise GrafanaError(
            f"Grafana at {base} does not say its version in /api/health ({health!r}): "
            f"rushlab needs Grafana {MIN_MAJOR_VERSION} or later"
        )
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) < MIN_MAJOR_VERSION:
        raise GrafanaError(
            f"Grafana at {base} is version {version}: rushlab needs Grafana "
            f"{MIN_MAJOR_VERSION} or later (its dashboards are built for 11.6)"
        )
    await _call(base, token, "GET", f"/api/datasources/uid/{DATASOURCE_UID}", timeout_s=timeout_s)
    return version


async def put_datasource(
    url: str, token: str, prometheus_url: str, *, timeout_s: float = TIMEOUT_S
) -> str:
    """Create rushlab's Prometheus data source (uid DATASOURCE_UID) at `prometheus_url`, or
    point the existing one there (keeping whether it is the default); "created" or "updated"."""
    base = _base_url(url)
    path = f"/api/datasources/uid/{DATASOURCE_UID}"
    existing = await _call(base, token, "GET", path, timeout_s=timeout_s)
    body = prometheus_datasource(prometheus_url, DATASOURCE_UID, DATASOURCE_NAME)
    body["isDefault"] = bool(existing.get("isDefault")) if existing is not None else False
    if existing is None:
        await _required(base, token, "POST", "/api/datasources", body, timeout_s=timeout_s)
        return "created"
    await _required(base, token, "PUT", path, body, timeout_s=timeout_s)
    return "updated"


def with_datasource(dashboard_json: Mapping[str, Any], uid: str, name: str) -> dict[str, Any]:
    """A copy of a generated dashboard whose `datasource` variable (what every panel's
    `${datasource}` names) selects the data source `uid`."""
    dashboard = copy.deepcopy(dict(dashboard_json))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "datasource" and variable.get("query") == "prometheus":
            variable["current"] = {"selected": True, "text": name, "value": uid}
    return dashboard


async def provision(
    url: str, token: str, prometheus_url: str, *, timeout_s: float = TIMEOUT_S
) -> dict[str, str]:
    """rushlab's data source at `prometheus_url` and every generated dashboard on it; what to
    show the user (by description: the data source, each dashboard's URL)."""
    base = _base_url(url)
    done = await put_datasource(base, token, prometheus_url, timeout_s=timeout_s)
    shown = {"grafana data source": f"{DATASOURCE_NAME} ({done}) -> {prometheus_url}"}
    for dashboard_json in dashboards().values():
        dashboard = with_datasource(dashboard_json, DATASOURCE_UID, DATASOURCE_NAME)
        reply = await push_dashboard(
            base, token, dashboard, message="pushed by harness up", timeout_s=timeout_s
        )
        shown[f"grafana {dashboard['title']}"] = base + str(reply.get("url", ""))
    return shown


async def post_annotation(
    url: str,
    token: str,
    text: str,
    tags: Sequence[str],
    time_ms: int,
    *,
    time_end_ms: int | None = None,
    dashboard_uid: str | None = None,
    timeout_s: float = TIMEOUT_S,
) -> int:
    """Add an annotation at `time_ms` (epoch milliseconds); returns its id. With `time_end_ms`
    it is a region; with `dashboard_uid` it belongs to that dashboard only."""
    body: dict[str, Any] = {"time": int(time_ms), "tags": list(tags), "text": text}
    if time_end_ms is not None:
        body["timeEnd"] = int(time_end_ms)
    if dashboard_uid is not None:
        body["dashboardUID"] = dashboard_uid
    reply = await _required(
        _base_url(url), token, "POST", "/api/annotations", body, timeout_s=timeout_s
    )
    annotation_id = reply.get("id")
    if not isinstance(annotation_id, int):
        raise GrafanaError(f"{url}/api/annotations: no annotation id in the reply {reply!r}")
    return annotation_id


async def push_dashboard(
    url: str,
    token: str,
    dashboard_json: Mapping[str, Any],
    *,
    folder_uid: str | None = None,
    message: str = "pushed by rushlab",
    timeout_s: float = TIMEOUT_S,
) -> dict[str, Any]:
    """Create or replace the dashboard with `dashboard_json`'s uid; returns Grafana's reply
    (`uid`, `url`, `version`, ...)."""
    if not dashboard_json.get("uid"):
        raise GrafanaError("the dashboard has no uid: it could not be overwritten later")
    # `id` is the numeric id in one Grafana's database: a stale one makes Grafana answer 404.
    dashboard = {**dashboard_json, "id": None}
    body: dict[str, Any] = {"dashboard": dashboard, "overwrite": True, "message": message}
    if folder_uid is not None:
        body["folderUid"] = folder_uid
    return await _required(
        _base_url(url), token, "POST", "/api/dashboards/db", body, timeout_s=timeout_s
    )


async def _call(
    base: str, token: str, method: str, path: str, body: Any = None, *, timeout_s: float
) -> dict[str, Any] | None:
    """One request; Grafana's JSON object, or None for a 404. No answer, a refusal of the
    token (401, 403) or any other status but 2xx is a GrafanaError naming the URL."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with httpx2.AsyncClient(base_url=base, timeout=timeout_s) as client:
            reply = await client.request(method, path, json=body, headers=headers)
    except httpx2.HTTPError as exc:
        raise GrafanaError(f"Grafana at {base} does not answer {method} {path}: {exc!r}") from None
    try:
        data = reply.json()
    except ValueError:
        data = None
    status = reply.status_code
    detail = data.get("message") if isinstance(data, dict) else reply.text[:200]
    if status in (401, 403):
        raise GrafanaError(
            f"Grafana at {base} refused the token ({status} on {method} {path}: {detail})"
        )
    if status == 404 and method == "GET":
        return None
    if not 200 <= status < 300:
        raise GrafanaError(f"{base}{path}: HTTP {status}: {detail}")
    if not isinstance(data, dict):
        raise GrafanaError(f"{base}{path}: HTTP {status} but not a JSON object")
    return data


async def _required(
    base: str, token: str, method: str, path: str, body: Any = None, *, timeout_s: float
) -> dict[str, Any]:
    """`_call` where a 404 is an error too."""
    data = await _call(base, token, method, path, body, timeout_s=timeout_s)
    if data is None:
        raise GrafanaError(f"{base}{path}: HTTP 404")
    return data


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GrafanaError(f"expected a Grafana URL like http://127.0.0.1:3000, got {url!r}")
    return url.rstrip("/")
