"""`python -m targets.gateway`: the API gateway (data plane plus control API).

    python -m targets.gateway --config gateway.json --port 8080 --control-port 9000

The config file's schema is in targets/gateway/config.py; a bad one exits 2 naming the field.
The ready line gives `address` (the data plane) and `control`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from targets import asgi
from targets.gateway.config import config_from_json
from targets.gateway.control import control_app
from targets.gateway.gateway import Gateway
from targets.gateway.routes import RouteError
from targets.http.server import HttpServer, ServerLimits
from targets.runtime import announce_ready, configure_process, read_token, run_main, wait_for_stop

log = logging.getLogger("targets.gateway")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m targets.gateway",
        description="An API gateway: path routes to each service's load balancer, per-route "
        "timeouts, rate limits per route and per client (429 with Retry-After).",
    )
    p.add_argument("--config", required=True, help="the routes, as JSON")
    p.add_argument("--name", default="gateway", help="name in logs and error bodies")
    p.add_argument("--host", default="127.0.0.1", help="data-plane address (default loopback)")
    p.add_argument("--port", type=int, default=0, help="data-plane port (0: any free port)")
    p.add_argument("--control-port", type=int, default=0, help="control API port (0: any free)")
    p.add_argument("--control-token-file", help="file with the control API token")
    p.add_argument("--idle-timeout", type=float, default=60.0, help="client keep-alive seconds")
    p.add_argument("--max-body", type=int, default=None, help="request body limit in bytes")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def load_config(path: str) -> Gateway:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"--config: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config: {path} is not JSON ({exc})") from None
    try:
        return Gateway(config_from_json(data))
    except RouteError as exc:
        raise ValueError(f"{path}: {exc}") from None


async def serve(args: argparse.Namespace) -> int:
    gateway = load_config(args.config)
    token = read_token(args.control_token_file, flag="--control-token-file")
    limits = ServerLimits(
        name=args.name, max_body_bytes=args.max_body, keepalive_timeout_s=args.idle_timeout
    )
    http = HttpServer(gateway, limits)
    await http.listen(args.host, args.port)
    control = await asgi.start(control_app(gateway, token), "127.0.0.1", args.control_port)
    host, port = http.address
    announce_ready(name=args.name, address=f"{host}:{port}", control=f"127.0.0.1:{control.port}")
    signame = await wait_for_stop()
    log.info("%s: closing listeners, finishing requests in flight", signame)
    await http.shutdown(5.0)
    await control.stop()
    gateway.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_process(args.log_level, args.name)
    return run_main("targets.gateway", serve(args), ())


if __name__ == "__main__":
    sys.exit(main())
