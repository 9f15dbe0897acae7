"""Our load balancer versus HAProxy, on the same three backends and under the same wrk load.

Goal (from the issue): with metrics and health checks on, our LB serves at least 80 % of
HAProxy's requests per second, with a p99 latency within 2x of HAProxy's.

Backends: three nginx `server` blocks (one nginx master with one worker, three ports) answering
`return 200` with a small JSON body like the app server's. We use nginx rather than our own app
server because the benchmark measures the proxy, so the backend must never be the bottleneck:
nginx answers from C in a few microseconds per request, whereas our app server (Python) would
need about as much CPU per request as the LB itself, and it shares CPU 1 with wrk. One nginx
process for the three ports keeps the load side to two busy processes (wrk, the nginx worker).

Layout on a 2-CPU machine: the proxy under test (our LB, or HAProxy with `nbthread 1`) alone on
CPU 0; wrk, nginx and this orchestrator on CPU 1. Both proxies run during the whole benchmark
(the idle one only sends its 1 s health probes) and are measured in turn, LB first, for
`rounds` rounds; every measured run follows a 2 s warm-up. The result holds medians over rounds.

HAProxy is configured to do the same work as our LB: HTTP mode, round robin, keep-alive to the
backends (`http-reuse always`), active health checks every second (`check inter 1s`),
`X-Forwarded-For` and `X-Forwarded-Proto` added. Our LB runs with its defaults: health checks
every 1 s, Prometheus metrics always on.

`cpu_pct` is the CPU the proxy used during the run (100 = one full core). A proxy well below 100
was not the bottleneck (the load side on CPU 1 was), so its req/s is a lower bound.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.support import (
    PYTHON,
    Contender,
    CpuPlan,
    ProcessGroup,
    Run,
    http_json,
    log,
    measure,
    ratio,
    require_tool,
    self_pinned,
    start_haproxy,
    summarize,
    wait_http,
    wait_lb_healthy,
)
from harness.supervisor import free_port

BACKENDS = 3
ROUNDS = 2
WARMUP_S = 2.0
PATH = "/api/orders/1"
RATIO_GOAL = 0.8
P99_GOAL = 2.0

BODY = '{"id":"1","status":"confirmed","total":42,"service":"shop","instance":"nginx"}'


def nginx_config(root: Path, ports: list[int]) -> str:
    """An nginx config with one `server` per port, all answering BODY; every file under root."""
    servers = "\n".join(
        f"""    server {{
        listen 127.0.0.1:{port} backlog=4096;
        keepalive_requests 1000000;
        location / {{ return 200 '{BODY}'; }}
    }}"""
        for port in ports
    )
    return f"""daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    default_type application/json;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_timeout 120s;
{servers}
}}
"""


def haproxy_config(port: int, backends: list[int]) -> str:
    """HAProxy doing what our LB does: round robin, keep-alive upstream, 1 s health checks."""
    servers = "\n".join(
        f"    server b{i} 127.0.0.1:{p} check inter 1s" for i, p in enumerate(backends, 1)
    )
    return f"""global
    nbthread 1
    maxconn 4096

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 30s
    timeout http-keep-alive 60s
    option http-keep-alive
    option forwardfor
    http-reuse always

frontend fe
    bind 127.0.0.1:{port}
    http-request set-header X-Forwarded-Proto http
    default_backend be

