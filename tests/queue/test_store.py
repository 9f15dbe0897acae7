"""Tests for the SQS-like queue engine (targets.queue.store) on a fake clock."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import uuid
from pathlib import Path

import pytest

from targets.queue.config import Arns
from targets.queue.errors import (
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    EmptyBatchRequest,
    InvalidAttributeName,
    InvalidAttributeValue,
    InvalidBatchEntryId,
    InvalidMessageContents,
    InvalidParameterValue,
    MessageNotInflight,
    MissingParameter,
    PurgeQueueInProgress,
    QueueDoesNotExist,
    QueueError,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    ResourceNotFoundException,
    TooManyEntriesInBatchRequest,
    UnsupportedOperation,
)
from targets.queue.messages import MessageAttribute, md5_of_attributes
from targets.queue.store import (
    QueueStore,
    ReceiptEntry,
    ReceivedMessage,
    SendEntry,
    VisibilityEntry,
)
from tests.queue.conftest import START, FakeClock

pytestmark = pytest.mark.core

ARN = "arn:aws:sqs:us-east-1:000000000000:"

# --- helpers -------------------------------------------------------------------------------


def send(store: QueueStore, queue: str, *bodies: str, delay: int | None = None) -> list[str]:
    """Send each body on its own; return the message ids."""
    return [store.send_message(queue, body, delay_seconds=delay).message_id for body in bodies]


def receive(
    store: QueueStore, queue: str, count: int = 10, **kwargs: object
) -> list[ReceivedMessage]:
    """A long-poll receive (all partitions): every visible message up to ``count``."""
    kwargs.setdefault("wait_time_seconds", 20)
    return store.receive_message(queue, count, **kwargs).messages  # type: ignore[arg-type]


def bodies(messages: list[ReceivedMessage]) -> list[str]:
    return [m.body for m in messages]


def check(
    store: QueueStore, queue: str, visible: int, in_flight: int = 0, delayed: int = 0
) -> None:
    stats = store.stats(queue)
    assert (stats.visible, stats.in_flight, stats.delayed) == (visible, in_flight, delayed)


def error(call: object, *args: object, **kwargs: object) -> QueueError:
    """The QueueError a store call raises."""
    with pytest.raises(QueueError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


def with_dlq(store: QueueStore, max_receive_count: int = 2) -> None:
    store.create_queue("dlq", {"MessageRetentionPeriod": "1209600"})
    policy = {"deadLetterTargetArn": ARN + "dlq", "maxReceiveCount": max_receive_count}
    store.create_queue("work", {"RedrivePolicy": json.dumps(policy), "VisibilityTimeout": "10"})


# --- queues --------------------------------------------------------------------------------


def test_create_queue_returns_its_name_and_lists_it(store: QueueStore):
    """CreateQueue returns the name; GetQueueUrl and ListQueues find the queue."""
    assert store.create_queue("orders") == "orders"
    assert store.get_queue_url("orders") == "orders"
    assert store.list_queues() == ["orders"]


def test_create_queue_is_idempotent_with_the_same_attributes(store: QueueStore):
    """CreateQueue twice with the same attributes (given or defaulted) is one queue."""
    store.create_queue("orders", {"VisibilityTimeout": "60"})
    assert store.create_queue("orders", {"VisibilityTimeout": 60}) == "orders"
    store.create_queue("plain")
    assert store.create_queue("plain", {"VisibilityTimeout": "30"}) == "plain"


def test_create_queue_with_different_attributes_is_queue_name_exists(store: QueueStore):
    """Same name, different attributes: QueueNameExists (legacy code QueueAlreadyExists)."""
    store.create_queue("orders", {"VisibilityTimeout": "60"})
    err = error(store.create_queue, "orders", {"VisibilityTimeout": "61"})
    assert isinstance(err, QueueNameExists)
    assert (err.code, err.query_code, err.status) == ("QueueNameExists", "QueueAlreadyExists", 400)
    assert "QueueName" in err.message
    assert isinstance(error(store.create_queue, "orders"), QueueNameExists)


@pytest.mark.parametrize("name", ["", "a" * 81, "has space", "dot.ted", "émoji"])
def test_invalid_queue_names_are_refused(store: QueueStore, name: str):
    """Queue names are 1..80 characters of A-Z a-z 0-9 _ -."""
    err = error(store.create_queue, name)
    assert isinstance(err, InvalidParameterValue)
    assert err.message.startswith("QueueName:")


def test_fifo_queues_are_unsupported(store: QueueStore):
    """A .fifo name or FifoQueue=true is UnsupportedOperation: standard queues only."""
    assert isinstance(error(store.create_queue, "jobs.fifo"), UnsupportedOperation)
    assert isinstance(
        error(store.create_queue, "jobs", {"FifoQueue": "true"}), UnsupportedOperation
    )
    assert store.create_queue("jobs", {"FifoQueue": "false"}) == "jobs"


def test_unknown_queue_is_queue_does_not_exist(store: QueueStore):
    """Every action on an unknown queue raises QueueDoesNotExist naming the parameter."""
    err = error(store.get_queue_url, "nope")
    assert isinstance(err, QueueDoesNotExist)
    assert err.query_code == "AWS.SimpleQueueService.NonExistentQueue"
    assert err.message == "QueueName: queue 'nope' does not exist"
    assert error(store.send_message, "nope", "x").message.startswith("QueueUrl:")
    assert isinstance(error(store.receive_message, "nope"), QueueDoesNotExist)


def test_default_attributes_are_the_sqs_defaults(store: QueueStore, clock: FakeClock):
    """GetQueueAttributes All: SQS defaults, the ARN, timestamps and zero counts."""
    store.create_queue("orders")
    assert store.get_queue_attributes("orders") == {
        "VisibilityTimeout": "30",
        "MessageRetentionPeriod": "345600",
        "DelaySeconds": "0",
        "ReceiveMessageWaitTimeSeconds": "0",
        "MaximumMessageSize": "262144",
        "QueueArn": ARN + "orders",
        "CreatedTimestamp": str(int(START)),
        "LastModifiedTimestamp": str(int(START)),
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
        "ApproximateNumberOfMessagesDelayed": "0",
    }


def test_get_queue_attributes_returns_only_the_names_asked(store: QueueStore):
    """Named attributes only; an unknown name is InvalidAttributeName."""
    store.create_queue("orders")
    send(store, "orders", "a", "b")
    assert store.get_queue_attributes("orders", ["ApproximateNumberOfMessages"]) == {
        "ApproximateNumberOfMessages": "2"
    }
    assert isinstance(error(store.get_queue_attributes, "orders", ["Nope"]), InvalidAttributeName)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VisibilityTimeout", "43201"),
        ("VisibilityTimeout", "-1"),
        ("VisibilityTimeout", "abc"),
        ("MessageRetentionPeriod", "59"),
        ("MessageRetentionPeriod", "1209601"),
        ("DelaySeconds", "901"),
        ("ReceiveMessageWaitTimeSeconds", "21"),
        ("MaximumMessageSize", "1023"),
        ("MaximumMessageSize", "262145"),
        ("VisibilityTimeout", True),
    ],
)
def test_out_of_range_attributes_are_invalid_attribute_value(
    store: QueueStore, name: str, value: object
):
    """Each settable attribute is checked against its SQS range; the message names it."""
    err = error(store.create_queue, "orders", {name: value})
    assert isinstance(err, InvalidAttributeValue)
    assert err.message.startswith(f"{name}: must be ")


def test_attribute_message_names_range_and_value(store: QueueStore):
    """The message reads 'Name: must be low..high, got value'."""
    err = error(store.create_queue, "orders", {"VisibilityTimeout": "50000"})
    assert err.message == "VisibilityTimeout: must be 0..43200, got '50000'"


@pytest.mark.parametrize(
    "name", ["Nope", "ApproximateNumberOfMessages", "QueueArn", "ContentBasedDeduplication"]
)
def test_unknown_and_read_only_attributes_cannot_be_set(store: QueueStore, name: str):
    """Unknown, read-only and FIFO-only names are InvalidAttributeName."""
    store.create_queue("orders")
    err = error(store.set_queue_attributes, "orders", {name: "1"})
    assert isinstance(err, InvalidAttributeName)
    assert err.message.startswith(f"{name}:")


def test_set_queue_attributes_changes_them_and_last_modified(store: QueueStore, clock: FakeClock):
    """SetQueueAttributes applies at once and moves LastModifiedTimestamp."""
    store.create_queue("orders")
    clock.advance(100)
    store.set_queue_attributes("orders", {"VisibilityTimeout": "5", "Policy": "{}"})
    attributes = store.get_queue_attributes("orders")
    assert attributes["VisibilityTimeout"] == "5"
    assert attributes["Policy"] == "{}"
    assert attributes["LastModifiedTimestamp"] == str(int(START + 100))


def test_list_queues_by_prefix_sorted_and_limited(store: QueueStore):
    """ListQueues filters by prefix, sorts, and honours MaxResults (1..1000)."""
    for name in ["b-orders", "a-orders", "emails"]:
        store.create_queue(name)
    assert store.list_queues() == ["a-orders", "b-orders", "emails"]
    assert store.list_queues("b-") == ["b-orders"]
    assert store.list_queues(max_results=1) == ["a-orders"]
    assert isinstance(error(store.list_queues, max_results=0), InvalidParameterValue)


def test_delete_queue_drops_it_and_its_messages(store: QueueStore, tmp_path: Path):
    """DeleteQueue removes the queue and every message; the name is free again."""
    store.create_queue("orders")
    send(store, "orders", "a", "b")
    store.delete_queue("orders")
    assert isinstance(error(store.get_queue_url, "orders"), QueueDoesNotExist)
    store.create_queue("orders")
    check(store, "orders", visible=0)


# --- sending -------------------------------------------------------------------------------


def test_send_returns_a_uuid_and_the_body_md5(store: QueueStore):
    """SendMessage answers a version-4 UUID and MD5OfMessageBody as boto3 checks it."""
    store.create_queue("orders")
    result = store.send_message("orders", "héllo wörld")
    assert uuid.UUID(result.message_id).version == 4
    assert result.md5_of_message_body == hashlib.md5("héllo wörld".encode()).hexdigest()
    assert result.md5_of_message_attributes is None


def test_send_with_message_attributes_returns_their_md5(store: QueueStore):
    """MD5OfMessageAttributes on send is SQS's digest (known vector from the AWS docs)."""
    store.create_queue("orders")
    result = store.send_message(
        "orders",
        "x",
        message_attributes={
            "test_attribute_name_2": MessageAttribute("String", "test_attribute_value_2"),
            "test_attribute_name_1": MessageAttribute("String", "test_attribute_value_1"),
        },
    )
    assert result.md5_of_message_attributes == "d53f3b558fe951154770f25cb63dbba9"


