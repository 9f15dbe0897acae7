"""The edge cache's pure core (targets/cdn): key, TTLs, freshness, decisions, collapsing,
invalidation and the LRU, called directly with a fake clock. Expected values come from
shared/reference/semantics.md sections 7 and 10.7."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.cdn.core import (
    Action,
    Decision,
    Entry,
    Outcome,
    Response,
    Result,
    State,
    collapsing_enabled,
    conditional_headers,
    decide,
    new_entry,
    on_origin,
)
from targets.cdn.policy import (
    CacheControl,
    Headers,
    InvalidPath,
    InvalidPolicy,
    KeyPolicy,
    Lifetime,
    Request,
    TooManyInvalidations,
    TtlPolicy,
    lifetime,
)
from targets.cdn.store import Collapser, Invalidations, LruStore, Passes, PathPattern, Role

pytestmark = pytest.mark.core

NOW = 1_700_000_000.0
DATE = "Tue, 14 Nov 2023 22:13:20 GMT"  # NOW as an HTTP-date
GET = Request("GET", "/a")


# --- helpers ---------------------------------------------------------------------------------


def hdrs(**fields: str) -> Headers:
    """Header pairs from keywords: ``cache_control="max-age=60"`` -> Cache-Control."""
    return tuple((name.replace("_", "-").title(), value) for name, value in fields.items())


def life(status: int = 200, policy: TtlPolicy | None = None, **fields: str) -> Lifetime:
    return lifetime(status, hdrs(**fields), policy or TtlPolicy(), NOW)


def check_ttl(
    expected: float | None, status: int = 200, policy: TtlPolicy | None = None, **fields: str
) -> None:
    """`expected` is the TTL the response gets, None when it is not stored."""
    got = life(status, policy, **fields)
    assert (got.ttl if got.stored else None) == expected, got


def stored(
    body: bytes = b"body",
    status: int = 200,
    at: float = NOW,
    policy: TtlPolicy | None = None,
    path: str = "/a",
    **fields: str,
) -> Entry:
    """The entry an origin answer received at `at` makes (it must be cacheable)."""
    made = new_entry(
        path,
        path,
        Response(status, hdrs(**fields), body),
        policy=policy or TtlPolicy(),
        requested_at=at,
        now=at,
    )
    assert made is not None
    return made


def settle(entry: Entry | None, response: Response | None, now: float) -> Outcome:
    return on_origin(
        entry, response, key="/a", path="/a", policy=TtlPolicy(), requested_at=now, now=now
    )


def key(policy: KeyPolicy, request: Request) -> str:
    return policy.request_key(request)


@dataclass(frozen=True)
class Item:
    size: int


# --- cache key -------------------------------------------------------------------------------


def test_a_header_outside_the_policy_does_not_change_the_key() -> None:
    """10.7.5: a request differing only in an excluded header is the same key (a hit)."""
    policy = KeyPolicy(headers=frozenset({"Accept-Language"}))
    base = Request("GET", "/a", headers=(("Accept-Language", "en"),))
    other = Request("GET", "/a", headers=(("Accept-Language", "en"), ("User-Agent", "x")))
    assert key(policy, base) == key(policy, other)
    french = Request("GET", "/a", headers=(("accept-language", "fr"),))
    assert key(policy, base) != key(policy, french)


def test_header_names_are_case_insensitive() -> None:
    """The policy's and the request's header names match in any case."""
    policy = KeyPolicy(headers=frozenset({"ACCEPT-language"}))
    upper = Request("GET", "/a", headers=(("Accept-Language", "en"),))
    lower = Request("GET", "/a", headers=(("accept-language", "en"),))
    assert key(policy, upper) == key(policy, lower)
    assert key(policy, upper) != key(policy, GET)


def test_query_none_ignores_every_query_string() -> None:
    """Query mode none: the query is not part of the key."""
    policy = KeyPolicy()
    assert key(policy, Request("GET", "/a", query=(("v", "1"),))) == key(policy, GET)


def test_query_all_is_order_insensitive_but_value_sensitive() -> None:
    """Query mode all: every pair counts, their order does not."""
    policy = KeyPolicy(query="all")  # type: ignore[arg-type]
    ab = Request("GET", "/a", query=(("a", "1"), ("b", "2")))
    ba = Request("GET", "/a", query=(("b", "2"), ("a", "1")))
    assert key(policy, ab) == key(policy, ba)
    assert key(policy, ab) != key(policy, Request("GET", "/a", query=(("a", "1"), ("b", "3"))))


def test_query_allow_list_keeps_only_listed_names() -> None:
    """Query mode allow-list: names outside the list are ignored; names are case-sensitive."""
    policy = KeyPolicy(query="allow-list", query_names=frozenset({"v"}))  # type: ignore[arg-type]
    with_v = Request("GET", "/a", query=(("v", "1"), ("utm", "x")))
    assert key(policy, with_v) == key(policy, Request("GET", "/a", query=(("v", "1"),)))
    assert key(policy, with_v) != key(policy, Request("GET", "/a", query=(("V", "1"),)))


def test_cookies_count_only_when_listed() -> None:
    """A cookie outside the allow list is ignored; a listed one splits the key."""
    policy = KeyPolicy(cookies=frozenset({"session"}))
    plain = Request("GET", "/a", cookies=(("theme", "dark"),))
    assert key(policy, plain) == key(policy, GET)
    assert key(policy, Request("GET", "/a", cookies=(("session", "1"),))) != key(policy, GET)


def test_get_and_head_share_a_key_and_other_methods_are_forwarded() -> None:
    """Only GET and HEAD are cached (7.2); POST is passed through, never served from cache."""
    policy = KeyPolicy()
    assert policy.key("HEAD", "/a") == policy.key("GET", "/a")
    assert policy.key("POST", "/a") != policy.key("GET", "/a")
    assert (
        decide(stored(cache_control="max-age=60"), Request("POST", "/a"), NOW).action
        is Action.FORWARD
    )
    assert (
        decide(stored(cache_control="max-age=60"), Request("HEAD", "/a"), NOW).action
        is Action.SERVE
    )


def test_the_key_is_unambiguous() -> None:
    """Separators inside paths, names and values are encoded, so parts cannot run together."""
    policy = KeyPolicy(query="all")  # type: ignore[arg-type]
    assert policy.key("GET", "/a?b=1") != policy.key("GET", "/a", (("b", "1"),))
    assert policy.key("GET", "/a", (("b", "1&c=2"),)) != policy.key(
        "GET", "/a", (("b", "1"), ("c", "2"))
    )


def test_key_policy_errors_name_the_field() -> None:
    """A query allow list needs query mode allow-list; the query mode is one of three."""
    with pytest.raises(InvalidPolicy, match=r"^query_names: "):
        KeyPolicy(query="all", query_names=frozenset({"v"}))  # type: ignore[arg-type]
    with pytest.raises(InvalidPolicy, match=r"^query: must be one of none, all, allow-list"):
        KeyPolicy(query="some")  # type: ignore[arg-type]
    with pytest.raises(InvalidPolicy, match=r"^headers: "):
        KeyPolicy(headers=frozenset({"bad header"}))


# --- TTL selection ---------------------------------------------------------------------------


def test_s_maxage_wins_over_max_age() -> None:
    """7.2: s-maxage takes precedence over max-age for CloudFront."""
    check_ttl(60, cache_control="max-age=10, s-maxage=60")
    assert life(cache_control="max-age=10, s-maxage=60").source == "s-maxage"
    check_ttl(10, cache_control="max-age=10")


def test_max_age_wins_over_expires() -> None:
    """7.2: with both Expires and max-age, max-age wins."""
    check_ttl(30, cache_control="max-age=30", expires="Tue, 14 Nov 2023 23:13:20 GMT", date=DATE)
    check_ttl(3600, expires="Tue, 14 Nov 2023 23:13:20 GMT", date=DATE)


def test_expires_counts_from_date_or_from_now() -> None:
    """Expires minus Date; without Date, Expires minus now; a bad Expires is already stale."""
    check_ttl(3600, expires="Tue, 14 Nov 2023 23:13:20 GMT")
    check_ttl(3000, expires="Tue, 14 Nov 2023 23:13:20 GMT", date="Tue, 14 Nov 2023 22:23:20 GMT")
    check_ttl(None, expires="0")
    check_ttl(None, expires="Tue, 14 Nov 2023 21:13:20 GMT")


def test_no_caching_headers_use_the_default_ttl() -> None:
    """7.2: DefaultTTL 86,400 s; a MinTTL above it becomes the default."""
    check_ttl(86_400)
    check_ttl(100_000, policy=TtlPolicy(min_ttl=100_000))
    check_ttl(500, policy=TtlPolicy(default_ttl=500))
    check_ttl(None, policy=TtlPolicy(default_ttl=0, max_ttl=0))  # CachingDisabled


def test_header_ttls_are_clamped_to_min_and_max() -> None:
    """7.2: the header's TTL is clamped to [MinTTL, MaxTTL]; MaxTTL defaults to 1 year."""
    check_ttl(60, policy=TtlPolicy(min_ttl=60), cache_control="max-age=10")
    check_ttl(31_536_000, cache_control="max-age=99999999999")
    check_ttl(100, policy=TtlPolicy(max_ttl=100), cache_control="s-maxage=1000")
    check_ttl(100, policy=TtlPolicy(max_ttl=100), expires="Tue, 14 Nov 2023 23:13:20 GMT")
    check_ttl(1000, policy=TtlPolicy(max_ttl=100_000), cache_control="s-maxage=1000")


