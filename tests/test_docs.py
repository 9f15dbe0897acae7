"""Docs move with code: every metric a service exposes is documented in docs/metrics.md."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from targets.lb.balancer import LbConfig, LoadBalancer
from targets.server.app import ServerConfig, ShopServer

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def documented() -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), flags=re.MULTILINE))


def exposed(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        names.add(name)
    return names


def test_every_load_balancer_metric_is_documented() -> None:
    """The load balancer exposes exactly the lb_* metrics docs/metrics.md lists."""
    names = exposed(LoadBalancer(LbConfig()).registry)
    assert names == {n for n in documented() if n.startswith("lb_")}


def test_every_server_metric_is_documented() -> None:
    """The application server exposes exactly the server_* metrics docs/metrics.md lists."""
    names = exposed(ShopServer(ServerConfig()).registry)
    assert names == {n for n in documented() if n.startswith("server_")}
