"""The gateway's control API (FastAPI, loopback): its routes, health and metrics.

`GET /routes` (bearer token when one is configured) shows the route table as the config file
spells it; `GET /health` and `GET /metrics` are open, for probes and Prometheus.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from prometheus_client import generate_latest

from targets.gateway.config import config_to_json
from targets.gateway.gateway import Gateway


def control_app(gateway: Gateway, token: str | None) -> FastAPI:
    app = FastAPI(title=f"{gateway.config.name} control API", version="1")

    def check_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            return
        expected = f"Bearer {token}".encode()
        if not hmac.compare_digest((authorization or "").encode(), expected):
            raise HTTPException(401, "Authorization: Bearer <token> required")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/routes", dependencies=[Depends(check_token)])
    async def routes() -> dict[str, Any]:
        return config_to_json(gateway.config)

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(gateway.registry), media_type="text/plain; version=0.0.4")

    return app