def test_max_ttl_applies_to_header_ttls_and_bounds_the_default() -> None:
    """MaxTTL clamps the origin's TTLs; a default left out is lowered to a given MaxTTL,
    a given default above MaxTTL is refused."""
    check_ttl(100, policy=TtlPolicy(max_ttl=100))
    check_ttl(50, policy=TtlPolicy(default_ttl=50, max_ttl=100), cache_control="no-transform")
    with pytest.raises(InvalidPolicy, match=r"^default_ttl: "):
        TtlPolicy(default_ttl=200, max_ttl=100)
    with pytest.raises(InvalidPolicy, match=r"^max_ttl: must be at least min_ttl"):
        TtlPolicy(min_ttl=10, max_ttl=5)


@pytest.mark.parametrize("directive", ["no-store", "private", "no-cache", 'private="x, y"'])
def test_no_store_private_no_cache_are_respected_only_with_min_ttl_zero(directive: str) -> None:
    """7.2: not cached when MinTTL = 0; cached for MinTTL when MinTTL > 0."""
    check_ttl(None, cache_control=f"{directive}, max-age=600")
    check_ttl(30, policy=TtlPolicy(min_ttl=30), cache_control=f"{directive}, max-age=600")


def test_a_zero_ttl_is_stored_only_with_a_validator() -> None:
    """max-age=0 keeps an object only to revalidate it, which needs an ETag/Last-Modified."""
    check_ttl(None, cache_control="max-age=0")
    check_ttl(0, cache_control="max-age=0", etag='"v1"')
    check_ttl(0, cache_control="s-maxage=0", last_modified=DATE)


