"""`python -m targets.lb`: an elastic load balancer (data plane plus control API)."""

from __future__ import annotations

import argparse
import logging
import sys

from targets import asgi
from targets.flags import TargetFlags
from targets.http.server import HttpServer, ServerLimits
from targets.lb.balancer import LbConfig, LoadBalancer
from targets.lb.control import control_app
from targets.lb.core import Algorithm, ConfigError, GroupConfig, HealthPolicy
from targets.runtime import announce_ready, read_token, run_target, stop_signal

log = logging.getLogger("targets.lb")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    flags = TargetFlags(
        "python -m targets.lb",
        "An elastic HTTP load balancer with ALB target-group semantics: targets "
        "register through the control API, pass health checks, drain on deregistration.",
    )
    flags.name("lb", "name in logs and error bodies")
    flags.listen("data-plane address (default 127.0.0.1:0: loopback, any free port)")
    flags.control_listen(old_host="--control-host", old_port="--control-port")
    flags.token_file("file with the token the control API requires", old="--control-token-file")
    p = flags.parser
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="accept targets outside 127.0.0.0/8 (off: lab traffic stays local)",
    )
    p.add_argument("--algorithm", choices=[a.value for a in Algorithm], default="round_robin")
    p.add_argument("--health-interval", type=float, default=1.0, help="seconds between probes")
    p.add_argument("--health-timeout", type=float, default=0.5, help="probe timeout in seconds")
    p.add_argument(
        "--healthy-threshold",
        type=int,
        default=3,
        help="consecutive good probes to become healthy again",
    )
    p.add_argument(
        "--unhealthy-threshold",
        type=int,
        default=2,
        help="consecutive failed probes to become unhealthy",
    )
    p.add_argument("--health-path", default="/health")
    p.add_argument("--matcher", default="200", help="healthy status codes, e.g. 200,202 or 200-299")
    p.add_argument(
        "--deregistration-delay",
        type=float,
        default=5.0,
        help="seconds a deregistered target may finish in-flight requests",
    )
    p.add_argument(
        "--slow-start",
        type=float,
        default=0.0,
        help="seconds over which a newly healthy target ramps up (0: off)",
    )
    p.add_argument("--connect-timeout", type=float, default=1.0)
    p.add_argument(
        "--response-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for a target's response (then 504)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        help="seconds an idle client keep-alive connection stays open",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a client has to send a whole request head (then 408)",
    )
    p.add_argument("--max-body", type=int, default=None, help="request body limit in bytes (413)")
    p.add_argument("--max-retries", type=int, default=2)
    p.add_argument("--max-connections-per-target", type=int, default=512)
    p.add_argument("--seed", type=int, default=None, help="seed of the routing RNG")
    return flags.parse(argv)


def build(args: argparse.Namespace) -> LoadBalancer:
    health = HealthPolicy(
        interval_s=args.health_interval,
        timeout_s=args.health_timeout,
        healthy_threshold=args.healthy_threshold,
        unhealthy_threshold=args.unhealthy_threshold,
        path=args.health_path,
    )
    group = GroupConfig(
        algorithm=Algorithm(args.algorithm),
        health=health,
        deregistration_delay_s=args.deregistration_delay,
        slow_start_s=args.slow_start,
    )
    return LoadBalancer(
        LbConfig(
            name=args.name,
            group=group,
            matcher=args.matcher,
            connect_timeout_s=args.connect_timeout,
            response_timeout_s=args.response_timeout,
            max_retries=args.max_retries,
            max_connections_per_target=args.max_connections_per_target,
            seed=args.seed,
        )
    )


async def serve(args: argparse.Namespace) -> int:
    lb = build(args)
    token = read_token(args.token_file, flag="--token-file")
    limits = ServerLimits(
        name=args.name,
        max_body_bytes=args.max_body,
        header_timeout_s=args.header_timeout,
        keepalive_timeout_s=args.idle_timeout,
    )
    http = HttpServer(lb, limits)
    await http.listen(*args.listen)
    lb.http = http
    lb.start()
    control_host, control_port = args.control_listen
    control = await asgi.start(
        control_app(lb, token, args.allow_remote), control_host, control_port
    )
    host, port = http.address
    stopped = stop_signal()
    announce_ready(
        name=args.name, address=f"{host}:{port}", control=f"{control_host}:{control.port}"
    )
    signame = await stopped
    log.info("%s: closing listeners, finishing requests in flight", signame)
    await http.shutdown(args.deregistration_delay)
    await control.stop()
    await lb.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_target("targets.lb", parse_args(argv), serve, (ConfigError,))


if __name__ == "__main__":
    sys.exit(main())
