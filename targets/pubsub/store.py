"""``TopicStore``: the topic service's state, durable in SQLite, one method per SNS action
plus the outbox the delivery loop works from.

Schema (``PRAGMA user_version`` 1)::

    topics(name PK, attributes JSON, created)
    subscriptions(id PK AUTOINCREMENT, uuid UNIQUE, topic, protocol, endpoint, name,
                  attributes JSON, confirmed, token, token_expires)
    messages(id PK, message_id, topic, published, data JSON)   -- until delivered everywhere
    deliveries(id PK, message, subscription, attempt, due)      -- the outbox
    counts(topic, subscription, outcome, value, PK(...))        -- the accounting, durable

A ``Publish`` stores its message and one outbox row per subscription the fan-out plan picks
(model.plan), and counts ``published`` and ``matched`` in the same transaction; the service
answers only once it is committed (group commit, targets/durable.py), so an acknowledged
publish survives ``kill -9``. The rows of a group reach the delivery lanes only after that
commit (``committed``): nothing is delivered that a crash could take back. At open, every
outbox row goes back to its lane, due at once: deliveries resume after a restart, at least
once (a delivery done but not yet recorded as done is sent again, with the same message id).

The counts are durable so that the accounting survives a restart of the topic process:
``published`` per topic; per subscription ``matched``, ``delivered``, ``retried``,
``dead_lettered`` and ``dropped`` (retries exhausted and no DLQ: the message is gone). What
a lane holds now is ``pending``.
"""

from __future__ import annotations

import heapq
import json
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from targets import durable
from targets.durable import GroupCommit, WalSyncer, connect, create_schema
from targets.pubsub.delivery import parse_delivery_policy
from targets.pubsub.errors import AuthorizationError, InvalidParameter, NotFound
from targets.pubsub.model import (
    TOKEN_TTL_S,
    Arns,
    Message,
    Subscription,
    check_endpoint,
    check_topic_name,
    default_name,
    plan,
    settings_of,
)

SCHEMA_VERSION: Final = 1
PAGE: Final = 100
OUTCOMES: Final = ("matched", "delivered", "retried", "dead_lettered", "dropped")
_SCHEMA: Final = """
CREATE TABLE topics (name TEXT PRIMARY KEY, attributes TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    protocol TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    name TEXT NOT NULL,
    attributes TEXT NOT NULL,
    confirmed INTEGER NOT NULL,
    token TEXT,
    token_expires REAL NOT NULL DEFAULT 0
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    published REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    message INTEGER NOT NULL,
    subscription INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL
);
CREATE TABLE counts (
    topic TEXT NOT NULL,
    subscription TEXT NOT NULL,
    outcome TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (topic, subscription, outcome)
) WITHOUT ROWID
"""
_COUNT: Final = (
    "INSERT INTO counts VALUES (?, ?, ?, ?)"
    " ON CONFLICT DO UPDATE SET value = value + excluded.value"
)


@dataclass(order=True, slots=True)
class Delivery:
    """One outbox row: a message owed to a subscription, due at ``due``."""

    due: float
    id: int
    message: int = field(compare=False)
    subscription: int = field(compare=False)
    attempt: int = field(default=0, compare=False)  # failed attempts so far


@dataclass(slots=True)
class Topic:
    name: str
    attributes: dict[str, str]
    subscriptions: list[Subscription] = field(default_factory=list)


