"""The DNS adapter on a real UDP socket on 127.0.0.1, queried with dnspython and raw bytes."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from targets.dns.core import Zone
from targets.dns.server import DnsServer, presentation

pytestmark = pytest.mark.inprocess

ZONE = {
    "zone": "lab.",
    "records": [
        {"name": "shop.lab.", "ttl": 30, "values": ["127.0.0.1", "127.0.0.2"]},
        {"name": "api.lab.", "ttl": 5, "set_id": "blue", "weight": 1, "values": ["127.0.0.11"]},
        {"name": "api.lab.", "ttl": 5, "set_id": "green", "weight": 0, "values": ["127.0.0.12"]},
    ],
    "health_checks": [],
}


def make_server() -> DnsServer:
    return DnsServer(Zone.from_json(ZONE, rng=random.Random(0)), CollectorRegistry())


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    server = make_server()
    await server.listen("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


async def ask(server: DnsServer, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    host, port = server.address
    return await dns.asyncquery.udp(query, host, port=port, timeout=5)


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.received.put_nowait(data)


class RawClient:
    """Sends arbitrary bytes and reads whatever comes back, in order."""

    def __init__(self, transport: asyncio.DatagramTransport, proto: _Collect) -> None:
        self.transport = transport
        self.proto = proto

    def send(self, data: bytes) -> None:
        self.transport.sendto(data)

    async def next_reply(self) -> dns.message.Message:
        data = await asyncio.wait_for(self.proto.received.get(), 5)
        return dns.message.from_wire(data)

    async def still_answers(self, qid: int) -> None:
        """A valid query sent now is the next thing answered: whatever was sent before got
        no reply (UDP on loopback keeps the order of one sender's datagrams)."""
        query = dns.message.make_query("shop.lab.", "A", id=qid)
        self.send(query.to_wire())
        reply = await self.next_reply()
        assert reply.id == qid
        assert reply.rcode() == dns.rcode.NOERROR
        assert len(reply.answer) == 1


@pytest.fixture
async def raw(server: DnsServer) -> AsyncIterator[RawClient]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Collect, remote_addr=server.address)
    try:
        yield RawClient(transport, proto)
    finally:
        transport.close()


def header(qid: int, flags: int = 0x0100, qd: int = 1, an: int = 0) -> bytes:
    return struct.pack("!6H", qid, flags, qd, an, 0, 0)


QUESTION = b"\x04shop\x03lab\x00\x00\x01\x00\x01"


def samples(server: DnsServer, name: str) -> dict[tuple[str, ...], float]:
    """The samples of one metric family, keyed by label values."""
    out = {}
    for family in server.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sample.labels.values())] = sample.value
    return out


# --- answers -------------------------------------------------------------------------------------


async def test_a_answer_has_ttl_aa_and_the_question_echoed(server):
    """An A query gets every value with the record's TTL, AA set, RA clear, question as asked."""
    reply = await ask(server, "ShOp.LaB.")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert not reply.flags & dns.flags.RA
    assert str(reply.question[0].name) == "ShOp.LaB."  # 0x20 case kept
    [rrset] = reply.answer
    assert rrset.ttl == 30
    assert sorted(r.to_text() for r in rrset) == ["127.0.0.1", "127.0.0.2"]


async def test_nxdomain_nodata_refused(server):
    """Unknown name: NXDOMAIN (AA); other type: NODATA; outside the zone: REFUSED (no AA)."""
    reply = await ask(server, "nope.lab.")
    assert (reply.rcode(), bool(reply.flags & dns.flags.AA)) == (dns.rcode.NXDOMAIN, True)
    reply = await ask(server, "shop.lab.", "AAAA")
    assert (reply.rcode(), reply.answer) == (dns.rcode.NOERROR, [])
    reply = await ask(server, "example.com.")
    assert (reply.rcode(), bool(reply.flags & dns.flags.AA)) == (dns.rcode.REFUSED, False)


async def test_weighted_answer_is_one_record(server):
    """A weighted name answers the one record chosen (weight 0 never, here)."""
    for _ in range(5):
        reply = await ask(server, "api.lab.")
        assert [r.to_text() for r in reply.answer[0]] == ["127.0.0.11"]
        assert reply.answer[0].ttl == 5


