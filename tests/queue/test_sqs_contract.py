"""The SQS contract through boto3, run twice: against our queue process and moto's server.

Every test here passes against both; where moto and the SQS documentation disagree, the
behaviour is tested against ours only in test_queue_process.py, with the reason there.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.helpers import wait_for
from tests.queue.procs import moto_process, queue_process

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Target:
    impl: str
    url: str


def sqs_client(url: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, read_timeout=60),
    )


@pytest.fixture(scope="module", params=["rushlab", "moto"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    if request.param == "rushlab":
        db: Path = tmp_path_factory.mktemp("queue") / "queue.db"
        with queue_process(db) as url:
            yield Target("rushlab", url)
    else:
        with moto_process() as url:
            yield Target("moto", url)


@pytest.fixture
def sqs(target: Target) -> Any:
    return sqs_client(target.url)


_names = itertools.count()


@pytest.fixture
def name() -> str:
    """A queue name no other test uses (moto's server keeps every queue of the module)."""
    return f"t{next(_names)}-{uuid.uuid4().hex[:8]}"


def error_code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def receive_one(sqs: Any, url: str, **kwargs: Any) -> dict[str, Any]:
    """The next message of the queue, long-polling until one comes (generous deadline)."""

    def attempt() -> dict[str, Any] | None:
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, **kwargs).get(
            "Messages", []
        )
        return messages[0] if messages else None

    return wait_for(attempt, what="a message")


def receive_n(sqs: Any, url: str, n: int) -> list[dict[str, Any]]:
    """``n`` distinct messages, received in as many calls as it takes."""
    seen: dict[str, dict[str, Any]] = {}

    def attempt() -> bool:
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MaxNumberOfMessages=10)
        for message in got.get("Messages", []):
            seen[message["MessageId"]] = message
        return len(seen) >= n

    wait_for(attempt, what=f"{n} messages")
    return list(seen.values())


def counts(sqs: Any, url: str) -> tuple[int, int, int]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(attrs["ApproximateNumberOfMessages"]),
        int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        int(attrs["ApproximateNumberOfMessagesDelayed"]),
    )


# --- queues ---------------------------------------------------------------------------------


def test_create_get_list_and_delete_a_queue(sqs: Any, name: str) -> None:
    """CreateQueue returns the URL GetQueueUrl and ListQueues give; DeleteQueue removes it."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert url.endswith(f"/{name}")
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == url  # idempotent
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    assert sqs.list_queues(QueueNamePrefix=name)["QueueUrls"] == [url]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=name)
    assert sqs.list_queues(QueueNamePrefix=name).get("QueueUrls", []) == []


def test_queue_attributes_are_set_and_read_back(sqs: Any, name: str) -> None:
    """Attributes given at creation and by SetQueueAttributes come back as strings."""
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "7"})["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "7"
    assert attrs["QueueArn"].endswith(f":{name}")
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": "9", "DelaySeconds": "2"}
    )
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["VisibilityTimeout", "DelaySeconds"]
    )["Attributes"]
    assert attrs == {"VisibilityTimeout": "9", "DelaySeconds": "2"}


def test_unknown_queue_is_queue_does_not_exist(sqs: Any, name: str, target: Target) -> None:
    """Every action on a queue that does not exist raises QueueDoesNotExist."""
    url = f"{target.url}/000000000000/{name}"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=name)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.receive_message(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])


# --- messages -------------------------------------------------------------------------------


def test_send_receive_delete(sqs: Any, name: str) -> None:
    """A sent message is received with its body, MD5 and attributes, then deleted."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody="hello",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "email"}},
    )
    message = receive_one(
        sqs, url, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
    )
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == "hello"
    assert message["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert message["MessageAttributes"]["kind"]["StringValue"] == "email"
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert counts(sqs, url) == (0, 1, 0)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert counts(sqs, url) == (0, 0, 0)
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []


def test_batch_send_and_delete_report_entries(sqs: Any, name: str) -> None:
    """SendMessageBatch and DeleteMessageBatch answer per entry; a garbage handle fails
    alone with ReceiptHandleIsInvalid."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sent = sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": f"m{i}", "MessageBody": f"body {i}"} for i in range(3)]
    )
    assert sorted(e["Id"] for e in sent["Successful"]) == ["m0", "m1", "m2"]
    assert sent.get("Failed", []) == []
    handles = [m["ReceiptHandle"] for m in receive_n(sqs, url, 3)]
    entries = [{"Id": f"d{i}", "ReceiptHandle": h} for i, h in enumerate(handles)]
    entries.append({"Id": "bad", "ReceiptHandle": "garbage"})
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    assert sorted(e["Id"] for e in deleted["Successful"]) == ["d0", "d1", "d2"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in deleted["Failed"]] == [
        ("bad", "ReceiptHandleIsInvalid", True)
    ]
    assert counts(sqs, url) == (0, 0, 0)


def test_too_many_entries_in_a_batch(sqs: Any, name: str) -> None:
    """Eleven entries: TooManyEntriesInBatchRequest, nothing sent."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(11)]
        )
    assert counts(sqs, url) == (0, 0, 0)