@pytest.mark.parametrize("status", [200, 203, 204, 300, 301, 302, 303])
def test_success_and_redirect_statuses_are_cached(status: int) -> None:
    """2xx/3xx answers follow the TTL rules."""
    check_ttl(86_400, status)


@pytest.mark.parametrize("status", [206, 304, 401, 410, 416, 429])
def test_other_statuses_are_never_cached(status: int) -> None:
    """7.3: 416 is never cached; neither are codes CloudFront does not list (206: no range
    in the key)."""
    check_ttl(None, status, cache_control="max-age=60")


def test_307_and_308_need_cache_control() -> None:
    """CloudFront caches 307/308 only when the origin sends Cache-Control."""
    check_ttl(None, 307)
    check_ttl(60, 308, cache_control="max-age=60")


@pytest.mark.parametrize("status", [404, 414, 500, 501, 502, 503, 504])
def test_these_errors_are_always_cached_for_the_error_ttl(status: int) -> None:
    """7.3/10.7.6: cached for the error caching minimum TTL (10 s), even with no-store."""
    check_ttl(10, status)
    check_ttl(10, status, cache_control="no-store")
    check_ttl(10, status, cache_control="max-age=2")
    check_ttl(300, status, cache_control="max-age=300")


@pytest.mark.parametrize("status", [400, 403, 405, 412, 415])
def test_these_errors_are_cached_only_with_max_age_or_s_maxage(status: int) -> None:
    """7.3: cached only if the origin sends max-age or s-maxage (Expires is not enough)."""
    check_ttl(None, status)
    check_ttl(None, status, expires="Tue, 14 Nov 2023 23:13:20 GMT")
    check_ttl(60, status, cache_control="max-age=60")
    check_ttl(10, status, cache_control="s-maxage=1")


def test_the_error_ttl_is_configurable_per_status() -> None:
    """The error caching minimum TTL is set for all errors or per status; 0 stores nothing."""
    check_ttl(5, 404, policy=TtlPolicy(error_caching_min_ttl=5))
    check_ttl(None, 503, policy=TtlPolicy(error_ttls={503: 0}))
    check_ttl(10, 502, policy=TtlPolicy(error_ttls={503: 0}))
    with pytest.raises(InvalidPolicy, match=r"^error_ttls: "):
        TtlPolicy(error_ttls={200: 5})


def test_ttl_policy_errors_name_the_field() -> None:
    """Negative or non-finite TTLs are refused, naming the field."""
    with pytest.raises(InvalidPolicy, match=r"^min_ttl: "):
        TtlPolicy(min_ttl=-1)
    with pytest.raises(InvalidPolicy, match=r"^default_ttl: "):
        TtlPolicy(min_ttl=100, default_ttl=50)
    with pytest.raises(InvalidPolicy, match=r"^stale_if_error: "):
        TtlPolicy(stale_if_error=math.nan)


def test_cache_control_parsing() -> None:
    """Directive names in any case, quoted arguments, the first of a repeat, bad numbers
    ignored."""
    cc = CacheControl.parse('Max-Age=5, private="set-cookie, x", max-age=9, s-maxage=abc')
    assert (cc.max_age, cc.s_maxage, cc.private, cc.no_store) == (5, None, True, False)
    assert CacheControl.parse("stale-while-revalidate=30,stale-if-error=60") == CacheControl(
        stale_while_revalidate=30, stale_if_error=60
    )
    assert CacheControl.parse(None) == CacheControl()


# --- freshness and decisions -----------------------------------------------------------------


def test_age_counts_from_storage_plus_the_origins_age() -> None:
    """Age = now - stored_at + the origin's Age; fresh while age < ttl."""
    entry = stored(cache_control="max-age=60", age="50")
    assert entry.age(NOW + 5) == 55
    assert entry.state(NOW + 9.9) is State.FRESH
    assert entry.state(NOW + 10) is State.EXPIRED


