"""SQS's rules (targets/queue/rules.py) called directly: no database, no clock, no loop."""

from __future__ import annotations

import ast
import math
import random
import uuid
from pathlib import Path

import pytest

from targets.queue import rules
from targets.queue.config import (
    MESSAGE_SIZE_LIMIT,
    Arns,
    QueueConfig,
    RedriveAllowPolicy,
    RedrivePolicy,
)
from targets.queue.errors import (
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    EmptyBatchRequest,
    InvalidAttributeName,
    InvalidBatchEntryId,
    InvalidParameterValue,
    MessageNotInflight,
    PurgeQueueInProgress,
    QueueError,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    ResourceNotFoundException,
    TooManyEntriesInBatchRequest,
    UnsupportedOperation,
)
from targets.queue.handles import HandleCodec
from targets.queue.messages import MessageAttribute
from targets.queue.rules import (
    Queue,
    ReceiptEntry,
    ReceiveRequest,
    SendEntry,
    ShortPolling,
)

pytestmark = pytest.mark.core

NOW = 1_700_000_000.0
ROOT = Path(__file__).resolve().parents[2]


def queue(queue_id: int = 1, name: str = "q", **config: object) -> Queue:
    return Queue(queue_id, name, QueueConfig(**config), NOW, NOW, None)  # type: ignore[arg-type]


