"""Tests for the sans-I/O DNS core (targets.dns.core): routing policies, health, validation."""

from __future__ import annotations

import copy
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.dns.core import Answer, Rcode, Zone, ZoneError, record_from_json

pytestmark = pytest.mark.core

CHECKS = [
    {"id": "blue", "port": 9001, "failure_threshold": 3},
    {"id": "green", "port": 9002, "failure_threshold": 3},
    {"id": "gw", "port": 9003, "failure_threshold": 3, "success_threshold": 2},
    {"id": "backup", "port": 9004, "failure_threshold": 1},
]


def zone_json() -> dict[str, Any]:
    return {
        "zone": "lab.",
        "records": [
            {"name": "shop.lab.", "ttl": 5, "values": ["127.0.0.1", "127.0.0.2"]},
            {"name": "api.lab.", "ttl": 7, "set_id": "blue", "weight": 3,
             "values": ["127.0.0.11"], "health_check": "blue"},
            {"name": "api.lab.", "ttl": 7, "set_id": "green", "weight": 1,
             "values": ["127.0.0.12"], "health_check": "green"},
            {"name": "www.lab.", "ttl": 9, "set_id": "main", "failover": "PRIMARY",
             "values": ["127.0.0.21"], "health_check": "gw"},
            {"name": "www.lab.", "ttl": 9, "set_id": "spare", "failover": "SECONDARY",
             "values": ["127.0.0.22"], "health_check": "backup"},
            {"name": "deep.a.b.lab.", "values": ["127.0.0.31"]},
        ],
        "health_checks": copy.deepcopy(CHECKS),
    }  # fmt: skip


def make_zone(data: dict[str, Any] | None = None, seed: int = 0) -> Zone:
    return Zone.from_json(data if data is not None else zone_json(), rng=random.Random(seed))


def check(zone: Zone, qname: str, expected: Answer, qtype: str = "A") -> None:
    assert zone.resolve(qname, qtype) == expected


def fail(zone: Zone, check_id: str, times: int) -> None:
    for _ in range(times):
        zone.observe(check_id, False)


def tally(zone: Zone, name: str, n: int) -> Counter[str | None]:
    return Counter(zone.resolve(name, "A").set_id for _ in range(n))


def weighted_zone(weights: list[int], healthy: list[bool] | None = None, seed: int = 0) -> Zone:
    """api.lab. with one weighted record per weight, r0..rN, each with its own check."""
    records = [
        {"name": "api.lab.", "set_id": f"r{i}", "weight": w, "values": [f"127.0.1.{i}"],
         "health_check": f"c{i}"}
        for i, w in enumerate(weights)
    ]  # fmt: skip
    checks = [
        {"id": f"c{i}", "port": 9000 + i, "failure_threshold": 1} for i in range(len(weights))
    ]
    zone = make_zone({"zone": "lab.", "records": records, "health_checks": checks}, seed)
    for i, up in enumerate(healthy or []):
        zone.observe(f"c{i}", up)
    return zone


def zone_error(data: dict[str, Any]) -> str:
    with pytest.raises(ZoneError) as info:
        make_zone(data)
    return str(info.value)


# --- answers -------------------------------------------------------------------------------------


def test_simple_record_answers_every_value_with_its_ttl():
    """A simple record answers all of its values, with the record's TTL, in any letter case."""
    zone = make_zone()
    expected = Answer(Rcode.NOERROR, ("127.0.0.1", "127.0.0.2"), 5)
    check(zone, "shop.lab.", expected)
    check(zone, "SHOP.Lab.", expected)
    check(zone, "shop.lab", expected)


def test_nxdomain_nodata_and_refused():
    """Unknown name in the zone: NXDOMAIN; other type or an empty non-terminal: NODATA;
    outside the zone: REFUSED."""
    zone = make_zone()
    check(zone, "nope.lab.", Answer(Rcode.NXDOMAIN))
    check(zone, "x.shop.lab.", Answer(Rcode.NXDOMAIN))
    check(zone, "shop.lab.", Answer(Rcode.NOERROR), qtype="AAAA")
    check(zone, "shop.lab.", Answer(Rcode.NOERROR), qtype="MX")
    check(zone, "a.b.lab.", Answer(Rcode.NOERROR))  # exists: it holds deep.a.b.lab.
    check(zone, "b.lab.", Answer(Rcode.NOERROR))
    check(zone, "lab.", Answer(Rcode.NOERROR))  # the apex
    check(zone, "example.com.", Answer(Rcode.REFUSED))
    check(zone, "slab.", Answer(Rcode.REFUSED))
    check(zone, ".", Answer(Rcode.REFUSED))
    assert not zone.resolve("example.com.", "A").authoritative
    assert zone.resolve("nope.lab.", "A").authoritative