def test_miss_then_hit_within_the_ttl() -> None:
    """10.7.1: no entry is a fetch (Miss); a repeat within the TTL is a Hit with an Age."""
    assert decide(None, GET, NOW) == Decision(Action.FETCH)
    first = settle(None, Response(200, hdrs(cache_control="max-age=60"), b"x"), NOW)
    assert first.result is Result.MISS
    assert first.entry is not None
    assert decide(first.entry, GET, NOW + 59) == Decision(Action.SERVE, Result.HIT, 59)
    assert decide(first.entry, GET, NOW + 60).action is Action.FETCH


def test_a_cached_error_is_served_as_error() -> None:
    """A cached 404 is answered from the cache, and X-Cache says Error."""
    entry = stored(b"", status=404)
    assert decide(entry, GET, NOW + 9) == Decision(Action.SERVE, Result.ERROR, 9)
    assert decide(entry, GET, NOW + 10).action is Action.FETCH


def test_stale_while_revalidate_serves_stale_and_refreshes() -> None:
    """7.3: within stale-while-revalidate, serve the stale copy now and revalidate after."""
    entry = stored(cache_control="max-age=10, stale-while-revalidate=20", etag='"v1"')
    at = decide(entry, GET, NOW + 25)
    assert at == Decision(
        Action.SERVE_STALE_AND_REVALIDATE, Result.HIT, 25, (("if-none-match", '"v1"'),)
    )
    assert decide(entry, GET, NOW + 30).action is Action.REVALIDATE


def test_the_policy_default_stale_while_revalidate_applies_without_the_directive() -> None:
    """A configured default window is used when the origin sends none."""
    policy = TtlPolicy(stale_while_revalidate=5)
    entry = stored(policy=policy, cache_control="max-age=10")
    assert entry.state(NOW + 12) is State.STALE_SERVABLE
    assert stored(cache_control="max-age=10").state(NOW + 12) is State.EXPIRED


def test_a_stale_entry_with_a_validator_is_revalidated_first() -> None:
    """10.7.3: after expiry, the next request is a conditional GET."""
    entry = stored(cache_control="max-age=10", etag='"v1"', last_modified=DATE)
    assert entry.state(NOW + 10) is State.STALE_REVALIDATABLE
    assert decide(entry, GET, NOW + 10) == Decision(
        Action.REVALIDATE,
        conditional=(("if-none-match", '"v1"'), ("if-modified-since", DATE)),
    )
    assert conditional_headers(stored(cache_control="max-age=10")) == ()


def test_a_304_refreshes_the_entry_as_refresh_hit() -> None:
    """10.7.3: a 304 gives RefreshHit, keeps the body and takes the TTL from its headers."""
    entry = stored(b"old body", cache_control="max-age=10", etag='"v1"')
    later = NOW + 100
    out = settle(entry, Response(304, hdrs(cache_control="max-age=300", etag='"v1"')), later)
    assert (out.result, out.status, out.body, out.age) == (Result.REFRESH_HIT, 200, b"old body", 0)
    assert out.entry is not None
    assert (out.entry.ttl, out.entry.stored_at) == (300, later)
    assert decide(out.entry, GET, later + 299).action is Action.SERVE


def test_a_304_without_caching_headers_keeps_the_stored_ones() -> None:
    """The 304's headers replace stored headers of the same name; the others stay."""
    entry = stored(cache_control="max-age=10", etag='"v1"')
    out = settle(entry, Response(304, hdrs(etag='"v1"')), NOW + 50)
    assert out.entry is not None
    assert out.entry.ttl == 10
    assert out.entry.state(NOW + 55) is State.FRESH


def test_a_304_that_forbids_storing_drops_the_entry() -> None:
    """A 304 that now says no-store answers once (RefreshHit) and is not kept."""
    entry = stored(cache_control="max-age=10", etag='"v1"')
    out = settle(entry, Response(304, hdrs(cache_control="no-store")), NOW + 50)
    assert (out.result, out.body, out.entry) == (Result.REFRESH_HIT, b"body", None)


def test_a_200_on_revalidation_replaces_the_entry() -> None:
    """7.2: a 200 replaces the cached copy (Miss)."""
    entry = stored(b"old", cache_control="max-age=10", etag='"v1"')
    out = settle(entry, Response(200, hdrs(cache_control="max-age=60"), b"new"), NOW + 50)
    assert out.result is Result.MISS
    assert out.entry is not None
    assert out.entry.body == b"new"
    gone = settle(entry, Response(200, hdrs(cache_control="no-store"), b"new"), NOW + 50)
    assert gone.entry is None


def test_an_origin_5xx_on_a_stale_object_serves_it_for_the_error_ttl() -> None:
    """7.3: expired object and origin 5xx: the stale object is served during the error
    caching minimum TTL (10 s), then the origin is asked again."""
    entry = stored(b"stale", cache_control="max-age=10", etag='"v1"')
    out = settle(entry, Response(503), NOW + 20)
    assert (out.result, out.status, out.body) == (Result.HIT, 200, b"stale")
    held = out.entry
    assert held is not None
    assert held.state(NOW + 29.9) is State.STALE_IF_ERROR
    assert decide(held, GET, NOW + 29.9).action is Action.SERVE
    assert decide(held, GET, NOW + 30).action is Action.REVALIDATE


