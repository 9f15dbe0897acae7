"""`python -m benchmarks [NAME]`: run every benchmark, or the one named.

Progress goes to stderr. The last line on stdout is one JSON object: the benchmark's result when
one is named, otherwise one object keyed by benchmark name (`lb_vs_haproxy`,
`server_vs_uvicorn`, `idle_connections`, `proxy_python_cost`, `locust_plugin_overhead`,
`lab_timings`, `gateway_vs_haproxy`, `limiter_core`, `queue_http`, `pubsub_fanout`,
`cdn_edge`); a benchmark that could not run holds `{"error": "..."}` instead.
Exit status: 0 when every benchmark ran (whether or not it met its goal, see each "ok"),
1 when one could not run, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from benchmarks import (
    cdn_edge,
    gateway_vs_haproxy,
    idle_connections,
    lab_timings,
    lb_vs_haproxy,
    limiter_core,
    locust_plugin_overhead,
    proxy_python_cost,
    pubsub_fanout,
    queue_http,
    server_vs_uvicorn,
)
from benchmarks.support import BenchError, emit, log

NAMES = (
    "lb_vs_haproxy",
    "server_vs_uvicorn",
    "idle_connections",
    "proxy_python_cost",
    "locust_plugin_overhead",
    "lab_timings",
    "gateway_vs_haproxy",
    "limiter_core",
    "queue_http",
    "pubsub_fanout",
    "cdn_edge",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of the lab's targets against reference implementations.",
    )
    p.add_argument("name", nargs="?", choices=NAMES, help="run only this benchmark")
    p.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds per measured wrk or Locust run (default 10)",
    )
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds per comparison (default 2)"
    )
    p.add_argument(
        "--idle-connections",
        type=int,
        default=idle_connections.CONNECTIONS,
        help=f"connections idle_connections opens (default {idle_connections.CONNECTIONS})",
    )
    p.add_argument(
        "--locust-users",
        type=int,
        default=locust_plugin_overhead.USERS,
        help=f"users locust_plugin_overhead runs (default {locust_plugin_overhead.USERS})",
    )
    p.add_argument(
        "--lab-rounds",
        type=int,
        default=lab_timings.ROUNDS,
        help=f"rounds of lab_timings (default {lab_timings.ROUNDS})",
    )
    args = p.parse_args(argv)
    counts = (args.connections, args.rounds, args.idle_connections, args.locust_users)
    if args.duration <= 0 or min(*counts, args.lab_rounds) < 1:
        p.error(
            "--duration, --connections, --rounds, --idle-connections, --locust-users and"
            " --lab-rounds must be positive"
        )
    return args


def runners(args: argparse.Namespace) -> dict[str, Callable[[], dict[str, Any]]]:
    """Each benchmark as a call with the command line's settings applied."""
    load = {"duration_s": args.duration, "connections": args.connections, "rounds": args.rounds}
    return {
        "lb_vs_haproxy": lambda: lb_vs_haproxy.run(**load),
        "server_vs_uvicorn": lambda: server_vs_uvicorn.run(**load),
        "idle_connections": lambda: idle_connections.run(args.idle_connections),
        "proxy_python_cost": proxy_python_cost.run,
        "locust_plugin_overhead": lambda: locust_plugin_overhead.run(
            args.duration, args.locust_users, args.rounds
        ),
        "lab_timings": lambda: lab_timings.run(args.lab_rounds),
        "gateway_vs_haproxy": lambda: gateway_vs_haproxy.run(**load),
        "limiter_core": lambda: limiter_core.run(rounds=max(3, args.rounds)),
        "queue_http": lambda: queue_http.run(
            args.duration, min(args.duration, queue_http.MOTO_DURATION_S), args.rounds
        ),
        "pubsub_fanout": lambda: pubsub_fanout.run(
            args.duration, min(args.duration, pubsub_fanout.MOTO_DURATION_S), args.rounds
        ),
        "cdn_edge": lambda: cdn_edge.run(**load),
    }


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the run like Ctrl-C does, so every child is stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    chosen = [args.name] if args.name else list(NAMES)
    results: dict[str, dict[str, Any]] = {}
    failed = False
    try:
        for name in chosen:
            log(f"=== {name} ===")
            try:
                results[name] = runners(args)[name]()
            except BenchError as exc:
                log(f"{name} could not run: {exc}")
                results[name] = {"benchmark": name, "error": str(exc)}
                failed = True
    except KeyboardInterrupt:
        log("interrupted: every process started was stopped")
        return 130
    emit(results[args.name] if args.name else results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