def test_max_number_of_messages_out_of_range(sqs: Any, name: str) -> None:
    """MaxNumberOfMessages 11 is refused with InvalidParameterValue."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    with pytest.raises(ClientError) as caught:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert error_code(caught.value) == "InvalidParameterValue"


def test_garbage_receipt_handle_is_invalid(sqs: Any, name: str) -> None:
    """DeleteMessage with a handle the queue never issued: ReceiptHandleIsInvalid."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage")


# --- visibility, delay, long polling --------------------------------------------------------


def test_message_comes_back_after_its_visibility_timeout(sqs: Any, name: str) -> None:
    """A received, undeleted message is delivered again once its timeout expires."""
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="again")
    first = receive_one(sqs, url)
    second = receive_one(sqs, url, MessageSystemAttributeNames=["ApproximateReceiveCount"])
    assert second["MessageId"] == first["MessageId"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"


def test_change_visibility_to_zero_releases_the_message(sqs: Any, name: str) -> None:
    """ChangeMessageVisibility 0 makes an in-flight message receivable at once."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="release")
    first = receive_one(sqs, url, VisibilityTimeout=600)
    assert counts(sqs, url) == (0, 1, 0)
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    second = receive_one(sqs, url)
    assert second["MessageId"] == first["MessageId"]


def test_change_visibility_batch_reports_entries(sqs: Any, name: str) -> None:
    """ChangeMessageVisibilityBatch succeeds per valid entry."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(2)]
    )
    handles = [m["ReceiptHandle"] for m in receive_n(sqs, url, 2)]
    changed = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": f"c{i}", "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(handles)
        ],
    )
    assert sorted(e["Id"] for e in changed["Successful"]) == ["c0", "c1"]
    assert changed.get("Failed", []) == []


def test_delay_seconds_hides_a_new_message(sqs: Any, name: str) -> None:
    """A message sent with DelaySeconds counts as delayed, then becomes receivable."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=3)
    assert counts(sqs, url) == (0, 0, 1)
    assert receive_one(sqs, url)["Body"] == "later"


def test_long_poll_returns_a_message_sent_during_the_wait(
    sqs: Any, name: str, target: Target
) -> None:
    """ReceiveMessage with WaitTimeSeconds 20 answers with a message sent while it waits,
    before its wait is over."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        waiting = pool.submit(
            sqs_client(target.url).receive_message, QueueUrl=url, WaitTimeSeconds=20
        )
        time.sleep(0.5)  # let the receive start waiting (the test holds either way)
        sqs.send_message(QueueUrl=url, MessageBody="during")
        messages = waiting.result(timeout=60).get("Messages", [])
        elapsed = time.monotonic() - started
    assert [m["Body"] for m in messages] == ["during"]
    assert elapsed < 20  # answered on arrival, not at the end of the wait


# --- dead letters, purge --------------------------------------------------------------------


def test_redrive_to_the_dead_letter_queue_after_max_receive_count(sqs: Any, name: str) -> None:
    """A message received maxReceiveCount times without a delete lands in the DLQ, which
    ListDeadLetterSourceQueues links back to the source."""
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    deliveries = 0

    def in_dlq() -> bool:
        nonlocal deliveries
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, VisibilityTimeout=0)
        deliveries += len(got.get("Messages", []))
        return counts(sqs, dlq_url)[0] == 1

    wait_for(in_dlq, what="the message in the DLQ")
    assert deliveries == 2
    assert receive_one(sqs, dlq_url)["Body"] == "poison"
    assert counts(sqs, url) == (0, 0, 0)
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url)["queueUrls"]
    assert sources == [url]


def test_purge_deletes_every_message(sqs: Any, name: str) -> None:
    """PurgeQueue empties the queue."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(3)]
    )
    sqs.purge_queue(QueueUrl=url)
    assert counts(sqs, url) == (0, 0, 0)
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []
