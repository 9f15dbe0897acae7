"""TopicStore (targets.pubsub.store) on a real SQLite file: topics, subscriptions, publish
and the outbox the delivery lanes work from, driven as service.py and deliver.py drive it
(group commit paced by the event loop, ``committed()`` after each commit), and what a store
reopened on the same file still owes.

The tests are coroutines because the service drives the store from its event loop
(``LoopCommits``): that is what makes them ``inprocess``; no socket or process is used."""

from __future__ import annotations

import contextlib
import gc
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.durable import LoopCommits
from targets.pubsub.errors import InvalidParameter, NotFound
from targets.pubsub.model import Message
from targets.pubsub.store import OUTCOMES, Delivery, TopicStore

pytestmark = pytest.mark.inprocess

QUEUE = "arn:aws:sqs:us-east-1:000000000000:{}"
NOW = 1_700_000_000.0


class Driven:
    """A store as TopicService drives it: group commit on the loop, committed() after."""

    def __init__(self, store: TopicStore) -> None:
        self.store = store
        self.commits = LoopCommits(store.commit, after=store.committed)
        store.group_commits(self.commits.schedule)
        self.woken: list[int] = []
        store.on_due = self.woken.append

    async def durable(self) -> None:
        """What the service awaits before it answers."""
        await self.commits.durable(self.store.pending)

    def close(self) -> None:
        self.commits.flush()
        self.store.group_commits(None)
        self.store.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "topics.db"


@pytest.fixture
def stores() -> Iterator[list[TopicStore]]:
    """Closes every store a test opened and did not close (or crash) itself."""
    opened: list[TopicStore] = []
    yield opened
    for store in opened:
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed by the test
            store.close()


def open_store(path: Path, stores: list[TopicStore], **kw: object) -> TopicStore:
    store = TopicStore(path, **kw)  # type: ignore[arg-type]
    stores.append(store)
    return store


def message(n: int, text: str = "", **attributes: tuple[str, str]) -> Message:
    return Message(f"m-{n}", "orders", text or f"message {n}", NOW + n, None, dict(attributes))


def setup_topic(store: TopicStore, *queues: str) -> tuple[str, list[int]]:
    arn = store.create_topic("orders", {}, NOW)
    subs = [store.subscribe(arn, "sqs", QUEUE.format(q), {}, now=NOW).id for q in queues]
    return arn, subs


def count(store: TopicStore, sub: str, outcome: str) -> int:
    return store.counts[("orders", sub, outcome)]


def lane_ids(store: TopicStore, sub: int) -> list[int]:
    return sorted(d.id for d in store.lanes[sub])


# --- topics and subscriptions --------------------------------------------------------------


