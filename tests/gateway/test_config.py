"""The gateway's one schema (targets/gateway/config.py): the models, the file, errors by field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from targets.gateway.config import (
    ERROR_TYPE,
    GatewaySpec,
    LimitSpec,
    RouteSpec,
    config_from_json,
    config_to_json,
    gateway_file,
)
from targets.http.router import RouteError
from targets.limiter.core import LimitConfig
from targets.limiter.registry import ALGORITHM_NAMES

pytestmark = pytest.mark.core

SHOP: dict[str, Any] = {  # as harness/topologies/shop-guarded.yaml writes it
    "client_header": "x-client-id",
    "routes": [
        {
            "name": "auth",
            "path": "/api/auth",
            "service": "auth",
            "strip_prefix": True,
            "limits": [{"name": "per-client", "key": "client", "rate": 50, "burst": 20}],
        },
        {"name": "orders", "path": "/api/orders", "service": "orders", "methods": ["GET"]},
        {
            "name": "order",
            "path": "/api/orders/{id}",
            "service": "orders",
            "match": "exact",
            "timeout_s": 2,
            "limits": [{"key": "route", "algorithm": "gcra", "rate": 100, "burst": 10}],
        },
    ],
}
UPSTREAMS = {"auth": ("127.0.0.1", 4001), "orders": ("127.0.0.1", 4002)}


def route(**fields: Any) -> dict[str, Any]:
    return {"name": "a", "path": "/a", "service": "s", **fields}


def spec_errors(data: Any) -> list[tuple[str, str, str]]:
    """(location, type, message) of every error GatewaySpec finds in `data`."""
    with pytest.raises(ValidationError) as info:
        GatewaySpec.model_validate(data)
    return [
        (".".join(map(str, e["loc"])), e["type"], e["msg"])
        for e in info.value.errors(include_url=False)
    ]


def file_error(data: Any) -> str:
    with pytest.raises(RouteError) as info:
        config_from_json(data)
    return str(info.value)


# --- the models ----------------------------------------------------------------------------------


def test_a_shipped_like_gateway_validates_with_its_defaults():
    """Routes, limits and defaults as a topology gives them: the spec holds them typed."""
    spec = GatewaySpec.model_validate(SHOP)
    assert (spec.name, spec.client_header) == ("gateway", "x-client-id")
    auth, orders, order = spec.routes
    assert (orders.match, orders.timeout_s, orders.limits, orders.upstream) == (
        "prefix",
        30.0,
        [],
        None,
    )
    assert (order.match, order.timeout_s, order.methods) == ("exact", 2.0, [])
    assert auth.limits[0].config() == LimitConfig(50.0, 20, "token_bucket")
    assert [r.name for r in spec.router().routes] == ["auth", "orders", "order"]


def test_a_limit_is_labelled_by_its_name_else_key_and_algorithm():
    """`label` names a limit in metrics and 429 bodies."""
    assert LimitSpec(name="per-client", rate=1).label == "per-client"
    assert LimitSpec(key="route", algorithm="gcra", rate=1).label == "route-gcra"


def test_the_algorithm_choices_are_the_registry_names():
    """Every registered algorithm is accepted; anything else is refused listing them all."""
    for name in ALGORITHM_NAMES:
        assert LimitSpec(algorithm=name, rate=1).config().algorithm == name
    [(where, _, message)] = spec_errors({"routes": [route(limits=[{"rate": 1, "algorithm": "x"}])]})
    assert where == "routes.0.limits.0.algorithm"
    assert all(repr(name) in message for name in ALGORITHM_NAMES)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"routes": [route(limits=[{"rate": 0}])]}, "routes.0.limits.0.rate"),
        ({"routes": [route(limits=[{"rate": 2e6}])]}, "routes.0.limits.0.rate"),
        ({"routes": [route(limits=[{"rate": 1, "burst": 0}])]}, "routes.0.limits.0.burst"),
        ({"routes": [route(limits=[{"rate": 1, "burst": 10**7}])]}, "routes.0.limits.0.burst"),
        ({"routes": [route(limits=[{"rate": 1, "key": "ip"}])]}, "routes.0.limits.0.key"),
        ({"routes": [route(limits=[{"rate": 1, "name": "Big"}])]}, "routes.0.limits.0.name"),
        ({"routes": [route(limits=[{}])]}, "routes.0.limits.0.rate"),
        ({"routes": [route(name="-a")]}, "routes.0.name"),
        ({"routes": [route(path="a")]}, "routes.0.path"),
        ({"routes": [route(match="regex")]}, "routes.0.match"),
        ({"routes": [route(methods=["GET", "FETCH"])]}, "routes.0.methods.1"),
        ({"routes": [route(timeout_s=0)]}, "routes.0.timeout_s"),
        ({"routes": [route(timeout_s=3601)]}, "routes.0.timeout_s"),
        ({"routes": [route(upstream="nope")]}, "routes.0.upstream"),
        ({"routes": [route(colour="red")]}, "routes.0.colour"),
        ({"routes": [{"name": "a", "path": "/a"}]}, "routes.0.service"),
        ({"routes": []}, "routes"),
        ({}, "routes"),
        ({"routes": [route()], "client_header": "x y"}, "client_header"),
        ({"routes": [route()], "name": "Gateway"}, "name"),
    ],
)
def test_each_constraint_names_its_field(data: dict[str, Any], where: str) -> None:
    """A value outside its field's constraints is one error at that field's location."""
    assert [loc for loc, _, _ in spec_errors(data)] == [where]


@pytest.mark.parametrize(
    ("routes", "where", "message"),
    [
        (
            [route(match="exact"), route(name="b", match="exact")],
            "routes.1.path",
            "'/a' overlaps routes[0] ('/a') for the same methods",
        ),
        ([route(), route(path="/b")], "routes.1.name", "'a' is the name of routes[0] already"),
        ([route(path="/a//b")], "routes.0.path", "must start with / and hold no // or ?"),
        ([route(path="/a/{id}", strip_prefix=True)], "routes.0.strip_prefix", "only a prefix"),
    ],
)
def test_the_route_table_is_checked_by_the_router_at_the_route(
    routes: list[dict[str, Any]], where: str, message: str
) -> None:
    """Overlaps, duplicate names and malformed paths: an error at the route's field."""
    [(loc, kind, text)] = spec_errors({"routes": routes})
    assert (loc, kind) == (where, ERROR_TYPE)
    assert text.startswith(message)


