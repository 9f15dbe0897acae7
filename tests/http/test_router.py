"""Path routing (targets/http/router.py): the most specific route wins; bad tables refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from targets.http.router import Route, RouteError, Router, split_path

pytestmark = pytest.mark.core

SHOP = Router(
    [
        Route("auth", "/api/auth", "auth"),
        Route("orders", "/api/orders", "orders"),
        Route("order", "/api/orders/{id}", "orders"),
        Route(
            "orders-list", "/api/orders", "orders-read", match="exact", methods=frozenset({"GET"})
        ),
        Route("special", "/api/orders/special", "special", match="exact"),
        Route("payments", "/pay", "payments", strip_prefix=True),
        Route("wide", "/v1/{a}/{b}", "wide"),
        Route("narrow", "/v1/users/{id}", "users"),
    ]
)


def check(
    method: str, path: str, route: str | None, target: str | None = None, query: str = ""
) -> None:
    found = SHOP.match(method, path, query)
    if route is None:
        assert found is None
        return
    assert found is not None
    assert found.route.name == route
    assert found.target.decode() == (
        target if target is not None else path + (f"?{query}" if query else "")
    )


def test_prefix_matches_at_segment_boundaries() -> None:
    """A prefix route takes its path and what is below it, never a longer segment."""
    check("POST", "/api/auth/login", "auth")
    check("GET", "/api/auth", "auth")
    check("GET", "/api/authx", None)


def test_exact_beats_prefix_for_its_methods_only() -> None:
    """GET /api/orders goes to the exact GET route; POST falls back to the prefix route."""
    check("GET", "/api/orders", "orders-list")
    check("POST", "/api/orders", "orders")


def test_longest_match_wins() -> None:
    """/api/orders/7 takes the three-segment param route over the two-segment prefix."""
    check("GET", "/api/orders/7", "order")
    check("GET", "/api/orders/7/items", "orders")  # deeper than any param route


def test_exact_beats_param_of_the_same_length_and_literals_beat_params() -> None:
    """An exact /api/orders/special wins over {id}; /v1/users/{id} over /v1/{a}/{b}."""
    check("GET", "/api/orders/special", "special")
    check("GET", "/v1/users/7", "narrow")
    check("GET", "/v1/teams/7", "wide")


def test_strip_prefix_forwards_the_rest_and_the_query() -> None:
    """A stripping prefix route forwards the path below it, query kept; its root is /."""
    check("POST", "/pay/charge", "payments", "/charge")
    check("GET", "/pay", "payments", "/?a=1", query="a=1")
    check("GET", "/pay/x/", "payments", "/x/")


def test_no_route_is_none() -> None:
    """Nothing matches: None, for the gateway's 404."""
    check("GET", "/", None)
    check("GET", "/nope/deeper", None)


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (
            [Route("a", "/x", "s", match="exact"), Route("b", "/x/", "t", match="exact")],
            r"routes\[1\].path: '/x/' overlaps routes\[0\]",
        ),
        ([Route("a", "/x/{id}", "s"), Route("b", "/x/{other}", "t")], "overlaps"),
        ([Route("a", "x", "s")], r"routes\[0\].path: must start with /"),
        (
            [Route("a", "/x", "s", methods=frozenset({"FETCH"}))],
            r"routes\[0\].methods: unknown method\(s\) FETCH",
        ),
        ([Route("a", "/x/{id}", "s", strip_prefix=True)], "only a prefix route strips"),
        ([Route("a", "/x/{i d}", "s")], "bad segment"),
    ],
)
def test_bad_tables_are_refused_naming_the_route(routes: list[Route], message: str) -> None:
    """Overlapping exact or param routes, malformed paths and methods: RouteError by index."""
    with pytest.raises(RouteError, match=message):
        Router(routes)


def test_same_path_with_disjoint_methods_is_allowed() -> None:
    """GET and POST of one exact path may go to different services."""
    router = Router(
        [
            Route("r", "/x", "read", match="exact", methods=frozenset({"GET"})),
            Route("w", "/x", "write", match="exact", methods=frozenset({"POST"})),
        ]
    )
    assert [router.match(m, "/x").route.service for m in ("GET", "POST")] == ["read", "write"]  # type: ignore[union-attr]
    assert router.match("PUT", "/x") is None


segment = st.text("abcxyz0123", min_size=1, max_size=4)


@given(st.lists(segment, min_size=0, max_size=6))
def test_the_chosen_route_always_matches_and_none_more_specific_does(parts: list[str]) -> None:
    """For any path, the winner matches it and no other matching route is more specific."""
    path = "/" + "/".join(parts)
    found = SHOP.match("GET", path)
    matching = [r for r in SHOP.routes if Router([r]).match("GET", path) is not None]
    if found is None:
        assert matching == []
        return
    assert found.route in matching
    assert all(r.specificity() <= found.route.specificity() for r in matching)


def test_find_takes_segments_and_params_names_their_values() -> None:
    """`find` routes segments the caller split; the route names its `{param}` values."""
    route = SHOP.find("GET", split_path("/v1/users/7"))
    assert route is not None
    assert route.name == "narrow"
    assert route.params(("v1", "users", "7")) == {"id": "7"}
    wide = SHOP.find("GET", ("v1", "a/b", "c"))  # a decoded %2F stays inside its segment
    assert wide is not None
    assert wide.params(("v1", "a/b", "c")) == {"a": "a/b", "b": "c"}
    assert SHOP.find("GET", ("nope",)) is None


def test_split_path_leaves_out_empty_segments() -> None:
    """`/a//b/` routes as `/a/b`; the root is no segment at all."""
    assert split_path("/a//b/") == ("a", "b")
    assert split_path("/") == ()


def test_a_route_needs_no_service() -> None:
    """A route whose owner dispatches by its name (the queue's API) leaves `service` empty."""
    router = Router([Route("queues", "/queues", match="exact")])
    found = router.match("GET", "/queues/")
    assert found is not None
    assert (found.route.name, found.route.service) == ("queues", "")