@pytest.mark.parametrize(
    ("body", "kind", "start"),
    [
        ("", MissingParameter, "MessageBody:"),
        ("bad \x00 byte", InvalidMessageContents, "MessageBody: invalid character U+0000"),
        ("lone \ud800 surrogate", InvalidMessageContents, "MessageBody:"),
        ("x" * 1025, InvalidParameterValue, "MessageBody: the message"),
    ],
)
def test_bad_bodies_are_refused(store: QueueStore, body: str, kind: type, start: str):
    """Empty, out-of-charset and oversized bodies get SQS's errors, the queue unharmed."""
    store.create_queue("small", {"MaximumMessageSize": "1024"})
    err = error(store.send_message, "small", body)
    assert isinstance(err, kind)
    assert err.message.startswith(start)
    check(store, "small", visible=0)


def test_a_body_of_exactly_the_maximum_size_is_accepted(store: QueueStore):
    """MaximumMessageSize is inclusive and counts UTF-8 bytes."""
    store.create_queue("small", {"MaximumMessageSize": "1024"})
    store.send_message("small", "é" * 512)
    assert isinstance(error(store.send_message, "small", "é" * 512 + "x"), InvalidParameterValue)


def test_message_delay_out_of_range_is_invalid_parameter_value(store: QueueStore):
    """Per-message DelaySeconds is 0..900."""
    store.create_queue("orders")
    err = error(store.send_message, "orders", "x", delay_seconds=901)
    assert err.message == "DelaySeconds: must be 0..900, got 901"


def test_send_batch_sends_all_entries_in_order(store: QueueStore):
    """SendMessageBatch: every entry answered with its id, message id and MD5."""
    store.create_queue("orders")
    result = store.send_message_batch("orders", [SendEntry(f"e{i}", f"m{i}") for i in range(10)])
    assert [r.id for r in result.successful] == [f"e{i}" for i in range(10)]
    assert result.successful[3].md5_of_message_body == hashlib.md5(b"m3").hexdigest()
    assert result.failed == []
    assert bodies(receive(store, "orders")) == [f"m{i}" for i in range(10)]


