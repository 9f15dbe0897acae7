"""The load balancer's control API (FastAPI): register, deregister, list targets, metrics.

Bound to loopback; when a token is configured every route but `/health` and `/metrics` (read
only, for Prometheus) needs `Authorization: Bearer <token>`. Deregistration is idempotent, as in
ALB: an unknown target answers 200 with `"state": "unused"`.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Path, Response
from prometheus_client import generate_latest
from pydantic import BaseModel, ConfigDict, Field

from targets.asgi import AUTH_ERRORS, bearer_guard, control_api
from targets.lb.balancer import LoadBalancer
from targets.lb.core import ConfigError, Target

TargetId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class TargetIn(BaseModel):
    """A target to register (or update)."""

    model_config = ConfigDict(extra="forbid")
    id: TargetId
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    weight: int = Field(default=1, ge=1, le=1000)


class TargetOut(BaseModel):
    id: str
    host: str
    port: int
    weight: int
    state: str
    reason: str
    in_flight: int
    requests: int  # answered so far (any status): an autoscaler's request-rate source

    @classmethod
    def of(cls, t: Target, requests: int = 0) -> TargetOut:
        return cls(
            id=t.id,
            host=t.host,
            port=t.port,
            weight=t.weight,
            state=t.state.value,
            reason=str(t.reason),
            in_flight=t.in_flight,
            requests=requests,
        )


class GroupOut(BaseModel):
    name: str
    algorithm: str
    routable: int
    counts: dict[str, int]
    targets: list[TargetOut]


class Deregistered(BaseModel):
    id: str
    state: Literal["draining", "unused"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def control_app(lb: LoadBalancer, token: str | None, allow_remote: bool = False) -> FastAPI:
    app = control_api(
        f"{lb.config.name} control API",
        "Targets of one elastic load balancer (ALB target-group semantics).",
    )

    guarded = bearer_guard(token)
    auth_errors = AUTH_ERRORS

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/targets", dependencies=guarded, responses=auth_errors)
    async def list_targets() -> GroupOut:
        group = lb.group
        answered = lb.metrics.answered_by()
        return GroupOut(
            name=lb.config.name,
            algorithm=group.config.algorithm.value,
            routable=group.routable(),
            counts={state.value: n for state, n in group.counts().items()},
            targets=[TargetOut.of(t, answered.get(t.id, 0)) for t in group.targets.values()],
        )

    @app.post(
        "/targets",
        dependencies=guarded,
        responses={**auth_errors, 400: {"description": "target not allowed"}},
    )
    async def register(body: TargetIn, response: Response) -> TargetOut:
        if not allow_remote and not _is_loopback(body.host):
            raise HTTPException(
                400, f"host: {body.host!r} is not a loopback address (start with --allow-remote)"
            )
        known = body.id in lb.group.targets
        try:
            target = lb.register(body.id, body.host, body.port, body.weight)
        except ConfigError as exc:
            raise HTTPException(400, str(exc)) from None
        response.status_code = 200 if known else 201
        return TargetOut.of(target)

    @app.delete("/targets/{target_id}", dependencies=guarded, responses=auth_errors)
    async def deregister(target_id: Annotated[str, Path(max_length=64)]) -> Deregistered:
        state = lb.deregister(target_id)
        return Deregistered(id=target_id, state="draining" if state else "unused")

    @app.get("/metrics", response_class=Response)  # read-only, loopback: Prometheus scrapes it
    async def metrics() -> Response:
        return Response(generate_latest(lb.registry), media_type="text/plain; version=0.0.4")

    return app
