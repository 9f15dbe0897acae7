"""`python -m targets.cdn` end to end: a real edge process in front of an in-test origin that
counts its requests. Expected behaviour: shared/reference/semantics.md section 7."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from targets.http.client import Reply, fetch
from targets.http.messages import Headers, Request, header_value
from targets.http.server import HttpServer, ResponseWriter
from tests.helpers import Target, eventually, run_target, start_target

pytestmark = pytest.mark.e2e

EDGE = "edge-1"
VIA = f"1.1 {EDGE} (rushlab)"


@dataclass
class Route:
    status: int = 200
    headers: Headers = field(default_factory=lambda: [(b"cache-control", b"max-age=60")])
    body: bytes = b"hello from the origin"
    delay_s: float = 0.0
    echo: bytes | None = None  # answer the value of this request header instead of `body`


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: Headers
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return header_value(self.headers, name)


class Origin:
    """An origin answering each path with its `Route`; a matching If-None-Match gets 304."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.server = HttpServer(self)

    @property
    def address(self) -> str:
        host, port = self.server.address
        return f"{host}:{port}"

    def count(self, path: str) -> int:
        return sum(s.path == path for s in self.seen)

    async def __call__(self, request: Request, writer: ResponseWriter) -> None:
        body = await request.body.read_all()
        self.seen.append(Seen(request.method, request.path, list(request.headers), body))
        route = self.routes.get(request.path, Route())
        if route.delay_s:
            await asyncio.sleep(route.delay_s)
        etag = header_value(route.headers, b"etag")
        if etag is not None and request.header(b"if-none-match") == etag:
            writer.send(304, [h for h in route.headers if h[0] in (b"etag", b"cache-control")])
            return
        body = route.body if route.echo is None else request.header(route.echo) or b""
        writer.send(route.status, route.headers, body)


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    made = Origin()
    await made.server.listen()
    yield made
    await made.server.shutdown(0.5)


@pytest.fixture
def edges(tmp_path: Path) -> Iterator[Callable[..., Target]]:
    """Start an edge: `edges(origin_address, *flags)`; every one is stopped afterwards."""
    started: list[Target] = []

    def start(origin_address: str, *flags: str) -> Target:
        target = start_target(
            "targets.cdn",
            *("--origin", origin_address, "--name", EDGE, *flags),
            log=tmp_path / "edge.log",
        )
        started.append(target)
        return target

    yield start
    for target in started:
        assert target.stop() == 0


async def get(
    edge: Target,
    path: str,
    method: str = "GET",
    *,
    body: bytes = b"",
    headers: Headers | None = None,
) -> Reply:
    return await fetch(*edge.hostport(), method, path, body=body, headers=headers, timeout_s=10.0)


def x_cache(reply: Reply) -> str:
    return (reply.header(b"x-cache") or b"").decode()


