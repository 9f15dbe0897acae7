"""End to end on loopback: queue, provider and worker processes delivering real messages."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.helpers import run_target, wait_for
from tests.workers.procs import Lab, call, counts, metric, scrape, send

pytestmark = pytest.mark.e2e


def start_queue(lab: Lab, tmp_path: Path, name: str, **attributes: object) -> str:
    url = lab.start(
        "queue", "targets.queue", "--db", str(tmp_path / "queue.db"), "--listen", "127.0.0.1:0"
    )
    call(f"{url}/queues/{name}", "PUT", {"attributes": attributes})
    return url


def start_provider(lab: Lab, *args: str) -> str:
    return lab.start("provider", "targets.workers.provider", "--listen", "127.0.0.1:0", *args)


def start_worker(lab: Lab, name: str, queue: str, provider: str, *args: str) -> str:
    return lab.start(
        name,
        "targets.workers",
        *("--name", name, "--queue-url", queue, "--queue", "emails", "--provider", provider),
        *args,
    )


def drained(queue: str, name: str) -> bool:
    return counts(queue, name) == (0, 0)


def test_two_long_polling_workers_deliver_every_message_once(lab: Lab, tmp_path: Path) -> None:
    """30 messages, 2 long-polling workers: each delivered once, deleted; SIGTERM exits 0."""
    queue = start_queue(lab, tmp_path, "emails", VisibilityTimeout=30)
    provider = start_provider(lab, "--latency", "constant", "--latency-ms", "10")
    workers = {
        name: start_worker(lab, name, queue, provider, "--polling", "long", "--rate", "0")
        for name in ("w1", "w2")
    }
    send(queue, "emails", [json.dumps({"n": n}) for n in range(30)])
    wait_for(lambda: call(f"{provider}/delivered")["count"] >= 30, what="30 deliveries")
    wait_for(lambda: drained(queue, "emails"), what="an empty queue")
    delivered = call(f"{provider}/delivered")
    assert (delivered["count"], delivered["unique"], delivered["failed"]) == (30, 30, 0)
    scraped = [scrape(url) for url in workers.values()]
    assert sum(metric(s, 'worker_messages_total{outcome="delivered"}') for s in scraped) == 30
    assert sum(metric(s, 'worker_actions_total{action="delete"}') for s in scraped) == 30
    assert all(metric(s, "worker_receive_calls_total") >= 1 for s in scraped)
    for name in workers:  # both are in a 20 s long poll: SIGTERM ends it at once
        lab.procs[name].send_signal(signal.SIGTERM)
    for name in workers:
        assert lab.procs[name].wait(timeout=15) == 0, lab.log(name)


@pytest.mark.parametrize("on_failure", ["return", "backoff"])
def test_failing_provider_sends_every_message_to_the_dlq(
    lab: Lab, tmp_path: Path, on_failure: str
) -> None:
    """A provider failing every send: after maxReceiveCount 2 each message is in the DLQ."""
    queue = lab.start(
        "queue", "targets.queue", "--db", str(tmp_path / "q.db"), "--listen", "127.0.0.1:0"
    )
    call(f"{queue}/queues/emails-dlq", "PUT")
    arn = call(f"{queue}/queues/emails-dlq")["attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
    attributes = {"VisibilityTimeout": 1, "RedrivePolicy": policy}
    call(f"{queue}/queues/emails", "PUT", {"attributes": attributes})
    provider = start_provider(lab, "--failure-rate", "1", "--latency-ms", "5")
    start_worker(
        lab,
        "w1",
        queue,
        provider,
        *("--polling", "short", "--visibility-s", "1", "--rate", "0"),
        *("--on-failure", on_failure, "--backoff-s", "1"),
    )
    send(queue, "emails", [f"mail {n}" for n in range(5)])
    wait_for(lambda: counts(queue, "emails-dlq")[0] == 5, what="5 messages in the DLQ")
    assert drained(queue, "emails")
    delivered = call(f"{provider}/delivered")
    assert delivered["count"] == 0
    assert delivered["failed"] >= 10  # two attempts per message


def test_a_message_held_by_a_killed_worker_comes_back(lab: Lab, tmp_path: Path) -> None:
    """SIGKILL mid-message: after its visibility timeout another worker delivers it."""
    queue = start_queue(lab, tmp_path, "emails")
    provider = start_provider(lab, "--latency", "constant", "--latency-ms", "1500")
    flags = ("--batch", "1", "--visibility-s", "2", "--rate", "0", "--wait-s", "1")
    start_worker(lab, "doomed", queue, provider, *flags)
    send(queue, "emails", ["the one"])
    wait_for(lambda: counts(queue, "emails") == (0, 1), what="the worker holding the message")
    lab.kill("doomed")  # SIGKILL: nothing released
    start_worker(lab, "rescuer", queue, provider, *flags)
    wait_for(lambda: drained(queue, "emails"), what="the message delivered and deleted")
    log = call(f"{provider}/delivered?log=1")["log"]
    assert [worker for _, _, worker in log].count("rescuer") == 1


def test_the_worker_rate_limit_holds_at_the_provider(lab: Lab, tmp_path: Path) -> None:
    """Rate 5/s, burst 2: the provider never sees more than 2 + 5 x T sends in any window T."""
    rate, burst, total = 5, 2, 20
    queue = start_queue(lab, tmp_path, "emails")
    provider = start_provider(lab, "--latency-ms", "0")
    send(queue, "emails", [f"mail {n}" for n in range(total)])
    flags = ("--rate", str(rate), "--burst", str(burst), "--wait-s", "1")
    worker = start_worker(lab, "w1", queue, provider, *flags)
    wait_for(lambda: call(f"{provider}/delivered")["count"] >= total, what="every delivery")
    times = sorted(t for t, _, _ in call(f"{provider}/delivered?log=1")["log"])
    assert len(times) == total
    for i in range(total):
        for j in range(i + 1, total):
            # one message of slack: loopback delays may bunch two arrivals together
            assert j - i + 1 <= burst + rate * (times[j] - times[i]) + 1, (i, j, times)
    assert metric(scrape(worker), "worker_rate_limit_waits_total") > 0


@pytest.mark.parametrize(
    ("module", "args", "flag"),
    [
        ("targets.workers", ["--batch", "11"], "--batch"),
        ("targets.workers", ["--queue-url", "ftp://x"], "--queue-url"),
        ("targets.workers", ["--on-failure", "backoff", "--backoff-max-s", "0.5"], "--backoff"),
        ("targets.workers.provider", ["--failure-rate", "2"], "--failure-rate"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(module: str, args: list[str], flag: str) -> None:
    """A bad setting exits 2 with one line that names the flag."""
    base = ["--queue-url", "http://127.0.0.1:1", "--queue", "q", "--provider", "http://127.0.0.1:2"]
    argv = [*base, *args] if module == "targets.workers" else args
    done = run_target(module, *argv, timeout_s=30)
    assert done.returncode == 2
    assert f"error: {flag}" in done.stderr