def test_no_answer_at_all_also_serves_stale() -> None:
    """A refused or timed-out origin request serves the stale copy; with none it is 502."""
    entry = stored(b"stale", cache_control="max-age=10")
    assert settle(entry, None, NOW + 20).result is Result.HIT
    out = settle(None, None, NOW)
    assert (out.result, out.status, out.entry) == (Result.ERROR, 502, None)
    assert Result.ERROR.header() == "Error from cloudfront"


def test_an_origin_4xx_on_a_stale_object_is_returned() -> None:
    """7.3: on a 4xx CloudFront returns the 4xx (and caches it by the error rules)."""
    entry = stored(b"stale", cache_control="max-age=10")
    out = settle(entry, Response(404, body=b"gone"), NOW + 20)
    assert (out.result, out.status, out.body) == (Result.ERROR, 404, b"gone")
    assert out.entry is not None
    assert out.entry.ttl == 10


def test_stale_if_error_bounds_serving_stale() -> None:
    """The origin's stale-if-error=N bounds stale-on-error; stale-if-error=0 turns it off."""
    entry = stored(b"stale", cache_control="max-age=10, stale-if-error=15")
    out = settle(entry, Response(500), NOW + 20)
    assert out.result is Result.HIT
    assert out.entry is not None
    assert out.entry.hold_until == NOW + 25  # the window ends before the 10 s error TTL
    assert settle(entry, Response(500), NOW + 25).result is Result.ERROR
    off = stored(b"stale", cache_control="max-age=10, stale-if-error=0")
    assert settle(off, Response(502), NOW + 11).status == 502


def test_a_stale_error_is_not_served_on_error() -> None:
    """Only a stale success is served instead of an origin failure."""
    entry = stored(b"", status=404)
    assert settle(entry, Response(503), NOW + 20).status == 503


def test_x_cache_values() -> None:
    """7.5: `<Result> from <edge>`; waiters log Hit, or Error for an error."""
    assert Result.HIT.header() == "Hit from cloudfront"
    assert Result.REFRESH_HIT.header("FRA56-P5") == "RefreshHit from FRA56-P5"
    assert Result.MISS.header() == "Miss from cloudfront"
    ok = settle(None, Response(200, body=b"x"), NOW)
    assert (ok.result, ok.waiter_result) == (Result.MISS, Result.HIT)
    failed = settle(None, Response(503), NOW)
    assert (failed.result, failed.waiter_result) == (Result.ERROR, Result.ERROR)


# --- collapsing ------------------------------------------------------------------------------


def test_concurrent_misses_for_one_key_collapse_onto_one_leader() -> None:
    """10.7.4: N requests for one cold key: one origin fetch; the first is Miss, the others
    get the same answer as Hit."""
    collapser: Collapser[int] = Collapser()
    roles = [collapser.join("k", token) for token in range(5)]
    assert roles == [Role.LEADER, *[Role.WAITER] * 4]
    answer = settle(None, Response(200, body=b"same"), NOW)
    waiters = collapser.finish("k")
    assert waiters == (1, 2, 3, 4)
    assert [answer.result, *[answer.waiter_result for _ in waiters]] == [
        Result.MISS,
        *[Result.HIT] * 4,
    ]
    assert (collapser.leaders, collapser.collapsed, len(collapser)) == (1, 4, 0)
    assert collapser.join("k", 9) is Role.LEADER


def test_only_requests_that_share_a_key_collapse() -> None:
    """Different keys each get a leader."""
    collapser: Collapser[str] = Collapser()
    assert collapser.join("a", "1") is Role.LEADER
    assert collapser.join("b", "2") is Role.LEADER
    assert (collapser.waiting("a"), "b" in collapser) == (0, True)
    with pytest.raises(KeyError):
        collapser.finish("c")


def test_forwarding_cookies_or_disabling_caching_disables_collapsing() -> None:
    """7.4: collapsing is off with the CachingDisabled policy or when cookies are forwarded."""
    assert collapsing_enabled(KeyPolicy(), TtlPolicy())
    assert not collapsing_enabled(KeyPolicy(cookies=frozenset({"s"})), TtlPolicy())
    assert not collapsing_enabled(KeyPolicy(), TtlPolicy(default_ttl=0, max_ttl=0))


@pytest.mark.parametrize(
    ("cache_control", "status", "shared"),
    [
        ("max-age=60", 200, True),  # kept: every waiter gets it
        ("private", 200, False),  # one viewer's own
        ("no-store", 200, False),
        ("no-store", 503, True),  # the origin failing is nobody's secret
    ],
)
def test_waiters_share_only_what_the_cache_may_keep_or_an_origin_failure(
    cache_control: str, status: int, shared: bool
) -> None:
    response = Response(status, (("cache-control", cache_control),), b"x")
    assert settle(None, response, NOW).shareable is shared
    assert settle(None, None, NOW).shareable  # no answer at all


