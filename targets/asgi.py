"""Serving an ASGI app (a FastAPI control plane) with uvicorn inside a running event loop.

The process's signals stay with its owner (a target's `wait_for_stop`, the harness CLI), not
uvicorn's; `start` returns once the socket is bound, with the port it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, Header, HTTPException


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(slots=True)
class AsgiServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def start(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsgiServer:
    """Serve `app` on host:port (0: a free port); OSError when the address is taken."""
    server = _Embedded(
        uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the bind error
            raise OSError(f"cannot listen on {host}:{port}")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return AsgiServer(server, task, int(bound))


AUTH_ERRORS: dict[int | str, dict[str, str]] = {401: {"description": "missing or bad token"}}
"""The `responses` entry of a guarded route, for the OpenAPI document."""


def bearer_guard(token: str | None, hint: str = "control token") -> list[Any]:
    """FastAPI `dependencies` that demand `Authorization: Bearer <token>` (constant-time
    compare; 401 otherwise). With no token configured, nothing is demanded."""

    def check(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            return
        if not hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, f"Authorization: Bearer <{hint}> required")

    guard: Callable[..., None] = check
    return [Depends(guard)]