def test_any_query_answers_the_a_records():
    """ANY is answered with the A records (a minimal answer, as RFC 8482 allows)."""
    check(make_zone(), "shop.lab.", Answer(Rcode.NOERROR, ("127.0.0.1", "127.0.0.2"), 5), "ANY")


def test_failover_answers_primary_while_healthy():
    """Both healthy: the primary, every time."""
    zone = make_zone()
    assert tally(zone, "www.lab.", 50) == {"main": 50}
    check(zone, "www.lab.", Answer(Rcode.NOERROR, ("127.0.0.21",), 9, "main"))


def test_failover_answers_secondary_when_primary_unhealthy():
    """Primary unhealthy, secondary healthy: the secondary."""
    zone = make_zone()
    fail(zone, "gw", 3)
    check(zone, "www.lab.", Answer(Rcode.NOERROR, ("127.0.0.22",), 9, "spare"))


def test_failover_answers_primary_when_both_unhealthy():
    """Both unhealthy: the primary, as Route 53 does."""
    zone = make_zone()
    fail(zone, "gw", 3)
    fail(zone, "backup", 1)
    check(zone, "www.lab.", Answer(Rcode.NOERROR, ("127.0.0.21",), 9, "main"))


def test_failover_secondary_without_health_check_is_always_used():
    """A secondary with no health check is healthy: it is answered once the primary fails."""
    data = zone_json()
    del data["records"][4]["health_check"]
    zone = make_zone(data)
    fail(zone, "gw", 3)
    assert zone.resolve("www.lab.", "A").set_id == "spare"


def test_failover_returns_to_primary_after_success_threshold():
    """A recovered primary is answered again after success_threshold passing checks."""
    zone = make_zone()
    fail(zone, "gw", 3)
    zone.observe("gw", True)
    assert zone.resolve("www.lab.", "A").set_id == "spare"
    zone.observe("gw", True)
    assert zone.resolve("www.lab.", "A").set_id == "main"


@settings(max_examples=30, deadline=None)
@given(
    weights=st.lists(st.integers(0, 255), min_size=1, max_size=5).filter(any),
    seed=st.integers(0, 2**32),
)
def test_weighted_answers_follow_the_weights(weights, seed):
    """Over many queries each record's share is weight / sum; weight 0 is never answered."""
    zone = weighted_zone(weights, seed=seed)
    n = 4000
    counts = tally(zone, "api.lab.", n)
    total = sum(weights)
    for i, w in enumerate(weights):
        share = counts[f"r{i}"] / n
        if w == 0:
            assert share == 0
        else:
            assert abs(share - w / total) < 0.04, (weights, counts)


def test_weighted_all_zero_weights_are_equally_likely():
    """All weights 0: every record is answered, about equally often."""
    counts = tally(weighted_zone([0, 0, 0]), "api.lab.", 3000)
    assert set(counts) == {"r0", "r1", "r2"}
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in counts.values())


def test_weighted_seeded_rng_gives_the_same_sequence():
    """The same seed gives the same sequence of answers."""
    a, b = weighted_zone([1, 2, 3], seed=7), weighted_zone([1, 2, 3], seed=7)
    assert [a.resolve("api.lab.", "A") for _ in range(50)] == [
        b.resolve("api.lab.", "A") for _ in range(50)
    ]


def test_weighted_skips_unhealthy_records():
    """An unhealthy record gets nothing; the others share by their weights."""
    counts = tally(weighted_zone([5, 1, 1], healthy=[False, True, True]), "api.lab.", 2000)
    assert set(counts) == {"r1", "r2"}


def test_weighted_all_unhealthy_counts_all_as_healthy():
    """Every record unhealthy: all are considered healthy, and weights apply again."""
    counts = tally(weighted_zone([3, 1], healthy=[False, False]), "api.lab.", 4000)
    assert abs(counts["r0"] / 4000 - 0.75) < 0.04


