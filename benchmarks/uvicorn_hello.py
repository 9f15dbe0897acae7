"""The reference for `server_vs_uvicorn`: a bare ASGI callable answering a small JSON body.

No framework, no routing: every request gets the same 200 with a body shaped like the app
server's `GET /api/orders/1` reply. Run it with
`uvicorn benchmarks.uvicorn_hello:app --loop uvloop --http httptools --lifespan off`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

BODY = json.dumps(
    {"id": "1", "status": "confirmed", "total": 42, "service": "shop", "instance": "uvicorn"},
    separators=(",", ":"),
).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
END = {"type": "http.response.body", "body": BODY}


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Answer every HTTP request with BODY; ignore other scopes (lifespan is turned off)."""
    if scope["type"] != "http":
        return
    await send(START)
    await send(END)