async def scrape(edge: Target) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /_edge/metrics, read the second time (series are born at 0)."""
    await get(edge, "/_edge/metrics")
    text = (await get(edge, "/_edge/metrics")).body.decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_miss_then_hit_calls_the_origin_once(
    origin: Origin, edges: Callable[..., Target]
) -> None:
    """The first GET is a Miss (no Age), the next ones Hits with Age; HEAD is answered from
    the GET entry; Via names the edge; the origin saw one request, carrying our Via."""
    edge = edges(origin.address)
    first = await get(edge, "/a")
    assert (first.status, first.body, x_cache(first)) == (
        200,
        b"hello from the origin",
        f"Miss from {EDGE}",
    )
    assert first.header(b"age") is None
    assert first.header(b"via") == VIA.encode()
    second = await get(edge, "/a")
    assert (second.status, second.body, x_cache(second)) == (200, first.body, f"Hit from {EDGE}")
    assert int(second.header(b"age") or b"-1") >= 0
    assert second.header(b"via") == VIA.encode()
    head = await get(edge, "/a", method="HEAD")
    assert (head.status, head.body, x_cache(head)) == (200, b"", f"Hit from {EDGE}")
    assert head.header(b"content-length") == str(len(first.body)).encode()
    assert origin.count("/a") == 1
    assert origin.seen[0].header(b"via") == VIA.encode()
    samples = await scrape(edge)
    assert sample(samples, "cdn_requests_total", result="Miss") == 1
    assert sample(samples, "cdn_requests_total", result="Hit") == 2
    assert sample(samples, "cdn_origin_fetches_total", kind="fetch", outcome="response") == 1
    assert sample(samples, "cdn_objects_stored") == 1
    assert sample(samples, "cdn_bytes_stored") > len(first.body)
    assert sample(samples, "cdn_request_duration_seconds_count", result="Hit") == 2


async def test_query_strings_are_left_out_of_the_key_unless_asked(
    origin: Origin, edges: Callable[..., Target]
) -> None:
    """--cache-query none: ?x=1 and ?x=2 share an entry; allow-list keys on the named ones."""
    plain = edges(origin.address)
    assert x_cache(await get(plain, "/q?x=1")) == f"Miss from {EDGE}"
    assert x_cache(await get(plain, "/q?x=2")) == f"Hit from {EDGE}"
    listed = edges(origin.address, "--cache-query", "allow-list", "--query-names", "x")
    assert x_cache(await get(listed, "/q?x=1&y=1")) == f"Miss from {EDGE}"
    assert x_cache(await get(listed, "/q?y=2&x=1")) == f"Hit from {EDGE}"
    assert x_cache(await get(listed, "/q?x=2")) == f"Miss from {EDGE}"


async def test_no_store_is_never_cached(origin: Origin, edges: Callable[..., Target]) -> None:
    """Cache-Control: no-store with MinTTL 0: every request goes to the origin, a Miss."""
    origin.routes["/private"] = Route(headers=[(b"cache-control", b"no-store")])
    edge = edges(origin.address)
    for _ in range(3):
        assert x_cache(await get(edge, "/private")) == f"Miss from {EDGE}"
    assert origin.count("/private") == 3


async def test_expired_entry_is_revalidated_into_a_refresh_hit(
    origin: Origin, edges: Callable[..., Target]
) -> None:
    """After max-age the edge asks If-None-Match; the origin's 304 gives RefreshHit with the
    stored body, and the refreshed entry is a Hit again."""
    origin.routes["/v"] = Route(headers=[(b"cache-control", b"max-age=1"), (b"etag", b'"v1"')])
    edge = edges(origin.address)
    assert x_cache(await get(edge, "/v")) == f"Miss from {EDGE}"
    assert x_cache(await get(edge, "/v")) == f"Hit from {EDGE}"
    await asyncio.sleep(1.2)
    refreshed = await get(edge, "/v")
    assert (refreshed.status, refreshed.body) == (200, b"hello from the origin")
    assert x_cache(refreshed) == f"RefreshHit from {EDGE}"
    assert refreshed.header(b"etag") == b'"v1"'
    assert x_cache(await get(edge, "/v")) == f"Hit from {EDGE}"
    assert origin.count("/v") == 2
    assert origin.seen[1].header(b"if-none-match") == b'"v1"'
    samples = await scrape(edge)
    assert sample(samples, "cdn_requests_total", result="RefreshHit") == 1
    assert (
        sample(samples, "cdn_origin_fetches_total", kind="revalidate", outcome="not_modified") == 1
    )


async def test_stale_while_revalidate_answers_at_once_and_refreshes_behind(
    origin: Origin, edges: Callable[..., Target]
) -> None:
    """Within stale-while-revalidate an expired entry is a Hit at once, and one background
    fetch refreshes it."""
    origin.routes["/w"] = Route(
        headers=[(b"cache-control", b"max-age=1, stale-while-revalidate=30")]
    )
    edge = edges(origin.address)
    assert x_cache(await get(edge, "/w")) == f"Miss from {EDGE}"
    await asyncio.sleep(1.2)
    stale = await get(edge, "/w")
    assert (stale.status, x_cache(stale)) == (200, f"Hit from {EDGE}")
    assert int(stale.header(b"age") or b"0") >= 1
    await eventually(async_value(lambda: origin.count("/w") == 2), 10.0, "the refresh")
    assert x_cache(await get(edge, "/w")) == f"Hit from {EDGE}"
    samples = await scrape(edge)
    assert sample(samples, "cdn_stale_served_total", reason="while_revalidate") == 1
    assert origin.count("/w") == 2


def async_value(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped


async def test_concurrent_misses_collapse_into_one_origin_fetch(
    origin: Origin, edges: Callable[..., Target]
) -> None:
    """50 cold requests for one key while the origin is slow: one origin fetch, streamed to
    the first viewer; the 49 others wait and get the same body as Hits."""
    body = bytes(range(256)) * 1024  # 256 KiB: arrives in many chunks
    origin.routes["/big"] = Route(body=body, delay_s=0.5)
    edge = edges(origin.address)
    replies = await asyncio.gather(*(get(edge, "/big") for _ in range(50)))
    assert origin.count("/big") == 1
    assert all(r.status == 200 and r.body == body for r in replies)
    results = sorted(x_cache(r) for r in replies)
    assert results == [f"Hit from {EDGE}"] * 49 + [f"Miss from {EDGE}"]
    samples = await scrape(edge)
    assert sample(samples, "cdn_origin_fetches_total", kind="fetch", outcome="response") == 1
    assert 0 < sample(samples, "cdn_collapsed_waiters_total") <= 49


async def test_concurrent_requests_for_a_private_page_each_get_their_own(
    origin: Origin, edges: Callable[..., Target]
) -> None:
    """Requests that collapsed behind a fetch whose answer is `private` are not given it:
    each asks the origin for its own (and, the key now known as private, later requests do
    not wait behind each other). Every viewer sees their own page."""
    origin.routes["/account"] = Route(
        headers=[(b"cache-control", b"private, no-store")], delay_s=0.3, echo=b"cookie"
    )
    edge = edges(origin.address)

    async def account(user: int) -> Reply:
        return await get(edge, "/account", headers=[(b"cookie", f"user=u{user}".encode())])

    for _ in range(2):  # cold, then with the key marked
        replies = await asyncio.gather(*(account(n) for n in range(10)))
        assert [r.body for r in replies] == [b"user=u%d" % n for n in range(10)]
        assert {x_cache(r) for r in replies} == {f"Miss from {EDGE}"}
    assert origin.count("/account") == 20


async def test_origin_down_is_a_502_error_from_the_edge(edges: Callable[..., Target]) -> None:
    """Nothing listens at the origin: 502, X-Cache Error, a JSON body naming the reason."""
    edge = edges(f"127.0.0.1:{free_port()}")
    reply = await get(edge, "/a")
    assert (reply.status, x_cache(reply)) == (502, f"Error from {EDGE}")
    assert reply.json()["error"] == "origin_refused"
    assert reply.json()["source"] == EDGE
    samples = await scrape(edge)
    assert sample(samples, "cdn_requests_total", result="Error") == 1
    assert sample(samples, "cdn_origin_fetches_total", kind="fetch", outcome="refused") == 1


async def test_origin_slower_than_the_timeout_is_a_504(
    origin: Origin, edges: Callable[..., Target]
) -> None:
    """An origin that says nothing for longer than --origin-timeout: 504, Error from."""
    origin.routes["/slow"] = Route(delay_s=3.0)
    edge = edges(origin.address, "--origin-timeout", "0.5")
    reply = await get(edge, "/slow")
    assert (reply.status, x_cache(reply)) == (504, f"Error from {EDGE}")
    assert reply.json()["error"] == "origin_timeout"


async def test_stale_if_error_serves_the_stale_copy_when_the_origin_is_down(
    origin: Origin, edges: Callable[..., Target]
) -> None:
    """An expired entry within stale-if-error is served (Hit) when the origin is down; with
    stale-if-error=0 the viewer gets the 502."""
    validator = (b"etag", b'"s1"')
    origin.routes["/s"] = Route(
        headers=[(b"cache-control", b"max-age=0, stale-if-error=60"), validator]
    )
    origin.routes["/n"] = Route(
        headers=[(b"cache-control", b"max-age=0, stale-if-error=0"), validator]
    )
    edge = edges(origin.address)
    assert x_cache(await get(edge, "/s")) == f"Miss from {EDGE}"
    assert x_cache(await get(edge, "/n")) == f"Miss from {EDGE}"
    await origin.server.shutdown(0.5)
    for _ in range(2):  # revalidation refused, then held for the error caching minimum TTL
        stale = await get(edge, "/s")
        assert (stale.status, stale.body, x_cache(stale)) == (
            200,
            b"hello from the origin",
            f"Hit from {EDGE}",
        )
    failed = await get(edge, "/n")
    assert (failed.status, x_cache(failed)) == (502, f"Error from {EDGE}")
    samples = await scrape(edge)
    assert sample(samples, "cdn_stale_served_total", reason="if_error") == 2


async def test_invalidation_needs_the_token_then_the_next_request_misses(
    origin: Origin, edges: Callable[..., Target], tmp_path: Path
) -> None:
    """POST /_edge/invalidations: 403 without a configured token, 401 with a wrong one, 400
    naming the field, 201 removing the matching objects; the next request is a Miss."""
    closed = edges(origin.address)
    assert (await post_invalidation(closed, {"paths": ["/*"]}, "x")).status == 403
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    edge = edges(origin.address, "--token-file", str(token))
    assert x_cache(await get(edge, "/img/a")) == f"Miss from {EDGE}"
    assert x_cache(await get(edge, "/img/a")) == f"Hit from {EDGE}"
    assert x_cache(await get(edge, "/keep")) == f"Miss from {EDGE}"
    assert (await post_invalidation(edge, {"paths": ["/img/*"]}, None)).status == 401
    assert (await post_invalidation(edge, {"paths": ["/img/*"]}, "wrong")).status == 401
    bad = await post_invalidation(edge, {"paths": "/img/*"}, "s3cret")
    assert bad.status == 400
    assert bad.json()["detail"].startswith("paths:")
    bad = await post_invalidation(edge, {"paths": ["img/*"]}, "s3cret")
    assert bad.status == 400
    assert bad.json()["detail"].startswith("paths: must be a path starting with '/'")
    made = await post_invalidation(edge, {"paths": ["/img/*"]}, "s3cret")
    assert made.status == 201
    assert made.json()["removed"] == 1
    assert x_cache(await get(edge, "/img/a")) == f"Miss from {EDGE}"
    assert x_cache(await get(edge, "/keep")) == f"Hit from {EDGE}"
    assert origin.count("/img/a") == 2
    samples = await scrape(edge)
    assert sample(samples, "cdn_invalidations_total") == 1
    assert sample(samples, "cdn_invalidated_objects_total") == 1


async def post_invalidation(edge: Target, payload: object, token: str | None) -> Reply:
    headers = [(b"content-type", b"application/json")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    body = json.dumps(payload).encode()
    return await get(edge, "/_edge/invalidations", method="POST", body=body, headers=headers)


async def put_faults(edge: Target, payload: object, method: str = "PUT") -> Reply:
    headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer s3cret")]
    body = b"" if payload is None else json.dumps(payload).encode()
    return await get(edge, "/_edge/faults", method=method, body=body, headers=headers)


async def test_latency_chaos_slows_one_regions_link_to_the_edge(
    origin: Origin, edges: Callable[..., Target], tmp_path: Path
) -> None:
    """PUT /_edge/faults with a region: that region's clients wait the extra latency on each
    request (a floor: never less); a region the network does not know, a bad body and a
    region on an edge in no region are 400s naming the field; DELETE clears it."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    network = tmp_path / "network.json"
    rtt = {"us": {"us": 0, "eu": 0}, "eu": {"eu": 0}}
    network.write_text(json.dumps({"regions": ["us", "eu"], "rtt_ms": rtt}))
    flags = ("--token-file", str(token), "--network-file", str(network), "--region", "eu")
    edge = edges(origin.address, *flags)
    set_ = await put_faults(edge, {"latency_ms": 400, "region": "us"})
    assert set_.status == 200, set_.body
    assert set_.json() == {"latency_ms": 0, "regions": {"us": 400}}
    began = time.perf_counter()
    reply = await fetch(*edge.hostport(), "GET", "/a", timeout_s=10, source="127.100.0.7")
    assert reply.status == 200
    assert time.perf_counter() - began >= 0.4  # held for the link's added latency
    assert origin.count("/a") == 1  # the edge's own fetch is not from the slowed region

    unknown = await put_faults(edge, {"latency_ms": 5, "region": "mars"})
    assert (unknown.status, unknown.json()["detail"]) == (
        400,
        "region: unknown 'mars' (known: us, eu)",
    )
    negative = await put_faults(edge, {"latency_ms": -1})
    assert negative.status == 400
    assert negative.json()["detail"].startswith("latency_ms:")
    cleared = await put_faults(edge, None, method="DELETE")
    assert cleared.json() == {"latency_ms": 0, "regions": {}}

    nowhere = edges(origin.address, "--token-file", str(token))
    refused = await put_faults(nowhere, {"latency_ms": 5, "region": "us"})
    assert refused.json()["detail"] == (
        "region: this process is in no region (the lab has no regions)"
    )
    everyone = await put_faults(nowhere, {"latency_ms": 300})
    assert everyone.json() == {"latency_ms": 300, "regions": {}}
    began = time.perf_counter()
    assert (await get(nowhere, "/b")).status == 200
    assert time.perf_counter() - began >= 0.3


