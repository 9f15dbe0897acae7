"""The gateway, the DNS server and each service's load balancer are parts chaos acts on, like
any group of one: killed, the gateway refuses connections and status says so; restarted, it
comes back on the same address, where its clients look; a paused DNS server answers nothing
until resumed; a restarted load balancer gets its servers back. Adding a second one is
refused by its bounds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import pytest

from chaos.actions import ChaosRequest, apply
from harness.components.dns import Dns
from harness.components.gateway import Gateway
from harness.components.services import Services
from harness.errors import ChaosRefused
from harness.runtime import LabRuntime
from harness.supervisor import Supervisor
from harness.topology import topology_from
from targets.http.client import fetch
from targets.http.upstream import UpstreamError

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

FRONT = topology_from(
    {
        "name": "front",
        "services": {"orders": {"replicas": 1, "service_time": {"mean_ms": 1}}},
        "gateway": {"routes": [{"name": "orders", "path": "/api/orders", "service": "orders"}]},
        "dns": {"zone": "lab", "records": [{"name": "shop", "via": "gateway", "ttl_s": 5}]},
    }
)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LabRuntime]:
    async with Supervisor(tmp_path / "run") as supervisor:
        runtime = LabRuntime(FRONT, supervisor, seed=1)
        await runtime.start()
        await runtime.wait_healthy()
        yield runtime


async def orders(lab: LabRuntime) -> int:
    host, port = lab.part(Gateway).group.instances["gateway"].child.address()  # type: ignore[union-attr]
    return (await fetch(host, port, "GET", "/api/orders", timeout_s=5.0)).status


async def query(lab: LabRuntime, timeout_s: float) -> list[str]:
    host, _, port = str(lab.part(Dns).address).rpartition(":")
    reply = await dns.asyncquery.udp(
        dns.message.make_query("shop.lab.", "A"), host, port=int(port), timeout=timeout_s
    )
    return [r.to_text() for r in reply.answer[0]]


async def states(lab: LabRuntime) -> dict[str, str]:
    pools = (await lab.status())["pools"]
    return {name: pools[name]["instances"][0]["state"] for name in ("gateway", "dns")}


async def test_the_gateway_killed_and_restarted_on_its_address(lab: LabRuntime) -> None:
    before = lab.part(Gateway).url
    assert await orders(lab) == 200
    event = await apply(lab, ChaosRequest("kill", "gateway"))
    assert list(event.instances) == ["gateway"]
    assert (await states(lab))["gateway"] == "killed"
    with pytest.raises(UpstreamError):
        await orders(lab)
    await apply(lab, ChaosRequest("restart", "gateway"))
    assert lab.part(Gateway).url == before
    assert await orders(lab) == 200
    assert (await states(lab))["gateway"] == "running"
    with pytest.raises(ChaosRefused, match="max_replicas"):
        await apply(lab, ChaosRequest("add", "gateway"))


async def test_a_paused_dns_server_answers_nothing_until_resumed(lab: LabRuntime) -> None:
    assert await query(lab, timeout_s=5) == ["127.0.0.1"]
    await apply(lab, ChaosRequest("pause", "dns"))
    assert (await states(lab))["dns"] == "paused"
    with pytest.raises(dns.exception.Timeout):
        await query(lab, timeout_s=1)
    await apply(lab, ChaosRequest("resume", "dns"))
    assert await query(lab, timeout_s=5) == ["127.0.0.1"]


async def test_a_load_balancer_killed_and_restarted_gets_its_servers_back(
    lab: LabRuntime,
) -> None:
    """`orders-lb` is a group of one: killed, the gateway's orders route fails; restarted,
    it is on the same address and, once its health checks pass, routes to the live servers
    again, which the harness registered with it."""
    services = lab.part(Services)
    before = services.labs["orders"].address
    # Scraped as a process on its control listener, never as a group on its data plane
    # (which would forward /metrics to a server).
    lbs = [t for t in lab.scrape_targets() if t.labels["role"] == "lb"]
    assert [(t.labels["service"], t.address) for t in lbs] == [
        ("orders", "{}:{}".format(*services.labs["orders"].control))
    ]
    await apply(lab, ChaosRequest("kill", "orders-lb"))
    assert (await lab.status())["services"]["orders"]["lb"]["state"] == "killed"
    assert await orders(lab) == 502
    await apply(lab, ChaosRequest("restart", "orders-lb"))
    assert services.labs["orders"].address == before
    await lab.wait_healthy()
    assert await orders(lab) == 200
    with pytest.raises(ChaosRefused, match="resize"):
        await apply(lab, ChaosRequest("resize", "orders-lb", params={"slots": 4}))
