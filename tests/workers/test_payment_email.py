"""The payment's receipt email, end to end: a server with `--email sync` or `--email async`."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest

from tests.workers.procs import Lab, call, counts, metric, scrape
from tests.workers.test_pipeline import start_provider, start_queue

pytestmark = pytest.mark.e2e


def start_server(lab: Lab, name: str, *email: str) -> str:
    return lab.start(name, "targets.server", "--name", name, "--service-ms", "1", *email)


def pay(server: str, **extra: object) -> tuple[int, dict[str, object]]:
    try:
        return 201, call(f"{server}/api/payments", "POST", {"order": "o-1", **extra})
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_sync_payment_answers_after_the_provider_delivered(lab: Lab) -> None:
    provider = start_provider(lab, "--latency", "constant", "--latency-ms", "50")
    server = start_server(lab, "pay-1", "--email", "sync", "--email-provider", provider[7:])
    for n in range(1, 4):
        status, reply = pay(server)
        assert (status, reply["email"]) == (201, "sent")
        assert call(f"{provider}/delivered")["unique"] == n  # before the payment answered
    scraped = scrape(server)
    assert metric(scraped, 'server_emails_total{mode="sync",outcome="sent"}') == 3


def test_sync_payment_fails_with_the_provider(lab: Lab) -> None:
    """The coupling: a failing provider fails the payment (502, saying why)."""
    provider = start_provider(lab, "--failure-rate", "1", "--latency-ms", "1")
    server = start_server(lab, "pay-1", "--email", "sync", "--email-provider", provider[7:])
    status, reply = pay(server)
    assert status == 502
    assert reply["error"] == "email_failed"
    assert "mail provider answered 5" in str(reply["detail"])


def test_async_payment_enqueues_and_answers(lab: Lab, tmp_path: Path) -> None:
    """The email waits in the queue (no worker here); a poison flag travels with it."""
    provider = start_provider(lab)
    queue = start_queue(lab, tmp_path, "emails")
    server = start_server(lab, "pay-1", "--email", "async", "--email-queue", queue[7:])
    assert pay(server)[1]["email"] == "enqueued"
    assert pay(server, poison=True)[1]["email"] == "enqueued"
    assert counts(queue, "emails") == (2, 0)
    assert call(f"{provider}/delivered")["count"] == 0
    received = call(f"{queue}/queues/emails/messages?max=10&wait=1")["messages"]
    if len(received) < 2:  # a receive samples partitions: ask once more for the other
        received += call(f"{queue}/queues/emails/messages?max=10&wait=1")["messages"]
    bodies = [json.loads(m["body"]) for m in received]
    assert sorted(b.get("poison", False) for b in bodies) == [False, True]
    assert all(str(b["payment"]).startswith("pay-1/p-") for b in bodies)


def test_async_payment_fails_when_the_queue_is_down(lab: Lab, tmp_path: Path) -> None:
    queue = start_queue(lab, tmp_path, "emails")
    server = start_server(lab, "pay-1", "--email", "async", "--email-queue", queue[7:])
    lab.procs["queue"].kill()
    lab.procs["queue"].wait(timeout=10)
    status, reply = pay(server)
    assert (status, reply["error"]) == (503, "email_failed")
    assert "queue did not answer" in str(reply["detail"])
    scraped = scrape(server)
    assert metric(scraped, 'server_emails_total{mode="async",outcome="failed"}') == 1
