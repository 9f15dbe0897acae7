"""The simple request: a bodiless HTTP/1.1 GET or HEAD the server reads without httptools.

Most requests of a load test are one short head: ``GET /path HTTP/1.1``, a few plain headers,
no body, kept alive. httptools parses them in C but calls back into Python for the message,
the URL, each header and the end; one regular expression over the whole head is cheaper.
`simple_request` accepts only what llhttp (strict) accepts in the same way: a request line of
ordinary path characters, header names that are tokens, values of printable ASCII without
leading whitespace (llhttp skips it; a value's trailing spaces are kept by both), and none of
the headers that change framing or the connection (``Content-Length``, ``Transfer-Encoding``,
``Connection``, ``Proxy-Connection``, ``Upgrade``, ``Expect``). Anything else, a head split
across reads included, returns None and goes to httptools as before, so a refused or odd
request gets the same answer either way (tests/http/test_simple.py compares both).
"""

from __future__ import annotations

import re
from typing import Final

from targets.http.messages import Headers

_HEAD: Final = re.compile(
    rb"(GET|HEAD) (/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*) HTTP/1\.1\r\n"
    rb"((?:[A-Za-z0-9!#$%&'*+\-.^_`|~]+: ?(?:[\x21-\x7e][\x20-\x7e]*)?\r\n)*)\r\n"
)
_FIELD: Final = re.compile(rb"([^:]+): ?([^\r]*)\r\n")
_METHODS: Final = {b"GET": "GET", b"HEAD": "HEAD"}
_NOT_SIMPLE: Final = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"proxy-connection",
        b"upgrade",
        b"expect",
    }
)

SimpleRequest = tuple[str, bytes, Headers, int]
"""Method, request-target, headers (lowercase names, in order), where the head ends."""


def simple_request(data: bytes, pos: int, max_bytes: int) -> SimpleRequest | None:
    """The simple request whose head starts at `data[pos]` and is complete in `data`, at most
    `max_bytes` long; None when there is none there (let httptools read it)."""
    match = _HEAD.match(data, pos)
    if match is None:
        return None
    end = match.end()
    if end - pos > max_bytes:
        return None
    method, target, block = match.groups()
    headers = [(name.lower(), value) for name, value in _FIELD.findall(block)]
    for name, _ in headers:
        if name in _NOT_SIMPLE:
            return None
    return _METHODS[method], target, headers, end


class SimpleReader:
    """`simple_request` for one connection, remembering the last head that came alone in one
    read: a client sending the same head again (a load generator, a poller, a browser
    reloading) costs one comparison. Each request gets a list of headers of its own."""

    __slots__ = ("_last", "_parsed", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._last = b""
        self._parsed: tuple[str, bytes, tuple[tuple[bytes, bytes], ...], int] = ("", b"", (), 0)

    def read(self, data: bytes, pos: int) -> SimpleRequest | None:
        """As `simple_request(data, pos, self.max_bytes)`."""
        if pos == 0 and data == self._last:
            method, target, headers, end = self._parsed
            return method, target, list(headers), end
        simple = simple_request(data, pos, self.max_bytes)
        if simple is not None and pos == 0 and simple[3] == len(data):
            method, target, fields, end = simple
            self._last = data
            self._parsed = (method, target, tuple(fields), end)
        return simple
