"""The DNS control API in-process (httpx2 over ASGI): records, replacement, health, metrics."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx2
import pytest
from prometheus_client import CollectorRegistry

from targets.dns.control import control_app
from targets.dns.core import Zone
from targets.dns.server import DnsServer

pytestmark = pytest.mark.inprocess

ZONE = {
    "zone": "lab.",
    "records": [
        {"name": "shop.lab.", "ttl": 5, "values": ["127.0.0.1"]},
        {"name": "api.lab.", "set_id": "blue", "weight": 1, "values": ["127.0.0.11"]},
        {"name": "api.lab.", "set_id": "green", "weight": 0, "values": ["127.0.0.12"]},
    ],
    "health_checks": [{"id": "gw", "port": 9}],
}


@pytest.fixture
async def control() -> AsyncIterator[tuple[DnsServer, httpx2.AsyncClient]]:
    server = DnsServer(Zone.from_json(ZONE, rng=random.Random(0)), CollectorRegistry())
    transport = httpx2.ASGITransport(app=control_app(server, token="s3cret"))
    async with httpx2.AsyncClient(
        transport=transport, base_url="http://dns", headers={"authorization": "Bearer s3cret"}
    ) as client:
        yield server, client


async def test_routes_need_the_token_but_health_and_metrics(control):
    """Without the bearer token records and checks answer 401; /health and /metrics do not."""
    _, client = control
    no_token = {"authorization": "Bearer nope"}
    assert (await client.get("/records", headers=no_token)).status_code == 401
    assert (await client.put("/records/shop.lab.", json={}, headers=no_token)).status_code == 401
    assert (await client.get("/health-checks", headers=no_token)).status_code == 401
    assert (await client.get("/health", headers=no_token)).status_code == 200
    assert (await client.get("/metrics", headers=no_token)).status_code == 200


async def test_get_records_is_the_zone_file(control):
    """GET /records returns the zone in zone-file form, which loads into the same zone."""
    server, client = control
    body = (await client.get("/records")).json()
    assert body["zone"] == "lab."
    assert [r["name"] for r in body["records"]] == ["shop.lab.", "api.lab.", "api.lab."]
    assert Zone.from_json(body, rng=random.Random(0)).sets == server.zone.sets


async def test_put_replaces_the_record_set(control):
    """PUT /records/{name} makes the body the name's record set; the name may lack its dot."""
    server, client = control
    response = await client.put(
        "/records/SHOP.lab", json={"records": [{"values": ["127.0.0.9"], "ttl": 1}]}
    )
    assert response.status_code == 200
    assert response.json() == {
        "name": "shop.lab.",
        "records": [{"name": "shop.lab.", "type": "A", "ttl": 1, "values": ["127.0.0.9"]}],
    }
    assert server.zone.resolve("shop.lab.", "A").records == ("127.0.0.9",)


async def test_put_adds_and_deletes_names_and_zeroes_their_series(control):
    """A new name gets its metric series at 0; an empty record list deletes the name."""
    server, client = control
    new = {"records": [{"set_id": "a", "weight": 1, "values": ["127.0.0.5"]}]}
    assert (await client.put("/records/new.lab.", json=new)).status_code == 200
    value = server.registry.get_sample_value(
        "dns_answers_total", {"name": "new.lab.", "set_id": "a"}
    )
    assert value == 0
    assert (await client.put("/records/new.lab.", json={"records": []})).status_code == 200
    assert server.zone.resolve("new.lab.", "A").rcode.name == "NXDOMAIN"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"records": [{"values": ["127.0.0.9"], "ttl": 99999}]},
            "records[0].ttl: must be 0..86400",
        ),
        (
            {
                "records": [
                    {"set_id": "a", "weight": 1, "values": ["127.0.0.4"]},
                    {"set_id": "a", "weight": 2, "values": ["127.0.0.5"]},
                ]
            },
            "records[1].set_id: 'a' is already used",
        ),
        (
            {"records": [{"values": ["127.0.0.9"], "name": "api.lab."}]},
            "records[0].name: must be shop.lab.",
        ),
        (
            {"records": [{"values": ["127.0.0.9"], "health": "x"}]},
            "records[0].health: unknown field",
        ),
        ({"records": {}}, "records: must be a list"),
        ({"record": []}, "body: must be an object"),
        ([], "body: must be an object"),
    ],
)
async def test_put_bad_input_is_400_naming_the_field_and_changes_nothing(control, body, message):
    """A bad record set answers 400 with the field's path; the zone is unchanged."""
    server, client = control
    before = server.zone.to_json()
    response = await client.put("/records/shop.lab.", json=body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)
    assert server.zone.to_json() == before


async def test_put_outside_the_zone_and_bad_json_are_400(control):
    """A name outside the zone, or a body that is not JSON, is refused with 400."""
    _, client = control
    response = await client.put("/records/shop.example.", json={"records": []})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("name: must be a name inside the zone lab.")
    response = await client.put("/records/shop.lab.", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("body: not JSON")


async def test_health_checks_show_status(control):
    """GET /health-checks lists each check's settings and current status."""
    server, client = control
    for _ in range(3):
        server.zone.observe("gw", False)
    [check] = (await client.get("/health-checks")).json()
    assert check["id"] == "gw"
    assert check["healthy"] is False
    assert check["fail_streak"] == 3
    assert check["success_threshold"] == 3


async def test_metrics_lists_the_dns_families(control):
    """/metrics shows the DNS metric families."""
    _, client = control
    text = (await client.get("/metrics")).text
    for name in ("dns_queries_total", "dns_answers_total", "dns_health_check_healthy"):
        assert name in text