def test_passes_mark_a_key_for_their_ttl_and_forget_the_oldest() -> None:
    passes = Passes(ttl_s=120, max_keys=2)
    passes.mark("a", NOW)
    assert passes.active("a", NOW + 119.9)
    assert not passes.active("a", NOW + 120)  # expired, and forgotten
    assert len(passes) == 0
    passes.mark("a", NOW)
    passes.mark("b", NOW)
    passes.mark("a", NOW + 1)  # marked again: now the newest
    passes.mark("c", NOW + 2)
    assert (passes.active("a", NOW + 3), passes.active("b", NOW + 3)) == (True, False)
    passes.clear("a")
    assert not passes.active("a", NOW + 3)


# --- invalidation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/a/b", "/a/b", True),
        ("/a/b", "/a/b/c", False),
        ("/a/b", "/A/b", False),
        ("/a/*", "/a/b/c", True),
        ("/a/*", "/a", False),
        ("/images/image*", "/images/image1.jpg", True),
        ("/*", "/", True),
        ("/*", "/anything/at/all", True),
    ],
)
def test_invalidation_paths_match_exactly_or_by_prefix(
    pattern: str, path: str, matches: bool
) -> None:
    """7.6: exact paths, or a prefix before a final '*'; case-sensitive."""
    assert PathPattern(pattern).matches(path) is matches


@pytest.mark.parametrize("bad", ["a/b", "", "/a/*/b", "/*a", "*"])
def test_invalidation_paths_start_with_a_slash_and_end_with_any_star(bad: str) -> None:
    """7.6: a path starts with '/', and '*' is allowed only as the last character."""
    with pytest.raises(InvalidPath, match=r"^Paths: "):
        PathPattern(bad)


def test_invalidation_removes_entries_so_the_next_request_misses() -> None:
    """7.6/10.7.8: invalidated objects are removed; the next request is a miss."""
    store: LruStore[Entry] = LruStore(10_000)
    for path in ("/a/1", "/a/2", "/b"):
        store.put(path, stored(path=path, cache_control="max-age=600"))
    inv = Invalidations().create(["/a/*"], NOW + 1)
    assert store.delete_where(lambda e: inv.matches(e.path)) == 2
    assert decide(store.get("/a/1"), Request("GET", "/a/1"), NOW + 2).action is Action.FETCH
    assert decide(store.get("/b"), Request("GET", "/b"), NOW + 2).action is Action.SERVE


def test_an_answer_requested_before_an_invalidation_is_not_stored() -> None:
    """An origin request sent before a matching invalidation may not store its answer."""
    invs = Invalidations(horizon_s=60)
    invs.create(["/a"], NOW)
    assert not invs.admits("/a", NOW - 1)
    assert not invs.admits("/a", NOW)
    assert invs.admits("/a", NOW + 0.5)
    assert invs.admits("/b", NOW - 1)
    invs.create(["/c"], NOW + 61)  # forgets /a's invalidation
    assert not invs.admits("/b", NOW - 1)  # it cannot tell any more
    assert not invs.admits("/b", NOW)
    assert invs.admits("/a", NOW + 0.5)


def test_too_many_wildcards_in_progress_are_refused() -> None:
    """7.6/10.7.8: at most 15 wildcard paths in progress; more is rejected until some end."""
    invs = Invalidations(in_progress_s=5)
    for i in range(15):
        invs.create([f"/w{i}/*"], NOW)
    with pytest.raises(TooManyInvalidations, match=r"^Paths: must be at most 15 wildcard"):
        invs.create(["/x/*"], NOW + 1)
    invs.create(["/file"], NOW + 1)  # file paths have their own limit
    invs.create(["/x/*"], NOW + 5)
    assert invs.in_progress(NOW + 5) == (1, 1)


def test_too_many_file_paths_in_progress_are_refused() -> None:
    """7.6/10.7.8: at most 3,000 file paths in progress; a batch counts whole."""
    invs = Invalidations()
    invs.create([f"/f{i}" for i in range(2999)], NOW)
    with pytest.raises(TooManyInvalidations, match=r"^Paths: must be at most 3000 file"):
        invs.create(["/x", "/y"], NOW)
    invs.create(["/x", "/x"], NOW)  # a repeated path counts once
    with pytest.raises(InvalidPath, match=r"^Paths: must be at least one path"):
        invs.create([], NOW)


# --- the LRU store ---------------------------------------------------------------------------


def test_put_evicts_the_least_recently_used_until_it_fits() -> None:
    """get touches, peek does not; eviction takes the coldest first and is counted."""
    store: LruStore[Item] = LruStore(10)
    store.put("a", Item(4))
    store.put("b", Item(4))
    store.get("a")
    store.peek("b")
    assert store.put("c", Item(4)) == ("b",)
    assert (list(store.keys()), store.bytes_stored, store.evictions) == (["a", "c"], 8, 1)
    assert store.put("d", Item(10)) == ("a", "c")
    assert (list(store.keys()), store.bytes_stored, store.evictions) == (["d"], 10, 3)


def test_an_object_larger_than_the_store_is_not_stored() -> None:
    """An item bigger than max_bytes is refused, and the key's old item goes with it."""
    store: LruStore[Item] = LruStore(10)
    store.put("a", Item(3))
    assert store.put("a", Item(11)) == ()
    assert ("a" in store, store.bytes_stored, store.rejected, store.evictions) == (False, 0, 1, 0)


