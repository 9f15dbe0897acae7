"""`/admin/faults`, the management endpoint servers and providers share (chaos `latency`,
`errors`, `clear`).

``GET`` shows the faults, ``PUT`` sets them (a JSON body of `FaultsBody`'s fields, or of a
model extending it), ``DELETE`` clears them. Without a token the endpoint is disabled (403);
a request without ``Authorization: Bearer <token>`` is refused (401); a bad body is a 400
naming each field (``latency_ms: Input should be greater than or equal to 0``); another
method is a 405.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from targets.http.messages import Request
from targets.http.server import ResponseWriter
from targets.runtime import authorized

MAX_FAULTS_BYTES = 64 * 1024


class FaultsBody(BaseModel):
    """Body of `PUT /admin/faults`: latency added to each request, a share that fails."""

    model_config = ConfigDict(extra="forbid")
    latency_ms: float = Field(default=0, ge=0, le=600_000)
    error_rate: float = Field(default=0, ge=0, le=1)


Body = TypeVar("Body", bound=BaseModel)


async def faults_request(
    request: Request,
    writer: ResponseWriter,
    token: str | None,
    model: type[Body],
    enable: str,
    *,
    invalid: str = "invalid_faults",
) -> tuple[str, Body | None] | None:
    """What the request asks (`(method, body)`: the body for PUT), or None once it has been
    answered with its refusal. `enable` names the flag that gives the token; `invalid` is the
    error of a bad body. Any admin endpoint of the same shape uses it (`/admin/content`)."""
    if token is None:
        detail = f"start it with {enable}"
        writer.send_json(403, {"error": "admin_disabled", "detail": detail})
        return None
    if not authorized(request, token):
        detail = "Authorization: Bearer <admin token> required"
        writer.send_json(401, {"error": "unauthorized", "detail": detail})
        return None
    if request.method == "PUT":
        try:
            body = model.model_validate_json(await request.body.read_all(MAX_FAULTS_BYTES))
        except (ValidationError, ValueError) as exc:
            writer.send_json(400, {"error": invalid, "detail": describe_invalid(exc)})
            return None
        return "PUT", body
    if request.method in ("GET", "DELETE"):
        return request.method, None
    writer.send_json(405, {"error": "method_not_allowed", "allowed": "GET, PUT, DELETE"})
    return None


def describe_invalid(exc: Exception) -> str:
    """A refused body as one sentence naming each field: `hang: Extra inputs are not
    permitted`."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
    return str(exc)
