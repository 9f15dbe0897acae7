"""Control planes: a FastAPI app as every service builds it, served with uvicorn inside a
running event loop.

`control_api` is the FastAPI app every control plane starts from: its `/docs` page serves
Swagger UI from the swagger-ui-bundle package (no CDN: it works offline), and a request that
fails validation is a 422 whose `detail` is one readable sentence naming each field ("unknown
action 'foo'; actions: add, clear, ..."), not pydantic's list. The process's signals stay with
its owner (a target's `wait_for_stop`, the harness CLI), not uvicorn's; `start` returns once
the socket is bound, with the port it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Annotated, Any

import swagger_ui_bundle  # type: ignore[import-untyped]  # (ships no type hints)
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS = "/docs/assets"


def control_api(title: str, description: str = "", version: str = "1") -> FastAPI:
    """A FastAPI app with offline Swagger UI at /docs and readable validation errors."""
    app = FastAPI(
        title=title, description=description, version=version, docs_url=None, redoc_url=None
    )
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), "docs")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": readable(exc.errors())}, status_code=422)

    return app


def readable(errors: Any) -> str:
    """Pydantic's validation errors as one sentence: `field: problem; field: problem`."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        if error.get("type") == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            choices = ", ".join(
                sorted(c.strip(" '") for c in expected.replace(" or ", ",").split(","))
            )
            parts.append(f"unknown {where} {error.get('input')!r}; {where}s: {choices}")
        else:
            parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


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