backend be
    balance roundrobin
    option httpchk GET /health
{servers}
"""


def start_backends(group: ProcessGroup, cpu: int | None) -> list[int]:
    """Start nginx on BACKENDS ports; their port numbers."""
    nginx = require_tool("nginx", "nginx-light")
    ports = [free_port() for _ in range(BACKENDS)]
    root = group.dir / "nginx"
    root.mkdir()
    root.chmod(0o755)  # a root master runs its worker as nobody
    conf = root / "nginx.conf"
    conf.write_text(nginx_config(root, ports))
    argv = [nginx, "-p", str(root), "-c", str(conf), "-e", str(root / "nginx-error.log")]
    proc = group.spawn("nginx", argv, cpu=cpu, ready_line=False)
    for port in ports:
        wait_http(f"http://127.0.0.1:{port}{PATH}", f"nginx on port {port}", proc)
    return ports


def start_lb(group: ProcessGroup, backends: list[int], cpu: int | None) -> Contender:
    """Our LB with the backends registered through its control API, once all are healthy."""
    lb = group.spawn("lb", [PYTHON, "-m", "targets.lb", "--name", "lb-bench"], cpu=cpu)
    control = lb.ready["control"]
    for i, port in enumerate(backends, 1):
        http_json(
            "POST", f"http://{control}/targets", {"id": f"b{i}", "host": "127.0.0.1", "port": port}
        )
    wait_lb_healthy(lb, len(backends))
    url = f"http://{lb.ready['address']}{PATH}"
    wait_http(url, "the LB to proxy", lb)
    return Contender("lb", url, [lb])


def against_haproxy(
    start_ours: Callable[[ProcessGroup, list[int], int | None], Contender],
    haproxy_conf: Callable[[int, list[int]], str],
    *,
    prefix: str,
    duration_s: float,
    connections: int,
    rounds: int,
) -> tuple[list[Run], CpuPlan]:
    """Ours and HAProxy over the same nginx backends, measured in turn: (runs, CPU plan).

    `start_ours(group, backend_ports, cpu)` starts the contender under test; `haproxy_conf(port,
    backend_ports)` is HAProxy's config doing the same job.
    """
    for tool, package in (("wrk", "wrk"), ("nginx", "nginx-light"), ("haproxy", "haproxy")):
        require_tool(tool, package)
    plan = CpuPlan.detect()
    with self_pinned(plan.load), ProcessGroup(prefix) as group:
        backends = start_backends(group, plan.load)
        ours = start_ours(group, backends, plan.sut)
        port = free_port()
        haproxy = start_haproxy(group, haproxy_conf(port, backends), port, PATH, plan.sut)
        log(f"backends: nginx on ports {backends}; {ours.url} vs {haproxy.url}")
        runs = measure(
            [ours, haproxy],
            rounds=rounds,
            duration_s=duration_s,
            connections=connections,
            warmup_s=WARMUP_S,
            cpu=plan.load,
        )
    return runs, plan


def run(duration_s: float = 10.0, connections: int = 50, rounds: int = ROUNDS) -> dict[str, Any]:
    """Run the comparison; the result object (see the README for its fields)."""
    runs, plan = against_haproxy(
        start_lb,
        haproxy_config,
        prefix="bench-lb-",
        duration_s=duration_s,
        connections=connections,
        rounds=rounds,
    )
    return report(runs, duration_s=duration_s, connections=connections, plan=plan)


def report(
    runs: list[Run], *, duration_s: float, connections: int, plan: CpuPlan
) -> dict[str, Any]:
    """The benchmark's JSON object from its runs."""
    ours, theirs = summarize(runs, "lb"), summarize(runs, "haproxy")
    rps_ratio = ratio(ours["rps"], theirs["rps"])
    p99_ratio = ratio(ours["p99_ms"], theirs["p99_ms"])
    return {
        "benchmark": "lb_vs_haproxy",
        "lb_rps": ours["rps"],
        "haproxy_rps": theirs["rps"],
        "ratio": rps_ratio,
        "lb_p50_ms": ours["p50_ms"],
        "haproxy_p50_ms": theirs["p50_ms"],
        "lb_p99_ms": ours["p99_ms"],
        "haproxy_p99_ms": theirs["p99_ms"],
        "p99_ratio": p99_ratio,
        "lb_cpu_pct": ours["cpu_pct"],
        "haproxy_cpu_pct": theirs["cpu_pct"],
        "lb_req_per_cpu_s": ours["req_per_cpu_s"],
        "haproxy_req_per_cpu_s": theirs["req_per_cpu_s"],
        "cpu_efficiency_ratio": ratio(ours["req_per_cpu_s"], theirs["req_per_cpu_s"]),
        "lb_cpu_busy_pct": ours["cpu_busy_pct"],
        "haproxy_cpu_busy_pct": theirs["cpu_busy_pct"],
        "lb_errors": ours["errors"],
        "haproxy_errors": theirs["errors"],
        "rounds": max(r.round for r in runs),
        "duration_s": duration_s,
        "connections": connections,
        "backends": f"{BACKENDS} x nginx return 200",
        "path": PATH,
        **plan.describe(),
        "goal": {"ratio_min": RATIO_GOAL, "p99_ratio_max": P99_GOAL},
        "ok": rps_ratio >= RATIO_GOAL and 0 < p99_ratio <= P99_GOAL and ours["errors"] == 0,
        "runs": [r.as_dict() for r in runs],
    }
