"""A small client for the two Grafana HTTP API calls the lab makes, on httpx2.

    post_annotation   POST /api/annotations      a chaos event as an organisation annotation
    push_dashboard    POST /api/dashboards/db    a generated dashboard, overwriting its uid

Authentication is a service account token (`Authorization: Bearer <token>`). Not grafana-api
(no release since 2020) nor grafana-client (it swaps urllib3 in site-packages at interpreter
start, which breaks requests, boto3 and Locust): two calls do not need a library.

Annotations carry no dashboard uid, so they are organisation-wide; every lab dashboard shows
those tagged `dashboards.panels.CHAOS_TAG` ("chaos").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx2

from harness.errors import GrafanaError

TIMEOUT_S = 10.0


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
    reply = await _post(url, token, "/api/annotations", body, timeout_s)
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
    dashboard = {k: v for k, v in dashboard_json.items() if k != "id"}
    body: dict[str, Any] = {"dashboard": dashboard, "overwrite": True, "message": message}
    if folder_uid is not None:
        body["folderUid"] = folder_uid
    return await _post(url, token, "/api/dashboards/db", body, timeout_s)


async def _post(
    url: str, token: str, path: str, body: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    base = _base_url(url)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        async with httpx2.AsyncClient(base_url=base, timeout=timeout_s) as client:
            reply = await client.post(path, json=body, headers=headers)
    except httpx2.HTTPError as exc:
        raise GrafanaError(f"{base}{path}: {exc!r}") from None
    try:
        data = reply.json()
    except ValueError:
        data = None
    if not 200 <= reply.status_code < 300:
        detail = data.get("message") if isinstance(data, dict) else reply.text[:200]
        raise GrafanaError(f"{base}{path}: HTTP {reply.status_code}: {detail}")
    if not isinstance(data, dict):
        raise GrafanaError(f"{base}{path}: HTTP {reply.status_code} but not a JSON object")
    return data


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GrafanaError(f"expected a Grafana URL like http://127.0.0.1:3000, got {url!r}")
    return url.rstrip("/")
