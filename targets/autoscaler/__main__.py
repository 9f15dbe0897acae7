"""`python -m targets.autoscaler`: target tracking for one service of a running lab.

    python -m targets.autoscaler --service orders --lb-control 127.0.0.1:4101 \\
        --lab-control 127.0.0.1:4000 --token-file runs/x/control.token \\
        --metric in_flight --policy '{"target": 4, "min_replicas": 1, "max_replicas": 6}'

`--policy` is a JSON object of `targets.autoscaler.core.Policy` fields; a bad one exits 2 naming
the field. The ready line gives the `/metrics` address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

from targets.autoscaler.adapter import Endpoints, ServiceAutoscaler
from targets.autoscaler.core import ConfigError, Policy
from targets.autoscaler.observe import METRICS
from targets.fastmetrics import BornAtZeroRegistry
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter, ServerLimits
from targets.runtime import (
    announce_ready,
    configure_process,
    parse_hostport,
    read_token,
    run_main,
    send_metrics,
    wait_for_stop,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m targets.autoscaler",
        description="Target tracking (HPA / AWS style) for one service: samples its load "
        "balancer, adds and removes replicas through the lab's control API.",
    )
    p.add_argument("--service", required=True, help="the service to scale")
    p.add_argument("--lb-control", required=True, help="HOST:PORT of its load balancer's API")
    p.add_argument("--lab-control", required=True, help="HOST:PORT of the harness control API")
    p.add_argument("--token-file", required=True, help="bearer token for both APIs")
    p.add_argument("--metric", choices=METRICS, default="in_flight", help="per-replica load")
    p.add_argument("--policy", required=True, help="JSON object of Policy fields")
    p.add_argument("--sample-interval", type=float, default=0.25, help="seconds between samples")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT for /metrics")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def policy_of(text: str) -> Policy:
    """The `--policy` JSON as a Policy; ConfigError naming the field otherwise."""
    try:
        fields: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--policy: not JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise ConfigError("--policy: expected a JSON object")
    known = set(Policy.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"--policy: unknown field(s) {', '.join(unknown)}")
    if "target" not in fields:
        raise ConfigError("--policy: target is required")
    return Policy(**fields)


async def serve(args: argparse.Namespace) -> int:
    token = read_token(args.token_file, flag="--token-file")
    assert token is not None  # the flag is required
    if not 0 < args.sample_interval <= 60:
        raise ValueError(f"--sample-interval: must be in (0, 60], got {args.sample_interval}")
    endpoints = Endpoints(
        parse_hostport(args.lb_control, flag="--lb-control"),
        parse_hostport(args.lab_control, flag="--lab-control"),
        token,
    )
    registry = BornAtZeroRegistry()
    scaler = ServiceAutoscaler(
        args.service,
        policy_of(args.policy),
        args.metric,
        endpoints,
        registry,
        sample_interval_s=args.sample_interval,
    )

    def handle(request: Request, writer: ResponseWriter) -> None:
        if request.path == "/metrics":
            send_metrics(writer, registry)
        else:
            writer.send(404, [(b"content-type", b"text/plain")], b"only /metrics here\n")

    http = HttpServer(handle, ServerLimits(name=f"autoscaler-{args.service}"))
    await http.listen(*parse_hostport(args.listen, flag="--listen"))
    task = asyncio.get_running_loop().create_task(scaler.run())
    host, port = http.address
    announce_ready(name=f"autoscaler-{args.service}", address=f"{host}:{port}")
    await wait_for_stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await http.shutdown(0)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_process(args.log_level, f"autoscaler-{args.service}")
    return run_main("targets.autoscaler", serve(args), (ConfigError,))


if __name__ == "__main__":
    sys.exit(main())