def test_the_location_is_relative_to_where_the_spec_sits():
    """Nested in a topology, the router's error sits under the topology's key."""

    class Topology(BaseModel):
        gateway: GatewaySpec

    with pytest.raises(ValidationError) as info:
        Topology.model_validate({"gateway": {"routes": [route(), route(path="/b")]}})
    [error] = info.value.errors()
    assert error["loc"] == ("gateway", "routes", 1, "name")


def test_specs_are_frozen():
    """A parsed spec cannot change under whoever holds it."""
    spec = RouteSpec.model_validate(route())
    with pytest.raises(ValidationError):
        spec.path = "/b"  # type: ignore[misc]


# --- the file ------------------------------------------------------------------------------------


def test_gateway_file_aims_each_route_at_its_service_and_labels_limits():
    """The file the harness writes: upstream from the service, every limit named."""
    data = gateway_file(GatewaySpec.model_validate(SHOP), UPSTREAMS)
    assert (data["name"], data["client_header"]) == ("gateway", "x-client-id")
    assert [r["upstream"] for r in data["routes"]] == [
        "127.0.0.1:4001",
        "127.0.0.1:4002",
        "127.0.0.1:4002",
    ]
    assert data["routes"][0]["limits"] == [
        {
            "key": "client",
            "algorithm": "token_bucket",
            "rate": 50.0,
            "burst": 20,
            "name": "per-client",
        }
    ]
    assert data["routes"][2]["limits"][0]["name"] == "route-gcra"


def test_the_file_reads_back_into_the_gateway_config():
    """config_from_json(gateway_file(...)) is the config the gateway runs; GET /routes shows it."""
    config = config_from_json(gateway_file(GatewaySpec.model_validate(SHOP), UPSTREAMS))
    assert config.client_header == b"x-client-id"
    auth, orders, order = config.routes
    assert (auth.route.name, auth.upstream, auth.route.strip_prefix) == (
        "auth",
        ("127.0.0.1", 4001),
        True,
    )
    assert (orders.route.methods, orders.timeout_s) == (frozenset({"GET"}), 30.0)
    assert (order.route.kind, order.timeout_s) == ("param", 2.0)
    [limit] = order.limits
    assert (limit.name, limit.key, limit.config) == (
        "route-gcra",
        "route",
        LimitConfig(100, 10, "gcra"),
    )
    shown = config_to_json(config)
    assert config_from_json(shown) == config


def test_a_route_without_upstream_is_refused_naming_it():
    """The topology may leave `upstream` out; the gateway's file may not."""
    data = gateway_file(GatewaySpec.model_validate(SHOP), {"auth": ("127.0.0.1", 4001)})
    assert file_error(data) == "routes[1].upstream: required (route 'orders')"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"routes": [route(upstream="h:1", limits=[{"rate": 1}, {"rate": 0}])]},
            "routes[0].limits[1].rate: Input should be greater than 0 (got 0)",
        ),
        ({"routes": [route(upstream="h:1", colour=1)]}, "routes[0].colour: unknown field"),
        ({"routes": [route(upstream="h")]}, "routes[0].upstream: expected HOST:PORT, got 'h'"),
        ({"routes": [route()]}, "routes[0].upstream: required (route 'a')"),
        ({}, "routes: Field required"),
        ([], "(file): Input should be a valid dictionary or instance of GatewaySpec (got [])"),
        (
            {"routes": [route(upstream="h:1", timeout_s=0, methods=["GOT"])]},
            "routes[0].methods[0]: Input should be 'GET', 'HEAD', 'POST', 'PUT', 'PATCH',"
            " 'DELETE' or 'OPTIONS' (got 'GOT'); "
            "routes[0].timeout_s: Input should be greater than 0 (got 0)",
        ),
    ],
)
def test_file_errors_read_as_field_path_and_message(data: Any, message: str) -> None:
    """RouteError: `routes[i].field: message (got value)`, every bad field, `; ` between."""
    assert file_error(data) == message
