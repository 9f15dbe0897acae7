"""`python -m targets.autoscaler`: target tracking for one service of a running lab.

    python -m targets.autoscaler --service orders --lb-control 127.0.0.1:4101 \\
        --lab-control 127.0.0.1:4000 --lb-token-file runs/x/control.token \\
        --lab-token-file runs/x/control.token --metric in_flight \\
        --policy '{"target": 4, "min_replicas": 1, "max_replicas": 6}'

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
from targets.flags import TargetFlags
from targets.http.messages import Request
from targets.http.server import HttpServer, ResponseWriter, ServerLimits
from targets.runtime import announce_ready, read_token, run_target, send_metrics, stop_signal


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.autoscaler",
        "Target tracking (HPA / AWS style) for one service: samples its load "
        "balancer, adds and removes replicas through the lab's control API.",
    )
    p = flags.parser
    p.add_argument("--service", required=True, help="the service to scale")
    p.add_argument("--metric", choices=METRICS, default="in_flight", help="per-replica load")
    p.add_argument("--policy", required=True, help="JSON object of Policy fields")
    p.add_argument("--sample-interval", type=float, default=0.25, help="seconds between samples")
    flags.name(None, "instance name (logs, ready line; default autoscaler-SERVICE)")
    flags.listen("address of /metrics (default 127.0.0.1:0)", old_host=None, old_port=None)
    flags.peer_control("lb", "its load balancer's control API", required=True)
    flags.peer_token_file("lb", "file with the token its load balancer requires", required=True)
    flags.peer_control("lab", "the harness control API", required=True)
    flags.peer_token_file("lab", "file with the token the harness requires", required=True)
    flags.renamed(
        "--token-file",
        "--lb-token-file and --lab-token-file",
        "lb_token_file",
        also=("lab_token_file",),
    )
    args = flags.parse(argv)
    args.name = args.name or f"autoscaler-{args.service}"
    return args


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
    lb_token = read_token(args.lb_token_file, flag="--lb-token-file")
    lab_token = read_token(args.lab_token_file, flag="--lab-token-file")
    assert lb_token is not None  # both flags are required
    assert lab_token is not None
    if lb_token != lab_token:  # `Endpoints` carries one bearer token for both APIs
        raise ValueError("--lb-token-file, --lab-token-file: must hold the same token for now")
    if not 0 < args.sample_interval <= 60:
        raise ValueError(f"--sample-interval: must be in (0, 60], got {args.sample_interval}")
    endpoints = Endpoints(args.lb_control, args.lab_control, lb_token)
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

    http = HttpServer(handle, ServerLimits(name=args.name))
    await http.listen(*args.listen)
    task = asyncio.get_running_loop().create_task(scaler.run())
    host, port = http.address
    stopped = stop_signal()
    announce_ready(name=args.name, address=f"{host}:{port}")
    await stopped
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await http.shutdown(0)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.autoscaler", parse_args(argv), serve, (ConfigError,))


if __name__ == "__main__":
    sys.exit(main())
