"""Our app server versus a bare uvicorn "hello" app, on one core each, under the same wrk load.

The app server runs in its fastest mode (`--service-ms 0`, no simulated service time) with
capacity far above the load (`--slots 100000 --backlog 100000`), and answers `GET
/api/orders/1`: the request passes routing, admission, the JSON reply and its Prometheus
metrics. The reference is uvicorn (uvloop, httptools, one worker, no access log) running
`benchmarks/uvicorn_hello.py`, a raw ASGI callable that answers every request with a fixed JSON
body of the same shape. So the ratio says what our HTTP engine plus the shop's per-request work
costs next to the leanest Python ASGI stack on the same event loop and parser.

Layout: the server under test on CPU 0; wrk (and this orchestrator) on CPU 1. Both servers run
during the whole benchmark and are measured in turn, ours first, for `rounds` rounds, each run
after a 2 s warm-up; the result holds medians over rounds.
"""

from __future__ import annotations

from typing import Any

from benchmarks.support import (
    PYTHON,
    Contender,
    CpuPlan,
    ProcessGroup,
    Run,
    log,
    measure,
    ratio,
    require_tool,
    self_pinned,
    summarize,
    wait_http,
)
from harness.supervisor import free_port

ROUNDS = 2
WARMUP_S = 2.0
PATH = "/api/orders/1"


def start_server(group: ProcessGroup, cpu: int | None) -> Contender:
    """Our app server in its fastest mode, capacity out of the way."""
    argv = [
        PYTHON,
        "-m",
        "targets.server",
        "--name",
        "bench-1",
        "--service-ms",
        "0",
        "--slots",
        "100000",
        "--backlog",
        "100000",
    ]
    proc = group.spawn("server", argv, cpu=cpu)
    url = f"http://{proc.ready['address']}{PATH}"
    wait_http(url, "the app server", proc)
    return Contender("server", url, [proc])


def start_uvicorn(group: ProcessGroup, cpu: int | None) -> Contender:
    """uvicorn with uvloop and httptools, one worker, serving the hello app."""
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "uvicorn",
        "benchmarks.uvicorn_hello:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    proc = group.spawn("uvicorn", argv, cpu=cpu, ready_line=False)
    url = f"http://127.0.0.1:{port}{PATH}"
    wait_http(url, "uvicorn", proc)
    return Contender("uvicorn", url, [proc])


def run(duration_s: float = 10.0, connections: int = 50, rounds: int = ROUNDS) -> dict[str, Any]:
    """Run the comparison; the result object (see the README for its fields)."""
    require_tool("wrk")
    plan = CpuPlan.detect()
    with self_pinned(plan.load), ProcessGroup("bench-server-") as group:
        server = start_server(group, plan.sut)
        uvicorn = start_uvicorn(group, plan.sut)
        log(f"{server.url} vs {uvicorn.url}")
        runs = measure(
            [server, uvicorn],
            rounds=rounds,
            duration_s=duration_s,
            connections=connections,
            warmup_s=WARMUP_S,
            cpu=plan.load,
        )
    return report(runs, duration_s=duration_s, connections=connections, plan=plan)


def report(
    runs: list[Run], *, duration_s: float, connections: int, plan: CpuPlan
) -> dict[str, Any]:
    """The benchmark's JSON object from its runs."""
    ours, theirs = summarize(runs, "server"), summarize(runs, "uvicorn")
    return {
        "benchmark": "server_vs_uvicorn",
        "server_rps": ours["rps"],
        "uvicorn_rps": theirs["rps"],
        "ratio": ratio(ours["rps"], theirs["rps"]),
        "server_p50_ms": ours["p50_ms"],
        "uvicorn_p50_ms": theirs["p50_ms"],
        "server_p99_ms": ours["p99_ms"],
        "uvicorn_p99_ms": theirs["p99_ms"],
        "server_cpu_pct": ours["cpu_pct"],
        "uvicorn_cpu_pct": theirs["cpu_pct"],
        "server_req_per_cpu_s": ours["req_per_cpu_s"],
        "uvicorn_req_per_cpu_s": theirs["req_per_cpu_s"],
        "cpu_efficiency_ratio": ratio(ours["req_per_cpu_s"], theirs["req_per_cpu_s"]),
        "server_cpu_busy_pct": ours["cpu_busy_pct"],
        "uvicorn_cpu_busy_pct": theirs["cpu_busy_pct"],
        "server_errors": ours["errors"],
        "uvicorn_errors": theirs["errors"],
        "rounds": max(r.round for r in runs),
        "duration_s": duration_s,
        "connections": connections,
        "path": PATH,
        **plan.describe(),
        "runs": [r.as_dict() for r in runs],
    }