async def test_other_class_is_refused_and_other_opcode_not_implemented(server):
    """A CH-class query is REFUSED; a NOTIFY (opcode 4) gets NOTIMP."""
    query = dns.message.make_query("shop.lab.", "A", rdclass=dns.rdataclass.CH)
    reply = await dns.asyncquery.udp(query, server.address[0], port=server.address[1], timeout=5)
    assert reply.rcode() == dns.rcode.REFUSED
    query = dns.message.make_query("shop.lab.", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    reply = await dns.asyncquery.udp(query, server.address[0], port=server.address[1], timeout=5)
    assert reply.rcode() == dns.rcode.NOTIMP


# --- malformed input -----------------------------------------------------------------------------


async def test_malformed_datagrams_never_stop_it_answering(raw):
    """Garbage, a short header, a header alone, a missing question, two questions and a
    response get FORMERR or nothing; the next valid query is answered every time."""
    formerr = {
        "header only": header(0x0A01, qd=0),
        "question missing": header(0x0A02),
        "question cut": header(0x0A03) + QUESTION[:7],
        "two questions": header(0x0A04, qd=2) + QUESTION + QUESTION,
        "bad pointer": header(0x0A05) + b"\xc0\xff\x00\x01\x00\x01",
        "answer count lies": header(0x0A06, an=3) + QUESTION,
    }
    for i, (case, data) in enumerate(formerr.items()):
        raw.send(data)
        reply = await raw.next_reply()
        assert (reply.id, reply.rcode()) == (struct.unpack("!H", data[:2])[0], dns.rcode.FORMERR), (
            case
        )
        assert reply.flags & dns.flags.QR
        await raw.still_answers(100 + i)
    dropped = [b"", b"\x00", b"\x12\x34\x01", header(0x0B01)[:11], header(0x0B02, flags=0x8100)]
    for i, data in enumerate(dropped):
        raw.send(data)
        await raw.still_answers(200 + i)


async def test_random_bytes_never_stop_it_answering(raw):
    """Random datagrams (seeded), 30 at a time, each batch followed by a valid query: that
    query is always answered (batches keep within the sockets' receive buffers)."""
    rng = random.Random(1)
    for batch in range(10):
        for _ in range(30):
            raw.send(rng.randbytes(rng.randrange(0, 80)))
        qid = 4000 + batch
        raw.send(dns.message.make_query("shop.lab.", "A", id=qid).to_wire())
        while (reply := await raw.next_reply()).id != qid:
            assert reply.flags & dns.flags.QR
        assert reply.rcode() == dns.rcode.NOERROR


@pytest.mark.core
@settings(max_examples=500, deadline=None)
@given(
    st.binary(max_size=120)
    | st.builds(lambda h, t: h + t, st.binary(min_size=12, max_size=12), st.binary(max_size=60))
)
def test_respond_never_raises(data):
    """Any bytes: respond returns None or a reply echoing the id with QR set; never raises."""
    reply = make_server().protocol.respond(data)
    if reply is not None:
        message = dns.message.from_wire(reply)
        assert message.id == struct.unpack("!H", data[:2])[0]
        assert message.flags & dns.flags.QR


@pytest.mark.core
def test_presentation_escapes_what_could_pass_for_a_dot():
    """A label holding a dot, or odd bytes, is escaped, so it can never match a zone name."""
    assert presentation([b"SHOP", b"lab"]) == "shop.lab."
    assert presentation([b"shop.lab"]) == "shop\\046lab."
    assert presentation([b"a\x00b", b"lab"]) == "a\\000b.lab."
    assert presentation([]) == "."


# --- metrics -------------------------------------------------------------------------------------


async def test_queries_are_counted_by_name_qtype_and_rcode(server):
    """dns_queries_total counts per record name; unknown and outside names are `_other`."""
    for _ in range(3):
        await ask(server, "shop.lab.")
    await ask(server, "SHOP.lab.", "AAAA")
    await ask(server, "nope.lab.")
    await ask(server, "example.com.")
    await ask(server, "api.lab.")
    queries = samples(server, "dns_queries_total")
    assert queries[("shop.lab.", "A", "NOERROR")] == 3
    assert queries[("shop.lab.", "AAAA", "NOERROR")] == 1
    assert queries[("_other", "A", "NXDOMAIN")] == 1
    assert queries[("_other", "A", "REFUSED")] == 1
    answers = samples(server, "dns_answers_total")
    assert answers == {("api.lab.", "blue"): 1, ("api.lab.", "green"): 0}


async def test_malformed_and_dropped_datagrams_are_counted(raw, server):
    """FORMERR replies count under `_other`; dropped datagrams in dns_dropped_total."""
    raw.send(header(1, qd=0))
    await raw.next_reply()
    raw.send(b"\x01")
    await raw.still_answers(2)
    assert samples(server, "dns_queries_total")[("_other", "_other", "FORMERR")] == 1
    assert samples(server, "dns_dropped_total") == {(): 1}


@pytest.mark.core
def test_series_exist_at_zero_before_the_first_query():
    """Every record name and set id has its series at 0 from the start."""
    server = make_server()
    assert samples(server, "dns_queries_total") == {
        ("shop.lab.", "A", "NOERROR"): 0,
        ("api.lab.", "A", "NOERROR"): 0,
    }
    assert samples(server, "dns_answers_total") == {
        ("api.lab.", "blue"): 0,
        ("api.lab.", "green"): 0,
    }


async def test_an_internal_error_is_answered_servfail(raw, server, monkeypatch):
    """A bug while answering is logged and answered SERVFAIL; the server keeps answering."""

    def broken(qname: str, qtype: str) -> None:
        raise RuntimeError("bug")

    with monkeypatch.context() as patch:
        patch.setattr(server.zone, "resolve", broken)
        raw.send(dns.message.make_query("shop.lab.", "A", id=77).to_wire())
        reply = await raw.next_reply()
        assert (reply.id, reply.rcode()) == (77, dns.rcode.SERVFAIL)
    await raw.still_answers(78)
