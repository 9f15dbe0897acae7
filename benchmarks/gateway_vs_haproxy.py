"""Our API gateway versus HAProxy doing the same path routing, same backends, same wrk load.

Goal (issue 5): with routing and a rate limiter on, the gateway serves at least 70 % of
HAProxy's requests per second.

Both route three path prefixes (/api/auth, /api/orders, /api/payments) to three nginx
backends (one per service, as the lab's load balancers would be) and wrk asks for
/api/orders/1. The gateway also runs a per-client token bucket on every route, sized so that it
decides every request and refuses none (rate and burst 10^6): the limiter's cost is measured,
not its rejections. HAProxy: `path_beg` ACLs and `use_backend`, HTTP keep-alive to the backends,
no health checks (the gateway has none either: its upstreams are load balancers).

Layout as in lb_vs_haproxy: the proxy under test alone on CPU 0; wrk, nginx and this
orchestrator on CPU 1; medians over alternating rounds.
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.lb_vs_haproxy import PATH, against_haproxy
from benchmarks.support import (
    PYTHON,
    Contender,
    CpuPlan,
    ProcessGroup,
    Run,
    ratio,
    summarize,
    wait_http,
)

ROUNDS = 2
RATIO_GOAL = 0.7
PREFIXES = ("/api/auth", "/api/orders", "/api/payments")


def gateway_config(backends: list[int]) -> dict[str, Any]:
    limit = {"name": "per-client", "key": "client", "rate": 1e6, "burst": 1_000_000}
    return {
        "routes": [
            {
                "name": prefix.rsplit("/", 1)[1],
                "path": prefix,
                "service": prefix.rsplit("/", 1)[1],
                "upstream": f"127.0.0.1:{port}",
                "limits": [limit],
            }
            for prefix, port in zip(PREFIXES, backends, strict=True)
        ]
    }


def haproxy_config(port: int, backends: list[int]) -> str:
    """HAProxy routing the same prefixes, keep-alive upstream, one thread."""
    names = [prefix.rsplit("/", 1)[1] for prefix in PREFIXES]
    acls = "\n".join(
        f"    acl is_{n} path_beg {p}\n    use_backend be_{n} if is_{n}"
        for n, p in zip(names, PREFIXES, strict=True)
    )
    backends_cfg = "\n".join(
        f"backend be_{n}\n    server s1 127.0.0.1:{b}\n"
        for n, b in zip(names, backends, strict=True)
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
{acls}
    default_backend be_none

backend be_none
    http-request return status 404 content-type application/json string '{{"message":"Not Found"}}'

{backends_cfg}"""


def start_gateway(group: ProcessGroup, backends: list[int], cpu: int | None) -> Contender:
    conf = group.dir / "gateway.json"
    conf.write_text(json.dumps(gateway_config(backends)))
    gateway = group.spawn(
        "gateway", [PYTHON, "-m", "targets.gateway", "--config", str(conf)], cpu=cpu
    )
    url = f"http://{gateway.ready['address']}{PATH}"
    wait_http(url, "the gateway to route", gateway)
    return Contender("gateway", url, [gateway])


def run(duration_s: float = 10.0, connections: int = 50, rounds: int = ROUNDS) -> dict[str, Any]:
    """Run the comparison; the result object."""
    runs, plan = against_haproxy(
        start_gateway,
        haproxy_config,
        prefix="bench-gw-",
        duration_s=duration_s,
        connections=connections,
        rounds=rounds,
    )
    return report(runs, duration_s=duration_s, connections=connections, plan=plan)


def report(
    runs: list[Run], *, duration_s: float, connections: int, plan: CpuPlan
) -> dict[str, Any]:
    ours, theirs = summarize(runs, "gateway"), summarize(runs, "haproxy")
    rps_ratio = ratio(ours["rps"], theirs["rps"])
    return {
        "benchmark": "gateway_vs_haproxy",
        "gateway_rps": ours["rps"],
        "haproxy_rps": theirs["rps"],
        "ratio": rps_ratio,
        "gateway_p99_ms": ours["p99_ms"],
        "haproxy_p99_ms": theirs["p99_ms"],
        "gateway_cpu_pct": ours["cpu_pct"],
        "haproxy_cpu_pct": theirs["cpu_pct"],
        "cpu_efficiency_ratio": ratio(ours["req_per_cpu_s"], theirs["req_per_cpu_s"]),
        "gateway_errors": ours["errors"],
        "haproxy_errors": theirs["errors"],
        "rounds": max(r.round for r in runs),
        "duration_s": duration_s,
        "connections": connections,
        "path": PATH,
        "limiter": "token_bucket per client on every route, never refusing",
        **plan.describe(),
        "goal": {"ratio_min": RATIO_GOAL},
        "ok": rps_ratio >= RATIO_GOAL and ours["errors"] == 0,
        "runs": [r.as_dict() for r in runs],
    }
