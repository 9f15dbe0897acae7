"""Our queue process only: durability across kill -9, bad input, the plain JSON API,
metrics, a graceful stop, and what moto does not model (stale handles, message moves)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.queue.procs import queue_process, start_queue, stop
from tests.queue.test_sqs_contract import counts, receive_n, sqs_client

pytestmark = pytest.mark.e2e

SQS_JSON = "application/x-amz-json-1.0"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with queue_process(tmp_path_factory.mktemp("queue") / "queue.db") as base:
        yield base


def http(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def sqs_raw(url: str, target: str | None, body: bytes) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": SQS_JSON}
    if target is not None:
        headers["X-Amz-Target"] = target
    status, head, data = http(url + "/", "POST", body, headers)
    return status, {k.lower(): v for k, v in head.items()}, json.loads(data)


def api(url: str, method: str, path: str, payload: object = None) -> tuple[int, Any]:
    body = None if payload is None else json.dumps(payload).encode()
    status, _, data = http(url + path, method, body, {"Content-Type": "application/json"})
    return status, json.loads(data)


# --- bad input ------------------------------------------------------------------------------


def test_unknown_target_is_invalid_action(url: str) -> None:
    """An X-Amz-Target naming no SQS action: 400 InvalidAction; the process still serves."""
    status, head, body = sqs_raw(url, "AmazonSQS.Explode", b"{}")
    assert status == 400
    assert body["__type"] == "com.amazonaws.sqs#InvalidAction"
    assert head["x-amzn-query-error"] == "InvalidAction;Sender"
    status, _, body = sqs_raw(url, None, b"{}")
    assert (status, body["__type"]) == (400, "com.amazonaws.sqs#InvalidAction")
    assert sqs_client(url).list_queues()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_invalid_json_is_a_serialization_error(url: str) -> None:
    """A body that is not a JSON object: 400 SerializationException, the queue unharmed."""
    sqs = sqs_client(url)
    queue = sqs.create_queue(QueueName="badjson")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="kept")
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        status, _, body = sqs_raw(url, "AmazonSQS.SendMessage", raw)
        assert status == 400
        assert body["__type"].endswith("#SerializationException")
    status, _, body = sqs_raw(url, "AmazonSQS.SendMessage", b'{"QueueUrl": 5}')
    assert (status, body["__type"]) == (400, "com.amazonaws.sqs#InvalidParameterValue")
    assert counts(sqs, queue) == (1, 0, 0)


def test_oversized_message_is_refused(url: str) -> None:
    """A body over 256 KiB: InvalidParameterValue, nothing stored; the next send works."""
    sqs = sqs_client(url)
    queue = sqs.create_queue(QueueName="oversized")["QueueUrl"]
    with pytest.raises(sqs.exceptions.ClientError) as caught:
        sqs.send_message(QueueUrl=queue, MessageBody="x" * (256 * 1024 + 1))
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    sqs.send_message(QueueUrl=queue, MessageBody="small")
    assert counts(sqs, queue) == (1, 0, 0)


def test_stale_receipt_handle_is_invalid(url: str) -> None:
    """Only the latest receipt handle deletes (the issue's rule; SQS may accept an old one
    and moto does, so this runs against ours only)."""
    sqs = sqs_client(url)
    queue = sqs.create_queue(QueueName="stale")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="x")
    first = receive_n(sqs, queue, 1)[0]
    sqs.change_message_visibility(
        QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    second = receive_n(sqs, queue, 1)[0]
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"])
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=second["ReceiptHandle"])
    assert counts(sqs, queue) == (0, 0, 0)


def test_start_message_move_task_redrives_the_dlq(url: str) -> None:
    """StartMessageMoveTask moves dead letters back to their source (moto does not
    implement it)."""
    sqs = sqs_client(url)
    dlq = sqs.create_queue(QueueName="move-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 1})
    source = sqs.create_queue(QueueName="move-src", Attributes={"RedrivePolicy": policy})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=source, MessageBody="back")
    first = receive_n(sqs, source, 1)[0]
    sqs.change_message_visibility(
        QueueUrl=source, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )

    def dead() -> bool:
        sqs.receive_message(QueueUrl=source, WaitTimeSeconds=1, VisibilityTimeout=0)
        return counts(sqs, dlq)[0] == 1

    wait_for(dead, what="the message in the DLQ")
    handle = sqs.start_message_move_task(SourceArn=arn)["TaskHandle"]
    assert handle
    assert counts(sqs, dlq) == (0, 0, 0)
    assert receive_n(sqs, source, 1)[0]["Body"] == "back"
    with pytest.raises(sqs.exceptions.ResourceNotFoundException):
        sqs.start_message_move_task(SourceArn=arn.replace("move-dlq", "missing"))


# --- the plain JSON API, metrics, health ----------------------------------------------------


def test_plain_api_round_trip(url: str) -> None:
    """Create, send (one and a batch), long-poll receive, delete, batch delete, inspect."""
    assert api(url, "PUT", "/queues/plain", {"attributes": {"VisibilityTimeout": 60}}) == (
        200,
        {"name": "plain"},
    )
    status, sent = api(url, "POST", "/queues/plain/messages", {"body": "one"})
    assert status == 200
    assert sent["message_id"]
    status, batch = api(
        url, "POST", "/queues/plain/messages", {"messages": [{"body": "two"}, {"body": ""}]}
    )
    assert status == 200
    assert [e["index"] for e in batch["successful"]] == [0]
    assert [(e["index"], e["error"]) for e in batch["failed"]] == [(1, "MissingParameter")]
    received: list[dict[str, Any]] = []

    def two() -> bool:
        status, got = api(url, "GET", "/queues/plain/messages?max=10&wait=1", None)
        assert status == 200
        received.extend(got["messages"])
        return len(received) >= 2

    wait_for(two, what="two messages")
    assert sorted(m["body"] for m in received) == ["one", "two"]
    assert all(m["receive_count"] == 1 for m in received)
    first, second = received
    assert api(url, "DELETE", f"/queues/plain/messages/{first['receipt_handle']}") == (
        200,
        {"deleted": True},
    )
    status, deleted = api(
        url,
        "POST",
        "/queues/plain/messages/delete",
        {"receipt_handles": [second["receipt_handle"], "garbage"]},
    )
    assert [e["index"] for e in deleted["successful"]] == [0]
    assert [(e["index"], e["error"]) for e in deleted["failed"]] == [(1, "ReceiptHandleIsInvalid")]
    status, info = api(url, "GET", "/queues/plain")
    assert info["attributes"]["ApproximateNumberOfMessages"] == "0"
    assert info["attributes"]["VisibilityTimeout"] == "60"
    assert api(url, "GET", "/queues/missing")[0] == 404
    assert api(url, "GET", "/queues/plain/nowhere")[0] == 404
    assert api(url, "POST", "/queues")[0] == 405
    assert "plain" in api(url, "GET", "/queues")[1]["queues"]
    assert api(url, "DELETE", "/queues/plain") == (200, {"deleted": "plain"})


def test_metrics_read_the_engine(url: str) -> None:
    """GET /metrics has the per-queue gauges and counters, labelled by queue."""
    sqs = sqs_client(url)
    queue = sqs.create_queue(QueueName="metered")["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(3)]
    )
    message = receive_n(sqs, queue, 1)[0]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    http(url + "/metrics")  # a counter series is exposed at 0 the first time
    status, _, data = http(url + "/metrics")
    assert status == 200
    lines = set(data.decode().splitlines())
    assert 'queue_messages_sent_total{queue="metered"} 3.0' in lines
    assert 'queue_messages_deleted_total{queue="metered"} 1.0' in lines
    # The long poll took all three (MaxNumberOfMessages 10); one was deleted.
    assert 'queue_messages_visible{queue="metered"} 0.0' in lines
    assert 'queue_messages_in_flight{queue="metered"} 2.0' in lines
    assert 'queue_messages_received_total{queue="metered"} 3.0' in lines
    for family in (
        "queue_messages_in_flight",
        "queue_messages_delayed",
        "queue_oldest_message_age_seconds",
        "queue_messages_received_total",
        "queue_empty_receives_total",
        "queue_messages_moved_to_dlq_total",
    ):
        assert any(line.startswith(family + '{queue="metered"}') for line in lines), family
    assert http(url + "/health")[0] == 200


# --- durability and stopping ----------------------------------------------------------------


def test_kill_9_loses_no_acknowledged_send(tmp_path: Path) -> None:
    """SIGKILL right after acknowledged sends; restarted on the same database, every
    acknowledged message is received."""
    db = tmp_path / "queue.db"
    proc, base = start_queue(db)
    acknowledged: set[str] = set()
    try:
        sqs = sqs_client(base)
        queue = sqs.create_queue(QueueName="durable")["QueueUrl"]
        for batch in range(20):
            sent = sqs.send_message_batch(
                QueueUrl=queue,
                Entries=[{"Id": str(i), "MessageBody": f"{batch}-{i}"} for i in range(10)],
            )
            acknowledged.update(e["MessageId"] for e in sent["Successful"])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop(proc)
    assert len(acknowledged) == 200
    with queue_process(db) as again:
        sqs = sqs_client(again)
        queue = sqs.get_queue_url(QueueName="durable")["QueueUrl"]
        received = {m["MessageId"] for m in receive_n(sqs, queue, 200)}
    assert received == acknowledged


def test_sigterm_answers_long_polls_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM while a long poll waits: the poll gets an empty answer, the process exits 0."""
    proc, base = start_queue(tmp_path / "queue.db")
    try:
        sqs = sqs_client(base)
        queue = sqs.create_queue(QueueName="stopping")["QueueUrl"]
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(sqs.receive_message, QueueUrl=queue, WaitTimeSeconds=20)
            wait_for(
                lambda: "queue_long_polls_waiting 1.0" in http(base + "/metrics")[2].decode(),
                what="a waiting long poll",
            )
            proc.send_signal(signal.SIGTERM)
            assert waiting.result(timeout=60).get("Messages", []) == []
        assert proc.wait(timeout=30) == 0
    finally:
        stop(proc)


def test_a_second_process_on_the_same_db_exits_2(tmp_path: Path) -> None:
    """One owner per database: a second queue process on it exits 2."""
    db = tmp_path / "queue.db"
    with queue_process(db):
        second = subprocess.run(
            [sys.executable, "-m", "targets.queue", "--db", str(db)],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert second.returncode == 2
    assert "in use" in second.stderr
