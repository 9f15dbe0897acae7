"""The DNS server's control API (FastAPI): read the zone, replace a record set, metrics.

    GET  /health              {"status": "ok"}                          (no token)
    GET  /metrics             Prometheus text                           (no token)
    GET  /records             the zone in zone-file form
    PUT  /records/{name}      body {"records": [...]}: the name's new record set (an empty
                              list deletes it); 400 naming the field, nothing changed, on error
    GET  /health-checks       each check's settings and status

Bound to loopback; when a token is configured the routes marked need
`Authorization: Bearer <token>`. Record objects have the zone file's shape; `name` may be left
out (it is the one in the path), and the path's name may omit the final dot.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from prometheus_client import generate_latest
from pydantic import BaseModel

from targets.asgi import AUTH_ERRORS, bearer_guard, control_api
from targets.dns.core import ZoneError, record_from_json
from targets.dns.server import DnsServer

_RECORDS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["records"],
                    "properties": {"records": {"type": "array", "items": {"type": "object"}}},
                },
                "example": {
                    "records": [
                        {"set_id": "blue", "weight": 0, "values": ["127.0.0.1"], "ttl": 5},
                        {"set_id": "green", "weight": 255, "values": ["127.0.0.2"], "ttl": 5},
                    ]
                },
            }
        },
    }
}


class HealthCheckOut(BaseModel):
    id: str
    host: str
    port: int
    path: str
    interval_s: float
    timeout_s: float
    failure_threshold: int
    success_threshold: int
    healthy: bool
    ok_streak: int
    fail_streak: int


def control_app(server: DnsServer, token: str | None) -> FastAPI:
    app = control_api(
        "DNS control API",
        "Records and health checks of one authoritative zone (Route 53 routing).",
    )
    zone = server.zone

    guarded = bearer_guard(token)
    auth_errors = AUTH_ERRORS

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/records", dependencies=guarded, responses=auth_errors)
    async def records() -> dict[str, Any]:
        return zone.to_json()

    @app.put(
        "/records/{name}",
        dependencies=guarded,
        responses={**auth_errors, 400: {"description": "bad record set; nothing changed"}},
        openapi_extra=_RECORDS_BODY,
    )
    async def replace(name: str, request: Request) -> dict[str, Any]:
        fqdn = name if name.endswith(".") else name + "."
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise HTTPException(400, f"body: not JSON ({exc})") from None
        try:
            if not isinstance(body, dict) or set(body) != {"records"}:
                raise ZoneError('body: must be an object {"records": [...]}')
            items = body["records"]
            if not isinstance(items, list):
                raise ZoneError(f"records: must be a list (got {items!r})")
            new = [record_from_json(item, f"records[{i}]", fqdn) for i, item in enumerate(items)]
            server.replace(fqdn, new)
        except ZoneError as exc:
            raise HTTPException(400, str(exc)) from None
        fqdn = fqdn.lower()
        return {"name": fqdn, "records": [r.to_json() for r in zone.sets.get(fqdn, ())]}

    @app.get("/health-checks", dependencies=guarded, responses=auth_errors)
    async def health_checks() -> list[HealthCheckOut]:
        return [
            HealthCheckOut(
                **state.config.to_json(),
                healthy=state.healthy,
                ok_streak=state.ok_streak,
                fail_streak=state.fail_streak,
            )
            for state in zone.health.values()
        ]

    @app.get("/metrics", response_class=Response)  # read-only, loopback: Prometheus scrapes it
    async def metrics() -> Response:
        return Response(generate_latest(server.registry), media_type="text/plain; version=0.0.4")

    return app
