"""The simple-request fast path (`targets.http.simple`) answers byte for byte as httptools does:
the same parsed heads, and the same bytes on the wire from the engine and from the CDN edge,
for pipelined requests, heads split across reads, HEAD, conditional and keyed requests, and
requests it leaves to httptools (malformed, with a body, HTTP/1.0, closing, upgrading)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.cdn.core import Response, on_origin
from targets.cdn.edge import Edge, EdgeConfig, _Stored
from targets.cdn.policy import KeyPolicy, QueryMode
from targets.http.messages import Headers, Request
from targets.http.server import Handler, HttpServer, ResponseWriter, ServerLimits
from targets.http.simple import SimpleReader, simple_request

pytestmark = pytest.mark.core

NOW = 1_000_000.0


class _Head:
    """What httptools reads of one request head (the oracle)."""

    def __init__(self, raw: bytes) -> None:
        self.url = b""
        self.headers: Headers = []
        self.done = False
        self.parser = httptools.HttpRequestParser(self)
        self.parser.feed_data(raw)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        self.done = True


def check_parse(raw: bytes) -> None:
    """`simple_request` reads `raw` as httptools does, or leaves it to httptools."""
    simple = simple_request(raw, 0, 64 * 1024)
    if simple is None:
        return
    head = _Head(raw)
    assert head.done
    method, target, headers, end = simple
    assert (method, target, headers, end) == (
        head.parser.get_method().decode(),
        head.url,
        head.headers,
        len(raw),
    )
    assert head.parser.should_keep_alive()
    assert head.parser.get_http_version() == "1.1"


_names = st.one_of(
    st.sampled_from(["Host", "Accept", "X-A", "a", "Expect", "Connection"]),
    st.text(alphabet="aZ-_!|~ :\t\x01\x80", min_size=0, max_size=4),
)
_values = st.text(alphabet="az 09:/\t\"'\x00\x7f\x80\xff", min_size=0, max_size=6)


@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "get", "GET ", ""]),
    target=st.text(alphabet='/a?=&%#*:"{} \x00\x7f\x80', min_size=0, max_size=6),
    version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "http/1.1"]),
    fields=st.lists(
        st.tuples(_names, st.sampled_from([":", ": ", ":  ", " :"]), _values), max_size=4
    ),
    end=st.sampled_from(["\r\n", "\n", ""]),
)
@settings(max_examples=600)
def test_simple_heads_parse_as_httptools_reads_them(
    method: str, target: str, version: str, fields: list[tuple[str, str, str]], end: str
) -> None:
    """Any head `simple_request` accepts, httptools reads the same (method, target, headers)."""
    lines = [f"{method} {target} {version}\r\n", *(f"{n}{c}{v}\r\n" for n, c, v in fields), end]
    check_parse("".join(lines).encode("latin-1"))


@pytest.mark.parametrize(
    ("raw", "simple"),
    [
        (b"GET /hot HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", True),
        (b"HEAD /a?x=1 HTTP/1.1\r\nHost: a\r\nAccept:text/html\r\nX-E:\r\nX-T: v  \r\n\r\n", True),
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b'GET / HTTP/1.1\r\nIf-None-Match: "v1"\r\n\r\n', True),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nconnection: keep-alive\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost:  a\r\n\r\n", False),  # llhttp skips the second space too
        (b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n", False),
        (b"GET http://a/b HTTP/1.1\r\n\r\n", False),
        (b"POST / HTTP/1.1\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", False),  # not complete yet
    ],
)
def test_which_heads_are_simple(raw: bytes, simple: bool) -> None:
    """Plain GET and HEAD heads are simple; framing, connection headers and odd bytes are not."""
    assert (simple_request(raw, 0, 1024) is not None) is simple
    check_parse(raw)


def test_a_repeated_head_is_read_once_and_each_request_gets_its_own_headers() -> None:
    """The reader gives a head sent again the same reading, in a new list of headers."""
    reader = SimpleReader(1024)
    first, again = reader.read(GET, 0), reader.read(GET, 0)
    assert first == again == simple_request(GET, 0, 1024)
    assert first is not None
    assert again is not None
    assert first[2] is not again[2]
    assert reader.read(GET + GET, 0) == first  # not alone in its read: parsed
    assert reader.read(b"X" + GET, 1) == (*first[:3], len(GET) + 1)
    assert reader.read(GET[:-1], 0) is None


def test_a_head_over_the_limit_is_not_simple() -> None:
    """A head longer than the bound goes to httptools, which answers 431."""
    raw = b"GET / HTTP/1.1\r\nX: " + b"a" * 100 + b"\r\n\r\n"
    assert simple_request(raw, 0, len(raw)) is not None
    assert simple_request(raw, 0, len(raw) - 1) is None


# -- the engine and the edge, with and without the fast path ------------------------------------


class _Transport:
    """A socket stand-in that records each call the server makes on it (write, close, abort,
    pause_reading, resume_reading), with its arguments."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: self.log.append((name, *args))


