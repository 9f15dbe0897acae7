"""The simulated network (targets/http/netem.py): a client's region is its source address, and
the engine holds each request for the round trip from that region (seeded jitter)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from targets.http.client import _read_reply
from targets.http.messages import Request
from targets.http.netem import Network, NetworkError, Regions, region_of, source
from targets.http.server import HttpServer, ResponseWriter, delayed
from targets.http.upstream import UpstreamPool

MATRIX: dict[str, Any] = {
    "regions": ["us", "eu"],
    "rtt_ms": {"us": {"us": 2, "eu": 150}, "eu": {"eu": 3}},
    "jitter_ms": 10,
    "seed": 4,
}


@pytest.mark.core
def test_the_source_address_tells_the_region():
    names = ("us", "eu")
    assert (source(0), source(1), source(1, 300)) == ("127.100.0.1", "127.101.0.1", "127.101.1.44")
    assert [region_of(ip, names) for ip in ("127.100.0.9", "127.101.3.4")] == ["us", "eu"]
    assert [region_of(ip, names) for ip in ("127.0.0.1", "127.102.0.1", "10.100.0.1")] == [None] * 3


@pytest.mark.core
def test_delay_is_the_round_trip_from_the_clients_region_plus_seeded_jitter():
    eu = Network(Regions.from_json(MATRIX), "eu")
    delays = [eu.delay_s("127.100.0.1") for _ in range(200)]
    assert all(0.150 <= d <= 0.160 for d in delays)
    assert len(set(delays)) > 100  # jitter
    again = Network(Regions.from_json(MATRIX), "eu")
    assert [again.delay_s("127.100.0.1") for _ in range(200)] == delays  # seeded
    assert 0.003 <= eu.delay_s("127.101.0.7") <= 0.013
    assert eu.delay_s("127.0.0.1") == 0.0  # not in a region: a probe, a scrape
    assert eu.source_ip == "127.101.0.1"
    eu.slow("us", 500)
    assert eu.delay_s("127.100.0.1") >= 0.650
    with pytest.raises(NetworkError, match="region: unknown 'ap'"):
        eu.slow("ap", 1)


@pytest.mark.core
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"regions": []}, "network.regions: expected 1..100 distinct names"),
        ({"regions": ["us", "us"]}, "network.regions: expected 1..100 distinct names"),
        ({"rtt_ms": {"us": {"us": 1, "eu": 2}}}, "network.rtt_ms: the pair eu - eu is missing"),
        ({"rtt_ms": {"us": {"mars": 1}}}, "network.rtt_ms.us.mars: not a region"),
        ({"rtt_ms": {"us": {"us": -1}}}, "network.rtt_ms.us.us: must be 0..60000 ms"),
        ({"jitter_ms": "x"}, "network.jitter_ms: must be 0..60000"),
        ({"latency": 1}, "network.latency: unknown field"),
    ],
)
def test_a_bad_network_file_is_refused_naming_the_field(change: dict[str, Any], message: str):
    with pytest.raises(NetworkError) as error:
        Regions.from_json(MATRIX | change)
    assert str(error.value) == message


@pytest.mark.inprocess
async def test_a_server_holds_each_request_for_its_clients_round_trip():
    """Real sockets: a client bound in region us waits the us-eu round trip at an eu server;
    a client in no region does not; the upstream pool binds the source it is given."""
    seen: list[str] = []

    def handler(request: Request, writer: ResponseWriter) -> None:
        seen.append(request.client[0])
        writer.send(200, [], b"ok")

    eu = Network(Regions.from_json(MATRIX | {"jitter_ms": 0}), "eu")
    server = HttpServer(delayed(handler, eu))
    await server.listen("127.0.0.1", 0)
    host, port = server.address
    try:
        timings = {}
        for name, ip in (("far", source(0)), ("local", None)):
            pool = UpstreamPool(host, port, source=ip)
            began = time.perf_counter()
            for _ in range(3):
                conn = await pool.acquire()
                head = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
                reply = await _read_reply(conn.start(head, head_only=False, timeout_s=5), 5, 100)
                assert reply.status == 200
                pool.release(conn)
            timings[name] = time.perf_counter() - began
            pool.abort_all()
        assert seen == ["127.100.0.1"] * 3 + ["127.0.0.1"] * 3
        assert timings["far"] >= 3 * 0.150  # held: never less than three round trips
    finally:
        await server.shutdown(1)
        await asyncio.sleep(0)
