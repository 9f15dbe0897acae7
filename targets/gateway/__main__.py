"""`python -m targets.gateway`: the API gateway (data plane plus control API).

    python -m targets.gateway --config gateway.json --listen 127.0.0.1:8080 \\
        --control-listen 127.0.0.1:9000

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
from targets.flags import TargetFlags
from targets.gateway.config import config_from_json
from targets.gateway.control import control_app
from targets.gateway.gateway import Gateway
from targets.http.router import RouteError
from targets.http.server import HttpServer, ServerLimits, delayed
from targets.runtime import announce_ready, read_token, run_target, stop_signal

log = logging.getLogger("targets.gateway")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.gateway",
        "An API gateway: path routes to each service's load balancer, per-route "
        "timeouts, rate limits per route and per client (429 with Retry-After).",
    )
    p = flags.parser
    p.add_argument("--config", required=True, help="the routes, as JSON")
    p.add_argument("--idle-timeout", type=float, default=60.0, help="client keep-alive seconds")
    p.add_argument("--max-body", type=int, default=None, help="request body limit in bytes")
    flags.name("gateway", "name in logs and error bodies")
    flags.listen("data-plane address (default 127.0.0.1:0: loopback, any free port)")
    flags.control_listen(old_port="--control-port")
    flags.token_file("file with the token the control API requires", old="--control-token-file")
    flags.network()
    return flags.parse(argv)


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
    token = read_token(args.token_file, flag="--token-file")
    limits = ServerLimits(
        name=args.name, max_body_bytes=args.max_body, keepalive_timeout_s=args.idle_timeout
    )
    http = HttpServer(delayed(gateway, args.network), limits)
    await http.listen(*args.listen)
    control_host, control_port = args.control_listen
    control = await asgi.start(control_app(gateway, token), control_host, control_port)
    host, port = http.address
    stopped = stop_signal()
    announce_ready(
        name=args.name, address=f"{host}:{port}", control=f"{control_host}:{control.port}"
    )
    signame = await stopped
    log.info("%s: closing listeners, finishing requests in flight", signame)
    await http.shutdown(5.0)
    await control.stop()
    gateway.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.gateway", parse_args(argv), serve)


if __name__ == "__main__":
    sys.exit(main())