@pytest.mark.parametrize(
    ("entries", "kind"),
    [
        ([], EmptyBatchRequest),
        ([SendEntry(str(i), "x") for i in range(11)], TooManyEntriesInBatchRequest),
        ([SendEntry("a", "x"), SendEntry("a", "y")], BatchEntryIdsNotDistinct),
        ([SendEntry("bad id", "x")], InvalidBatchEntryId),
        ([SendEntry("x" * 81, "x")], InvalidBatchEntryId),
        ([SendEntry("a", "x" * 200_000), SendEntry("b", "x" * 70_000)], BatchRequestTooLong),
    ],
)
def test_batch_request_errors_refuse_the_whole_batch(
    store: QueueStore, entries: list[SendEntry], kind: type
):
    """Empty, over 10, repeated or malformed ids, over 256 KiB: the whole batch fails."""
    store.create_queue("orders")
    err = error(store.send_message_batch, "orders", entries)
    assert isinstance(err, kind)
    assert err.message.startswith("Entries")
    check(store, "orders", visible=0)


def test_send_batch_reports_failing_entries_and_sends_the_rest(store: QueueStore):
    """A bad entry is a Failed entry with its code; the good ones are committed."""
    store.create_queue("orders")
    result = store.send_message_batch(
        "orders",
        [
            SendEntry("ok1", "fine"),
            SendEntry("empty", ""),
            SendEntry("late", "x", delay_seconds=1000),
            SendEntry("ok2", "also fine"),
        ],
    )
    assert [r.id for r in result.successful] == ["ok1", "ok2"]
    assert [(f.id, f.code, f.sender_fault) for f in result.failed] == [
        ("empty", "MissingParameter", True),
        ("late", "InvalidParameterValue", True),
    ]
    assert result.failed[1].message == "DelaySeconds: must be 0..900, got 1000"
    check(store, "orders", visible=2)


# --- receiving -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "start"),
    [
        ({"max_number_of_messages": 0}, "MaxNumberOfMessages: must be 1..10, got 0"),
        ({"max_number_of_messages": 11}, "MaxNumberOfMessages: must be 1..10, got 11"),
        ({"wait_time_seconds": 21}, "WaitTimeSeconds: must be 0..20, got 21"),
        ({"visibility_timeout": 43201}, "VisibilityTimeout: must be 0..43200, got 43201"),
        ({"visibility_timeout": -1}, "VisibilityTimeout: must be 0..43200, got -1"),
    ],
)
def test_receive_parameters_out_of_range(store: QueueStore, kwargs: dict[str, int], start: str):
    """Out-of-range ReceiveMessage parameters are InvalidParameterValue naming them."""
    store.create_queue("orders")
    err = error(store.receive_message, "orders", **kwargs)
    assert isinstance(err, InvalidParameterValue)
    assert err.message == start


def test_receive_returns_at_most_max_in_send_order(store: QueueStore):
    """A full receive returns up to MaxNumberOfMessages, oldest first."""
    store.create_queue("orders")
    send(store, "orders", *[f"m{i}" for i in range(12)])
    assert bodies(receive(store, "orders", 3)) == ["m0", "m1", "m2"]
    assert bodies(receive(store, "orders", 10)) == [f"m{i}" for i in range(3, 12)][:9]
    check(store, "orders", visible=0, in_flight=12)


def test_received_messages_are_hidden_until_the_visibility_timeout(
    store: QueueStore, clock: FakeClock
):
    """Not deleted: hidden for VisibilityTimeout, then back with a new handle and count 2."""
    store.create_queue("orders", {"VisibilityTimeout": "30"})
    send(store, "orders", "a")
    (first,) = receive(store, "orders", attribute_names=["ApproximateReceiveCount"])
    clock.advance(29.9)
    assert receive(store, "orders") == []
    check(store, "orders", visible=0, in_flight=1)
    clock.advance(0.1)
    check(store, "orders", visible=1)
    (again,) = receive(store, "orders", attribute_names=["ApproximateReceiveCount"])
    assert again.message_id == first.message_id
    assert again.receipt_handle != first.receipt_handle
    assert (first.attributes, again.attributes) == (
        {"ApproximateReceiveCount": "1"},
        {"ApproximateReceiveCount": "2"},
    )


def test_request_visibility_timeout_overrides_the_queue_for_that_receive(
    store: QueueStore, clock: FakeClock
):
    """VisibilityTimeout on ReceiveMessage applies to the returned messages only."""
    store.create_queue("orders", {"VisibilityTimeout": "30"})
    send(store, "orders", "a")
    receive(store, "orders", visibility_timeout=5)
    clock.advance(5)
    assert len(receive(store, "orders")) == 1
    clock.advance(29)
    assert receive(store, "orders") == []


def test_visibility_timeout_zero_leaves_the_message_visible(store: QueueStore):
    """A receive with VisibilityTimeout 0 counts the receive but hides nothing."""
    store.create_queue("orders")
    send(store, "orders", "a")
    receive(store, "orders", visibility_timeout=0)
    check(store, "orders", visible=1)
    (again,) = receive(store, "orders", attribute_names=["All"])
    assert again.attributes["ApproximateReceiveCount"] == "2"


def test_system_attributes_are_sqs_strings_in_epoch_ms(store: QueueStore, clock: FakeClock):
    """SentTimestamp and ApproximateFirstReceiveTimestamp are epoch ms; the first stays."""
    store.create_queue("orders", {"VisibilityTimeout": "10"})
    send(store, "orders", "a")
    clock.advance(2.5)
    (first,) = receive(store, "orders", attribute_names=["All"])
    clock.advance(10)
    (second,) = receive(store, "orders", attribute_names=["SentTimestamp"])
    assert first.attributes == {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": str(int(START * 1000)),
        "ApproximateFirstReceiveTimestamp": str(int((START + 2.5) * 1000)),
        "SenderId": "000000000000",
    }
    assert second.attributes == {"SentTimestamp": str(int(START * 1000))}


def test_unknown_system_attribute_name_is_invalid(store: QueueStore):
    """MessageSystemAttributeNames must be SQS names."""
    store.create_queue("orders")
    err = error(store.receive_message, "orders", attribute_names=["Nope"])
    assert isinstance(err, InvalidAttributeName)