def _echo(request: Request, writer: ResponseWriter) -> None:
    """Answers at once with everything the engine parsed of the request."""
    seen = (
        request.method,
        request.target,
        request.headers,
        request.version,
        request.keep_alive,
        request.content_length,
        request.chunked,
        request.path,
        request.query,
    )
    writer.send(200, [(b"x-seen", b"yes")], repr(seen).encode())


def _replay(handler: Handler, chunks: list[bytes], *, simple: bool) -> list[tuple[Any, ...]]:
    """What a connection of an `HttpServer` around `handler` does when `chunks` arrive."""
    conn: Any = HttpServer(handler, ServerLimits(name="t", max_header_bytes=512)).protocol()
    conn._simple = simple
    transport = _Transport()
    conn.connection_made(transport)
    for chunk in chunks:
        if ("close",) in transport.log or ("abort",) in transport.log:
            break
        conn.data_received(chunk)
        transport.log.append(("read", chunk))
    conn._deadline.cancel()
    return transport.log


GET = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
STREAMS = {
    "one": [GET],
    "repeated": [GET, GET, b"HEAD /a HTTP/1.1\r\nHost: a\r\n\r\n", GET, GET[:-1], b"\n", GET],
    "pipelined": [GET + b"HEAD /a?q=1 HTTP/1.1\r\nHost: a\r\n\r\n" + GET],
    "split": [GET[:9], GET[9:30], GET[30:] + GET[:5], GET[5:]],
    "split-after-simple": [GET + GET[:20], GET[20:] + GET],
    "head": [b"HEAD /a HTTP/1.1\r\nHost: a\r\n\r\n"],
    "conditional": [b'GET /a HTTP/1.1\r\nHost: a\r\nIf-None-Match: "v1"\r\n\r\n'],
    "keyed": [b"GET /a?lang=fr HTTP/1.1\r\nAccept-Language: fr\r\nCookie: s=1\r\n\r\n"],
    "malformed-after": [GET + b"GET /a HTTP/1.1\r\nX Y: z\r\n\r\n" + GET],
    "lf-only": [GET + b"GET /a HTTP/1.1\nHost: a\n\n" + GET],
    "body-then-simple": [b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" + GET],
    "get-with-body": [b"GET /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi" + GET],
    "close-then-more": [b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n" + GET],
    "http10-then-more": [b"GET /a HTTP/1.0\r\n\r\n", GET],
    "upgrade": [GET + b"GET /a HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n" + GET],
    "too-large": [GET + b"GET /a HTTP/1.1\r\nX: " + b"a" * 600 + b"\r\n\r\n"],
    "leading-crlf": [GET + b"\r\n" + GET],
}


@pytest.mark.inprocess
@pytest.mark.parametrize("stream", STREAMS.values(), ids=STREAMS.keys())
async def test_the_engine_answers_the_same_with_and_without_the_fast_path(
    stream: list[bytes],
) -> None:
    """Every write, close and pause is the same, in the same order, after each read."""
    assert _replay(_echo, stream, simple=True) == _replay(_echo, stream, simple=False)


KEY_POLICIES = {
    "path-only": KeyPolicy(),
    "keyed": KeyPolicy(
        query=QueryMode.ALL, headers=frozenset({"accept-language"}), cookies=frozenset({"s"})
    ),
}


def _edge(keys: KeyPolicy) -> Handler:
    """An edge on a fixed clock whose store holds an entry for every key it is asked: each
    request is a hit (the stored Vary and ETag go out with it)."""
    edge = Edge(EdgeConfig(name="edge-s", keys=keys), clock=lambda: NOW + 7)
    stored = (("Cache-Control", "max-age=60"), ("ETag", '"v1"'), ("Vary", "Accept"))

    def handler(request: Request, writer: ResponseWriter) -> Awaitable[None] | None:
        key = edge._key(request)
        if edge.store.peek(key) is None:
            response = Response(200, stored, key.encode())
            outcome = on_origin(
                None,
                response,
                key=key,
                path=request.path,
                policy=edge.ttls,
                requested_at=NOW,
                now=NOW,
            )
            assert outcome.entry is not None
            edge.store.put(key, _Stored(outcome.entry))
        return edge(request, writer)

    return handler


GETS = {name: stream for name, stream in STREAMS.items() if name != "body-then-simple"}


@pytest.mark.inprocess
@pytest.mark.parametrize("keys", KEY_POLICIES.values(), ids=KEY_POLICIES.keys())
@pytest.mark.parametrize("stream", GETS.values(), ids=GETS.keys())
async def test_the_edge_answers_hits_the_same_with_and_without_the_fast_path(
    keys: KeyPolicy, stream: list[bytes]
) -> None:
    """Hits (keys from query, header and cookie, HEAD, conditional heads, pipelines) and the
    engine's refusals are the same bytes either way."""
    fast = _replay(_edge(keys), stream, simple=True)
    assert fast == _replay(_edge(keys), stream, simple=False)
    assert any(b"x-cache: Hit from edge-s" in data for _, data in fast)
