"""The gateway's control API (FastAPI, loopback): its routes, health and metrics.

`GET /routes` (bearer token when one is configured) shows the route table as the config file
spells it; `GET /health` and `GET /metrics` are open, for probes and Prometheus.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import generate_latest

from targets.asgi import AUTH_ERRORS, bearer_guard, control_api
from targets.gateway.config import config_to_json
from targets.gateway.gateway import Gateway


def control_app(gateway: Gateway, token: str | None) -> FastAPI:
    app = control_api(f"{gateway.config.name} control API")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/routes", dependencies=bearer_guard(token), responses=AUTH_ERRORS)
    async def routes() -> dict[str, Any]:
        return config_to_json(gateway.config)

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(gateway.registry), media_type="text/plain; version=0.0.4")

    return app