def test_received_body_md5_matches_what_boto3_computes(store: QueueStore):
    """MD5OfBody on receive is the MD5 of the UTF-8 body."""
    store.create_queue("orders")
    send(store, "orders", '{"order": 42, "note": "naïve ☃"}')
    (message,) = receive(store, "orders")
    assert message.md5_of_body == hashlib.md5(message.body.encode("utf-8")).hexdigest()


def test_message_attributes_come_back_when_asked_with_their_md5(store: QueueStore):
    """MessageAttributeNames: All, exact names and prefix.*; the MD5 covers what returns."""
    store.create_queue("orders")
    attributes = {
        "trace.id": MessageAttribute("String", "abc"),
        "trace.span": MessageAttribute("Number", "7"),
        "blob": MessageAttribute("Binary", binary_value=b"\x00\x01"),
    }
    sent = store.send_message("orders", "x", message_attributes=attributes)

    def returned(names: list[str]) -> ReceivedMessage:
        (message,) = receive(store, "orders", visibility_timeout=0, message_attribute_names=names)
        return message

    assert returned([]).message_attributes == {}
    assert returned([]).md5_of_message_attributes is None
    everything = returned(["All"])
    assert everything.message_attributes == attributes
    assert everything.md5_of_message_attributes == sent.md5_of_message_attributes
    assert set(returned(["trace.*"]).message_attributes) == {"trace.id", "trace.span"}
    only_blob = returned(["blob", "nope"])
    assert set(only_blob.message_attributes) == {"blob"}
    assert only_blob.md5_of_message_attributes == md5_of_attributes({"blob": attributes["blob"]})


def test_short_polling_may_answer_empty_while_a_message_waits(store: QueueStore):
    """Short polls sample half the partitions: one message is missed some of the time."""
    store.create_queue("orders")
    send(store, "orders", "only")
    found = [len(store.receive_message("orders", visibility_timeout=0).messages) for _ in range(40)]
    assert 0 in found
    assert 1 in found
    assert store.counters("orders").empty_receives == found.count(0)


def test_short_polling_returns_partial_batches_long_polling_full_ones(store: QueueStore):
    """With 10 messages a short poll of 10 returns fewer; a long poll returns all 10."""
    store.create_queue("orders")
    send(store, "orders", *[f"m{i}" for i in range(10)])
    short = [
        len(store.receive_message("orders", 10, visibility_timeout=0).messages) for _ in range(10)
    ]
    assert all(0 < n < 10 for n in short)
    assert len(store.receive_message("orders", 10, wait_time_seconds=1).messages) == 10


def test_queue_wait_time_makes_receives_long_polls(store: QueueStore):
    """ReceiveMessageWaitTimeSeconds > 0 turns a receive without WaitTimeSeconds into a
    long poll: all partitions, and the wait the adapter may spend is reported."""
    store.create_queue("orders", {"ReceiveMessageWaitTimeSeconds": "20"})
    send(store, "orders", *[f"m{i}" for i in range(10)])
    result = store.receive_message("orders", 10)
    assert (len(result.messages), result.wait_time_seconds) == (10, 20)
    assert store.receive_message("orders", 10, wait_time_seconds=0).wait_time_seconds == 0


def test_short_polling_seeded_is_reproducible(tmp_path: Path, clock: FakeClock):
    """The same seed gives the same short-poll answers."""

    def answers(folder: str) -> list[int]:
        (tmp_path / folder).mkdir()
        with QueueStore(tmp_path / folder / "q.db", clock=clock, rng=random.Random(3)) as store:
            store.create_queue("q")
            send(store, "q", *"abcde")
            return [
                len(store.receive_message("q", 10, visibility_timeout=0).messages)
                for _ in range(20)
            ]

    assert answers("one") == answers("two")


def test_short_polling_sampling_every_partition_returns_everything(
    tmp_path: Path, clock: FakeClock
):
    """short_poll_sampled == short_poll_partitions turns sampling off."""
    with QueueStore(
        tmp_path / "q.db", clock=clock, short_poll_partitions=4, short_poll_sampled=4
    ) as store:
        store.create_queue("q")
        send(store, "q", *"abcde")
        assert len(store.receive_message("q", 10).messages) == 5


def test_only_final_empty_attempts_count_as_empty_receives(store: QueueStore):
    """A long poll's intermediate attempts (final=False) do not count as empty receives."""
    store.create_queue("orders")
    store.receive_message("orders", wait_time_seconds=20, final=False)
    assert store.counters("orders").empty_receives == 0
    store.receive_message("orders", wait_time_seconds=20)
    assert store.counters("orders").empty_receives == 1


def test_next_visible_at_tells_a_long_poll_when_to_look_again(store: QueueStore, clock: FakeClock):
    """next_visible_at: the earliest delay end or visibility deadline; None when none."""
    store.create_queue("orders", {"VisibilityTimeout": "30"})
    assert store.next_visible_at("orders") is None
    send(store, "orders", "later", delay=20)
    send(store, "orders", "now")
    assert store.next_visible_at("orders") == START + 20
    receive(store, "orders")
    assert store.next_visible_at("orders") == START + 20
    clock.advance(20)
    receive(store, "orders")
    assert store.next_visible_at("orders") == START + 30


def test_next_visible_at_after_an_empty_receive_names_a_message_visible_since(
    store: QueueStore, clock: FakeClock
):
    """A long poll whose receive came back empty a hair before a message turned visible asks
    `next_visible_at(after=when it received)`: it gets that past time (look again now), not
    None (which left the message waiting out the whole WaitTimeSeconds: CI saw 20 s)."""
    store.create_queue("orders", {"VisibilityTimeout": "1"})
    send(store, "orders", "backed off")
    receive(store, "orders")
    asked_at = clock()
    clock.advance(1.0005)  # the receive found nothing; the message turned visible since
    assert store.next_visible_at("orders") is None
    assert store.next_visible_at("orders", after=asked_at) == START + 1


def test_listeners_hear_of_sends_and_visibility_changes(store: QueueStore):
    """add_listener: called with the queue name after sends and visibility changes."""
    heard: list[str] = []
    store.add_listener(heard.append)
    store.create_queue("orders")
    send(store, "orders", "a")
    store.send_message_batch("orders", [SendEntry("1", "b")])
    (message, _) = receive(store, "orders")
    store.change_message_visibility("orders", message.receipt_handle, 0)
    store.remove_listener(heard.append)
    send(store, "orders", "unheard")
    assert heard == ["orders", "orders", "orders"]


# --- delay ---------------------------------------------------------------------------------