async def test_create_topic_is_idempotent_and_checked(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    arn = store.create_topic("orders", {"DisplayName": "Orders"}, NOW)
    assert arn == "arn:aws:sns:us-east-1:000000000000:orders"
    assert store.create_topic("orders", {"DisplayName": "Orders"}, NOW) == arn
    assert store.create_topic("orders", {}, NOW) == arn
    with pytest.raises(InvalidParameter, match="different attributes"):
        store.create_topic("orders", {"DisplayName": "Other"}, NOW)
    with pytest.raises(InvalidParameter, match="Name"):
        store.create_topic("bad name", {}, NOW)
    with pytest.raises(NotFound):
        store.topic("arn:aws:sns:us-east-1:000000000000:missing")
    assert store.list_topics(None) == ([arn], None)


async def test_subscriptions_sqs_confirmed_http_pending(
    path: Path, stores: list[TopicStore]
) -> None:
    store = open_store(path, stores)
    arn, (qa,) = setup_topic(store, "qa")
    again = store.subscribe(arn, "sqs", QUEUE.format("qa"), {}, now=NOW)
    assert again.id == qa
    http = store.subscribe(arn, "http", "http://127.0.0.1:9/hook", {}, now=NOW)
    assert store.subscriptions[qa].confirmed
    assert not http.confirmed
    assert http.token is not None
    with pytest.raises(InvalidParameter, match="Token"):
        store.confirm(arn, "wrong", NOW)
    store.publish(arn, [message(1)])
    assert store.owed == {qa: 1, http.id: 0}  # nothing for a pending subscription
    assert store.confirm(arn, http.token, NOW + 1).confirmed
    store.publish(arn, [message(2)])
    assert store.owed == {qa: 2, http.id: 1}
    for outcome in OUTCOMES:
        assert ("orders", "127.0.0.1:9/hook", outcome) in store.counts


# --- publish, commit, and when deliveries become due ----------------------------------------


async def test_deliveries_due_only_after_the_group_commits(
    path: Path, stores: list[TopicStore]
) -> None:
    store = open_store(path, stores)
    driven = Driven(store)
    arn, (qa, qb) = setup_topic(store, "qa", "qb")
    await driven.durable()
    store.publish(arn, [message(1), message(2)])
    assert store.pending  # the group is open: nothing acknowledged, nothing deliverable
    assert store.owed == {qa: 2, qb: 2}
    assert store.due(qa, NOW + 100, 10) == []
    assert store.next_due(qa) is None
    assert driven.woken == []
    await driven.durable()
    assert not store.pending
    assert sorted(driven.woken) == [qa, qb]
    taken = store.due(qa, NOW, 10)
    assert [store.message(d).message_id for d in taken] == ["m-1", "m-2"]
    assert [d.attempt for d in taken] == [0, 0]
    assert [d.message_id for d in (store.message(d) for d in store.due(qb, NOW, 10))] == [
        "m-1",
        "m-2",
    ]
    driven.close()


async def test_committed_hands_the_group_to_the_lanes(path: Path, stores: list[TopicStore]) -> None:
    """commit() makes the group durable; only committed() then fills the lanes."""
    store = open_store(path, stores)
    arn, (qa,) = setup_topic(store, "qa")
    store.group_commits(lambda: True)  # group every call until commit()
    store.publish(arn, [message(1)])
    assert store.pending
    store.commit()
    assert not store.pending
    assert store.due(qa, NOW, 10) == []
    store.committed()
    assert [d.message for d in store.due(qa, NOW, 10)] == [1]
    store.group_commits(None)


async def test_without_group_commit_a_publish_is_due_at_once(
    path: Path, stores: list[TopicStore]
) -> None:
    store = open_store(path, stores)
    arn, (qa,) = setup_topic(store, "qa")
    woken: list[int] = []
    store.on_due = woken.append
    store.publish(arn, [message(1)])
    assert not store.pending
    assert woken == [qa]
    assert len(store.due(qa, NOW, 10)) == 1


async def test_filter_policy_picks_the_subscriptions(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    arn, (everything,) = setup_topic(store, "all")
    big = store.subscribe(
        arn,
        "sqs",
        QUEUE.format("big"),
        {"FilterPolicy": '{"amount": [{"numeric": [">=", 1000]}]}'},
        now=NOW,
    ).id
    store.publish(arn, [message(1, amount=("Number", "1500")), message(2, amount=("Number", "5"))])
    store.publish(arn, [message(3)])
    assert [store.message(d).message_id for d in store.due(big, NOW, 10)] == ["m-1"]
    assert len(store.due(everything, NOW, 10)) == 3
    assert store.counts[("orders", "", "published")] == 3
    assert count(store, "all", "matched") == 3
    assert count(store, "big", "matched") == 1


async def test_message_matching_no_subscription_is_counted_not_stored(
    path: Path, stores: list[TopicStore]
) -> None:
    store = open_store(path, stores)
    arn = store.create_topic("orders", {}, NOW)
    store.publish(arn, [message(1)])
    assert store.messages == {}
    assert store.counts[("orders", "", "published")] == 1


async def test_due_takes_in_order_up_to_the_limit(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    arn, (qa,) = setup_topic(store, "qa")
    store.publish(arn, [message(i) for i in range(5)])
    first = store.due(qa, NOW, 2)
    assert [store.message(d).message_id for d in first] == ["m-0", "m-1"]
    rest = store.due(qa, NOW, 10)
    assert [store.message(d).message_id for d in rest] == ["m-2", "m-3", "m-4"]
    assert store.due(qa, NOW, 10) == []
    assert store.owed[qa] == 5  # taken is in flight, still owed


# --- done, retry, put_back ------------------------------------------------------------------


async def test_done_delivered_releases_the_message(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    driven = Driven(store)
    arn, (qa, qb) = setup_topic(store, "qa", "qb")
    store.publish(arn, [message(1)])
    await driven.durable()
    (a,) = store.due(qa, NOW, 10)
    store.done([a], "delivered")
    await driven.durable()
    assert store.owed == {qa: 0, qb: 1}
    assert count(store, "qa", "delivered") == 1
    assert a.message in store.messages  # qb still owes it
    (b,) = store.due(qb, NOW, 10)
    store.done([b], "dropped")
    await driven.durable()
    assert store.messages == {}
    assert count(store, "qb", "dropped") == 1
    driven.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)


async def test_done_dead_lettered_counts(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    arn, (qa,) = setup_topic(store, "qa")
    store.publish(arn, [message(1), message(2)])
    store.done(store.due(qa, NOW, 10), "dead_lettered")
    assert count(store, "qa", "dead_lettered") == 2
    assert store.owed[qa] == 0


async def test_retry_comes_back_when_due(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    driven = Driven(store)
    arn, (qa,) = setup_topic(store, "qa")
    store.publish(arn, [message(1)])
    await driven.durable()
    (d,) = store.due(qa, NOW, 10)
    store.retry(d, NOW + 20)
    await driven.durable()
    assert d.attempt == 1
    assert store.next_due(qa) == NOW + 20
    assert store.due(qa, NOW + 19.9, 10) == []
    (again,) = store.due(qa, NOW + 20, 10)
    assert (again.id, again.attempt) == (d.id, 1)
    store.retry(again, NOW + 40)
    assert again.attempt == 2
    assert count(store, "qa", "retried") == 2
    assert store.owed[qa] == 1
    driven.close()


async def test_put_back_is_neither_a_retry_nor_done(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    arn, (qa,) = setup_topic(store, "qa")
    store.publish(arn, [message(1), message(2)])
    taken = store.due(qa, NOW, 10)
    store.put_back(taken, NOW + 1)
    assert store.due(qa, NOW, 10) == []
    back = store.due(qa, NOW + 1, 10)
    assert sorted(d.id for d in back) == sorted(d.id for d in taken)
    assert [d.attempt for d in back] == [0, 0]
    assert count(store, "qa", "retried") == 0
    assert store.owed[qa] == 2


async def test_lane_orders_by_due_time(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    arn, (qa,) = setup_topic(store, "qa")
    store.publish(arn, [message(1), message(2), message(3)])
    first, second, third = store.due(qa, NOW, 10)
    store.retry(first, NOW + 30)
    store.retry(second, NOW + 10)
    store.put_back([third], NOW + 20)
    order = [store.due(qa, NOW + 100, 1)[0].id for _ in range(3)]
    assert order == [second.id, third.id, first.id]


# --- unsubscribe and delete ---------------------------------------------------------------


async def test_unsubscribe_drops_what_the_lane_owed(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    arn, (qa, qb) = setup_topic(store, "qa", "qb")
    store.publish(arn, [message(1), message(2)])
    sub = store.subscriptions[qa]
    store.unsubscribe(store.arns.subscription("orders", sub.uuid))
    assert qa not in store.subscriptions
    assert qa not in store.lanes
    assert count(store, "qa", "dropped") == 2
    assert len(store.messages) == 2  # qb still owes both
    store.done(store.due(qb, NOW, 10), "delivered")
    assert store.messages == {}


async def test_unsubscribe_with_a_delivery_in_flight(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    arn, (qa, qb) = setup_topic(store, "qa", "qb")
    store.publish(arn, [message(1)])
    in_flight = store.due(qa, NOW, 10)  # a lane is sending it
    store.unsubscribe(store.arns.subscription("orders", store.subscriptions[qa].uuid))
    store.done(in_flight, "delivered")  # its attempt ends: ignored, the subscription is gone
    store.done(store.due(qb, NOW, 10), "delivered")
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    assert store.messages == {}
    assert count(store, "qa", "dropped") == 1


async def test_delete_topic_forgets_its_outbox(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    arn, _ = setup_topic(store, "qa", "qb")
    store.publish(arn, [message(1)])
    store.delete_topic(arn)
    store.delete_topic(arn)  # an unknown topic is fine
    assert store.topics == {}
    assert store.subscriptions == {}
    assert store.messages == {}
    assert store.lanes == {}
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)


# --- reopening: everything not done is still owed -------------------------------------------


def owed_rows(store: TopicStore) -> dict[int, list[tuple[int, int, int]]]:
    """Per subscription: (delivery id, message row, attempts) in the lane."""
    return {
        sub: sorted((d.id, d.message, d.attempt) for d in lane) for sub, lane in store.lanes.items()
    }


async def test_reopened_store_owes_every_delivery_not_done(
    path: Path, stores: list[TopicStore]
) -> None:
    store = open_store(path, stores)
    driven = Driven(store)
    arn, (qa, qb) = setup_topic(store, "qa", "qb")
    store.publish(arn, [message(i, amount=("Number", str(i))) for i in range(1, 6)])
    await driven.durable()
    sent = {m: store.messages[m][0] for m in store.messages}
    a_taken = store.due(qa, NOW, 3)  # m-1 delivered, m-2 retried, m-3 in flight
    store.done([a_taken[0]], "delivered")
    store.retry(a_taken[1], NOW + 600)
    b_taken = store.due(qb, NOW, 5)
    store.done(b_taken, "delivered")  # qb got everything
    await driven.durable()
    counts = dict(store.counts)
    driven.close()

    reopened = open_store(path, stores)
    assert reopened.owed == {qa: 4, qb: 0}
    assert owed_rows(reopened)[qb] == []
    rows = owed_rows(reopened)[qa]
    assert [row for _, row, _ in rows] == [2, 3, 4, 5]
    assert [attempt for _, _, attempt in rows] == [1, 0, 0, 0]
    assert reopened.counts == counts
    assert count(reopened, "qa", "delivered") == 1
    assert count(reopened, "qa", "retried") == 1
    assert count(reopened, "qb", "delivered") == 5
    assert reopened.counts[("orders", "", "published")] == 5
    due = reopened.due(qa, NOW, 10)  # at once, the retry's later due time included
    assert len(due) == 4
    assert all(reopened.message(d) == sent[d.message] for d in due)
    assert set(reopened.messages) == {2, 3, 4, 5}


async def test_reopened_store_keeps_numbering(path: Path, stores: list[TopicStore]) -> None:
    store = open_store(path, stores)
    arn, (qa,) = setup_topic(store, "qa")
    store.publish(arn, [message(1), message(2)])
    store.close()
    reopened = open_store(path, stores)
    arn = reopened.create_topic("orders", {}, NOW)
    reopened.publish(arn, [message(3)])
    due = reopened.due(qa, NOW, 10)
    assert len({d.id for d in due}) == 3
    assert len({d.message for d in due}) == 3
    assert sorted(reopened.message(d).message_id for d in due) == ["m-1", "m-2", "m-3"]


async def test_crash_image_holds_what_was_acknowledged(
    path: Path, tmp_path: Path, stores: list[TopicStore]
) -> None:
    """The files as kill -9 would leave them (copied while the store is open): every
    committed publish is owed; the open group, never acknowledged, is not there."""
    store = open_store(path, stores)
    driven = Driven(store)
    arn, (qa,) = setup_topic(store, "qa")
    store.publish(arn, [message(1), message(2)])
    await driven.durable()  # acknowledged
    store.done(store.due(qa, NOW, 1), "delivered")
    await driven.durable()
    store.publish(arn, [message(3)])  # the group is open: not acknowledged
    assert store.pending
    image = tmp_path / "image.db"
    for suffix in ("", "-wal"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{image}{suffix}")
    driven.close()

    recovered = open_store(image, stores)
    assert recovered.owed == {qa: 1}
    (d,) = recovered.due(qa, NOW, 10)
    assert recovered.message(d).message_id == "m-2"
    assert count(recovered, "qa", "delivered") == 1
    assert recovered.counts[("orders", "", "published")] == 2

    after = open_store(path, stores)  # the clean close kept the last group too
    assert after.owed == {qa: 2}


async def test_dropped_without_close(path: Path, stores: list[TopicStore]) -> None:
    store = TopicStore(path, synchronous="FULL")  # FULL: no WAL thread to stop
    arn, (qa,) = setup_topic(store, "qa")
    store.publish(arn, [message(1)])
    store.retry(store.due(qa, NOW, 10)[0], NOW + 60)
    del store
    gc.collect()  # the connection goes with the object, never closed
    reopened = open_store(path, stores, synchronous="FULL")
    assert reopened.owed == {qa: 1}
    (d,) = reopened.due(qa, NOW, 10)
    assert (d.attempt, reopened.message(d).message_id) == (1, "m-1")


async def test_second_store_on_the_same_file_refused(path: Path, stores: list[TopicStore]) -> None:
    open_store(path, stores)
    with pytest.raises(RuntimeError, match="in use by another topic store"):
        TopicStore(path)


async def test_unknown_synchronous_mode_refused(path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        TopicStore(path, synchronous="OFF")  # type: ignore[arg-type]


@pytest.mark.core  # plain objects: no loop
def test_delivery_rows_order_by_due_then_id() -> None:
    assert Delivery(1.0, 2, 0, 0) < Delivery(2.0, 1, 0, 0)
    assert Delivery(1.0, 1, 9, 9) < Delivery(1.0, 2, 0, 0)
    assert Delivery(1.0, 1, 9, 9, 3) == Delivery(1.0, 1, 0, 0, 0)
