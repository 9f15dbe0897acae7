"""Faults injected into a provider process (`/admin/faults`), and by chaos on a running lab."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.actions import ChaosRequest, apply
from harness.components.providers import Providers
from harness.errors import ChaosRefused
from harness.runtime import LabRuntime
from harness.supervisor import Supervisor
from harness.topology import topology_from
from targets.http.client import fetch, fetch_json
from tests.helpers import start_target
from tests.workers.procs import metric, scrape

pytestmark = pytest.mark.e2e

TOKEN = "s3cret-admin-token"


def request(
    url: str, method: str = "GET", payload: Any = None, token: str | None = TOKEN
) -> tuple[int, dict[str, Any]]:
    """(status, decoded JSON body) of one request; HTTP errors are answers too."""
    data = None if payload is None else json.dumps(payload).encode()
    call = urllib.request.Request(url, data=data, method=method)
    call.add_header("content-type", "application/json")
    if token is not None:
        call.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(call, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def send(url: str, n: int = 0) -> tuple[int, dict[str, Any]]:
    return request(f"{url}/send", "POST", {"message_id": f"m-{n}", "body": "hi"}, token=None)


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[str]:
    """A fast provider (constant 1 ms, no failures) requiring TOKEN on /admin/faults."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    args = ["--latency", "constant", "--latency-ms", "1", f"--token-file={token_file}"]
    with start_target("targets.workers.provider", *args, log=tmp_path / "provider.log") as p:
        yield p.url


def test_injected_latency_adds_to_every_send(provider: str) -> None:
    """latency_ms 400: a send takes at least 400 ms; the faults read back; the gauge is 1."""
    assert metric(scrape(provider), "provider_fault_active") == 0
    status, faults = request(f"{provider}/admin/faults", "PUT", {"latency_ms": 400})
    assert status == 200
    assert (faults["latency_ms"], faults["error_rate"]) == (400, 0)
    started = time.monotonic()
    status, reply = send(provider)
    assert time.monotonic() - started >= 0.4  # the injected latency is a lower bound
    assert (status, reply["delivered"]) == (200, True)
    assert request(f"{provider}/admin/faults")[1]["latency_ms"] == 400
    assert metric(scrape(provider), "provider_fault_active") == 1


def test_error_rate_one_fails_every_send_until_cleared(provider: str) -> None:
    """error_rate 1: every send is a 503 counted as failed; DELETE clears it: 200 again."""
    assert request(f"{provider}/admin/faults", "PUT", {"error_rate": 1})[0] == 200
    replies = [send(provider, n) for n in range(5)]
    assert {status for status, _ in replies} == {503}
    assert all(
        body == {**body, "error": "injected_fault", "delivered": False} for _, body in replies
    )
    delivered = request(f"{provider}/delivered", token=None)[1]
    assert (delivered["count"], delivered["failed"]) == (0, 5)
    exposition = scrape(provider)
    assert metric(exposition, 'provider_deliveries_total{kind="email",outcome="failed"}') == 5
    assert metric(exposition, 'provider_deliveries_total{kind="email",outcome="delivered"}') == 0
    status, faults = request(f"{provider}/admin/faults", "DELETE")
    assert (status, faults["latency_ms"], faults["error_rate"]) == (200, 0, 0)
    assert send(provider, 5)[0] == 200
    assert metric(scrape(provider), "provider_fault_active") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"latency_ms": 10, "hang": True}, "hang"),  # the server's hang is not a provider's
        ({"error_rate": 1.5}, "error_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": 600_001}, "latency_ms"),
        ({"latency_ms": "slow"}, "latency_ms"),
    ],
)
def test_a_bad_faults_body_is_a_400_naming_the_field(
    provider: str, body: dict[str, Any], field: str
) -> None:
    status, reply = request(f"{provider}/admin/faults", "PUT", body)
    assert status == 400
    assert reply["error"] == "invalid_faults"
    assert reply["detail"].startswith(f"{field}:"), reply["detail"]
    assert request(f"{provider}/admin/faults")[1]["latency_ms"] == 0  # nothing changed


def test_faults_need_the_token(provider: str, tmp_path: Path) -> None:
    """Without the token or with another: 401; a provider started without one: 403."""
    for token in (None, "wrong"):
        status, reply = request(f"{provider}/admin/faults", "PUT", {"error_rate": 1}, token)
        assert (status, reply["error"]) == (401, "unauthorized")
    assert send(provider)[0] == 200  # nothing was injected
    with start_target("targets.workers.provider", log=tmp_path / "open.log") as open_provider:
        status, reply = request(f"{open_provider.url}/admin/faults", "PUT", {"error_rate": 1})
        assert (status, reply["error"]) == (403, "admin_disabled")


# -- chaos on a running lab ---------------------------------------------------------------------

TOPOLOGY = topology_from(
    {
        "name": "provider-faults",
        "services": {"shop": {"replicas": 1, "service_time": {"mean_ms": 1}}},
        "providers": {
            "whatsapp": {"kind": "whatsapp", "latency": {"distribution": "constant", "mean_ms": 1}}
        },
    }
)


async def test_chaos_slows_breaks_and_restarts_a_provider(tmp_path: Path) -> None:
    """latency, errors and clear reach the provider group's /admin/faults with the lab's
    token; a restart keeps its address; resize stays a server's action."""
    async with Supervisor(tmp_path / "run") as supervisor:
        lab = LabRuntime(TOPOLOGY, supervisor, seed=1)
        await lab.start()
        group = lab.group("whatsapp")
        assert (group.kind, list(group.instances)) == ("provider", ["whatsapp-1"])
        [target] = [t for t in lab.scrape_targets() if t.labels["service"] == "whatsapp"]
        assert target.labels == {
            "service": "whatsapp",
            "role": "provider",
            "instance": "whatsapp-1",
        }
        host, port = lab.part(Providers).address("whatsapp")
        auth = [(b"authorization", f"Bearer {lab.token}".encode())]
        message = {"message_id": "m-1", "body": "hi"}

        event = await apply(lab, ChaosRequest("latency", "whatsapp", params={"latency_ms": 2000}))
        assert event.instances == ("whatsapp-1",)
        faults = (await fetch(host, port, "GET", "/admin/faults", headers=auth)).json()
        assert faults["latency_ms"] == 2000

        await apply(lab, ChaosRequest("errors", "whatsapp", params={"error_rate": 1.0}))
        assert (await fetch_json(host, port, "POST", "/send", message)).status == 503
        await apply(lab, ChaosRequest("clear", "whatsapp"))
        assert (await fetch_json(host, port, "POST", "/send", message)).status == 200

        pid = group.instances["whatsapp-1"].child.pid
        await apply(lab, ChaosRequest("restart", "whatsapp"))
        assert group.instances["whatsapp-1"].child.pid != pid
        assert group.instances["whatsapp-1"].child.address() == (host, port)
        assert (await fetch_json(host, port, "POST", "/send", message)).status == 200

        with pytest.raises(ChaosRefused) as refused:
            await apply(lab, ChaosRequest("resize", "whatsapp", params={"slots": 2}))
        assert refused.value.message == "resize acts on servers; whatsapp is a delivery provider"