def test_queue_delay_hides_new_messages_and_counts_them_delayed(
    store: QueueStore, clock: FakeClock
):
    """DelaySeconds on the queue: new messages are delayed, then receivable."""
    store.create_queue("orders", {"DelaySeconds": "60"})
    send(store, "orders", "a")
    check(store, "orders", visible=0, delayed=1)
    assert receive(store, "orders") == []
    clock.advance(60)
    check(store, "orders", visible=1)
    assert bodies(receive(store, "orders")) == ["a"]


def test_message_delay_overrides_the_queue_delay(store: QueueStore, clock: FakeClock):
    """A per-message DelaySeconds (even 0) replaces the queue's."""
    store.create_queue("orders", {"DelaySeconds": "60"})
    send(store, "orders", "now", delay=0)
    send(store, "orders", "soon", delay=5)
    assert bodies(receive(store, "orders")) == ["now"]
    clock.advance(5)
    assert bodies(receive(store, "orders")) == ["soon"]


def test_changing_the_queue_delay_is_not_retroactive(store: QueueStore, clock: FakeClock):
    """Standard queues: a new DelaySeconds applies to later sends only."""
    store.create_queue("orders", {"DelaySeconds": "60"})
    send(store, "orders", "delayed")
    store.set_queue_attributes("orders", {"DelaySeconds": "0"})
    send(store, "orders", "prompt")
    assert bodies(receive(store, "orders")) == ["prompt"]
    check(store, "orders", visible=0, in_flight=1, delayed=1)


# --- retention -----------------------------------------------------------------------------


def test_messages_older_than_retention_disappear(store: QueueStore, clock: FakeClock):
    """A message lives MessageRetentionPeriod seconds, delivered or not."""
    store.create_queue("orders", {"MessageRetentionPeriod": "60", "VisibilityTimeout": "5"})
    send(store, "orders", "old")
    clock.advance(30)
    send(store, "orders", "young")
    receive(store, "orders")
    clock.advance(29.9)
    check(store, "orders", visible=2)
    clock.advance(0.1)
    check(store, "orders", visible=1)
    assert bodies(receive(store, "orders")) == ["young"]
    assert store.counters("orders").expired == 1
    assert store.get_queue_attributes("orders", ["ApproximateNumberOfMessagesNotVisible"]) == {
        "ApproximateNumberOfMessagesNotVisible": "1"
    }


def test_shortening_retention_expires_existing_messages(store: QueueStore, clock: FakeClock):
    """SetQueueAttributes MessageRetentionPeriod applies to messages already stored."""
    store.create_queue("orders")
    send(store, "orders", "a")
    clock.advance(120)
    store.set_queue_attributes("orders", {"MessageRetentionPeriod": "60"})
    assert receive(store, "orders") == []
    assert store.expire() == 0
    assert store.counters("orders").expired == 1


def test_expire_sweeps_every_queue(store: QueueStore, clock: FakeClock):
    """expire() applies retention to all queues and returns the count."""
    for name in ("a", "b"):
        store.create_queue(name, {"MessageRetentionPeriod": "60"})
        send(store, name, "x", "y")
    clock.advance(60)
    assert store.expire() == 4
    assert store.expire() == 0


# --- purge ---------------------------------------------------------------------------------


def test_purge_deletes_visible_and_in_flight_messages(store: QueueStore):
    """PurgeQueue empties the queue, in-flight messages included; handles then delete nothing."""
    store.create_queue("orders")
    send(store, "orders", "a", "b", "c")
    (held,) = receive(store, "orders", 1)
    store.purge_queue("orders")
    check(store, "orders", visible=0)
    store.delete_message("orders", held.receipt_handle)
    assert store.counters("orders").purged == 3


def test_one_purge_per_sixty_seconds(store: QueueStore, clock: FakeClock):
    """A second purge within 60 s is PurgeQueueInProgress; after 60 s it is allowed."""
    store.create_queue("orders")
    store.purge_queue("orders")
    clock.advance(59)
    err = error(store.purge_queue, "orders")
    assert isinstance(err, PurgeQueueInProgress)
    assert err.query_code == "AWS.SimpleQueueService.PurgeQueueInProgress"
    clock.advance(1)
    store.purge_queue("orders")


# --- receipt handles and delete ------------------------------------------------------------


def test_latest_handle_deletes_for_good(store: QueueStore, clock: FakeClock):
    """DeleteMessage with the latest handle removes the message permanently."""
    store.create_queue("orders", {"VisibilityTimeout": "1"})
    send(store, "orders", "a")
    (message,) = receive(store, "orders")
    store.delete_message("orders", message.receipt_handle)
    clock.advance(5)
    assert receive(store, "orders") == []
    check(store, "orders", visible=0)
    assert store.counters("orders").deleted == 1


def test_stale_handle_after_a_new_receive_is_invalid(store: QueueStore, clock: FakeClock):
    """Once received again, the older handle is ReceiptHandleIsInvalid; the latest deletes."""
    store.create_queue("orders", {"VisibilityTimeout": "1"})
    send(store, "orders", "a")
    (old,) = receive(store, "orders")
    clock.advance(1)
    (new,) = receive(store, "orders")
    err = error(store.delete_message, "orders", old.receipt_handle)
    assert isinstance(err, ReceiptHandleIsInvalid)
    assert "stale" in err.message
    check(store, "orders", visible=0, in_flight=1)
    store.delete_message("orders", new.receipt_handle)
    check(store, "orders", visible=0)


def test_deleting_twice_succeeds(store: QueueStore):
    """Deleting an already-deleted message with its handle succeeds (idempotent)."""
    store.create_queue("orders")
    send(store, "orders", "a")
    (message,) = receive(store, "orders")
    store.delete_message("orders", message.receipt_handle)
    store.delete_message("orders", message.receipt_handle)
    assert store.counters("orders").deleted == 1


def test_latest_handle_deletes_even_after_the_timeout_expired(store: QueueStore, clock: FakeClock):
    """A handle stays the latest until the next receive, even once visible again."""
    store.create_queue("orders", {"VisibilityTimeout": "1"})
    send(store, "orders", "a")
    (message,) = receive(store, "orders")
    clock.advance(10)
    store.delete_message("orders", message.receipt_handle)
    check(store, "orders", visible=0)


