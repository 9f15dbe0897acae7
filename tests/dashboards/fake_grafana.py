"""A fake Grafana 11 on loopback (the lab's own HTTP engine) that checks the request shapes
of the HTTP API calls the lab makes, answers as Grafana does, and keeps what it was given.

    GET  /api/health                     {database, version, commit}; no token needed
    GET  /api/datasources/uid/<uid>      the data source, or 404
    POST /api/datasources                a new data source (409 when its uid exists)
    PUT  /api/datasources/uid/<uid>      replace one (404 when missing)
    POST /api/dashboards/db              {dashboard: {id: null, uid, title, ...}, overwrite}
    POST /api/annotations                {time, tags, text}

Every other call needs `Authorization: Bearer <token>` (401 otherwise, as Grafana answers a
wrong service-account token). A request of the wrong shape is answered 400 and kept in
`violations`, so a test asserts that list is empty.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter

DATASOURCE_FIELDS = {
    "name": str,
    "type": str,
    "uid": str,
    "url": str,
    "access": str,
    "isDefault": bool,
    "jsonData": dict,
    "basicAuth": bool,
    "readOnly": bool,
}
DATASOURCE_REQUIRED = ("name", "type", "uid", "url", "access")


class Refused(Exception):
    """A request the real Grafana would refuse: (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class FakeGrafana11:
    """What a Grafana 11 holds and was asked: data sources and dashboards by uid."""

    token: str
    version: str = "11.6.1"
    url: str = ""
    calls: list[tuple[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        raw = b""
        while chunk := await request.body.read():
            raw += chunk
        method, path = request.method, request.path
        self.calls.append((method, path))
        try:
            status, reply = self._answer(request, method, path, raw)
        except Refused as exc:
            if exc.status == 400:
                self.violations.append(f"{method} {path}: {exc.message}")
            status, reply = exc.status, {"message": exc.message}
        writer.send_json(status, reply)

    def _answer(self, request: Request, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        if (method, path) == ("GET", "/api/health"):
            return 200, {"commit": "0123abc", "database": "ok", "version": self.version}
        if request.header(b"authorization") != f"Bearer {self.token}".encode():
            raise Refused(401, "Invalid API key")
        if request.header(b"accept") not in (None, b"application/json", b"*/*"):
            raise Refused(400, f"Accept {request.header(b'accept')!r}")
        body = _json_body(request, raw) if method in ("POST", "PUT") else None
        prefix = "/api/datasources/uid/"
        if path.startswith(prefix) and method in ("GET", "PUT"):
            uid = path.removeprefix(prefix)
            if uid not in self.datasources:
                raise Refused(404, "Data source not found")
            if method == "GET":
                return 200, self.datasources[uid]
            return 200, self._save_datasource(body, uid, "Datasource updated")
        if (method, path) == ("POST", "/api/datasources"):
            uid = _checked_datasource(body)["uid"]
            if uid in self.datasources:
                raise Refused(409, "data source with the same uid already exists")
            return 200, self._save_datasource(body, uid, "Datasource added")
        if (method, path) == ("POST", "/api/dashboards/db"):
            return 200, self._save_dashboard(body)
        if (method, path) == ("POST", "/api/annotations"):
            if not isinstance(body, dict) or not isinstance(body.get("time"), int):
                raise Refused(400, f"an annotation needs an integer time: {body!r}")
            self.annotations.append(body)
            return 200, {"id": len(self.annotations), "message": "Annotation added"}
        raise Refused(404, "Not found")

    def _save_datasource(self, body: Any, uid: str, message: str) -> dict[str, Any]:
        source = _checked_datasource(body)
        if source["uid"] != uid:
            raise Refused(400, f"uid {source['uid']!r} in the body of {uid!r}")
        ids = {s["uid"]: s["id"] for s in self.datasources.values()}
        stored = {**source, "id": ids.get(uid, len(self.datasources) + 1), "orgId": 1}
        self.datasources[uid] = stored
        return {
            "datasource": stored,
            "id": stored["id"],
            "message": message,
            "name": stored["name"],
        }

    def _save_dashboard(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) - {
            "dashboard",
            "overwrite",
            "message",
            "folderUid",
        }:
            raise Refused(400, f"unexpected dashboard save body: {sorted(body or {})}")
        dashboard = body.get("dashboard")
        if not isinstance(dashboard, dict):
            raise Refused(400, "dashboard is not an object")
        if "id" not in dashboard or dashboard["id"] is not None:
            raise Refused(
                400, f"dashboard.id must be null for a save by uid, got {dashboard.get('id')!r}"
            )
        if not isinstance(dashboard.get("uid"), str) or not isinstance(dashboard.get("title"), str):
            raise Refused(400, "dashboard.uid and dashboard.title must be strings")
        if body.get("overwrite") is not True:
            raise Refused(412, "A dashboard with the same uid already exists")
        if not isinstance(body.get("message", ""), str):
            raise Refused(400, "message must be a string")
        uid = dashboard["uid"]
        version = self.dashboards.get(uid, {}).get("version", 0) + 1
        self.dashboards[uid] = {**dashboard, "version": version}
        self.pushes.append(body)
        return {
            "id": list(self.dashboards).index(uid) + 1,
            "uid": uid,
            "url": f"/d/{uid}/{uid}",
            "status": "success",
            "version": version,
            "slug": uid,
        }


def _json_body(request: Request, raw: bytes) -> Any:
    if request.header(b"content-type") != b"application/json":
        raise Refused(400, f"Content-Type {request.header(b'content-type')!r}")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Refused(400, f"bad JSON: {exc}") from None


def _checked_datasource(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Refused(400, "a data source is a JSON object")
    missing = [name for name in DATASOURCE_REQUIRED if name not in body]
    unknown = sorted(set(body) - set(DATASOURCE_FIELDS))
    wrong = [n for n, t in DATASOURCE_FIELDS.items() if n in body and not isinstance(body[n], t)]
    if missing or unknown or wrong:
        raise Refused(400, f"data source: missing {missing}, unknown {unknown}, wrong type {wrong}")
    if body["type"] != "prometheus" or body["access"] not in ("proxy", "direct"):
        raise Refused(400, f"data source type {body['type']!r}, access {body['access']!r}")
    if not body["url"].startswith(("http://", "https://")):
        raise Refused(400, f"data source url {body['url']!r}")
    return body


@asynccontextmanager
async def serving(fake: FakeGrafana11) -> AsyncIterator[FakeGrafana11]:
    """`fake` listening on 127.0.0.1 (its `url` set) in the running loop."""
    server = HttpServer(fake)
    await server.listen()
    fake.url = "http://{}:{}".format(*server.address)
    try:
        yield fake
    finally:
        await server.shutdown(1.0)


@contextmanager
def in_thread(fake: FakeGrafana11) -> Iterator[FakeGrafana11]:
    """`fake` served from a thread of its own (for tests that run the harness as a process)."""
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()

    async def main() -> None:
        async with serving(fake):
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the fake Grafana did not start")
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