async def test_post_is_forwarded_and_never_cached(
    origin: Origin, edges: Callable[..., Target]
) -> None:
    """A POST reaches the origin with its body every time, and stores nothing."""
    edge = edges(origin.address)
    for _ in range(2):
        reply = await get(edge, "/form", method="POST", body=b"x=1")
        assert (reply.status, x_cache(reply)) == (200, f"Miss from {EDGE}")
        assert reply.header(b"via") == VIA.encode()
    assert [(s.method, s.body) for s in origin.seen] == [("POST", b"x=1")] * 2
    assert x_cache(await get(edge, "/form")) == f"Miss from {EDGE}"
    samples = await scrape(edge)
    assert sample(samples, "cdn_origin_fetches_total", kind="forward", outcome="response") == 2


async def test_the_store_evicts_the_least_recently_used(
    origin: Origin, edges: Callable[..., Target]
) -> None:
    """--max-bytes bounds the store: a third 1 KB object evicts the least recently used."""
    for path in ("/1", "/2", "/3"):
        origin.routes[path] = Route(body=b"x" * 1000)
    edge = edges(origin.address, "--max-bytes", "2500")
    for path in ("/1", "/2", "/1", "/3"):
        await get(edge, path)
    assert x_cache(await get(edge, "/1")) == f"Hit from {EDGE}"
    assert x_cache(await get(edge, "/2")) == f"Miss from {EDGE}"
    samples = await scrape(edge)
    assert sample(samples, "cdn_evictions_total") >= 1
    assert sample(samples, "cdn_objects_stored") == 2
    health = await get(edge, "/_edge/health")
    assert health.json()["status"] == "ok"


def test_bad_settings_exit_2_naming_the_field() -> None:
    """An impossible TTL policy or a bad origin stops the edge before it listens."""
    result = run_target(
        "targets.cdn", "--origin", "127.0.0.1:1", "--min-ttl", "10", "--max-ttl", "5"
    )
    assert result.returncode == 2
    assert "max_ttl" in result.stderr
    result = run_target("targets.cdn", "--origin", "nowhere")
    assert result.returncode == 2
    assert "--origin" in result.stderr