@pytest.mark.parametrize("handle", ["", "garbage", "A" * 40, "AAAA" * 10 + "=", "Ω" * 40, 12345])
def test_garbage_handles_are_invalid(store: QueueStore, handle: object):
    """Anything the queue did not issue is ReceiptHandleIsInvalid."""
    store.create_queue("orders")
    err = error(store.delete_message, "orders", handle)
    assert isinstance(err, ReceiptHandleIsInvalid)
    assert err.message.startswith("ReceiptHandle:")


def test_tampered_and_foreign_handles_are_invalid(store: QueueStore):
    """A handle with one character changed, or from another queue, is invalid."""
    store.create_queue("orders")
    store.create_queue("other")
    send(store, "orders", "a")
    send(store, "other", "b")
    (message,) = receive(store, "orders")
    (foreign,) = receive(store, "other")
    flipped = message.receipt_handle[:10] + ("A" if message.receipt_handle[10] != "A" else "B")
    tampered = flipped + message.receipt_handle[11:]
    assert isinstance(error(store.delete_message, "orders", tampered), ReceiptHandleIsInvalid)
    assert isinstance(
        error(store.delete_message, "orders", foreign.receipt_handle), ReceiptHandleIsInvalid
    )
    check(store, "orders", visible=0, in_flight=1)


def test_delete_batch_reports_each_entry(store: QueueStore, clock: FakeClock):
    """DeleteMessageBatch: good handles delete; stale and garbage ones are Failed entries."""
    store.create_queue("orders", {"VisibilityTimeout": "1"})
    send(store, "orders", "a", "b")
    first = receive(store, "orders")
    clock.advance(1)
    second = receive(store, "orders", 1)
    result = store.delete_message_batch(
        "orders",
        [
            ReceiptEntry("stale", first[0].receipt_handle),
            ReceiptEntry("fresh", second[0].receipt_handle),
            ReceiptEntry("latest", first[1].receipt_handle),
            ReceiptEntry("junk", "junk"),
        ],
    )
    assert result.successful == ["fresh", "latest"]
    assert [(f.id, f.code) for f in result.failed] == [
        ("stale", "ReceiptHandleIsInvalid"),
        ("junk", "ReceiptHandleIsInvalid"),
    ]
    check(store, "orders", visible=0)


def test_delete_batch_limits(store: QueueStore):
    """DeleteMessageBatch has the batch rules of SendMessageBatch."""
    store.create_queue("orders")
    assert isinstance(error(store.delete_message_batch, "orders", []), EmptyBatchRequest)
    entries = [ReceiptEntry(str(i), "h") for i in range(11)]
    assert isinstance(
        error(store.delete_message_batch, "orders", entries), TooManyEntriesInBatchRequest
    )
    twice = [ReceiptEntry("a", "h"), ReceiptEntry("a", "h")]
    assert isinstance(error(store.delete_message_batch, "orders", twice), BatchEntryIdsNotDistinct)


# --- change visibility ---------------------------------------------------------------------


def test_change_visibility_zero_makes_the_message_visible_at_once(store: QueueStore):
    """ChangeMessageVisibility 0: the message can be received right away."""
    store.create_queue("orders")
    send(store, "orders", "a")
    (message,) = receive(store, "orders")
    store.change_message_visibility("orders", message.receipt_handle, 0)
    check(store, "orders", visible=1)
    assert bodies(receive(store, "orders")) == ["a"]


def test_change_visibility_counts_from_now_and_is_not_remembered(
    store: QueueStore, clock: FakeClock
):
    """The new timeout counts from the call; the next receive uses the queue's again."""
    store.create_queue("orders", {"VisibilityTimeout": "10"})
    send(store, "orders", "a")
    (message,) = receive(store, "orders")
    clock.advance(8)
    store.change_message_visibility("orders", message.receipt_handle, 100)
    clock.advance(99)
    assert receive(store, "orders") == []
    clock.advance(1)
    assert len(receive(store, "orders")) == 1
    clock.advance(10)
    check(store, "orders", visible=1)


def test_change_visibility_on_a_visible_message_is_message_not_inflight(
    store: QueueStore, clock: FakeClock
):
    """After the timeout expired the message is not in flight: MessageNotInflight."""
    store.create_queue("orders", {"VisibilityTimeout": "10"})
    send(store, "orders", "a")
    (message,) = receive(store, "orders")
    clock.advance(10)
    err = error(store.change_message_visibility, "orders", message.receipt_handle, 30)
    assert isinstance(err, MessageNotInflight)
    assert err.query_code == "AWS.SimpleQueueService.MessageNotInflight"


def test_change_visibility_cannot_pass_twelve_hours_from_the_receive(
    store: QueueStore, clock: FakeClock
):
    """The total stays within 43200 s of the receive; asking for more is an error."""
    store.create_queue("orders")
    send(store, "orders", "a")
    (message,) = receive(store, "orders")
    clock.advance(20)
    store.change_message_visibility("orders", message.receipt_handle, 43_180)
    err = error(store.change_message_visibility, "orders", message.receipt_handle, 43_181)
    assert isinstance(err, InvalidParameterValue)
    assert err.message.startswith("VisibilityTimeout: must keep the message within 43200 s")
    err = error(store.change_message_visibility, "orders", message.receipt_handle, 50_000)
    assert err.message == "VisibilityTimeout: must be 0..43200, got 50000"


def test_change_visibility_with_stale_or_deleted_handles(store: QueueStore, clock: FakeClock):
    """Stale handles and handles of deleted messages are ReceiptHandleIsInvalid."""
    store.create_queue("orders", {"VisibilityTimeout": "1"})
    send(store, "orders", "a")
    (old,) = receive(store, "orders")
    clock.advance(1)
    (new,) = receive(store, "orders")
    assert isinstance(
        error(store.change_message_visibility, "orders", old.receipt_handle, 5),
        ReceiptHandleIsInvalid,
    )
    store.delete_message("orders", new.receipt_handle)
    err = error(store.change_message_visibility, "orders", new.receipt_handle, 5)
    assert isinstance(err, ReceiptHandleIsInvalid)
    assert "no longer exists" in err.message


def test_change_visibility_batch_reports_each_entry(store: QueueStore):
    """ChangeMessageVisibilityBatch: per-entry success, range errors and bad handles."""
    store.create_queue("orders")
    send(store, "orders", "a", "b")
    first, second = receive(store, "orders")
    result = store.change_message_visibility_batch(
        "orders",
        [
            VisibilityEntry("zero", first.receipt_handle, 0),
            VisibilityEntry("huge", second.receipt_handle, 43_201),
            VisibilityEntry("junk", "junk", 5),
        ],
    )
    assert result.successful == ["zero"]
    assert [(f.id, f.code) for f in result.failed] == [
        ("huge", "InvalidParameterValue"),
        ("junk", "ReceiptHandleIsInvalid"),
    ]
    check(store, "orders", visible=1, in_flight=1)