def test_weighted_zero_weight_is_the_fallback_when_nonzero_are_unhealthy():
    """Zero-weight records answer only when every non-zero record is unhealthy, and an
    unhealthy zero-weight record is still skipped."""
    zone = weighted_zone([4, 0, 0], healthy=[True, True, True])
    assert tally(zone, "api.lab.", 200) == {"r0": 200}
    zone = weighted_zone([4, 0, 0], healthy=[False, True, False])
    assert tally(zone, "api.lab.", 200) == {"r1": 200}
    zone = weighted_zone([4, 0, 0], healthy=[False, False, False])
    assert tally(zone, "api.lab.", 200) == {"r0": 200}  # all unhealthy: weights decide


def test_record_without_health_check_is_always_healthy():
    """A weighted record with no check keeps its share when the others' checks fail."""
    data = zone_json()
    del data["records"][2]["health_check"]
    zone = make_zone(data)
    fail(zone, "blue", 3)
    assert tally(zone, "api.lab.", 100) == {"green": 100}


# --- health checks -------------------------------------------------------------------------------


def test_new_check_is_healthy_and_flips_after_failure_threshold():
    """A new check is healthy; it turns unhealthy on the 3rd consecutive failure, not before."""
    zone = make_zone()
    assert zone.healthy("blue")
    assert [zone.observe("blue", False) for _ in range(3)] == [False, False, True]
    assert not zone.healthy("blue")
    assert zone.observe("blue", False) is False  # already unhealthy: no change


def test_a_success_resets_the_failure_count():
    """Failures must be consecutive: a pass in between starts the count again."""
    zone = make_zone()
    for ok in (False, False, True, False, False):
        assert zone.observe("blue", ok) is False
    assert zone.healthy("blue")


def test_recovery_takes_success_threshold_consecutive_passes():
    """Unhealthy becomes healthy after success_threshold passes (default: failure_threshold)."""
    zone = make_zone()
    fail(zone, "blue", 3)
    assert [zone.observe("blue", ok) for ok in (True, True, False, True, True)] == [False] * 5
    assert zone.observe("blue", True) is True
    fail(zone, "gw", 3)
    assert [zone.observe("gw", True) for _ in range(2)] == [False, True]  # success_threshold 2


def test_unknown_check_id_is_a_key_error():
    """Observing an unknown check is a programming error."""
    with pytest.raises(KeyError):
        make_zone().observe("nope", True)


# --- validation ----------------------------------------------------------------------------------


def _set(path: str, value: object):
    def edit(data: dict[str, Any]) -> None:
        section, index, key = path.split(".")
        if value is _DELETE:
            del data[section][int(index)][key]
        else:
            data[section][int(index)][key] = value

    return edit


_DELETE = object()

