"""A caching stub resolver for load-generator users: synchronous, on dnspython.

Locust users run it inside gevent's world, so this module imports neither gevent nor locust and
uses no asyncio; dnspython's blocking UDP exchange yields to other greenlets once gevent has
patched the socket module.

`CachingResolver.resolve(name)` answers from its cache while the entry's TTL lasts, exactly
like a real client cache: an answer of TTL t is reused while less than t seconds have passed
on `clock` and asked again from then on; a TTL 0 answer is never cached. It returns the first
address of the answer (what most clients connect to); `addresses` returns them all. Failures
are never cached (the lab's server sends no SOA, so RFC 2308 gives negative answers no TTL).

Errors, one small tree:

    ResolveError
     +-- NameNotFound    NXDOMAIN
     +-- NoAddress       the name exists but has no A record (NODATA)
     +-- ResolveTimeout  no answer within timeout_s
     +-- ServerFailure   SERVFAIL, REFUSED or another error code, or the server is unreachable
                         or answered nonsense

One query per miss, no retry: on loopback a lost datagram means the server is not there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

__all__ = [
    "CachingResolver",
    "Lookup",
    "NameNotFound",
    "NoAddress",
    "ResolveError",
    "ResolveTimeout",
    "ServerFailure",
    "udp_query",
]


class ResolveError(Exception):
    """A name could not be resolved to an address."""


class NameNotFound(ResolveError):
    """NXDOMAIN: the name does not exist."""


class NoAddress(ResolveError):
    """The name exists but has no A record."""


class ResolveTimeout(ResolveError):
    """No answer in time."""


class ServerFailure(ResolveError):
    """The server failed, refused, or could not be reached."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """One answer: its response code (dns.rcode numbers), A addresses and their TTL."""

    rcode: int
    addresses: tuple[str, ...] = ()
    ttl: int = 0


Server = tuple[str, int]
Query = Callable[..., Lookup]
"""`query(name, server, timeout_s, source=None)`: ask `server` for the A records of a name
within a timeout (seconds), from address `source`; raises `ResolveError` subclasses for
transport failures."""


def udp_query(name: str, server: Server, timeout_s: float, source: str | None = None) -> Lookup:
    """One A query over UDP with dnspython, from the address `source` when given (the lab's
    DNS answers latency records for the region that address is in)."""
    host, port = server
    try:
        qname = dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise ResolveError(f"{name!r}: not a domain name: {exc}") from None
    query = dns.message.make_query(qname, dns.rdatatype.A)
    try:
        reply = dns.query.udp(query, host, port=port, timeout=timeout_s, source=source)
    except dns.exception.Timeout:
        raise ResolveTimeout(f"{name}: no answer from {host}:{port} in {timeout_s} s") from None
    except (OSError, dns.exception.DNSException) as exc:
        raise ServerFailure(f"{name}: {host}:{port}: {exc}") from None
    if reply.flags & dns.flags.TC:
        raise ServerFailure(f"{name}: truncated answer from {host}:{port} (no TCP fallback)")
    rrset = reply.get_rrset(reply.answer, qname, dns.rdataclass.IN, dns.rdatatype.A)
    if rrset is None:
        return Lookup(reply.rcode())
    addresses = tuple(rdata.to_text() for rdata in rrset)
    return Lookup(reply.rcode(), addresses, rrset.ttl)


class CachingResolver:
    """Resolves names through one server and keeps each answer for its TTL."""

    def __init__(
        self,
        server: Server,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = 1.0,
        query: Query = udp_query,
        source: str | None = None,
    ) -> None:
        self.server = server
        self.clock = clock
        self.timeout_s = timeout_s
        self.query = partial(query, source=source) if source is not None else query
        self.hits = 0
        self.misses = 0
        self._cache: dict[str, tuple[tuple[str, ...], float]] = {}

    def resolve(self, name: str) -> str:
        """One IPv4 address of `name` (the answer's first)."""
        return self.addresses(name)[0]

    def addresses(self, name: str) -> tuple[str, ...]:
        """Every address of `name`, from the cache while the TTL lasts."""
        key = name.lower() if name.endswith(".") else name.lower() + "."
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and now < cached[1]:
            self.hits += 1
            return cached[0]
        self.misses += 1
        self._cache.pop(key, None)
        lookup = self.query(key, self.server, self.timeout_s)
        addresses = _addresses(key, lookup)
        if lookup.ttl > 0:  # the TTL counts from when the answer arrived
            self._cache[key] = (addresses, self.clock() + lookup.ttl)
        return addresses

    def clear(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()


def _addresses(name: str, lookup: Lookup) -> tuple[str, ...]:
    if lookup.rcode == dns.rcode.NXDOMAIN:
        raise NameNotFound(f"{name}: no such name (NXDOMAIN)")
    if lookup.rcode != dns.rcode.NOERROR:
        code = dns.rcode.to_text(dns.rcode.Rcode(lookup.rcode))
        raise ServerFailure(f"{name}: server answered {code}")
    if not lookup.addresses:
        raise NoAddress(f"{name}: no A record")
    return lookup.addresses
