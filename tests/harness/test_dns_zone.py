"""The lab's zone from the topology's dns records (harness/components/dns.py), validated."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from harness.components.dns import Dns, DnsSpec, zone_file
from harness.topology import topology_from
from targets.dns.core import Rcode, Zone

pytestmark = pytest.mark.core

SERVERS = {"direct": [("direct-1", ("127.10.0.1", 7000)), ("direct-2", ("127.10.0.2", 7000))]}
LBS = {"direct": ("127.0.0.1", 6000), "balanced": ("127.0.0.1", 6001)}


def zone(*records: dict[str, Any]) -> Zone:
    spec = DnsSpec.model_validate({"zone": "lab", "records": list(records)})
    return Zone.from_json(zone_file(spec, LBS, SERVERS), rng=random.Random(0))


def test_a_load_balancer_record_answers_its_address() -> None:
    """via load_balancer: one A record, the load balancer's address, with the TTL."""
    answer = zone({"name": "shop", "service": "balanced", "ttl_s": 5}).resolve("shop.lab.", "A")
    assert (answer.rcode, answer.records, answer.ttl) == (Rcode.NOERROR, ("127.0.0.1",), 5)


def test_simple_server_records_list_every_server() -> None:
    """via servers, simple: DNS round robin over every server's own address."""
    z = zone({"name": "rr", "service": "direct", "via": "servers"})
    assert set(z.resolve("rr.lab.", "A").records) == {"127.10.0.1", "127.10.0.2"}


def test_failover_answers_the_secondary_once_the_primary_fails_its_checks() -> None:
    """via servers, failover: direct-1 while healthy; direct-2 after 3 failed probes."""
    z = zone({"name": "d", "service": "direct", "via": "servers", "policy": "failover"})
    assert z.resolve("d.lab.", "A").records == ("127.10.0.1",)
    for _ in range(3):
        z.observe("d-direct-1", ok=False)
    assert z.resolve("d.lab.", "A").records == ("127.10.0.2",)


def test_weighted_server_records_have_health_checks_on_each_server() -> None:
    """via servers, weighted: one record per server, each checked on its own address."""
    z = zone({"name": "w", "service": "direct", "via": "servers", "policy": "weighted"})
    answers = {z.resolve("w.lab.", "A").records for _ in range(50)}
    assert answers == {("127.10.0.1",), ("127.10.0.2",)}
    assert set(z.health) == {"w-direct-1", "w-direct-2"}


@pytest.mark.parametrize(
    ("dns", "message"),
    [
        (
            {"records": [{"name": "x", "service": "nope"}]},
            "dns.records.0.service: no service 'nope' (services: direct)",
        ),
        (
            {"records": [{"name": "x", "service": "direct", "policy": "failover"}]},
            "via load_balancer is one address",
        ),
        (
            {
                "records": [
                    {"name": "x", "service": "direct"},
                    {"name": "x", "service": "direct"},
                ]
            },
            "dns.records.1.name: 'x' is defined twice",
        ),
        (
            {
                "records": [
                    {"name": "x", "service": "direct", "via": "servers", "policy": "failover"}
                ]
            },
            "failover needs a primary and a secondary server (direct has 1 replica(s))",
        ),
    ],
)
def test_bad_records_are_refused_naming_them(dns: dict[str, Any], message: str) -> None:
    """Records naming no service, two addresses for one load balancer, duplicates, a
    failover without a secondary: refused before anything starts."""
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        topology_from({"name": "t", "services": {"direct": {"replicas": 1}}, "dns": dns})


def test_direct_services_are_those_answered_by_server() -> None:
    """Only services a record answers server by server get addresses of their own."""
    topology = topology_from(
        {
            "name": "t",
            "services": {"direct": {"replicas": 2}, "balanced": {}},
            "dns": {
                "records": [
                    {"name": "a", "service": "direct", "via": "servers"},
                    {"name": "b", "service": "balanced"},
                ]
            },
        }
    )
    assert Dns.own_addresses(topology) == {"direct"}
