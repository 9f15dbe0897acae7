"""CDN edges as a lab component, on real processes: an edge in front of the gateway and the
shop's servers, scraped at /_edge/metrics, in status, and broken by chaos (invalidate, kill,
restart: a restarted edge is cold)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from harness.components.edges import Edges
from harness.components.services import Services
from harness.control import Controller, control_app
from harness.runtime import LabRuntime
from harness.supervisor import Supervisor
from harness.topology import topology_from
from targets.http.client import Reply, fetch

pytestmark = pytest.mark.e2e

CDN = topology_from(
    {
        "name": "small-cdn",
        "services": {"orders": {"replicas": 1, "min_replicas": 0, "max_replicas": 2}},
        "gateway": {
            "routes": [
                {"name": "catalogue", "path": "/api/catalogue", "service": "orders"},
                {"name": "account", "path": "/api/account", "service": "orders"},
            ]
        },
        "edges": {"edge-x": {"origin": "gateway", "max_mb": 1}},
    }
)


class Lab:
    def __init__(self, client: httpx2.AsyncClient, lab: LabRuntime) -> None:
        self.client = client
        self.lab = lab

    async def chaos(self, **body: Any) -> httpx2.Response:
        return await self.client.post("/chaos", json=body)

    async def get(self, path: str) -> Reply:
        url = self.lab.part(Edges).url("edge-x")
        host, port = url.removeprefix("http://").split(":")
        return await fetch(host, int(port), "GET", path, timeout_s=10.0)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with Supervisor(tmp_path / "run") as supervisor:
        runtime = LabRuntime(CDN, supervisor, seed=1)
        await runtime.start()
        await runtime.wait_healthy()
        transport = httpx2.ASGITransport(app=control_app(Controller(runtime)))
        headers = {"authorization": f"Bearer {runtime.token}"}
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://lab", headers=headers
        ) as client:
            yield Lab(client, runtime)


def x_cache(reply: Reply) -> str:
    return (reply.header(b"x-cache") or b"").decode()


async def test_the_edge_caches_the_shop_and_chaos_invalidates_and_restarts_it(lab: Lab) -> None:
    """Through the edge the catalogue is a Miss, then a Hit; `invalidate` empties the cache;
    `kill` then `restart` brings the edge back on its port, cold. Status lists it; an
    invalidation of servers is refused, naming what it acts on."""
    assert x_cache(await lab.get("/api/catalogue/1")) == "Miss from edge-x-1"
    assert x_cache(await lab.get("/api/catalogue/1")) == "Hit from edge-x-1"

    done = await lab.chaos(action="invalidate", service="edge-x")
    assert done.status_code == 200, done.text
    assert "1 object(s) removed" in done.json()["event"]["detail"]
    assert x_cache(await lab.get("/api/catalogue/1")) == "Miss from edge-x-1"

    assert (await lab.chaos(action="kill", service="edge-x")).status_code == 200
    assert (await lab.chaos(action="restart", service="edge-x")).status_code == 200
    assert x_cache(await lab.get("/api/catalogue/1")) == "Miss from edge-x-1"  # a cold cache

    status = (await lab.client.get("/status")).json()
    (instance,) = status["edges"]["edge-x"]["instances"]
    assert (instance["name"], instance["state"]) == ("edge-x-1", "running")

    refused = await lab.chaos(action="invalidate", service="orders")
    assert refused.status_code == 409
    detail = "invalidate acts on CDN edges; orders is a service (servers behind a load balancer)"
    assert refused.json()["detail"] == detail

    (target,) = [t for t in lab.lab.scrape_targets() if t.labels.get("role") == "edge"]
    assert (target.path, target.labels["instance"]) == ("/_edge/metrics", "edge-x-1")


async def test_publish_reaches_viewers_through_the_edge_once_invalidated(lab: Lab) -> None:
    """`publish` puts a new version on the servers; the edge answers its cached copy until
    `invalidate`, then the new one. A server booted after the publish serves it as well."""
    assert (await lab.get("/api/catalogue/2")).header(b"x-content-version") == b"1"
    done = await lab.chaos(action="publish", service="orders", all=True, version=3)
    assert done.status_code == 200, done.text
    assert done.json()["event"]["detail"] == "content version 3 published"
    assert (await lab.get("/api/catalogue/2")).header(b"x-content-version") == b"1"  # cached
    await lab.chaos(action="invalidate", service="edge-x")
    assert (await lab.get("/api/catalogue/2")).header(b"x-content-version") == b"3"
    assert (await lab.chaos(action="add", service="orders")).status_code == 200
    group = lab.lab.part(Services).by_name["orders"]
    host, port = group.instances["orders-2"].child.address()
    fresh = await fetch(host, port, "GET", "/catalogue/2")
    assert fresh.header(b"x-content-version") == b"3"
    refused = await lab.chaos(action="publish", service="edge-x", version=4)
    assert refused.status_code == 409


async def test_latency_chaos_on_an_edge_and_its_refusals(lab: Lab) -> None:
    """`latency` on an edge slows every request through it (a floor); `clear` removes it;
    `region` is refused for servers (only edges are in regions) and, in a lab without
    regions, by the edge itself."""
    done = await lab.chaos(action="latency", service="edge-x", latency_ms=300)
    assert done.status_code == 200, done.text
    assert done.json()["event"]["detail"] == "+300 ms per request"
    began = time.perf_counter()
    assert (await lab.get("/api/catalogue/3")).status == 200
    assert time.perf_counter() - began >= 0.3
    assert (await lab.chaos(action="clear", service="edge-x")).status_code == 200

    servers = await lab.chaos(action="latency", service="orders", latency_ms=5, region="eu")
    assert servers.status_code == 409
    detail = "region is for CDN edges only; orders is a service (servers behind a load balancer)"
    assert servers.json()["detail"] == detail
    nowhere = await lab.chaos(action="latency", service="edge-x", latency_ms=5, region="eu")
    assert nowhere.status_code == 409
    assert "this process is in no region" in nowhere.json()["detail"]


SHIELDED = topology_from(
    {
        "name": "shielded-cdn",
        "services": {"orders": {"replicas": 1}},
        "gateway": {
            "routes": [{"name": "catalogue", "path": "/api/catalogue", "service": "orders"}]
        },
        "edges": {
            "shield": {"origin": "gateway"},
            "edge-a": {"origin": "shield"},
            "edge-b": {"origin": "shield"},
        },
    }
)


async def test_an_origin_shield_fetches_once_for_every_edge_behind_it(tmp_path: Path) -> None:
    """Two edges behind a shield: the second edge's miss is the shield's hit, so the origin is
    asked once; Via names both tiers; the shield is no viewer's entry point."""
    async with Supervisor(tmp_path / "run") as supervisor:
        runtime = LabRuntime(SHIELDED, supervisor, seed=1)
        await runtime.start()
        await runtime.wait_healthy()
        cdn = runtime.part(Edges)
        assert set(cdn.entry_urls()) == {"edge-a", "edge-b"}
        assert set(cdn.addresses()) == {"edge-a", "edge-b"}
        replies = {}
        for edge in ("edge-a", "edge-b"):
            host, port = cdn.addresses()[edge]
            replies[edge] = await fetch(host, port, "GET", "/api/catalogue/9", timeout_s=10.0)
        assert x_cache(replies["edge-a"]) == "Miss from edge-a-1"
        assert x_cache(replies["edge-b"]) == "Miss from edge-b-1"
        via = (replies["edge-b"].header(b"via") or b"").decode()
        assert via.endswith("1.1 shield-1 (rushlab), 1.1 edge-b-1 (rushlab)")
        host, port = cdn.url("shield").removeprefix("http://").split(":")
        await fetch(host, int(port), "GET", "/_edge/metrics")  # series are born at 0
        metrics = (await fetch(host, int(port), "GET", "/_edge/metrics")).body.decode()
        samples = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line[:1] != "#")
        fetched = samples['cdn_origin_fetches_total{kind="fetch",outcome="response"}']
        assert float(fetched) == 1  # one fetch from the origin for two edges
        assert float(samples['cdn_requests_total{result="Hit"}']) == 1  # edge-b's


@pytest.mark.core
def test_a_shield_behind_a_shield_is_refused_naming_the_edge() -> None:
    data = {
        "name": "two-tiers",
        "services": {"orders": {"replicas": 1}},
        "edges": {
            "deep": {"origin": "orders"},
            "shield": {"origin": "deep"},
            "edge": {"origin": "shield"},
            "self": {"origin": "self"},
        },
    }
    with pytest.raises(ValueError) as refused:
        topology_from(data)
    message = str(refused.value)
    assert (
        "edges.edge.origin: shield is an edge whose origin is an edge: one shield tier" in message
    )
    assert "edges.self.origin: an edge cannot be its own origin" in message