def test_replacing_and_deleting_keep_the_byte_count() -> None:
    """A put on an existing key replaces it; delete frees its bytes."""
    store: LruStore[Item] = LruStore(10)
    store.put("a", Item(6))
    store.put("a", Item(8))
    assert (len(store), store.bytes_stored, store.evictions) == (1, 8, 0)
    assert store.delete("a")
    assert not store.delete("a")
    assert store.bytes_stored == 0
    with pytest.raises(InvalidPolicy, match=r"^max_bytes: "):
        LruStore(-1)


def test_an_entry_size_counts_key_headers_and_body() -> None:
    """The bytes an entry occupies."""
    entry = stored(b"12345", path="/k", etag="e")
    assert entry.size == len("/k") + 5 + len("Etag") + 1


# --- properties ------------------------------------------------------------------------------

PATHS = ("/a/1", "/a/2", "/b")
PATTERNS = ("/a/1", "/a/*", "/b", "/*")


@dataclass
class Ref:
    """The reference model of one cached path."""

    stored_at: float
    ttl: float
    swr: float
    sie: float
    validator: bool
    hold_until: float = -math.inf


def _matches(pattern: str, path: str) -> bool:
    return path.startswith(pattern[:-1]) if pattern.endswith("*") else path == pattern


def _expected(ref: Ref | None, now: float) -> Action:
    if ref is None:
        return Action.FETCH
    age = now - ref.stored_at
    if age < ref.ttl or now < ref.hold_until:
        return Action.SERVE
    if age < ref.ttl + ref.swr:
        return Action.SERVE_STALE_AND_REVALIDATE
    return Action.REVALIDATE if ref.validator else Action.FETCH


puts = st.tuples(
    st.just("put"),
    st.sampled_from(PATHS),
    st.sampled_from([0, 1, 5, 10, 15]),  # max-age
    st.sampled_from([None, 3, 10, 20]),  # stale-while-revalidate
    st.sampled_from([None, 0, 5, 20]),  # stale-if-error
    st.booleans(),  # an ETag
    st.integers(0, 3),  # how long before now its origin request began
)
gets = st.tuples(st.just("get"), st.sampled_from(PATHS))
ops = st.lists(
    st.one_of(
        puts,
        puts,
        gets,
        gets,
        gets,
        st.tuples(st.just("fail"), st.sampled_from(PATHS)),
        st.tuples(st.just("advance"), st.sampled_from([0, 1, 2, 3, 5, 8])),
        st.tuples(st.just("advance"), st.sampled_from([0, 1, 2, 3, 5, 8])),
        st.tuples(st.just("invalidate"), st.sampled_from(PATTERNS)),
    ),
    min_size=10,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_never_serves_past_its_ttl_unless_a_stale_rule_allows_it(
    steps: list[tuple[object, ...]],
) -> None:
    """Random puts, gets, origin failures, time advances and invalidations against a simple
    reference: a copy is served only while fresh, within stale-while-revalidate, or held
    after an origin failure within stale-if-error; an invalidated copy is never served."""
    policy = TtlPolicy()
    store: LruStore[Entry] = LruStore(1 << 30)
    invs = Invalidations(in_progress_s=0, horizon_s=10_000)
    ref: dict[str, Ref] = {}
    invalidated: list[tuple[str, float]] = []
    now = NOW
    for step in steps:
        match step:
            case ("put", str(path), int(max_age), swr, sie, bool(etag), int(lag)):
                directives = [f"max-age={max_age}"]
                directives += [f"stale-while-revalidate={swr}"] if swr is not None else []
                directives += [f"stale-if-error={sie}"] if sie is not None else []
                headers = (("Cache-Control", ", ".join(directives)),)
                headers += (("ETag", '"v"'),) if etag else ()
                out = on_origin(
                    store.peek(path),
                    Response(200, headers, b"x"),
                    key=path,
                    path=path,
                    policy=policy,
                    requested_at=now - lag,
                    now=now,
                )
                admitted = not any(at >= now - lag and _matches(p, path) for p, at in invalidated)
                assert invs.admits(path, now - lag) is admitted
                if out.entry is None:
                    store.delete(path)
                    ref.pop(path, None)
                elif admitted:
                    store.put(path, out.entry)
                    ref[path] = Ref(
                        now,
                        max_age,
                        swr or 0,
                        math.inf if sie is None else sie,
                        etag,
                    )
                else:
                    assert out.entry.ttl == max_age
            case ("get", str(path)):
                entry = store.get(path)
                decision = decide(entry, Request("GET", path), now)
                assert decision.action is _expected(ref.get(path), now)
                if entry is not None:
                    age = entry.age(now)
                    if decision.action is Action.SERVE:
                        assert age < entry.ttl or age < entry.ttl + entry.stale_if_error
                    if decision.action is Action.SERVE_STALE_AND_REVALIDATE:
                        assert age < entry.ttl + entry.stale_while_revalidate
            case ("fail", str(path)):
                entry = store.peek(path)
                out = on_origin(
                    entry, None, key=path, path=path, policy=policy, requested_at=now, now=now
                )
                r = ref.get(path)
                stale_ok = r is not None and now - r.stored_at < r.ttl + r.sie
                assert out.result is (Result.HIT if stale_ok else Result.ERROR)
                if stale_ok and r is not None and out.entry is not None:
                    r.hold_until = min(now + 10, r.stored_at + r.ttl + r.sie)
                    store.put(path, out.entry)
            case ("advance", int(dt)):
                now += dt
            case ("invalidate", str(pattern)):
                inv = invs.create([pattern], now)
                store.delete_where(lambda e, inv=inv: inv.matches(e.path))
                invalidated.append((pattern, now))
                for path in [p for p in ref if _matches(pattern, p)]:
                    del ref[path]
            case _:
                raise AssertionError(step)
        assert set(store.keys()) == set(ref)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 40),
    st.lists(
        st.tuples(st.sampled_from(["put", "get", "delete"]), st.integers(0, 7), st.integers(0, 50)),
        max_size=80,
    ),
)
def test_the_lru_never_exceeds_its_bytes_and_evicts_in_lru_order(
    max_bytes: int, steps: list[tuple[str, int, int]]
) -> None:
    """Against a list kept in recency order: the same keys in the same order, the same
    evictions, and never more than max_bytes."""
    store: LruStore[Item] = LruStore(max_bytes)
    order: list[tuple[str, int]] = []  # least recently used first
    evictions = 0
    for op, n, size in steps:
        k = f"k{n}"
        held = next((i for i, (key_, _) in enumerate(order) if key_ == k), None)
        if op == "put":
            if held is not None:
                order.pop(held)
            expected: list[str] = []
            if size <= max_bytes:
                while sum(s for _, s in order) + size > max_bytes:
                    expected.append(order.pop(0)[0])
                order.append((k, size))
            evictions += len(expected)
            assert store.put(k, Item(size)) == tuple(expected)
        elif op == "get":
            got = store.get(k)
            assert (got is None) is (held is None)
            if held is not None:
                order.append(order.pop(held))
        else:
            assert store.delete(k) is (held is not None)
            if held is not None:
                order.pop(held)
        assert list(store.keys()) == [key_ for key_, _ in order]
        assert store.bytes_stored == sum(s for _, s in order) <= max_bytes
        assert store.evictions == evictions


