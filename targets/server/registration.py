"""Joining and leaving a load balancer through its control API.

"First the server boots, then tells the load balancer of its existence": `register` retries
until the load balancer answers (it may be starting too), `deregister` is best effort with a
short timeout, because a stopping server must not hang on a load balancer that is gone.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from targets.http.client import fetch_json
from targets.http.messages import Headers
from targets.http.upstream import UpstreamError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Membership:
    """Where to register and as what."""

    lb_host: str
    lb_port: int
    target_id: str
    host: str
    port: int
    weight: int = 1
    token: str | None = None

    def _headers(self) -> Headers:
        return [(b"authorization", b"Bearer " + self.token.encode())] if self.token else []


class RegistrationError(Exception):
    """The load balancer refused the registration, or never answered."""


async def register(m: Membership, *, attempts: int = 50, pause_s: float = 0.1) -> None:
    payload = {"id": m.target_id, "host": m.host, "port": m.port, "weight": m.weight}
    last = "no attempt made"
    for _ in range(attempts):
        try:
            reply = await fetch_json(
                m.lb_host, m.lb_port, "POST", "/targets", payload, headers=m._headers()
            )
        except UpstreamError as exc:
            last = str(exc)
        else:
            if reply.status in (200, 201):
                log.info("registered %s with %s:%d", m.target_id, m.lb_host, m.lb_port)
                return
            raise RegistrationError(
                f"load balancer refused registration: {reply.status} {reply.body[:300]!r}"
            )
        await asyncio.sleep(pause_s)
    raise RegistrationError(f"load balancer {m.lb_host}:{m.lb_port} unreachable: {last}")


async def deregister(m: Membership) -> bool:
    """True when the load balancer acknowledged; never raises."""
    try:
        reply = await fetch_json(
            m.lb_host,
            m.lb_port,
            "DELETE",
            f"/targets/{m.target_id}",
            headers=m._headers(),
            timeout_s=2.0,
        )
    except UpstreamError as exc:
        log.warning("deregistration of %s failed: %s", m.target_id, exc)
        return False
    return reply.status == 200