class TopicStore:
    def __init__(
        self,
        path: str | Path,
        *,
        arns: Arns | None = None,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous: must be NORMAL or FULL, got {synchronous!r}")
        self.arns = arns if arns is not None else Arns()
        self._db = connect(path, synchronous, owner="topic store")
        self._x = self._db.execute
        self.topics: dict[str, Topic] = {}
        self.subscriptions: dict[int, Subscription] = {}
        self.messages: dict[int, tuple[Message, int]] = {}  # row -> (message, deliveries left)
        self.lanes: dict[int, list[Delivery]] = {}  # subscription -> heap of due deliveries
        self.counts: dict[tuple[str, str, str], int] = {}
        self.owed: dict[int, int] = {}  # subscription -> outbox rows (in its lane or in flight)
        self._staged: list[Delivery] = []  # of the open group: to the lanes once committed
        self.on_due: Callable[[int], None] = lambda subscription: None
        try:
            create_schema(self._db, _SCHEMA, SCHEMA_VERSION)
            self._commits = GroupCommit(self._db, on_rollback=self._load)
            self._load()
        except BaseException:
            self._db.close()
            raise
        self._syncer = WalSyncer(f"{path}-wal") if synchronous == "NORMAL" else None

    # --- lifecycle and commits ---

    def _load(self, now: float = 0.0) -> None:
        """(Re)build the in-memory state from the database."""
        self.topics = {
            name: Topic(name, json.loads(attrs))
            for name, attrs in self._x("SELECT name, attributes FROM topics")
        }
        self.subscriptions.clear()
        rows = self._x(
            "SELECT id, uuid, topic, protocol, endpoint, name, attributes, confirmed, token,"
            " token_expires FROM subscriptions ORDER BY id"
        )
        for i, uid, topic, protocol, endpoint, name, attrs, confirmed, token, expires in rows:
            attributes = json.loads(attrs)
            sub = Subscription(
                i,
                uid,
                topic,
                protocol,
                endpoint,
                name,
                attributes,
                bool(confirmed),
                token,
                expires,
                settings_of(protocol, attributes),
            )
            self.subscriptions[i] = sub
            self.topics[topic].subscriptions.append(sub)
        self.counts = {
            (t, s, o): v
            for t, s, o, v in self._x("SELECT topic, subscription, outcome, value FROM counts")
        }
        left: dict[int, int] = {}
        self.lanes = {i: [] for i in self.subscriptions}
        self.owed = {i: 0 for i in self.subscriptions}
        for row, message, sub, attempt in self._x(
            "SELECT id, message, subscription, attempt FROM deliveries ORDER BY id"
        ):
            self.lanes[sub].append(Delivery(now, row, message, sub, attempt))
            self.owed[sub] = self.owed.get(sub, 0) + 1
            left[message] = left.get(message, 0) + 1
        self.messages = {}
        for row, message_id, topic, published, data in self._x(
            "SELECT id, message_id, topic, published, data FROM messages"
        ):
            if row in left:
                self.messages[row] = (
                    Message.from_json(message_id, topic, published, data),
                    left[row],
                )
        (last_message,) = self._x("SELECT coalesce(max(id), 0) FROM messages").fetchone()
        (last_delivery,) = self._x("SELECT coalesce(max(id), 0) FROM deliveries").fetchone()
        self._next_message, self._next_delivery = last_message + 1, last_delivery + 1
        self._staged = []

    def group_commits(self, schedule: Callable[[], bool] | None) -> None:
        """Group the calls of one loop iteration into one transaction (targets/durable.py)."""
        self._commits.schedule(schedule)

    @property
    def pending(self) -> bool:
        return self._commits.pending

    def commit(self) -> None:
        self._commits.commit()

    def committed(self) -> None:
        """After a commit: what the group published goes to its lanes."""
        staged, self._staged = self._staged, []
        woken: set[int] = set()
        for delivery in staged:
            lane = self.lanes.get(delivery.subscription)
            if lane is not None:
                heapq.heappush(lane, delivery)
                woken.add(delivery.subscription)
        for sub in woken:
            self.on_due(sub)

    def close(self) -> None:
        durable.close(self._commits, self._syncer, self._db)

    def _transaction(self) -> Iterator[None]:
        return self._commits.transaction()  # type: ignore[return-value]

    def _count(self, rows: Iterable[tuple[str, str, str, int]]) -> None:
        """Add to durable counts (in the caller's transaction; a failed call's additions are
        undone with the savepoint, and a lost group reloads them)."""
        rows = list(rows)
        self._db.executemany(_COUNT, rows)
        for topic, sub, outcome, n in rows:
            key = (topic, sub, outcome)
            self.counts[key] = self.counts.get(key, 0) + n

    def _after(self) -> None:
        """The call ran in its own transaction (no group): its effects are committed."""
        if not self._commits.pending:
            self.committed()

    # --- topics ---

    def topic(self, arn: str, field: str = "TopicArn") -> Topic:
        name = self.arns.topic_name(arn, field)
        topic = self.topics.get(name)
        if topic is None:
            raise NotFound(f"{field}: topic does not exist: {arn}")
        return topic

    def create_topic(self, name: str, attributes: Mapping[str, str], now: float) -> str:
        """CreateTopic: idempotent for the same attributes."""
        check_topic_name(name)
        attributes = dict(attributes)
        for key in attributes:
            if key not in ("DisplayName", "DeliveryPolicy", "Policy"):
                raise InvalidParameter(f"Attributes: unknown or unsupported attribute {key!r}")
        existing = self.topics.get(name)
        if existing is not None:
            if attributes and any(existing.attributes.get(k) != v for k, v in attributes.items()):
                raise InvalidParameter("Attributes: topic already exists with different attributes")
            return self.arns.topic(name)
        with self._commits.transaction():
            self._x("INSERT INTO topics VALUES (?, ?, ?)", (name, json.dumps(attributes), now))
        self.topics[name] = Topic(name, attributes)
        return self.arns.topic(name)

    def delete_topic(self, arn: str) -> None:
        """DeleteTopic: its subscriptions and their outbox go too; an unknown topic is fine."""
        name = self.arns.topic_name(arn)
        topic = self.topics.get(name)
        if topic is None:
            return
        with self._commits.transaction():
            for sub in list(topic.subscriptions):
                self._drop_subscription(sub)
            self._x("DELETE FROM topics WHERE name = ?", (name,))
        del self.topics[name]

    def list_topics(self, token: str | None) -> tuple[list[str], str | None]:
        names = sorted(self.topics)
        return _page([self.arns.topic(n) for n in names], token)

    def topic_attributes(self, arn: str) -> dict[str, str]:
        topic = self.topic(arn)
        subs = topic.subscriptions
        confirmed = sum(s.confirmed for s in subs)
        view = {
            "TopicArn": self.arns.topic(topic.name),
            "Owner": self.arns.account_id,
            "DisplayName": "",
            "SubscriptionsConfirmed": str(confirmed),
            "SubscriptionsPending": str(len(subs) - confirmed),
            "SubscriptionsDeleted": "0",
            "Policy": json.dumps(
                {
                    "Version": "2008-10-17",
                    "Id": "__default_policy_ID",
                    "Statement": [
                        {
                            "Sid": "__default_statement_ID",
                            "Effect": "Allow",
                            "Principal": {"AWS": "*"},
                            "Action": ["SNS:Publish", "SNS:Subscribe"],
                            "Resource": self.arns.topic(topic.name),
                            "Condition": {
                                "StringEquals": {"AWS:SourceOwner": self.arns.account_id}
                            },
                        }
                    ],
                }
            ),
        }
        view.update(topic.attributes)
        return view

    def set_topic_attribute(self, arn: str, name: str, value: str) -> None:
        topic = self.topic(arn)
        if name not in ("DisplayName", "DeliveryPolicy", "Policy"):
            raise InvalidParameter(f"AttributeName: cannot set {name!r}")
        if name == "DeliveryPolicy" and value:
            parse_delivery_policy(value)
        attributes = dict(topic.attributes)
        if value:
            attributes[name] = value
        else:
            attributes.pop(name, None)
        with self._commits.transaction():
            self._x(
                "UPDATE topics SET attributes = ? WHERE name = ?",
                (json.dumps(attributes), topic.name),
            )
        topic.attributes = attributes

    # --- subscriptions ---

    def subscription(self, arn: str, field: str = "SubscriptionArn") -> Subscription:
        topic, uid = self.arns.subscription_id(arn, field)
        for sub in self.topics.get(topic, Topic(topic, {})).subscriptions:
            if sub.uuid == uid:
                return sub
        raise NotFound(f"{field}: subscription does not exist: {arn}")

    def subscribe(
        self,
        topic_arn: str,
        protocol: str,
        endpoint: str | None,
        attributes: Mapping[str, str],
        *,
        now: float,
        name: str | None = None,
    ) -> Subscription:
        """Subscribe: sqs subscriptions are confirmed at once, http ones wait for
        ConfirmSubscription. The same endpoint again is the same subscription."""
        topic = self.topic(topic_arn)
        endpoint = check_endpoint(protocol, endpoint)
        attributes = dict(attributes)
        settings = settings_of(protocol, attributes)
        for sub in topic.subscriptions:
            if sub.protocol == protocol and sub.endpoint == endpoint:
                if attributes and sub.attributes != attributes:
                    raise InvalidParameter(
                        "Attributes: subscription already exists with different attributes"
                    )
                return sub
        label = name or default_name(protocol, endpoint)
        confirmed = protocol == "sqs"
        token = None if confirmed else secrets.token_hex(64)
        expires = 0.0 if confirmed else now + TOKEN_TTL_S
        uid = str(uuid.uuid4())
        with self._commits.transaction():
            cursor = self._x(
                "INSERT INTO subscriptions (uuid, topic, protocol, endpoint, name, attributes,"
                " confirmed, token, token_expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uid,
                    topic.name,
                    protocol,
                    endpoint,
                    label,
                    json.dumps(attributes),
                    confirmed,
                    token,
                    expires,
                ),
            )
            assert cursor.lastrowid is not None
            self._count((topic.name, label, outcome, 0) for outcome in OUTCOMES)
        sub = Subscription(
            cursor.lastrowid,
            uid,
            topic.name,
            protocol,
            endpoint,
            label,
            attributes,
            confirmed,
            token,
            expires,
            settings,
        )
        topic.subscriptions.append(sub)
        self.subscriptions[sub.id] = sub
        self.lanes[sub.id] = []
        self.owed[sub.id] = 0
        return sub

    def confirm(self, topic_arn: str, token: str, now: float) -> Subscription:
        """ConfirmSubscription with the token the confirmation message carried."""
        topic = self.topic(topic_arn)
        for sub in topic.subscriptions:
            if sub.token is not None and secrets.compare_digest(sub.token, token):
                if not sub.confirmed:
                    if now > sub.token_expires:
                        raise AuthorizationError("Token: the confirmation token has expired")
                    with self._commits.transaction():
                        self._x("UPDATE subscriptions SET confirmed = 1 WHERE id = ?", (sub.id,))
                    sub.confirmed = True
                return sub
        raise InvalidParameter("Token: invalid token")

    def unsubscribe(self, arn: str) -> None:
        sub = self.subscription(arn)
        with self._commits.transaction():
            self._drop_subscription(sub)
        self._after()

    def _drop_subscription(self, sub: Subscription) -> None:
        """Forget a subscription and what it was owed (counted as dropped): in its lane, in
        flight (whose end `done` then ignores) or staged in the open group."""
        self.lanes.pop(sub.id, None)
        self.owed.pop(sub.id, None)
        owed = [r for (r,) in self._x("SELECT message FROM deliveries WHERE subscription = ?",
                                      (sub.id,))]  # fmt: skip
        self._x("DELETE FROM deliveries WHERE subscription = ?", (sub.id,))
        self._x("DELETE FROM subscriptions WHERE id = ?", (sub.id,))
        if owed:
            self._count([(sub.topic, sub.name, "dropped", len(owed))])
        self._release(owed)
        self.topics[sub.topic].subscriptions.remove(sub)
        del self.subscriptions[sub.id]

    def list_subscriptions(
        self, topic_arn: str | None, token: str | None
    ) -> tuple[list[Subscription], str | None]:
        if topic_arn is None:
            subs = sorted(self.subscriptions.values(), key=lambda s: s.id)
        else:
            subs = list(self.topic(topic_arn).subscriptions)
        return _page(subs, token)

    def set_subscription_attribute(self, arn: str, name: str, value: str) -> None:
        sub = self.subscription(arn)
        changed = sub.with_attribute(name, value)
        with self._commits.transaction():
            self._x(
                "UPDATE subscriptions SET attributes = ? WHERE id = ?",
                (json.dumps(changed.attributes), sub.id),
            )
        sub.attributes, sub.settings = changed.attributes, changed.settings

    # --- publish ---

    def publish(self, topic_arn: str, messages: list[Message]) -> None:
        """Store messages published to one topic, and their deliveries (the fan-out plan)."""
        topic = self.topic(topic_arn)
        message_rows: list[tuple[object, ...]] = []
        staged: list[Delivery] = []
        kept: dict[int, tuple[Message, int]] = {}
        matched: dict[str, int] = {}
        for message in messages:
            subs = plan(topic.subscriptions, message)
            if not subs:
                continue
            row = self._next_message + len(message_rows)
            message_rows.append(
                (row, message.message_id, topic.name, message.published, message.as_json())
            )
            for sub in subs:
                staged.append(Delivery(0.0, self._next_delivery + len(staged), row, sub.id))
                matched[sub.name] = matched.get(sub.name, 0) + 1
            kept[row] = (message, len(subs))
        with self._commits.transaction():
            self._db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", message_rows)
            self._db.executemany(
                "INSERT INTO deliveries (id, message, subscription, due) VALUES (?, ?, ?, 0)",
                [(d.id, d.message, d.subscription) for d in staged],
            )
            counts = [(topic.name, "", "published", len(messages))]
            counts += [(topic.name, s, "matched", n) for s, n in matched.items()]
            self._count(counts)
        self._next_message += len(message_rows)
        self._next_delivery += len(staged)
        self.messages.update(kept)
        for delivery in staged:
            self.owed[delivery.subscription] += 1
        self._staged.extend(staged)
        self._after()

    # --- the outbox, for the delivery lanes ---

    def due(self, subscription: int, now: float, limit: int) -> list[Delivery]:
        """Take up to ``limit`` deliveries due by ``now`` off the subscription's lane."""
        lane = self.lanes.get(subscription)
        taken: list[Delivery] = []
        while lane and len(taken) < limit and lane[0].due <= now:
            taken.append(heapq.heappop(lane))
        return taken

    def next_due(self, subscription: int) -> float | None:
        lane = self.lanes.get(subscription)
        return lane[0].due if lane else None

    def message(self, delivery: Delivery) -> Message:
        return self.messages[delivery.message][0]

    def done(self, deliveries: list[Delivery], outcome: str) -> None:
        """Deliveries that ended: ``delivered``, ``dead_lettered`` or ``dropped``."""
        live = [d for d in deliveries if d.subscription in self.subscriptions]
        if not live:
            return
        with self._commits.transaction():
            self._db.executemany("DELETE FROM deliveries WHERE id = ?", [(d.id,) for d in live])
            per_sub: dict[int, int] = {}
            for d in live:
                per_sub[d.subscription] = per_sub.get(d.subscription, 0) + 1
                self.owed[d.subscription] -= 1
            self._count(
                (self.subscriptions[s].topic, self.subscriptions[s].name, outcome, n)
                for s, n in per_sub.items()
            )
            self._release(d.message for d in live)

    def retry(self, delivery: Delivery, due: float) -> None:
        """A failed attempt: the delivery comes back at ``due``."""
        sub = self.subscriptions.get(delivery.subscription)
        if sub is None:
            return
        delivery.attempt += 1
        delivery.due = due
        with self._commits.transaction():
            self._x(
                "UPDATE deliveries SET attempt = ?, due = ? WHERE id = ?",
                (delivery.attempt, due, delivery.id),
            )
            self._count([(sub.topic, sub.name, "retried", 1)])
        heapq.heappush(self.lanes[sub.id], delivery)

    def put_back(self, deliveries: list[Delivery], due: float) -> None:
        """Deliveries not attempted (the lane is stopping): due again at ``due``."""
        for delivery in deliveries:
            lane = self.lanes.get(delivery.subscription)
            if lane is not None:
                delivery.due = due
                heapq.heappush(lane, delivery)

    def _release(self, rows: Iterable[int]) -> None:
        gone: list[tuple[int]] = []
        for row in rows:
            message, left = self.messages[row]
            if left <= 1:
                del self.messages[row]
                gone.append((row,))
            else:
                self.messages[row] = (message, left - 1)
        if gone:
            self._db.executemany("DELETE FROM messages WHERE id = ?", gone)


def _page(items: list, token: str | None) -> tuple[list, str | None]:  # type: ignore[type-arg]
    start = 0
    if token:
        try:
            start = int(token)
        except ValueError:
            raise InvalidParameter("NextToken: not a token this service gave") from None
    rest = items[start : start + PAGE]
    more = start + PAGE < len(items)
    return rest, str(start + PAGE) if more else None
