"""The DNS adapter: a UDP `asyncio.DatagramProtocol` that answers from a `Zone` with dnslib.

`DnsProtocol.respond(data)` turns one datagram into the bytes to send back, or None:

    a query with one IN question     the zone's answer, AA set (not on REFUSED), RA clear,
                                     the question echoed as asked (case kept), TTLs from records
    other class than IN              REFUSED
    opcode other than QUERY          NOTIMP
    zero or several questions        FORMERR
    unparseable after the header     FORMERR with the header's id, no question
    shorter than a header, or a      dropped (`dns_dropped_total`); answering responses could
    response (QR set)                loop two servers into each other

Nothing a datagram holds makes `datagram_received` raise; an unexpected failure is logged and
answered SERVFAIL. UDP only, no EDNS (a query's OPT record is ignored, so the answer has none;
answers are small enough for 512 bytes) and no TCP fallback.

`DnsServer` puts the pieces of one server together: zone, metrics, protocol, health checker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final, cast

import dnslib  # type: ignore[import-untyped]  # dnslib ships no type hints
from dnslib.buffer import Buffer  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry

from targets.dns.core import Rcode, Record, Zone
from targets.dns.health import HealthChecker
from targets.dns.metrics import OTHER, DnsMetrics

log = logging.getLogger(__name__)

HEADER_BYTES: Final = 12
_PLAIN: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def presentation(labels: Sequence[bytes]) -> str:
    """A wire name as lowercase text; bytes other than letters, digits, '-' and '_' become
    `\\DDD` escapes, so a label holding a dot can never pass for two labels."""
    if not labels:
        return "."
    return "".join(
        "".join(chr(b) if b in _PLAIN else f"\\{b:03d}" for b in label).lower() + "."
        for label in labels
    )


class DnsProtocol(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone, metrics: DnsMetrics) -> None:
        self.zone = zone
        self.metrics = metrics
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            reply = self.respond(data, str(addr[0]))
        except Exception:
            log.exception("failed to answer a %d-byte datagram from %s", len(data), addr)
            reply = _header_only(data, Rcode.SERVFAIL)
            if reply is not None:
                self.metrics.query(OTHER, OTHER, Rcode.SERVFAIL)
        if reply is None:
            self.metrics.dropped.inc()
        elif self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error (a client went away?): %s", exc)

    def respond(self, data: bytes, source: str | None = None) -> bytes | None:
        """The reply to one datagram from the address `source`, or None to drop it."""
        try:
            request = dnslib.DNSRecord.parse(data)
        except Exception:  # dnslib raises DNSError, and now and then others, on bad input
            reply = _header_only(data, Rcode.FORMERR)
            if reply is not None:
                self.metrics.query(OTHER, OTHER, Rcode.FORMERR)
            return reply
        header = request.header
        if header.qr:
            return None
        if header.opcode != dnslib.OPCODE.QUERY:
            self.metrics.query(OTHER, OTHER, Rcode.NOTIMP)
            return _header_only(data, Rcode.NOTIMP)
        if len(request.questions) != 1:
            self.metrics.query(OTHER, OTHER, Rcode.FORMERR)
            return _header_only(data, Rcode.FORMERR)
        question = request.questions[0]
        qtype = dnslib.QTYPE.get(question.qtype)
        qtype = qtype if isinstance(qtype, str) else f"TYPE{question.qtype}"
        name = presentation(question.qname.label)
        if question.qclass != dnslib.CLASS.IN:
            self.metrics.query(OTHER, qtype, Rcode.REFUSED)
            return bytes(self._reply(request, Rcode.REFUSED, aa=False).pack())
        answer = self.zone.resolve(name, qtype, source)
        reply = self._reply(request, answer.rcode, aa=answer.authoritative)
        for value in answer.records:
            reply.add_answer(
                dnslib.RR(
                    question.qname, dnslib.QTYPE.A, dnslib.CLASS.IN, answer.ttl, dnslib.A(value)
                )
            )
        label = self.metrics.label(name)
        self.metrics.query(label, qtype, answer.rcode)
        if answer.set_id is not None:
            self.metrics.answers.inc((label, answer.set_id))
            region = answer.region
            if region is not None:
                self.metrics.region_answers.inc((label, region, answer.set_id))
        return bytes(reply.pack())

    @staticmethod
    def _reply(request: Any, rcode: Rcode, *, aa: bool) -> Any:
        header = dnslib.DNSHeader(
            id=request.header.id,
            qr=1,
            opcode=request.header.opcode,
            aa=int(aa),
            rd=request.header.rd,
            ra=0,
            rcode=int(rcode),
        )
        return dnslib.DNSRecord(header, questions=list(request.questions))


def _header_only(data: bytes, rcode: Rcode) -> bytes | None:
    """A reply of just a header echoing the query's id, opcode and RD; None when `data` has no
    whole header or is itself a response."""
    if len(data) < HEADER_BYTES:
        return None
    try:
        query = dnslib.DNSHeader.parse(Buffer(data[:HEADER_BYTES]))
    except Exception:  # a 12-byte header always unpacks; stay safe anyway
        return None
    if query.qr:
        return None
    header = dnslib.DNSHeader(
        id=query.id, qr=1, opcode=query.opcode, rd=query.rd, ra=0, rcode=int(rcode)
    )
    return bytes(dnslib.DNSRecord(header).pack())


class DnsServer:
    """One authoritative server: a zone, its metrics, a UDP socket and its health checks."""

    def __init__(self, zone: Zone, registry: CollectorRegistry) -> None:
        self.zone = zone
        self.registry = registry
        self.metrics = DnsMetrics(registry, zone)
        self.protocol = DnsProtocol(zone, self.metrics)
        self.checker = HealthChecker(zone, self.metrics)
        self._transport: asyncio.DatagramTransport | None = None

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self.protocol, local_addr=(host, port)
        )
        self._transport = transport

    @property
    def address(self) -> tuple[str, int]:
        assert self._transport is not None, "not listening"
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def start_health_checks(self) -> None:
        self.checker.start()

    def replace(self, name: str, records: Sequence[Record]) -> None:
        """Replace the record set of `name` (see `Zone.replace`); `ZoneError` changes nothing."""
        self.zone.replace(name, records)
        self.metrics.zone_changed()

    async def close(self) -> None:
        await self.checker.close()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