names = st.sampled_from(["a", "b", "c", "d"])
values = st.sampled_from(["1", "2", "x y", "&="])
pairs = st.lists(st.tuples(names, values), max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["none", "all", "allow-list"]),
    st.frozensets(names),
    st.frozensets(names),
    st.frozensets(names),
    pairs,
    pairs,
    pairs,
    st.randoms(use_true_random=False),
)
def test_the_key_ignores_what_the_policy_leaves_out_and_query_order(
    mode: str,
    query_names: frozenset[str],
    header_names: frozenset[str],
    cookie_names: frozenset[str],
    query: list[tuple[str, str]],
    headers: list[tuple[str, str]],
    cookies: list[tuple[str, str]],
    rng: random.Random,
) -> None:
    """Dropping every excluded query string, header and cookie, shuffling the query pairs
    and changing header-name case never changes the key; changing an included value does."""
    policy = KeyPolicy(
        query=mode,  # type: ignore[arg-type]
        query_names=query_names if mode == "allow-list" else frozenset(),
        headers=frozenset(h.upper() for h in header_names),
        cookies=cookie_names,
    )
    kept_query = [
        (k, v) for k, v in query if mode == "all" or (mode == "allow-list" and k in query_names)
    ]
    shuffled = list(kept_query)
    rng.shuffle(shuffled)
    full = policy.key("GET", "/p", query, headers, dict(cookies))
    minimal = policy.key(
        "GET",
        "/p",
        shuffled,
        [(k.upper(), v) for k, v in headers if k in header_names],
        {k: v for k, v in dict(cookies).items() if k in cookie_names},
    )
    assert full == minimal
    if kept_query:
        changed = [(kept_query[0][0], kept_query[0][1] + "!"), *kept_query[1:]]
        assert policy.key("GET", "/p", changed, headers, dict(cookies)) != full


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["k1", "k2", "k3"]), min_size=1, max_size=40))
def test_n_concurrent_misses_for_a_key_have_exactly_one_leader(keys: list[str]) -> None:
    """However the misses interleave, each key gets one leader; the rest wait for it."""
    collapser: Collapser[int] = Collapser()
    roles = [(k, collapser.join(k, i)) for i, k in enumerate(keys)]
    for k in set(keys):
        mine = [r for key_, r in roles if key_ == k]
        assert mine.count(Role.LEADER) == 1
        assert mine[0] is Role.LEADER
        waiters = collapser.finish(k)
        assert waiters == tuple(i for i, key_ in enumerate(keys) if key_ == k)[1:]
    assert collapser.leaders == len(set(keys))
    assert collapser.collapsed == len(keys) - len(set(keys))
    assert len(collapser) == 0
