"""The caching stub resolver: TTLs on a fake clock with a fake query, then real UDP."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import dns.rcode
import pytest
from prometheus_client import CollectorRegistry

from targets.dns.client import (
    CachingResolver,
    Lookup,
    NameNotFound,
    NoAddress,
    ResolveError,
    ResolveTimeout,
    Server,
    ServerFailure,
)
from targets.dns.core import Zone, record_from_json
from targets.dns.server import DnsServer

pytestmark = pytest.mark.core


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeDns:
    """Answers from a dict name -> Lookup (or an exception to raise); records every query."""

    def __init__(self, answers: dict[str, Lookup | Exception]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, name: str, server: Server, timeout_s: float) -> Lookup:
        self.asked.append(name)
        answer = self.answers[name]
        if isinstance(answer, Exception):
            raise answer
        return answer


def resolver(answers: dict[str, Lookup | Exception]) -> tuple[CachingResolver, Clock, FakeDns]:
    clock, fake = Clock(), FakeDns(answers)
    return CachingResolver(("127.0.0.1", 53), clock=clock, query=fake), clock, fake


def ok(*addresses: str, ttl: int) -> Lookup:
    return Lookup(dns.rcode.NOERROR, addresses, ttl)


def test_answer_is_reused_until_its_ttl_runs_out():
    """A TTL 5 answer is served from the cache for 5 s, then asked again."""
    res, clock, fake = resolver({"shop.lab.": ok("127.0.0.1", ttl=5)})
    assert res.resolve("shop.lab.") == "127.0.0.1"
    fake.answers["shop.lab."] = ok("127.0.0.2", ttl=5)
    clock.now += 4.999
    assert res.resolve("shop.lab") == "127.0.0.1"  # stale but within the TTL, as a real cache
    clock.now += 0.001
    assert res.resolve("SHOP.lab.") == "127.0.0.2"
    assert (res.hits, res.misses) == (1, 2)
    assert fake.asked == ["shop.lab.", "shop.lab."]


def test_ttl_zero_is_never_cached():
    """A TTL 0 answer is used once: every resolve asks again."""
    res, _, fake = resolver({"shop.lab.": ok("127.0.0.1", ttl=0)})
    for _ in range(3):
        assert res.resolve("shop.lab.") == "127.0.0.1"
    assert (res.hits, res.misses, len(fake.asked)) == (0, 3, 3)


def test_resolve_returns_the_first_address_and_addresses_all():
    """resolve gives the answer's first address; addresses gives them all (one query)."""
    res, _, fake = resolver({"shop.lab.": ok("127.0.0.3", "127.0.0.4", ttl=9)})
    assert res.resolve("shop.lab.") == "127.0.0.3"
    assert res.addresses("shop.lab.") == ("127.0.0.3", "127.0.0.4")
    assert len(fake.asked) == 1


def test_clear_forgets_every_answer():
    """After clear the next resolve asks the server."""
    res, _, fake = resolver({"shop.lab.": ok("127.0.0.1", ttl=60)})
    res.resolve("shop.lab.")
    res.clear()
    res.resolve("shop.lab.")
    assert len(fake.asked) == 2


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Lookup(dns.rcode.NXDOMAIN), NameNotFound),
        (Lookup(dns.rcode.NOERROR), NoAddress),
        (Lookup(dns.rcode.SERVFAIL), ServerFailure),
        (Lookup(dns.rcode.REFUSED), ServerFailure),
        (ResolveTimeout("no answer"), ResolveTimeout),
    ],
)
def test_failures_raise_their_error_and_are_not_cached(answer, error):
    """NXDOMAIN, NODATA, SERVFAIL, REFUSED and timeouts raise their own ResolveError; the next
    resolve asks again."""
    res, _, fake = resolver({"x.lab.": answer})
    for _ in range(2):
        with pytest.raises(error):
            res.resolve("x.lab.")
        assert issubclass(error, ResolveError)
    assert len(fake.asked) == 2


# --- real UDP ------------------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    zone = Zone.from_json(
        {"zone": "lab.", "records": [{"name": "shop.lab.", "ttl": 30, "values": ["127.0.0.7"]}]},
        rng=random.Random(0),
    )
    server = DnsServer(zone, CollectorRegistry())
    await server.listen("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


@pytest.mark.inprocess
async def test_udp_answers_and_errors(server):
    """Over UDP: an address with its TTL cached; NXDOMAIN and REFUSED raise their errors."""
    clock = Clock()
    res = CachingResolver(server.address, clock=clock, timeout_s=5)
    assert await asyncio.to_thread(res.resolve, "shop.lab.") == "127.0.0.7"
    server.replace("shop.lab.", [record_from_json({"values": ["127.0.0.8"]}, "r", "shop.lab.")])
    clock.now += 29
    assert await asyncio.to_thread(res.resolve, "shop.lab.") == "127.0.0.7"
    clock.now += 1
    assert await asyncio.to_thread(res.resolve, "shop.lab.") == "127.0.0.8"
    with pytest.raises(NameNotFound):
        await asyncio.to_thread(res.resolve, "nope.lab.")
    with pytest.raises(ServerFailure, match="REFUSED"):
        await asyncio.to_thread(res.resolve, "example.com.")


@pytest.mark.inprocess
async def test_udp_timeout_when_nobody_answers(server):
    """A server that never answers raises ResolveTimeout after timeout_s."""
    host, port = server.address
    await server.close()  # the port is free now: nothing answers (ICMP may refuse instead)
    res = CachingResolver((host, port), timeout_s=0.2)
    with pytest.raises((ResolveTimeout, ServerFailure)):
        await asyncio.to_thread(res.resolve, "shop.lab.")