VALIDATION = [
    (_set("records.1.weight", 300), "records[1].weight: must be 0..255 (got 300)"),
    (_set("records.1.weight", -1), "records[1].weight: must be 0..255 (got -1)"),
    (_set("records.1.weight", "3"), "records[1].weight: must be 0..255 (got '3')"),
    (_set("records.0.ttl", 86401), "records[0].ttl: must be 0..86400 (got 86401)"),
    (_set("records.0.ttl", 1.5), "records[0].ttl: must be 0..86400 (got 1.5)"),
    (_set("records.0.values", ["127.0.0.256"]), "records[0].values[0]: must be an IPv4 address"),
    (_set("records.0.values", ["::1"]), "records[0].values[0]: must be an IPv4 address"),
    (_set("records.0.values", []), "records[0].values: must be a list of 1..16 IPv4"),
    (_set("records.0.values", "127.0.0.1"), "records[0].values: must be a list"),
    (_set("records.0.values", ["127.0.0.1"] * 2), "records[0].values: must be distinct"),
    (_set("records.0.name", "shop.example.com."), "records[0].name: must be a name inside"),
    (_set("records.0.name", "shop.lab"), "records[0].name: must be a fully qualified name"),
    (_set("records.0.name", "sh op.lab."), "records[0].name: must be a domain name of labels"),
    (_set("records.0.type", "AAAA"), "records[0].type: must be A (got 'AAAA')"),
    (_set("records.0.colour", "red"), "records[0].colour: unknown field"),
    (_set("records.0.values", _DELETE), "records[0].values: required"),
    (_set("records.0.set_id", "x"), "records[0].set_id: must be absent on a simple record"),
    (_set("records.2.set_id", "blue"), "records[2].set_id: 'blue' is already used by records[1]"),
    (_set("records.2.set_id", _DELETE), "records[2].set_id: must be set on a routed record"),
    (_set("records.2.ttl", 8), "records[2].ttl: must be 7, as in api.lab. (got 8)"),
    (_set("records.2.health_check", "nope"), "records[2].health_check: must be the id of a"),
    (_set("records.2.failover", "PRIMARY"), "records[2]: must be one of weight, failover and"),
    (_set("records.4.failover", "PRIMARY"), "records[4].failover: www.lab. already has a PRIMARY"),
    (_set("records.4.failover", "TERTIARY"), "records[4].failover: must be PRIMARY or SECONDARY"),
    (_set("records.3.health_check", _DELETE), "records[3].health_check: must be set on a PRIMARY"),
    (_set("records.5.name", "www.lab."), "records[5]: www.lab. is a failover record set"),
    (_set("records.5.name", "shop.lab."), "records[5].name: shop.lab. already has a simple"),
    (_set("health_checks.1.id", "blue"), "health_checks[1].id: 'blue' is defined twice"),
    (_set("records.0.values", ["10.0.0.1"]), "records[0].values[0]: must be a loopback address"),
    (_set("health_checks.0.host", "10.0.0.1"), "health_checks[0].host: must be a loopback"),
    (_set("health_checks.0.port", 0), "health_checks[0].port: must be 1..65535 (got 0)"),
    (_set("health_checks.0.path", "health"), "health_checks[0].path: must be a path starting"),
    (_set("health_checks.0.failure_threshold", 11), "health_checks[0].failure_threshold: must"),
    (_set("health_checks.0.success_threshold", 0), "health_checks[0].success_threshold: must"),
    (_set("health_checks.0.timeout_s", 2), "health_checks[0].timeout_s: must be > 0 and at most"),
    (_set("health_checks.0.interval_s", 0), "health_checks[0].interval_s: must be > 0"),
    (_set("health_checks.0.port", _DELETE), "health_checks[0].port: required"),
]


@pytest.mark.parametrize(("edit", "message"), VALIDATION)
def test_validation_errors_name_the_field(edit, message):
    """Each invalid field is refused with an error that starts with its path."""
    data = zone_json()
    edit(data)
    assert zone_error(data).startswith(message)


def test_failover_needs_both_roles():
    """A failover set with only a primary is refused."""
    data = zone_json()
    del data["records"][4]
    assert zone_error(data).startswith(
        "records[3].failover: www.lab. needs one PRIMARY and one SECONDARY record"
    )


def test_zone_level_errors():
    """The zone's own fields are checked too: its name, unknown keys, list shapes."""
    assert zone_error({"zone": "lab", "records": []}).startswith("zone: must be a fully")
    assert zone_error({"zone": "lab.", "records": {}}).startswith("records: must be a list")
    assert zone_error({"zone": "lab."}).startswith("records: required")
    assert zone_error({"zone": "lab.", "records": [], "x": 1}).startswith("x: unknown field")


def test_valid_zone_round_trips_through_json():
    """to_json gives a zone file that loads into the same zone."""
    zone = make_zone()
    again = make_zone(zone.to_json())
    assert again.to_json() == zone.to_json()
    assert again.sets == zone.sets


def test_names_are_stored_lowercase():
    """Record names in any case are stored and answered in lowercase."""
    data = zone_json()
    data["records"][0]["name"] = "SHOP.Lab."
    data["zone"] = "LAB."
    zone = make_zone(data)
    assert "shop.lab." in zone.sets
    assert zone.origin == "lab."


# --- replace -------------------------------------------------------------------------------------


def test_replace_changes_the_answer():
    """A replaced record set is answered from then on; other names are untouched."""
    zone = make_zone()
    zone.replace(
        "shop.lab.", [record_from_json({"values": ["127.0.0.9"], "ttl": 1}, "r", "shop.lab.")]
    )
    check(zone, "shop.lab.", Answer(Rcode.NOERROR, ("127.0.0.9",), 1))
    check(zone, "www.lab.", Answer(Rcode.NOERROR, ("127.0.0.21",), 9, "main"))


