"""HTTP/1.1 message pieces shared by the server side and the upstream side.

Header names are kept as lowercase bytes, in arrival order: `Headers` is a list of (name, value)
pairs, because a proxy must keep repeated headers and their order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from types import MappingProxyType

import httptools

from targets.http.body import BodyReader

Headers = list[tuple[bytes, bytes]]

# RFC 9110 section 7.6.1, plus the de facto ones every proxy drops.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_STATUS_LINES: Mapping[int, bytes] = MappingProxyType(
    {code: f"HTTP/1.1 {code} {code.phrase}\r\n".encode("latin-1") for code in HTTPStatus}
)


def status_line(status: int) -> bytes:
    """`HTTP/1.1 200 OK\\r\\n` (made once per known status code)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        return f"HTTP/1.1 {status} Unknown\r\n".encode("latin-1")
    return line


def connection_tokens(headers: Headers) -> frozenset[bytes]:
    """The lowercase tokens of every `Connection` header."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def end_to_end(headers: Headers) -> Headers:
    """`headers` without hop-by-hop ones, including those the `Connection` header names."""
    named = connection_tokens(headers)
    drop = HOP_BY_HOP | named if named else HOP_BY_HOP
    return [(n, v) for n, v in headers if n not in drop and n != b"content-length"]


def header_value(headers: Headers, name: bytes) -> bytes | None:
    """The first value of header `name` (lowercase), or None."""
    for n, v in headers:
        if n == name:
            return v
    return None


class Request:
    """One parsed request head plus its streamed body.

    The engine makes one per request by position: on Python 3.11 a class called with keywords
    first gathers them in a dict, which doubles the cost of making it."""

    __slots__ = (
        "_path",
        "_query",
        "body",
        "chunked",
        "client",
        "content_length",
        "headers",
        "keep_alive",
        "method",
        "target",
        "version",
    )

    def __init__(  # noqa: PLR0917 - by position on the request path (see the class docstring)
        self,
        method: str,
        target: bytes,
        headers: Headers,
        version: str,
        keep_alive: bool,
        client: tuple[str, int],
        body: BodyReader,
        content_length: int | None,
        chunked: bool,
    ) -> None:
        self.method = method
        self.target = target  # the raw request-target, as the client sent it
        self.headers = headers
        self.version = version  # "1.1" or "1.0"
        self.keep_alive = keep_alive
        self.client = client
        self.body = body
        self.content_length = content_length
        self.chunked = chunked
        self._path: str | None = None  # parsed on first use: a proxy forwards `target` as is
        self._query = ""

    @property
    def path(self) -> str:
        path = self._path
        if path is None:
            path = self._parse_target()
        return path

    @property
    def query(self) -> str:
        if self._path is None:
            self._parse_target()
        return self._query

    def _parse_target(self) -> str:
        target = self.target
        if not target.startswith(b"/"):  # absolute-form (http://host/path) or asterisk-form
            try:
                parsed = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                pass
            else:
                query = b"?" + parsed.query if parsed.query else b""
                target = (parsed.path or b"/") + query
        raw_path, _, raw_query = target.partition(b"?")
        path = self._path = raw_path.decode("latin-1")
        self._query = raw_query.decode("latin-1")
        return path

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def header(self, name: bytes) -> bytes | None:
        return header_value(self.headers, name)


def error_body(status: int, error: str, detail: str, source: str) -> bytes:
    """The JSON body of a response the engine itself makes: which error, and who made it."""
    return json.dumps(
        {"status": status, "error": error, "detail": detail, "source": source},
        separators=(",", ":"),
    ).encode()