def error(call: object, *args: object, **kwargs: object) -> QueueError:
    """The QueueError a rule raises."""
    with pytest.raises(QueueError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


def request(
    config: QueueConfig | None = None, count: object = 1, **kwargs: object
) -> ReceiveRequest:
    kwargs = {
        "visibility_timeout": None,
        "wait_time_seconds": None,
        "attribute_names": (),
        "message_attribute_names": (),
        **kwargs,
    }
    return rules.receive_request(config or QueueConfig(), count, **kwargs)  # type: ignore[arg-type]


# --- purity ---------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_rules_import_no_sqlite_asyncio_or_clock() -> None:
    """rules.py and the queue modules it builds on import no sqlite3, asyncio, time or
    threading: the clock and the RNGs are arguments."""
    seen: set[str] = set()
    todo = ["targets.queue.rules"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        imported = _imports(ROOT / (module.replace(".", "/") + ".py"))
        assert not imported & {"sqlite3", "asyncio", "time", "datetime", "threading"}, module
        todo += [m for m in imported if m.startswith("targets.queue.")]
    assert {"targets.queue.messages", "targets.queue.config"} <= seen


# --- parameters and queues ------------------------------------------------------------------


def test_receive_request_applies_the_queue_defaults() -> None:
    """Unset visibility and wait come from the queue; the request's own win when given."""
    config = QueueConfig(visibility_timeout=7, receive_message_wait_time_seconds=3)
    assert (request(config).visibility_timeout, request(config).wait) == (7, 3)
    given = request(config, 10, visibility_timeout=0, wait_time_seconds=0)
    assert (given.count, given.visibility_timeout, given.wait) == (10, 0, 0)
    assert request(config, "5").count == 5  # digit strings, as the JSON protocol may send


@pytest.mark.parametrize(
    ("kwargs", "kind", "start"),
    [
        ({"count": 0}, InvalidParameterValue, "MaxNumberOfMessages: must be 1..10"),
        ({"count": 11}, InvalidParameterValue, "MaxNumberOfMessages: must be 1..10"),
        ({"visibility_timeout": 43_201}, InvalidParameterValue, "VisibilityTimeout: must be"),
        ({"wait_time_seconds": 21}, InvalidParameterValue, "WaitTimeSeconds: must be 0..20"),
        ({"attribute_names": ("Nope",)}, InvalidAttributeName, "MessageSystemAttributeNames"),
    ],
)
def test_receive_request_out_of_range(kwargs: dict[str, object], kind: type, start: str) -> None:
    """Each parameter out of its SQS range is refused, naming the parameter."""
    failure = error(request, **kwargs)
    assert isinstance(failure, kind)
    assert failure.message.startswith(start)


def test_short_polling_samples_partitions_long_polling_takes_all() -> None:
    """A short poll looks at `sampled` distinct partitions drawn from the RNG; a long poll
    at every one; bad settings are refused."""
    polling = ShortPolling(8, 4)
    assert polling.mask(1, random.Random(1)) == 0xFF
    masks = {polling.mask(0, random.Random(seed)) for seed in range(50)}
    assert all(bin(m).count("1") == 4 and m < 256 for m in masks)
    assert len(masks) > 1
    assert polling.mask(0, random.Random(3)) == polling.mask(0, random.Random(3))
    with pytest.raises(ValueError, match="short_poll_partitions"):
        ShortPolling(63, 1)
    with pytest.raises(ValueError, match=r"short_poll_sampled: must be 1\.\.8"):
        ShortPolling(8, 9)


def test_queue_names_and_fifo() -> None:
    """Names are 1..80 of A-Z a-z 0-9 _ -; a .fifo name is unsupported, not invalid."""
    rules.check_queue_name("a-Z_9")
    assert isinstance(error(rules.check_queue_name, "x" * 81), InvalidParameterValue)
    assert isinstance(error(rules.check_queue_name, "bad name"), InvalidParameterValue)
    assert isinstance(error(rules.check_queue_name, "q.fifo"), UnsupportedOperation)


def test_create_of_an_existing_name_is_idempotent_only_when_alike() -> None:
    """Same attributes: it exists (no-op); different ones: QueueNameExists."""
    queues = {"q": queue(visibility_timeout=5)}
    assert rules.exists_alike("q", QueueConfig(visibility_timeout=5), queues) is True
    assert rules.exists_alike("new", QueueConfig(), queues) is False
    assert isinstance(error(rules.exists_alike, "q", QueueConfig(), queues), QueueNameExists)


def test_redrive_policies_need_an_allowing_dlq_other_than_the_queue() -> None:
    """The DLQ must exist, differ from the queue and let it in (RedriveAllowPolicy)."""
    closed = queue(2, "closed", redrive_allow_policy=RedriveAllowPolicy("denyAll"))
    queues = {"dlq": queue(1, "dlq"), "closed": closed}
    for dlq, name, fragment in [
        ("nope", "q", "does not exist"),
        ("dlq", "dlq", "cannot be its own"),
        ("closed", "q", "does not allow 'q'"),
    ]:
        config = QueueConfig(redrive_policy=RedrivePolicy(dlq, 3))
        failure = error(rules.check_redrive, name, config, queues)
        assert isinstance(failure, InvalidParameterValue)
        assert fragment in failure.message
    rules.check_redrive("q", QueueConfig(redrive_policy=RedrivePolicy("dlq", 3)), queues)


def test_one_purge_per_sixty_seconds() -> None:
    """A purge within 60 s of the last one is PurgeQueueInProgress; at 60 s it is allowed."""
    purged = queue()
    rules.check_purge(purged, NOW)
    purged.purged = NOW
    assert isinstance(error(rules.check_purge, purged, NOW + 59.9), PurgeQueueInProgress)
    rules.check_purge(purged, NOW + 60)


def test_move_queues_name_the_missing_arn() -> None:
    """A move task's source and destination must exist: ResourceNotFoundException."""
    queues = {"dlq": queue(1, "dlq"), "q": queue(2, "q")}
    assert rules.move_queues("dlq", None, queues) == (queues["dlq"], None)
    assert rules.move_queues("dlq", "q", queues) == (queues["dlq"], queues["q"])
    for dlq, to, start in [("x", None, "SourceArn"), ("dlq", "x", "DestinationArn")]:
        failure = error(rules.move_queues, dlq, to, queues)
        assert isinstance(failure, ResourceNotFoundException)
        assert failure.message.startswith(start)


def test_dead_letter_sources_and_queue() -> None:
    """Sources are the queues whose policy targets the DLQ, sorted; a deleted DLQ is none."""
    policy = RedrivePolicy("dlq", 2)
    queues = {
        "dlq": queue(1, "dlq"),
        "b": queue(2, "b", redrive_policy=policy),
        "a": queue(3, "a", redrive_policy=policy),
        "c": queue(4, "c"),
    }
    assert rules.dead_letter_sources("dlq", queues) == ["a", "b"]
    assert rules.dead_letter_queue(queues["a"], queues) is queues["dlq"]
    assert rules.dead_letter_queue(queues["c"], queues) is None
    del queues["dlq"]
    assert rules.dead_letter_queue(queues["a"], queues) is None


def test_queue_attributes_select_what_was_asked() -> None:
    """All gives every attribute with the counts; names give only those; unknown refused."""
    q, arns = queue(), Arns()
    stats = rules.QueueStats(visible=3, in_flight=2, delayed=1, oldest_age_seconds=0.0)
    every = rules.queue_attributes(q, arns, {"All"}, stats)
    assert every["ApproximateNumberOfMessages"] == "3"
    assert every["QueueArn"] == arns.arn("q")
    assert every["CreatedTimestamp"] == str(int(NOW))
    wanted = rules.check_attribute_names(["VisibilityTimeout"])
    assert not rules.wants_counts(wanted)
    assert rules.queue_attributes(q, arns, wanted, None) == {"VisibilityTimeout": "30"}
    assert rules.wants_counts({"ApproximateNumberOfMessagesDelayed"})
    assert isinstance(error(rules.check_attribute_names, ["Nope"]), InvalidAttributeName)


# --- batches and sends ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "kind"),
    [
        ([], EmptyBatchRequest),
        ([ReceiptEntry(str(i), "h") for i in range(11)], TooManyEntriesInBatchRequest),
        ([ReceiptEntry("bad id", "h")], InvalidBatchEntryId),
        ([ReceiptEntry("a", "h"), ReceiptEntry("a", "h")], BatchEntryIdsNotDistinct),
    ],
)
def test_batch_rules(entries: list[ReceiptEntry], kind: type) -> None:
    """1..10 entries with distinct ids of 1..80 A-Z a-z 0-9 _ -."""
    assert isinstance(error(rules.check_batch, entries, "DeleteMessageBatch"), kind)


def test_a_send_batch_carries_at_most_256_kib() -> None:
    """The bodies and attributes of all entries together: over 256 KiB refuses the batch."""
    half = "x" * (MESSAGE_SIZE_LIMIT // 2)
    rules.check_send_batch([SendEntry("a", half), SendEntry("b", half)])
    failure = error(rules.check_send_batch, [SendEntry("a", half), SendEntry("b", half + "é")])
    assert isinstance(failure, BatchRequestTooLong)
    assert rules.entry_size(SendEntry("a", "é")) == 2  # UTF-8 bytes, not characters


def test_batch_result_splits_successes_and_failures() -> None:
    """Per entry: its id among the successful, or its failure with the error's code."""
    entries = [ReceiptEntry("a", "h"), ReceiptEntry("b", "h")]
    result = rules.batch_result(entries, [None, rules.stale()])
    assert result.successful == ["a"]
    assert [(f.id, f.code) for f in result.failed] == [("b", "ReceiptHandleIsInvalid")]


def test_new_message_row_and_answer() -> None:
    """The row holds queue, visible_at (now + delay), enqueued, sent, id, body; the answer
    the MD5s; a per-message delay overrides the queue's."""
    q = queue(delay_seconds=5)
    attributes = {"k": MessageAttribute("String", "v")}
    row, sent = rules.new_message(
        q, SendEntry("e", "body", None, attributes), NOW, random.Random(1)
    )
    assert row[:4] == (1, NOW + 5, NOW, NOW)
    assert row[4] == sent.message_id
    assert row[5] == "body"
    assert uuid.UUID(sent.message_id).version == 4
    assert sent.md5_of_message_body == rules.md5(b"body")
    assert sent.md5_of_message_attributes is not None
    assert sent.id == "e"
    row, _ = rules.new_message(q, SendEntry("e", "b", 0), NOW, random.Random(1))
    assert row[1] == NOW


def test_a_refused_message_draws_no_id() -> None:
    """Checks come first: a bad entry leaves the id RNG untouched."""
    ids = random.Random(5)
    state = ids.getstate()
    for entry in [SendEntry("e", ""), SendEntry("e", "x", 901), SendEntry("e", "x" * 1025)]:
        error(rules.new_message, queue(maximum_message_size=1024), entry, NOW, ids)
    assert ids.getstate() == state


# --- a queue's state ------------------------------------------------------------------------


def test_queue_state_follows_sends_moves_and_sweeps() -> None:
    """Sends set the next expiry, moves in make it unknown, a sweep sets it and counts."""
    q = queue(message_retention_period=60)
    assert q.due(NOW)  # unknown at open: sweep to find out
    q.swept((0, math.inf))
    assert not q.due(NOW)
    q.sent(3, NOW)
    assert (q.total, q.counters.sent, q.expires_at) == (3, 3, NOW + 60)
    q.arrived(2)
    assert (q.total, q.expires_at) == (5, -math.inf)
    q.swept((4, NOW + 90))
    assert (q.total, q.counters.expired, q.expires_at) == (1, 4, NOW + 90)
    q.swept(None)
    assert q.total == 1
    assert rules.next_expiry(NOW, NOW - 10, 60) == NOW + 50
    assert rules.next_expiry(None, None, 60) == math.inf


def test_queue_state_counts_what_each_call_did() -> None:
    """Receives (a final empty one counts as empty), deletes, moves out, purges and new
    attributes update the total, the counters and the next expiry."""
    q = queue()
    q.sent(10, NOW)
    q.received(3, final=True)
    q.received(0, final=False)  # a long poll asks again: not an empty receive yet
    q.received(0, final=True)
    q.deleted(2)
    q.dead_lettered(1)
    q.redriven(3)
    counters = q.counters
    assert (counters.received, counters.empty_receives, counters.deleted) == (3, 1, 2)
    assert (counters.moved_to_dlq, counters.redriven, q.total) == (1, 3, 4)
    q.emptied(4, NOW + 1)
    assert (q.total, q.purged, q.counters.purged, q.due(NOW + 10**9)) == (0, NOW + 1, 4, False)
    q.configured(QueueConfig(visibility_timeout=9), NOW + 2)
    assert (q.config.visibility_timeout, q.modified, q.due(NOW)) == (9, NOW + 2, True)


def test_stats_subtract_the_hidden_from_the_total() -> None:
    """Visible = total - not visible; in flight are the received among those."""
    q = queue()
    q.total = 10
    stats = q.stats(hidden=4, in_flight=3, oldest=NOW - 5, now=NOW)
    assert stats == rules.QueueStats(visible=6, in_flight=3, delayed=1, oldest_age_seconds=5)
    assert q.stats(0, 0, None, NOW).oldest_age_seconds == 0.0


# --- receiving ------------------------------------------------------------------------------


def test_over_receive_limit_picks_messages_received_max_times() -> None:
    """Delivered exactly maxReceiveCount times, a message is dead-lettered on the next try."""
    candidates = [(1, 0), (2, 2), (3, 3), (4, 1)]
    assert rules.over_receive_limit(candidates, RedrivePolicy("dlq", 2)) == [2, 3]
    assert rules.over_receive_limit(candidates, None) == []


def test_delivery_returns_the_attributes_asked_for() -> None:
    """A new handle for the latest receive; system attributes as SQS's strings (epoch ms);
    DeadLetterQueueSourceArn names the queue a dead letter came from."""
    codec, arns = HandleCodec(bytes(32)), Arns()
    source = queue(7, "work")
    delivery = rules.Delivery(codec, arns, {7: source})
    row: rules.Claimed = (42, "mid", "body", None, NOW, 3, NOW + 1.5, 7)
    message = delivery.message(row, queue(1, "dlq"), 99, request(attribute_names=("All",)))
    assert codec.decode(message.receipt_handle) == (1, 42, 99)
    assert message.attributes == {
        "ApproximateReceiveCount": "3",
        "SentTimestamp": str(int(NOW * 1000)),
        "ApproximateFirstReceiveTimestamp": str(int((NOW + 1.5) * 1000)),
        "SenderId": arns.account_id,
        "DeadLetterQueueSourceArn": arns.arn("work"),
    }
    assert message.md5_of_body == rules.md5(b"body")
    plain = delivery.message(row, queue(1, "dlq"), 99, request(attribute_names=("SentTimestamp",)))
    assert plain.attributes == {"SentTimestamp": str(int(NOW * 1000))}
    assert plain.message_attributes == {}
    assert plain.md5_of_message_attributes is None


# --- receipt handles ------------------------------------------------------------------------


def test_resolve_tells_latest_stale_gone_and_foreign_handles() -> None:
    """Per handle: the message it is the latest handle of, stale, gone (None) or invalid."""
    q = queue(1)
    found = {10: (1, 5, NOW + 30, NOW), 11: (1, 6, NOW + 30, NOW), 12: (2, 7, NOW, NOW)}
    decoded: list[rules.Decoded] = [(1, 10, 5), (1, 11, 5), (1, 13, 1), (1, 12, 7), (2, 10, 5)]
    decoded.append(None)
    states = rules.resolve(q, ["h"] * len(decoded), decoded, found)
    assert states[0] == (10, NOW + 30, NOW)
    assert isinstance(states[1], ReceiptHandleIsInvalid)
    assert "stale" in states[1].message
    assert states[2] is None
    assert states[3] is None
    assert isinstance(states[4], ReceiptHandleIsInvalid)
    assert isinstance(states[5], QueueError)
    assert rules.rows_of(q, decoded) == [10, 11, 13, 12]
    assert rules.latest_pairs(q, decoded[:2]) == [[10, 5], [11, 5]]


def test_deleted_outcomes_leave_only_the_undeleted_to_look_up() -> None:
    """A handle that deleted its message succeeds; one whose message another entry deleted
    by a newer handle is stale; the rest are looked up."""
    q = queue(1)
    decoded: list[rules.Decoded] = [(1, 10, 5), (1, 10, 4), (1, 11, 1), None]
    outcomes, rest = rules.deleted_outcomes(q, decoded, {10: 5})
    assert outcomes[0] is None
    assert isinstance(outcomes[1], ReceiptHandleIsInvalid)
    assert rest == [2, 3]


def check_visibility(
    state: rules.HandleState, requested: object, expected: tuple[float, int] | type
) -> None:
    outcome = rules.visibility_change(state, requested, NOW)
    if isinstance(expected, tuple):
        assert outcome == expected
    else:
        assert isinstance(outcome, expected)


def test_visibility_changes() -> None:
    """From now, in flight only, within 12 h of the receive; errors per entry."""
    in_flight = (10, NOW + 30, NOW - 100)
    check_visibility(in_flight, 0, (NOW, 10))
    check_visibility(in_flight, "60", (NOW + 60, 10))
    check_visibility(in_flight, 43_200 - 100, (NOW + 43_100, 10))
    check_visibility(in_flight, 43_200 - 99, InvalidParameterValue)  # past 12 h
    check_visibility(in_flight, -1, InvalidParameterValue)
    check_visibility((10, NOW, NOW - 100), 5, MessageNotInflight)  # its timeout expired
    check_visibility(None, 5, ReceiptHandleIsInvalid)  # gone
    check_visibility(rules.stale(), 5, ReceiptHandleIsInvalid)
    check_visibility(rules.stale(), 99_999, InvalidParameterValue)  # the range comes first