def test_replace_can_change_the_policy_and_add_and_delete_names():
    """A name can become weighted, a new name can be added, and an empty set deletes one."""
    zone = make_zone()
    new = [
        record_from_json({"set_id": "a", "weight": 0, "values": ["127.0.0.5"]}, "r", "shop.lab."),
        record_from_json({"set_id": "b", "weight": 9, "values": ["127.0.0.6"]}, "r", "shop.lab."),
    ]
    zone.replace("shop.lab.", new)
    assert tally(zone, "shop.lab.", 20) == {"b": 20}
    zone.replace("NEW.lab.", [record_from_json({"values": ["127.0.0.7"]}, "r", "new.lab.")])
    assert zone.resolve("new.lab.", "A").records == ("127.0.0.7",)
    zone.replace("deep.a.b.lab.", [])
    check(zone, "deep.a.b.lab.", Answer(Rcode.NXDOMAIN))
    check(zone, "a.b.lab.", Answer(Rcode.NXDOMAIN))


def test_replace_errors_name_the_field_and_change_nothing():
    """A bad record set is refused naming the field, and the zone is exactly as before."""
    zone = make_zone()
    before = zone.to_json()
    bad = [
        record_from_json({"set_id": "a", "weight": 1, "values": ["127.0.0.5"]}, "r", "api.lab."),
        record_from_json({"set_id": "b", "weight": 300, "values": ["127.0.0.6"]}, "r", "api.lab."),
    ]
    with pytest.raises(ZoneError, match=r"^records\[1\]\.weight: must be 0\.\.255 \(got 300\)"):
        zone.replace("api.lab.", bad)
    with pytest.raises(ZoneError, match=r"^records\[0\]\.name: must be api\.lab\."):
        zone.replace("api.lab.", [record_from_json({"values": ["127.0.0.5"]}, "r", "x.lab.")])
    with pytest.raises(ZoneError, match=r"^name: must be a name inside the zone"):
        zone.replace("api.example.", [])
    assert zone.to_json() == before


RECORD = st.fixed_dictionaries(
    {"values": st.lists(st.sampled_from(["127.0.0.1", "127.0.0.2", "127.0.0.300"]), max_size=3)},
    optional={
        "ttl": st.integers(-1, 3),
        "set_id": st.sampled_from(["a", "b", "a b"]),
        "weight": st.integers(-1, 256),
        "failover": st.sampled_from(["PRIMARY", "SECONDARY", "x"]),
        "health_check": st.sampled_from(["blue", "gw", "nope"]),
        "name": st.sampled_from(["api.lab.", "API.lab.", "other.lab."]),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(RECORD, max_size=4))
def test_replace_never_half_applies(items):
    """Whatever the record set, replace either applies it whole or changes nothing."""
    zone = make_zone()
    before = zone.to_json()
    try:
        records = [
            record_from_json(item, f"records[{i}]", "api.lab.") for i, item in enumerate(items)
        ]
        zone.replace("api.lab.", records)
    except ZoneError:
        assert zone.to_json() == before
    else:
        after = zone.to_json()
        kept = [r for r in after["records"] if r["name"] != "api.lab."]
        assert kept == [r for r in before["records"] if r["name"] != "api.lab."]
        assert len(after["records"]) - len(kept) == len(items)


def test_allow_remote_accepts_other_addresses():
    """With allow_remote, record values and checked hosts may be outside 127.0.0.0/8."""
    data = zone_json()
    data["records"][0]["values"] = ["10.0.0.1"]
    data["health_checks"][0]["host"] = "192.0.2.1"
    zone = Zone.from_json(data, rng=random.Random(0), allow_remote=True)
    assert zone.resolve("shop.lab.", "A").records == ("10.0.0.1",)
    zone.replace("x.lab.", [record_from_json({"values": ["10.0.0.2"]}, "r", "x.lab.")])
    assert zone.resolve("x.lab.", "A").records == ("10.0.0.2",)
    with pytest.raises(ZoneError, match=r"^health_checks\[0\]\.host: must be a loopback"):
        Zone.from_json(data, rng=random.Random(0))
