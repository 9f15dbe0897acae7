"""Latency routing in the DNS core: the answer depends on the querying client's region (its
source address), health checks withdraw an edge and its clients get the next nearest."""

from __future__ import annotations

import random
from typing import Any

import pytest

from targets.dns.core import Rcode, Zone, ZoneError
from targets.http.netem import source

pytestmark = pytest.mark.core

REGIONS = {
    "regions": ["us", "eu", "ap"],
    "rtt_ms": {"us": {"us": 4, "eu": 80, "ap": 200}, "eu": {"eu": 4, "ap": 120}, "ap": {"ap": 4}},
}
US, EU, AP = source(0), source(1), source(2)


def zone_json(**changes: Any) -> dict[str, Any]:
    record = {"name": "cdn.lab.", "ttl": 5}
    data: dict[str, Any] = {
        "zone": "lab.",
        "regions": REGIONS,
        "records": [
            {**record, "set_id": "edge-us", "region": "us", "values": ["127.200.0.1"],
             "health_check": "edge-us"},
            {**record, "set_id": "edge-eu", "region": "eu", "values": ["127.200.0.2"],
             "health_check": "edge-eu"},
        ],
        "health_checks": [
            {"id": "edge-us", "port": 9001, "failure_threshold": 2},
            {"id": "edge-eu", "port": 9002, "failure_threshold": 2},
        ],
    }  # fmt: skip
    return data | changes


def zone(**changes: Any) -> Zone:
    return Zone.from_json(zone_json(**changes), rng=random.Random(1))


def test_each_region_gets_its_nearest_edge():
    z = zone()
    assert z.resolve("cdn.lab", "A", US).records == ("127.200.0.1",)
    assert z.resolve("cdn.lab", "A", EU).records == ("127.200.0.2",)
    answer = z.resolve("CDN.lab.", "A", AP)  # ap has no edge: eu is 120 ms away, us 200
    assert (answer.rcode, answer.set_id, answer.region, answer.ttl) == (
        Rcode.NOERROR,
        "edge-eu",
        "ap",
        5,
    )


def test_a_client_in_no_region_is_answered_as_the_first_region():
    z = zone()
    assert z.resolve("cdn.lab", "A", "127.0.0.1").set_id == "edge-us"
    assert z.resolve("cdn.lab", "A", None).region == "us"


def test_an_unhealthy_edge_is_withdrawn_and_its_clients_get_the_next_nearest():
    z = zone()
    z.observe("edge-eu", False)
    assert z.resolve("cdn.lab", "A", EU).set_id == "edge-eu"  # one failure of two
    z.observe("edge-eu", False)
    assert z.resolve("cdn.lab", "A", EU).set_id == "edge-us"
    assert z.resolve("cdn.lab", "A", AP).set_id == "edge-us"
    for _ in range(2):
        z.observe("edge-eu", True)
    assert z.resolve("cdn.lab", "A", EU).set_id == "edge-eu"


def test_every_edge_unhealthy_answers_the_nearest_of_all():
    z = zone()
    for check in ("edge-us", "edge-eu"):
        for _ in range(2):
            z.observe(check, False)
    assert z.resolve("cdn.lab", "A", EU).set_id == "edge-eu"
    assert z.resolve("cdn.lab", "A", US).set_id == "edge-us"


def test_the_zone_round_trips_through_json():
    again = Zone.from_json(zone().to_json(), rng=random.Random(1))
    assert again.resolve("cdn.lab", "A", AP).set_id == "edge-eu"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"regions": None}, "records[0].region: latency records need the zone's regions"),
        ({"region": "mars"}, "records[0].region: must be one of ('us', 'eu', 'ap')"),
        ({"weight": 1}, "records[0]: must be one of weight, failover and region"),
        ({"set_id": None}, "records[0].set_id: must be set on a routed record"),
    ],
)
def test_bad_latency_records_are_refused_naming_the_field(change: dict[str, Any], message: str):
    data = zone_json()
    if "regions" in change:
        del data["regions"]
    else:
        data["records"][0] = {
            k: v for k, v in (data["records"][0] | change).items() if v is not None
        }
    with pytest.raises(ZoneError) as error:
        Zone.from_json(data, rng=random.Random(1))
    assert str(error.value).startswith(message)


def test_a_bad_regions_matrix_is_refused_naming_the_field():
    regions = {"regions": ["us", "eu"], "rtt_ms": {"us": {"us": 4, "eu": 80}}}
    with pytest.raises(ZoneError, match=r"regions\.rtt_ms: the pair eu - eu is missing"):
        Zone.from_json(zone_json(regions=regions), rng=random.Random(1))