# --- dead-letter queues --------------------------------------------------------------------


def test_message_moves_to_the_dlq_after_max_receive_count(store: QueueStore, clock: FakeClock):
    """Delivered maxReceiveCount times, the next receive moves it to the DLQ instead."""
    with_dlq(store, max_receive_count=2)
    (sent,) = send(store, "work", "poison")
    for _ in range(2):
        assert len(receive(store, "work")) == 1
        clock.advance(10)
    assert receive(store, "work") == []
    check(store, "work", visible=0)
    check(store, "dlq", visible=1)
    (dead,) = receive(store, "dlq", attribute_names=["All"])
    assert (dead.message_id, dead.body) == (sent, "poison")
    assert dead.attributes["SentTimestamp"] == str(int(START * 1000))
    assert dead.attributes["ApproximateReceiveCount"] == "3"
    assert dead.attributes["DeadLetterQueueSourceArn"] == ARN + "work"
    assert store.counters("work").moved_to_dlq == 1
    assert store.counters("dlq").sent == 0


def test_dlq_move_happens_inside_a_receive_that_still_returns_others(
    store: QueueStore, clock: FakeClock
):
    """A receive moves the poison message and fills its batch with the healthy ones."""
    with_dlq(store, max_receive_count=1)
    send(store, "work", "poison")
    receive(store, "work")
    clock.advance(10)
    send(store, "work", "a", "b")
    assert bodies(receive(store, "work")) == ["a", "b"]
    check(store, "dlq", visible=1)


def test_dlq_age_counts_from_the_move_and_retention_from_the_send(
    store: QueueStore, clock: FakeClock
):
    """In the DLQ, the oldest age restarts at the move; retention keeps the first send."""
    store.create_queue("dlq", {"MessageRetentionPeriod": "100"})
    policy = json.dumps({"deadLetterTargetArn": "dlq", "maxReceiveCount": 1})
    store.create_queue("work", {"RedrivePolicy": policy, "VisibilityTimeout": "10"})
    send(store, "work", "poison")
    receive(store, "work")
    clock.advance(60)
    receive(store, "work")
    assert store.stats("dlq").oldest_age_seconds == 0
    clock.advance(30)
    assert store.stats("dlq").oldest_age_seconds == 30
    clock.advance(10)
    check(store, "dlq", visible=0)
    assert store.counters("dlq").expired == 1


def test_redrive_policy_is_returned_with_the_dlq_arn(store: QueueStore):
    """RedrivePolicy accepts an ARN or a name and reads back as JSON with the ARN."""
    store.create_queue("dlq")
    store.create_queue(
        "work", {"RedrivePolicy": '{"deadLetterTargetArn":"dlq","maxReceiveCount":"5"}'}
    )
    assert json.loads(store.get_queue_attributes("work", ["RedrivePolicy"])["RedrivePolicy"]) == {
        "deadLetterTargetArn": ARN + "dlq",
        "maxReceiveCount": 5,
    }
    assert store.list_dead_letter_source_queues("dlq") == ["work"]
    store.set_queue_attributes("work", {"RedrivePolicy": ""})
    assert "RedrivePolicy" not in store.get_queue_attributes("work")


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ({"deadLetterTargetArn": "missing", "maxReceiveCount": 3}, "does not exist"),
        ({"deadLetterTargetArn": "work", "maxReceiveCount": 3}, "its own"),
        ({"deadLetterTargetArn": "dlq", "maxReceiveCount": 0}, "maxReceiveCount must be 1..1000"),
        ({"deadLetterTargetArn": "dlq", "maxReceiveCount": 1001}, "maxReceiveCount"),
        ({"deadLetterTargetArn": "arn:aws:sqs:eu-west-1:1:dlq", "maxReceiveCount": 3}, "ARN"),
        ({"maxReceiveCount": 3}, "deadLetterTargetArn"),
        ("not json", "JSON object"),
    ],
)
def test_bad_redrive_policies_are_invalid_parameter_value(
    store: QueueStore, policy: object, fragment: str
):
    """The dead-letter target must exist and not be the queue; maxReceiveCount 1..1000."""
    store.create_queue("dlq")
    store.create_queue("work")
    value = policy if isinstance(policy, str) else json.dumps(policy)
    err = error(store.set_queue_attributes, "work", {"RedrivePolicy": value})
    assert isinstance(err, InvalidParameterValue)
    assert err.message.startswith("RedrivePolicy:")
    assert fragment in err.message


def test_redrive_allow_policy_decides_who_may_use_a_dlq(store: QueueStore):
    """RedriveAllowPolicy denyAll refuses sources; byQueue allows the listed ones only."""
    store.create_queue("dlq", {"RedriveAllowPolicy": '{"redrivePermission":"denyAll"}'})
    store.create_queue("work")
    policy = {"RedrivePolicy": json.dumps({"deadLetterTargetArn": "dlq", "maxReceiveCount": 3})}
    assert "does not allow" in error(store.set_queue_attributes, "work", policy).message
    allow = json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [ARN + "work"]})
    store.set_queue_attributes("dlq", {"RedriveAllowPolicy": allow})
    store.set_queue_attributes("work", policy)
    store.create_queue("other")
    assert isinstance(error(store.set_queue_attributes, "other", policy), InvalidParameterValue)
    assert json.loads(store.get_queue_attributes("dlq")["RedriveAllowPolicy"]) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [ARN + "work"],
    }


def test_redrive_moves_dead_letters_back_to_their_source(store: QueueStore, clock: FakeClock):
    """redrive(dlq): visible DLQ messages return to their source with a fresh count."""
    with_dlq(store, max_receive_count=1)
    (sent,) = send(store, "work", "poison")
    receive(store, "work")
    clock.advance(10)
    receive(store, "work")
    assert store.redrive("dlq") == 1
    check(store, "dlq", visible=0)
    (back,) = receive(store, "work", attribute_names=["ApproximateReceiveCount", "SentTimestamp"])
    assert back.message_id == sent
    assert back.attributes == {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": str(int(START * 1000)),
    }
    assert store.counters("dlq").redriven == 1


