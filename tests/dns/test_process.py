"""`python -m targets.dns` as a real process: flags, bad zone files, and one end-to-end run."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import pytest

from targets.dns.__main__ import load_zone
from targets.dns.client import CachingResolver
from targets.dns.core import ZoneError
from targets.http.client import fetch, fetch_json
from tests.helpers import run_target, start_target

pytestmark = pytest.mark.e2e

ZONE: dict[str, Any] = {
    "zone": "lab.",
    "records": [
        {"name": "shop.lab.", "ttl": 2, "values": ["127.0.0.1"]},
        {"name": "api.lab.", "ttl": 2, "set_id": "blue", "weight": 1, "values": ["127.0.0.11"]},
    ],
}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_target("targets.dns", *args)


def write_zone(tmp_path: Path, zone: object) -> str:
    path = tmp_path / "zone.json"
    path.write_text(json.dumps(zone))
    return str(path)


def test_help_documents_the_flags():
    """--help lists the zone file, listen, control and token flags."""
    out = run_cli("--help").stdout
    for flag in ("--zone-file", "--listen", "--control-listen", "--token-file", "--seed"):
        assert flag in out


def test_bad_zone_file_exits_2_naming_file_and_field(tmp_path):
    """A zone with a bad field stops the process before it listens, naming file and field."""
    zone = json.loads(json.dumps(ZONE))
    zone["records"][1]["weight"] = 300
    path = write_zone(tmp_path, zone)
    result = run_cli("--zone-file", path)
    assert result.returncode == 2
    assert f"{path}: records[1].weight: must be 0..255 (got 300)" in result.stderr
    assert result.stdout == ""


@pytest.mark.core
def test_unreadable_or_broken_zone_files_are_zone_errors(tmp_path):
    """A missing file and broken JSON are refused with the file's name (in-process)."""
    with pytest.raises(ZoneError) as missing:
        load_zone(str(tmp_path / "missing.json"), random.Random(0))
    assert str(missing.value).startswith(f"--zone-file: cannot read {tmp_path}/missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ZoneError) as bad_json:
        load_zone(str(broken), random.Random(0))
    assert str(bad_json.value).startswith(f"{broken}: not JSON: ")


def test_bad_listen_address_exits_2(tmp_path):
    """--listen without a port stops the process with exit code 2, naming the flag."""
    result = run_cli("--zone-file", write_zone(tmp_path, ZONE), "--listen", "127.0.0.1")
    assert result.returncode == 2
    assert "--listen: expected HOST:PORT" in result.stderr


async def test_record_change_is_seen_once_the_ttl_runs_out(tmp_path):
    """The real process answers, takes a record change through the control API, and a caching
    client sees the new address only once the old answer's TTL has run out."""
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    with start_target(
        "targets.dns",
        *("--zone-file", write_zone(tmp_path, ZONE)),
        *("--token-file", str(token_file)),
        *("--seed", "1"),
        log=tmp_path / "stderr.log",
    ) as proc:
        ready = proc.ready
        host, _, port = ready["address"].rpartition(":")
        chost, _, cport = ready["control"].rpartition(":")

        reply = await dns.asyncquery.udp(
            dns.message.make_query("shop.lab.", "A"), host, port=int(port), timeout=5
        )
        assert reply.flags & dns.flags.AA
        assert [r.to_text() for r in reply.answer[0]] == ["127.0.0.1"]
        assert reply.answer[0].ttl == 2

        now = [0.0]
        client = CachingResolver((host, int(port)), clock=lambda: now[0], timeout_s=5)
        assert await asyncio.to_thread(client.resolve, "shop.lab.") == "127.0.0.1"

        auth = [(b"authorization", b"Bearer s3cret")]
        change = {"records": [{"ttl": 2, "values": ["127.0.0.2"]}]}
        denied = await fetch_json(chost, int(cport), "PUT", "/records/shop.lab.", change)
        assert denied.status == 401
        changed = await fetch_json(
            chost, int(cport), "PUT", "/records/shop.lab.", change, headers=auth, timeout_s=10
        )
        assert changed.status == 200, changed.body

        now[0] = 1.9  # within the TTL: the cached, stale answer
        assert await asyncio.to_thread(client.resolve, "shop.lab.") == "127.0.0.1"
        now[0] = 2.0  # the TTL has run out: asked again
        assert await asyncio.to_thread(client.resolve, "shop.lab.") == "127.0.0.2"
        assert (client.hits, client.misses) == (1, 2)

        await fetch(chost, int(cport), "GET", "/metrics", timeout_s=10)  # counters at 0 first
        metrics = (await fetch(chost, int(cport), "GET", "/metrics", timeout_s=10)).body.decode()
        assert 'dns_queries_total{name="shop.lab.",qtype="A",rcode="NOERROR"} 3.0' in metrics

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert proc.read_stdout() == ""  # exactly one line on stdout


async def test_latency_records_answer_by_the_querys_source_address(tmp_path):
    """The real process: a client querying from an address in region eu's subnet gets the eu
    edge, one in ap (no edge of its own) the nearest, and the answers are counted per region."""
    regions = {
        "regions": ["us", "eu", "ap"],
        "rtt_ms": {
            "us": {"us": 4, "eu": 80, "ap": 200},
            "eu": {"eu": 4, "ap": 120},
            "ap": {"ap": 4},
        },
    }
    zone = {
        "zone": "lab.",
        "regions": regions,
        "records": [
            {"name": "cdn.lab.", "set_id": r, "region": r, "values": [f"127.200.0.{i}"]}
            for i, r in ((1, "us"), (2, "eu"))
        ],
    }
    with start_target(
        "targets.dns", "--zone-file", write_zone(tmp_path, zone), log=tmp_path / "stderr.log"
    ) as proc:
        host, _, port = proc.ready["address"].rpartition(":")
        server = (host, int(port))
        answers = {
            region: await asyncio.to_thread(
                CachingResolver(server, timeout_s=5, source=source).resolve, "cdn.lab"
            )
            for region, source in (("us", None), ("eu", "127.101.0.1"), ("ap", "127.102.0.9"))
        }
        assert answers == {"us": "127.200.0.1", "eu": "127.200.0.2", "ap": "127.200.0.2"}
        chost, _, cport = proc.ready["control"].rpartition(":")
        await fetch(chost, int(cport), "GET", "/metrics", timeout_s=10)  # each series born at 0
        metrics = (await fetch(chost, int(cport), "GET", "/metrics", timeout_s=10)).body.decode()
        for region, set_id in (("us", "us"), ("eu", "eu"), ("ap", "eu")):
            labels = f'name="cdn.lab.",region="{region}",set_id="{set_id}"'
            assert f"dns_region_answers_total{{{labels}}} 1.0" in metrics
        assert 'dns_region_answers_total{name="cdn.lab.",region="ap",set_id="us"} 0.0' in metrics
