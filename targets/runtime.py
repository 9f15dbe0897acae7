"""What every target process shares: addresses, token files, the ready line, signals.

The flags themselves (one vocabulary for every target, and the old spellings) are in
`targets/flags.py`.

A target prints exactly one JSON line on stdout once it serves (`announce_ready`), so whoever
started it (the harness, a test) learns the ports it bound without polling.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest

from targets.http.loop import run
from targets.http.messages import Request
from targets.http.server import ResponseWriter


def parse_hostport(value: str, *, flag: str) -> tuple[str, int]:
    """`127.0.0.1:8080` -> ("127.0.0.1", 8080); `ValueError` naming the flag otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{flag}: expected HOST:PORT, got {value!r}")
    return host, int(port)


def read_token(path: str | None, *, flag: str) -> str | None:
    """The secret in `path` (stripped), or None when no file is given."""
    if path is None:
        return None
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    if not token:
        raise ValueError(f"{flag}: {path} is empty")
    return token


def authorized(request: Request, token: str | None) -> bool:
    """True when the request carries `Authorization: Bearer <token>` (constant-time compare)."""
    if token is None:
        return False
    given = request.header(b"authorization") or b""
    return hmac.compare_digest(given, b"Bearer " + token.encode())


def send_metrics(writer: ResponseWriter, registry: CollectorRegistry) -> None:
    writer.send(
        200,
        [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
        generate_latest(registry),
    )


def announce_ready(**fields: object) -> None:
    """Print the one ready line on stdout."""
    sys.stdout.write(json.dumps({"event": "ready", **fields}) + "\n")
    sys.stdout.flush()


def configure_process(level: str, name: str) -> None:
    """Logging to stderr with the instance name; no `_created` series in /metrics."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_main(
    prog: str, serve: Coroutine[Any, Any, int], errors: tuple[type[Exception], ...]
) -> int:
    """Run a target's `serve` on the event loop; a bad setting exits 2 with one clear line."""
    caught: tuple[type[Exception], ...] = (ValueError, OSError, *errors)
    try:
        return run(serve)
    except caught as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


def run_target(
    prog: str,
    args: argparse.Namespace,
    serve: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
    errors: tuple[type[Exception], ...] = (),
) -> int:
    """A target's process once its flags are parsed (`targets/flags.py`): logging under
    `--name` at `--log-level`, then `serve(args)` (`run_main`); the exit code."""
    configure_process(args.log_level, args.name)
    return run_main(prog, serve(args), errors)


def stop_signal() -> asyncio.Future[str]:
    """A future that SIGTERM or SIGINT resolves with the signal's name.

    The handlers are installed now: take it before `announce_ready`, so a stop sent the moment
    the ready line is read is a graceful stop, never Python's default death by signal.
    """
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[str] = loop.create_future()

    def on_signal(sig: signal.Signals) -> None:
        if not stopped.done():
            stopped.set_result(sig.name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    return stopped


async def wait_for_stop() -> str:
    """Block until SIGTERM or SIGINT; returns the signal's name."""
    return await stop_signal()