def test_redrive_honours_limit_and_destination(store: QueueStore, clock: FakeClock):
    """redrive(limit=n) moves n at a time; to= sends them to another queue."""
    with_dlq(store, max_receive_count=1)
    store.create_queue("elsewhere")
    send(store, "work", "a", "b", "c")
    receive(store, "work")
    clock.advance(10)
    receive(store, "work")
    assert store.redrive("dlq", limit=2) == 2
    assert store.redrive("dlq", to="elsewhere") == 1
    check(store, "work", visible=2)
    check(store, "elsewhere", visible=1)


def test_redrive_skips_in_flight_and_orphaned_messages(store: QueueStore, clock: FakeClock):
    """In-flight DLQ messages stay; so do those whose source queue was deleted."""
    with_dlq(store, max_receive_count=1)
    send(store, "work", "a", "b")
    receive(store, "work")
    clock.advance(10)
    receive(store, "work")
    receive(store, "dlq", 1)
    store.delete_queue("work")
    assert store.redrive("dlq") == 0
    check(store, "dlq", visible=1, in_flight=1)


def test_redrive_of_unknown_queues_is_resource_not_found(store: QueueStore):
    """StartMessageMoveTask's error for a missing source or destination."""
    store.create_queue("dlq")
    assert isinstance(error(store.redrive, "nope"), ResourceNotFoundException)
    assert isinstance(error(store.redrive, "dlq", to="nope"), ResourceNotFoundException)


def test_a_deleted_dlq_turns_the_policy_off(store: QueueStore, clock: FakeClock):
    """If the DLQ is gone, messages keep being delivered rather than lost."""
    with_dlq(store, max_receive_count=1)
    send(store, "work", "a")
    receive(store, "work")
    store.delete_queue("dlq")
    clock.advance(10)
    assert bodies(receive(store, "work")) == ["a"]


# --- metrics -------------------------------------------------------------------------------


def test_counters_count_what_happened(store: QueueStore, clock: FakeClock):
    """Cumulative counters: sent, received, deleted, empty receives."""
    store.create_queue("orders")
    send(store, "orders", "a", "b")
    received = receive(store, "orders")
    store.delete_message("orders", received[0].receipt_handle)
    receive(store, "orders")
    counters = store.counters("orders")
    assert (counters.sent, counters.received, counters.deleted, counters.empty_receives) == (
        2,
        2,
        1,
        1,
    )


def test_stats_oldest_age_covers_every_state(store: QueueStore, clock: FakeClock):
    """ApproximateAgeOfOldestMessage: the oldest stored message, in flight or not."""
    store.create_queue("orders")
    assert store.stats("orders").oldest_age_seconds == 0
    send(store, "orders", "a")
    clock.advance(10)
    send(store, "orders", "b", delay=100)
    receive(store, "orders")
    clock.advance(5)
    stats = store.stats("orders")
    assert (stats.visible, stats.in_flight, stats.delayed, stats.oldest_age_seconds) == (
        0,
        1,
        1,
        15,
    )


def test_queue_names_lists_every_queue(store: QueueStore):
    """queue_names: what the metrics exporter iterates."""
    store.create_queue("b")
    store.create_queue("a")
    assert store.queue_names() == ["a", "b"]


# --- reopening -----------------------------------------------------------------------------


def test_reopen_keeps_queues_messages_counts_and_handles(tmp_path: Path, clock: FakeClock):
    """Close and reopen: queues, attributes, messages, states and handles survive."""
    path = tmp_path / "queue.db"
    with QueueStore(path, clock=clock) as store:
        store.create_queue("orders", {"VisibilityTimeout": "60"})
        send(store, "orders", "a", "b", "c")
        send(store, "orders", "d", delay=30)
        held = receive(store, "orders", 2)
    with QueueStore(path, clock=clock) as store:
        assert store.get_queue_attributes("orders")["VisibilityTimeout"] == "60"
        check(store, "orders", visible=1, in_flight=2, delayed=1)
        store.delete_message("orders", held[0].receipt_handle)
        check(store, "orders", visible=1, in_flight=1, delayed=1)
        clock.advance(60)
        assert bodies(receive(store, "orders")) == ["c", "d", "b"]


def test_row_ids_are_never_reused_across_reopens(tmp_path: Path, clock: FakeClock):
    """A handle of a deleted message never matches a later message, even after reopen."""
    path = tmp_path / "queue.db"
    with QueueStore(path, clock=clock) as store:
        store.create_queue("orders")
        send(store, "orders", "a")
        (gone,) = receive(store, "orders")
        store.delete_message("orders", gone.receipt_handle)
    with QueueStore(path, clock=clock) as store:
        send(store, "orders", "b")
        receive(store, "orders")
        store.delete_message("orders", gone.receipt_handle)
        check(store, "orders", visible=0, in_flight=1)


def test_a_database_from_another_schema_is_refused(tmp_path: Path):
    """A database whose user_version is not ours is not touched."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(RuntimeError, match="user_version"):
        QueueStore(path)


def test_reopen_under_another_account_keeps_redrive_policies(tmp_path: Path, clock: FakeClock):
    """Policies are stored by queue name, so the ARNs follow the store's account."""
    path = tmp_path / "queue.db"
    with QueueStore(path, clock=clock) as store:
        with_dlq(store)
    with QueueStore(path, clock=clock, arns=Arns("eu-west-1", "123456789012")) as store:
        policy = json.loads(store.get_queue_attributes("work")["RedrivePolicy"])
        assert policy["deadLetterTargetArn"] == "arn:aws:sqs:eu-west-1:123456789012:dlq"


def test_a_database_has_one_owner(tmp_path: Path, store: QueueStore):
    """A second store on a database in use fails at once (exclusive locking)."""
    with pytest.raises(RuntimeError, match="in use by another queue store"):
        QueueStore(tmp_path / "queue.db")


def test_redrive_does_not_revive_expired_messages(store: QueueStore, clock: FakeClock):
    """A dead letter past the DLQ's retention is dropped, not moved back."""
    store.create_queue("dlq", {"MessageRetentionPeriod": "60"})
    policy = json.dumps({"deadLetterTargetArn": "dlq", "maxReceiveCount": 1})
    store.create_queue("work", {"RedrivePolicy": policy, "VisibilityTimeout": "10"})
    send(store, "work", "a")
    receive(store, "work")
    clock.advance(10)
    receive(store, "work")
    clock.advance(50)
    assert store.redrive("dlq") == 0
    check(store, "work", visible=0)
    assert store.counters("dlq").expired == 1
