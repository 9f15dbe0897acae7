"""The queue engine: SQS standard queues, durable in one SQLite database (WAL).

``QueueStore`` has one method per SQS action (``create_queue``, ``send_message_batch``,
``receive_message``, ...; queues named by name, the adapter maps QueueUrl <-> name), raises
the errors of ``targets.queue.errors`` and reports batch failures per entry, so the HTTP
adapters (plain JSON and ``X-Amz-Target: AmazonSQS.*``) only translate. It is synchronous
and never blocks beyond its SQLite calls: long polling is the adapter's loop over
``receive_message`` (see below). One store owns one database file and is used from one
thread (the event loop's); several processes must not share a database.

Time is ``clock()``, epoch seconds (injected: tests pass a fake clock and never sleep);
deadlines are stored as absolute epoch times, so they survive a restart.

Schema (``PRAGMA user_version`` 1)::

    queues(id PK AUTOINCREMENT, name UNIQUE,  -- ids never reused: handles carry them
           attributes JSON, created, modified, purged)
    meta(key PK, value)                       -- receipt-handle MAC key, row ids reserved
    messages(id PK,                           -- never reused: handles carry it (see meta)
             queue, visible_at,               -- delay end / visibility deadline
             receive_count, enqueued,         -- time it entered this queue (send or move)
             sent,                            -- original send time: SentTimestamp, retention
             first_receive, received_at,      -- ApproximateFirstReceiveTimestamp, 12 h limit
             receipt,                         -- nonce of the latest receive (handle check)
             source,                          -- queue it was dead-lettered from (redrive)
             message_id, body, attributes)
    messages_by_visibility(queue, visible_at, receive_count)  -- receive, counts, next visible
    messages_by_age(queue, enqueued)                          -- oldest age, retention
    messages_moved_by_sent(queue, sent) WHERE sent < enqueued -- retention of moved messages

A message is *delayed* while ``visible_at > now`` and it was never received, *in flight*
while ``visible_at > now`` after a receive, *visible* otherwise. Gauges read one covering
range of ``messages_by_visibility`` (only the not-visible messages) and subtract from a
per-queue total kept in memory (recounted at open), so a scrape costs no table scan.

SQS semantics and the choices made where SQS leaves room:

* Receive picks visible messages in ``visible_at`` order (best-effort FIFO; a redelivered
  message queues behind older ones). Each receive draws a new nonce: its handle is the only
  one that deletes or changes visibility; an older handle of a message received again
  since is stale -> ``ReceiptHandleIsInvalid`` (SQS may accept it and not delete; the issue
  asks for "delete by the latest handle"). A handle of a message already gone (deleted,
  expired, purged, moved) deletes nothing and succeeds, like SQS's idempotent delete.
  Garbage and handles of another queue -> ``ReceiptHandleIsInvalid``.
* Short polling (effective wait 0) models SQS's sampling of a subset of servers: message
  row ``id % short_poll_partitions`` is its partition, and each short poll looks only at
  ``short_poll_sampled`` partitions drawn from the injected ``rng`` (seed it for
  reproducible runs): with 4 of 8, a queue holding one visible message answers empty half
  the time and a queue with few messages returns about half of them. Long polling (wait
  1..20, from the request or ReceiveMessageWaitTimeSeconds) looks at all partitions.
* Long polling: ``receive_message`` returns at once; ``Received.wait_time_seconds`` tells
  the adapter how long it may wait. While empty, it waits until a listener
  (``add_listener``: called with the queue name after a commit that may have made messages
  available) fires or ``next_visible_at`` comes, then asks again with ``final=False``; only
  the final attempt's empty answer counts as an empty receive.
* Dead-letter queues: a visible message already received ``maxReceiveCount`` times moves to
  the DLQ on the next receive that would return it (it is delivered exactly N times, as
  ElasticMQ does), keeping its MessageId, SentTimestamp (retention still counts from the
  original send), receive count and first-receive time; its age in the DLQ counts from
  the move. A policy whose DLQ was deleted is ignored.
* ``redrive(dlq, to=None, limit=None)`` is StartMessageMoveTask's one step: it moves up to
  ``limit`` visible DLQ messages (all when None) back to the queue each came from (or to
  ``to``), visible at once with a fresh receive count. ``MaxNumberOfMessagesPerSecond``
  is the adapter's: call it once a second with ``limit`` = the rate.
* Retention: messages with ``sent <= now - MessageRetentionPeriod`` are deleted by a sweep
  run inside each receive, GetQueueAttributes, ``stats`` and ``expire``.
* Purge deletes every message at once and allows one purge per 60 s per queue.
* Not modelled: FIFO queues, QueueDeletedRecently (a name is reusable at once), the
  120,000 in-flight limit (OverLimit), tags, permissions.

Durability: every acknowledged send is committed before the call returns (a batch in one
transaction), or, with group commit on, before the service acknowledges it. WAL with
``synchronous=NORMAL`` (the default) survives a crash of the process (``kill -9``: the
committed WAL frames are in the OS page cache), not a power loss or kernel crash;
``synchronous="FULL"`` fsyncs the WAL on each commit and survives those too, at a cost
measured in ``benchmarks/queue_engine.py``.

Group commit (``group_commits(schedule)``, what the queue service turns on): a call's
changes no longer commit when it returns; they join one open transaction, each call in a
savepoint of its own (a failing call still changes nothing), and the first call of a group
calls ``schedule()``, which arranges for ``commit()`` soon (the service: once per event
loop iteration, so the requests served in one iteration share one commit: one WAL write
instead of one per request). While ``pending`` is true nothing is durable, and reads may
see the group's changes: whoever answers a client must wait for ``commit()`` first (the
service does, for every response). ``schedule()`` returning False means "commit now": the
call then runs in a transaction of its own, as without group commit.

Checkpoints stay on the owner's thread (``locking_mode=EXCLUSIVE`` allows one connection),
every ``WAL_CHECKPOINT_PAGES``. With NORMAL, SQLite fsyncs the whole WAL written since the
last checkpoint first (~40 MB: ~100 ms on a virtual disk, a stall of the event loop); a
daemon thread (``_WalSyncer``) fdatasyncs the WAL every ``WAL_SYNC_INTERVAL`` instead, so
that fsync finds little left to write. It changes no guarantee: it only writes earlier what
the checkpoint would have synced anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, Literal, TypeVar

from targets.queue import messages as msg
from targets.queue.config import (
    MAX_DELAY_SECONDS,
    MAX_VISIBILITY_TIMEOUT,
    MAX_WAIT_TIME_SECONDS,
    MESSAGE_SIZE_LIMIT,
    QUEUE_NAME,
    READABLE,
    Arns,
    QueueConfig,
    parse_int,
)
from targets.queue.errors import (
    BatchEntryIdsNotDistinct,
    BatchFailure,
    BatchRequestTooLong,
    EmptyBatchRequest,
    InvalidAttributeName,
    InvalidBatchEntryId,
    InvalidParameterValue,
    MessageNotInflight,
    PurgeQueueInProgress,
    QueueDoesNotExist,
    QueueError,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    ResourceNotFoundException,
    TooManyEntriesInBatchRequest,
    UnsupportedOperation,
)
from targets.queue.handles import KEY_SIZE, HandleCodec
from targets.queue.messages import MessageAttribute

SCHEMA_VERSION: Final = 1
MAX_BATCH_ENTRIES: Final = 10
MAX_RECEIVE_MESSAGES: Final = 10
PURGE_INTERVAL: Final = 60.0
ROW_ID_BLOCK: Final = 1_000_000
WAL_CHECKPOINT_PAGES: Final = 10_000  # ~40 MB of WAL between checkpoints (SQLite: 1000)
WAL_SYNC_INTERVAL: Final = 0.1  # seconds between background fdatasync of the WAL (NORMAL)
MAX_LIST_RESULTS: Final = 1000
SYSTEM_ATTRIBUTES: Final = frozenset(
    {
        "All",
        "ApproximateReceiveCount",
        "ApproximateFirstReceiveTimestamp",
        "SentTimestamp",
        "SenderId",
        "DeadLetterQueueSourceArn",
        "AWSTraceHeader",
        "MessageDeduplicationId",
        "MessageGroupId",
        "SequenceNumber",
    }
)
_BATCH_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,80}")
T = TypeVar("T")
_UUID_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET: Final = (0x4000 << 64) | (0x8000 << 48)

_SCHEMA: Final = """
CREATE TABLE queues (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL,
    created REAL NOT NULL,
    modified REAL NOT NULL,
    purged REAL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    queue INTEGER NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    enqueued REAL NOT NULL,
    sent REAL NOT NULL,
    first_receive REAL,
    received_at REAL,
    receipt INTEGER,
    source INTEGER,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT
);
CREATE INDEX messages_by_visibility ON messages (queue, visible_at, receive_count);
CREATE INDEX messages_by_age ON messages (queue, enqueued);
CREATE INDEX messages_moved_by_sent ON messages (queue, sent) WHERE sent < enqueued;
"""
_INSERT: Final = (
    "INSERT INTO messages (id, queue, visible_at, enqueued, sent, message_id, body, attributes)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_MOVE_TO_DLQ: Final = (
    "UPDATE messages SET queue = ?, enqueued = ?, visible_at = ?, source = ?,"
    " receipt = NULL, received_at = NULL WHERE id IN (SELECT value FROM json_each(?))"
)
_CLAIM: Final = (
    "UPDATE messages SET visible_at = ?, receive_count = receive_count + 1,"
    " first_receive = coalesce(first_receive, ?), receipt = ?, received_at = ?"
    " WHERE id IN (SELECT value FROM json_each(?))"
    " RETURNING id, message_id, body, attributes, sent, receive_count, first_receive, source"
)
_LOOKUP: Final = (
    "SELECT id, queue, receipt, visible_at, received_at FROM messages"
    " WHERE id IN (SELECT value FROM json_each(?))"
)
_DELETE_LATEST: Final = (
    "DELETE FROM messages WHERE id IN (SELECT m.id FROM json_each(?) AS j JOIN messages AS m"
    " ON m.id = json_extract(j.value, '$[0]') AND m.receipt = json_extract(j.value, '$[1]'))"
    " RETURNING id, receipt"
)
_CANDIDATES: Final = (
    "SELECT id, receive_count FROM messages WHERE queue = ? AND visible_at <= ?"
    " AND (? >> (id % ?)) & 1 ORDER BY visible_at LIMIT ?"
)


# --- values --------------------------------------------------------------------------------


@dataclass(slots=True)
class QueueCounters:
    """Cumulative per-queue counts since the store opened (Prometheus counters)."""

    sent: int = 0  # messages accepted by SendMessage / SendMessageBatch
    received: int = 0  # messages returned by ReceiveMessage
    empty_receives: int = 0  # final ReceiveMessage answers with no message
    deleted: int = 0  # messages deleted by DeleteMessage / DeleteMessageBatch
    moved_to_dlq: int = 0  # messages this queue moved to its dead-letter queue
    redriven: int = 0  # messages redriven out of this (dead-letter) queue
    expired: int = 0  # messages dropped by retention
    purged: int = 0  # messages dropped by PurgeQueue


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Gauges of one queue now."""

    visible: int
    in_flight: int
    delayed: int
    oldest_age_seconds: float  # of the oldest message of any state; 0 when empty


@dataclass(frozen=True, slots=True)
class SendEntry:
    id: str
    body: str
    delay_seconds: int | None = None
    message_attributes: Mapping[str, MessageAttribute] | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    message_id: str
    md5_of_message_body: str
    md5_of_message_attributes: str | None = None
    id: str = ""  # the batch entry id (SendMessageBatch)


@dataclass(frozen=True, slots=True)
class ReceiptEntry:
    """A DeleteMessageBatch entry."""

    id: str
    receipt_handle: str


@dataclass(frozen=True, slots=True)
class VisibilityEntry:
    """A ChangeMessageVisibilityBatch entry."""

    id: str
    receipt_handle: str
    visibility_timeout: int


@dataclass(frozen=True, slots=True)
class BatchResult(Generic[T]):
    successful: list[T]
    failed: list[BatchFailure]


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    message_id: str
    receipt_handle: str
    body: str
    md5_of_body: str
    attributes: dict[str, str]  # the requested system attributes, as SQS's strings
    message_attributes: dict[str, MessageAttribute]  # the requested user attributes
    md5_of_message_attributes: str | None  # over the returned user attributes


@dataclass(frozen=True, slots=True)
class Received:
    messages: list[ReceivedMessage]
    wait_time_seconds: int  # effective long-poll wait; 0 means a short poll, answer now


_Sweep = tuple[int, float]  # messages expired, next expiry time


@dataclass(slots=True)
class _Queue:
    id: int
    name: str
    config: QueueConfig
    created: float
    modified: float
    purged: float | None
    total: int = 0  # stored messages of every state
    expires_at: float = -math.inf  # no message expires before; -inf: sweep to find out
    counters: QueueCounters = field(default_factory=QueueCounters)


# --- the store ------------------------------------------------------------------------------


class QueueStore:
    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        arns: Arns | None = None,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        short_poll_partitions: int = 8,
        short_poll_sampled: int = 4,
        cache_kib: int = 16_384,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous: must be NORMAL or FULL, got {synchronous!r}")
        if not 1 <= short_poll_partitions <= 62:
            raise ValueError(f"short_poll_partitions: must be 1..62, got {short_poll_partitions}")
        if not 1 <= short_poll_sampled <= short_poll_partitions:
            raise ValueError(
                f"short_poll_sampled: must be 1..{short_poll_partitions}, got {short_poll_sampled}"
            )
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._ids = random.Random(secrets.randbits(128))  # message ids and receive nonces
        self.arns = arns if arns is not None else Arns()
        self._partitions = short_poll_partitions
        self._sampled = short_poll_sampled
        self._all_partitions = (1 << short_poll_partitions) - 1
        self._listeners: list[Callable[[str], None]] = []
        self._schedule: Callable[[], bool] | None = None  # group commit (group_commits)
        self._group_lost = False
        # timeout=0: the store is the database's only user, so "busy" means another owner.
        self._db = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            self._codec = self._open(synchronous, cache_kib)
        except sqlite3.OperationalError as error:
            self._db.close()
            if "locked" in str(error):
                raise RuntimeError(f"{path}: in use by another queue store") from error
            raise
        except BaseException:
            self._db.close()
            raise
        self._queues: dict[str, _Queue] = {}
        self._by_id: dict[int, _Queue] = {}
        try:
            self._load()
        except BaseException:
            self._db.close()
            raise
        self._syncer = _WalSyncer(f"{path}-wal") if synchronous == "NORMAL" else None

    # --- lifecycle ---

    def _open(self, synchronous: str, cache_kib: int) -> HandleCodec:
        db = self._db
        db.execute("PRAGMA locking_mode = EXCLUSIVE")  # before WAL: no shared memory, one owner
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"journal_mode: WAL unavailable for this database, got {mode}")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        db.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        db.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        db.execute("PRAGMA journal_size_limit = 67108864")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO meta VALUES ('handle_key', ?)", (os.urandom(KEY_SIZE),))
                db.execute("INSERT INTO meta VALUES ('rows_reserved', 1)")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise RuntimeError(f"user_version: schema {version} is not {SCHEMA_VERSION}")
        key = db.execute("SELECT value FROM meta WHERE key = 'handle_key'").fetchone()[0]
        return HandleCodec(bytes(key))

    def _load(self) -> None:
        rows = self._db.execute(
            "SELECT id, name, attributes, created, modified, purged FROM queues"
        ).fetchall()
        for queue_id, name, attributes, created, modified, purged in rows:
            config = QueueConfig().apply(json.loads(attributes), self.arns, creating=True)
            self._add(_Queue(queue_id, name, config, created, modified, purged))
        for queue_id, count in self._db.execute(
            "SELECT queue, count(*) FROM messages GROUP BY queue"
        ):
            if queue_id in self._by_id:
                self._by_id[queue_id].total = count
        (reserved,) = self._db.execute(
            "SELECT value FROM meta WHERE key = 'rows_reserved'"
        ).fetchone()
        (highest,) = self._db.execute("SELECT max(id) FROM messages").fetchone()
        # Every row id handed out so far is below the stored reservation: start there.
        self._next_row = self._reserved = max(int(reserved), (highest or 0) + 1)

    def close(self) -> None:
        """Commit what a group holds (see ``group_commits``) and close the database."""
        try:
            if self._db.in_transaction and not self._group_lost:
                self._db.execute("COMMIT")
        finally:
            if self._syncer is not None:
                self._syncer.stop()
            self._db.close()

    def __enter__(self) -> QueueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions and group commit ---

    def group_commits(self, schedule: Callable[[], bool] | None) -> None:
        """Turn group commit on (``schedule``) or off (None, after committing what is
        pending); see "Group commit" in the module docstring."""
        if schedule is None:
            self.commit()
        self._schedule = schedule

    @property
    def pending(self) -> bool:
        """Changes (or reads of changes) are waiting for ``commit()``: not durable yet."""
        return self._db.in_transaction or self._group_lost

    def commit(self) -> None:
        """Commit the grouped calls (nothing when none is pending). If that fails, or SQLite
        rolled the group back meanwhile, roll back, reload the engine's state from the
        database (counters restart) and raise: none of the group's calls may be
        acknowledged."""
        db = self._db
        if self._group_lost:
            self._group_lost = False
            self._abandon()
            raise sqlite3.OperationalError("the grouped transaction was rolled back by SQLite")
        if not db.in_transaction:
            return
        try:
            db.execute("COMMIT")
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
        self._queues.clear()
        self._by_id.clear()
        self._load()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        if not db.in_transaction:
            if self._schedule is None or not self._schedule():
                db.execute("BEGIN IMMEDIATE")  # one call, one transaction
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return
            db.execute("BEGIN IMMEDIATE")  # the group's; commit() ends it
        db.execute("SAVEPOINT call")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK TO call")
                db.execute("RELEASE call")
            else:  # SQLite rolled back the whole group (e.g. disk full)
                self._group_lost = True
            raise
        db.execute("RELEASE call")

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(queue_name)`` after each call that may have made messages of
        that queue receivable (sends, visibility changes, moves in; with group commit, before
        the group commits: a receive it triggers joins the group). It runs synchronously
        inside the store call: it must only schedule work (e.g. set an asyncio.Event)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        self._listeners.remove(callback)

    def _notify(self, name: str) -> None:
        for callback in self._listeners:
            callback(name)

    # --- queues ---

    def _add(self, queue: _Queue) -> None:
        self._queues[queue.name] = queue
        self._by_id[queue.id] = queue

    def _queue(self, name: str, param: str = "QueueUrl") -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            raise QueueDoesNotExist(f"{param}: queue {name!r} does not exist")
        return queue

    def _check_redrive(self, name: str, config: QueueConfig) -> None:
        policy = config.redrive_policy
        if policy is None:
            return
        dlq = self._queues.get(policy.dead_letter_queue)
        if dlq is None:
            raise InvalidParameterValue(
                f"RedrivePolicy: dead-letter target queue {policy.dead_letter_queue!r} "
                "does not exist"
            )
        if dlq.name == name:
            raise InvalidParameterValue(
                f"RedrivePolicy: queue {name!r} cannot be its own dead-letter queue"
            )
        allow = dlq.config.redrive_allow_policy
        if allow is not None and not allow.allows(name):
            raise InvalidParameterValue(
                f"RedrivePolicy: the RedriveAllowPolicy of {dlq.name!r} does not allow "
                f"{name!r} as a source"
            )

    def create_queue(self, name: str, attributes: Mapping[str, object] | None = None) -> str:
        """CreateQueue: the queue's name; idempotent when the attributes match."""
        if not isinstance(name, str) or QUEUE_NAME.fullmatch(name) is None:
            if isinstance(name, str) and name.endswith(".fifo"):
                raise UnsupportedOperation(f"QueueName: FIFO queues are not modelled, got {name!r}")
            raise InvalidParameterValue(
                f"QueueName: must be 1..80 characters of A-Z a-z 0-9 _ -, got {name!r}"
            )
        config = QueueConfig().apply(attributes or {}, self.arns, creating=True)
        self._check_redrive(name, config)
        existing = self._queues.get(name)
        if existing is not None:
            if existing.config != config:
                raise QueueNameExists(
                    f"QueueName: queue {name!r} already exists with different attributes"
                )
            return name
        now = self._clock()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO queues (name, attributes, created, modified) VALUES (?, ?, ?, ?)",
                (name, json.dumps(config.attributes()), now, now),
            )
        assert cursor.lastrowid is not None
        self._add(_Queue(cursor.lastrowid, name, config, now, now, None))
        return name

    def get_queue_url(self, name: str) -> str:
        """GetQueueUrl: the name of an existing queue (the adapter builds the URL)."""
        return self._queue(name, "QueueName").name

    def list_queues(self, prefix: str = "", max_results: int | None = None) -> list[str]:
        """ListQueues: names starting with ``prefix``, sorted."""
        names = sorted(n for n in self._queues if n.startswith(prefix))
        if max_results is not None:
            names = names[: _param("MaxResults", max_results, 1, MAX_LIST_RESULTS)]
        return names

    def delete_queue(self, name: str) -> None:
        """DeleteQueue: the queue and all its messages, at once."""
        queue = self._queue(name)
        with self._transaction() as db:
            db.execute("DELETE FROM messages WHERE queue = ?", (queue.id,))
            db.execute("DELETE FROM queues WHERE id = ?", (queue.id,))
        del self._queues[name], self._by_id[queue.id]

    def get_queue_attributes(
        self, name: str, attribute_names: Sequence[str] = ("All",)
    ) -> dict[str, str]:
        """GetQueueAttributes: the named attributes (``All`` for every one), as strings."""
        queue = self._queue(name)
        wanted = set(attribute_names)
        unknown = sorted(wanted - READABLE - {"All"})
        if unknown:
            raise InvalidAttributeName(f"AttributeNames: unknown attribute {unknown[0]!r}")
        result = queue.config.attributes(self.arns)
        result["QueueArn"] = self.arns.arn(name)
        result["CreatedTimestamp"] = str(int(queue.created))
        result["LastModifiedTimestamp"] = str(int(queue.modified))
        if "All" in wanted or wanted & {
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        }:
            stats = self.stats(name)
            result["ApproximateNumberOfMessages"] = str(stats.visible)
            result["ApproximateNumberOfMessagesNotVisible"] = str(stats.in_flight)
            result["ApproximateNumberOfMessagesDelayed"] = str(stats.delayed)
        if "All" in wanted:
            return result
        return {k: v for k, v in result.items() if k in wanted}

    def set_queue_attributes(self, name: str, attributes: Mapping[str, object]) -> None:
        """SetQueueAttributes: takes effect at once (SQS: up to 60 s)."""
        queue = self._queue(name)
        config = queue.config.apply(attributes, self.arns)
        self._check_redrive(name, config)
        now = self._clock()
        with self._transaction() as db:
            db.execute(
                "UPDATE queues SET attributes = ?, modified = ? WHERE id = ?",
                (json.dumps(config.attributes()), now, queue.id),
            )
        queue.config, queue.modified, queue.expires_at = config, now, -math.inf

    def purge_queue(self, name: str) -> None:
        """PurgeQueue: delete every message now; at most one purge per 60 s."""
        queue = self._queue(name)
        now = self._clock()
        if queue.purged is not None and now - queue.purged < PURGE_INTERVAL:
            raise PurgeQueueInProgress(
                f"QueueUrl: only one PurgeQueue per {PURGE_INTERVAL:.0f} s on {name!r}; "
                f"the last one was {now - queue.purged:.0f} s ago"
            )
        with self._transaction() as db:
            purged = db.execute("DELETE FROM messages WHERE queue = ?", (queue.id,)).rowcount
            db.execute("UPDATE queues SET purged = ? WHERE id = ?", (now, queue.id))
        queue.purged, queue.total, queue.expires_at = now, 0, math.inf
        queue.counters.purged += purged

    def list_dead_letter_source_queues(self, name: str) -> list[str]:
        """ListDeadLetterSourceQueues: queues whose RedrivePolicy targets ``name``."""
        self._queue(name)
        return sorted(
            q.name
            for q in self._queues.values()
            if q.config.redrive_policy and q.config.redrive_policy.dead_letter_queue == name
        )

    # --- sending ---

    def _prepare(
        self, queue: _Queue, entry: SendEntry, now: float
    ) -> tuple[tuple[object, ...], SendResult]:
        body = msg.check_body(entry.body)
        attributes = entry.message_attributes
        size = len(encoded := body.encode()) + msg.check_attributes(attributes)
        limit = queue.config.maximum_message_size
        if size > limit:
            raise InvalidParameterValue(
                f"MessageBody: the message (body and attributes) must be at most {limit} "
                f"bytes, got {size}"
            )
        delay = entry.delay_seconds
        if delay is None:
            delay = queue.config.delay_seconds
        else:
            delay = _param("DelaySeconds", delay, 0, MAX_DELAY_SECONDS)
        message_id = self._message_id()
        row = (
            queue.id,
            now + delay,
            now,
            now,
            message_id,
            body,
            msg.encode_attributes(attributes),
        )
        result = SendResult(
            message_id,
            _md5(encoded),
            msg.md5_of_attributes(attributes) if attributes else None,
            entry.id,
        )
        return row, result

    def _message_id(self) -> str:
        """A random (version 4) UUID; 3x faster than uuid.uuid4() and needs no secrecy."""
        h = f"{self._ids.getrandbits(128) & _UUID_CLEAR | _UUID_SET:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def send_message(
        self,
        name: str,
        body: str,
        delay_seconds: int | None = None,
        message_attributes: Mapping[str, MessageAttribute] | None = None,
    ) -> SendResult:
        """SendMessage: committed before it returns."""
        queue = self._queue(name)
        now = self._clock()
        row, result = self._prepare(
            queue, SendEntry("", body, delay_seconds, message_attributes), now
        )
        self._insert(queue, [row], now)
        return result

    def send_message_batch(
        self, name: str, entries: Sequence[SendEntry]
    ) -> BatchResult[SendResult]:
        """SendMessageBatch: 1..10 entries with distinct ids and at most 256 KiB in all;
        entries that fail on their own are reported, the others committed together."""
        queue = self._queue(name)
        _check_batch(entries, "SendMessageBatch")
        total = sum(_entry_size(e) for e in entries)
        if total > MESSAGE_SIZE_LIMIT:
            raise BatchRequestTooLong(
                f"Entries: a batch may carry at most {MESSAGE_SIZE_LIMIT} bytes, got {total}"
            )
        now = self._clock()
        rows: list[tuple[object, ...]] = []
        successful: list[SendResult] = []
        failed: list[BatchFailure] = []
        for entry in entries:
            try:
                row, result = self._prepare(queue, entry, now)
            except QueueError as error:
                failed.append(BatchFailure.of(entry.id, error))
                continue
            rows.append(row)
            successful.append(result)
        if rows:
            self._insert(queue, rows, now)
        return BatchResult(successful, failed)

    def _insert(self, queue: _Queue, rows: list[tuple[object, ...]], now: float) -> None:
        """Commit new messages under fresh row ids, reserving ids a block at a time (the
        reservation commits with the first rows that use it, so ids survive a crash)."""
        first, reserved = self._next_row, self._reserved
        with self._transaction() as db:
            if first + len(rows) > reserved:
                reserved = first + len(rows) + ROW_ID_BLOCK
                db.execute("UPDATE meta SET value = ? WHERE key = 'rows_reserved'", (reserved,))
            db.executemany(_INSERT, [(first + i, *row) for i, row in enumerate(rows)])
        self._next_row, self._reserved = first + len(rows), reserved
        queue.expires_at = min(queue.expires_at, now + queue.config.message_retention_period)
        queue.total += len(rows)
        queue.counters.sent += len(rows)
        self._notify(queue.name)

    # --- receiving ---

    def receive_message(
        self,
        name: str,
        max_number_of_messages: int = 1,
        *,
        visibility_timeout: int | None = None,
        wait_time_seconds: int | None = None,
        attribute_names: Sequence[str] = (),
        message_attribute_names: Sequence[str] = (),
        final: bool = True,
    ) -> Received:
        """ReceiveMessage, one non-blocking attempt (see the module docstring for long
        polling; ``final=False`` marks an attempt that will be retried)."""
        queue = self._queue(name)
        count = _param("MaxNumberOfMessages", max_number_of_messages, 1, MAX_RECEIVE_MESSAGES)
        timeout = (
            queue.config.visibility_timeout
            if visibility_timeout is None
            else _param("VisibilityTimeout", visibility_timeout, 0, MAX_VISIBILITY_TIMEOUT)
        )
        wait = (
            queue.config.receive_message_wait_time_seconds
            if wait_time_seconds is None
            else _param("WaitTimeSeconds", wait_time_seconds, 0, MAX_WAIT_TIME_SECONDS)
        )
        system = set(attribute_names)
        unknown = sorted(system - SYSTEM_ATTRIBUTES)
        if unknown:
            raise InvalidAttributeName(
                f"MessageSystemAttributeNames: unknown attribute {unknown[0]!r}"
            )
        if wait > 0:
            mask = self._all_partitions
        else:
            mask = sum(1 << p for p in self._rng.sample(range(self._partitions), self._sampled))
        now = self._clock()
        policy = queue.config.redrive_policy
        dlq = self._queues.get(policy.dead_letter_queue) if policy else None
        nonce = self._ids.getrandbits(63)
        moved = 0
        with self._transaction() as db:
            sweep = self._sweep(db, queue, now)
            while True:
                candidates = db.execute(
                    _CANDIDATES, (queue.id, now, mask, self._partitions, count)
                ).fetchall()
                if dlq is None or policy is None:
                    break
                over = [row for row, received in candidates if received >= policy.max_receive_count]
                if not over:
                    break
                db.execute(_MOVE_TO_DLQ, (dlq.id, now, now, queue.id, json.dumps(over)))
                moved += len(over)
            order = {row: i for i, (row, _) in enumerate(candidates)}
            rows: list[Any] = []
            if order:
                rows = db.execute(
                    _CLAIM, (now + timeout, now, nonce, now, json.dumps(list(order)))
                ).fetchall()
        self._swept(queue, sweep)
        if moved and dlq is not None:
            queue.total -= moved
            dlq.total += moved
            dlq.expires_at = -math.inf
            queue.counters.moved_to_dlq += moved
            self._notify(dlq.name)
        rows.sort(key=lambda r: order[r[0]])
        queue.counters.received += len(rows)
        if not rows and final:
            queue.counters.empty_receives += 1
        received = [
            self._received(queue, row, nonce, system, message_attribute_names) for row in rows
        ]
        return Received(received, wait)

    def _received(
        self,
        queue: _Queue,
        row: tuple[int, str, str, str | None, float, int, float, int | None],
        nonce: int,
        system: set[str],
        message_attribute_names: Sequence[str],
    ) -> ReceivedMessage:
        row_id, message_id, body, packed, sent, receive_count, first_receive, source = row
        attributes: dict[str, str] = {}
        if system:
            every = "All" in system
            if every or "ApproximateReceiveCount" in system:
                attributes["ApproximateReceiveCount"] = str(receive_count)
            if every or "SentTimestamp" in system:
                attributes["SentTimestamp"] = str(int(sent * 1000))
            if every or "ApproximateFirstReceiveTimestamp" in system:
                attributes["ApproximateFirstReceiveTimestamp"] = str(int(first_receive * 1000))
            if every or "SenderId" in system:
                attributes["SenderId"] = self.arns.account_id
            origin = self._by_id.get(source) if source is not None else None
            if origin is not None and (every or "DeadLetterQueueSourceArn" in system):
                attributes["DeadLetterQueueSourceArn"] = self.arns.arn(origin.name)
        user: dict[str, MessageAttribute] = {}
        if packed is not None and message_attribute_names:
            user = msg.select_attributes(msg.decode_attributes(packed), message_attribute_names)
        return ReceivedMessage(
            message_id=message_id,
            receipt_handle=self._codec.encode(queue.id, row_id, nonce),
            body=body,
            md5_of_body=_md5(body.encode()),
            attributes=attributes,
            message_attributes=user,
            md5_of_message_attributes=msg.md5_of_attributes(user) if user else None,
        )

    def next_visible_at(self, name: str) -> float | None:
        """When the next delayed or in-flight message of the queue becomes visible, if any
        (a long poll waits at most until then before asking again)."""
        queue = self._queue(name)
        row = self._db.execute(
            "SELECT min(visible_at) FROM messages WHERE queue = ? AND visible_at > ?",
            (queue.id, self._clock()),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    # --- deleting and changing visibility ---

    def _resolve(
        self,
        db: sqlite3.Connection,
        queue: _Queue,
        handles: Sequence[object],
        decoded: Sequence[tuple[int, int, int] | None],
    ) -> list[tuple[int, float, float] | QueueError | None]:
        """Per handle: ``(row, visible_at, received_at)`` of the message it is the latest
        handle of, None when the message is gone, or the error."""
        wanted = [d[1] for d in decoded if d is not None and d[0] == queue.id]
        found = {row[0]: row[1:] for row in db.execute(_LOOKUP, (json.dumps(wanted),))}
        resolved: list[tuple[int, float, float] | QueueError | None] = []
        for handle, parts in zip(handles, decoded, strict=True):
            if parts is None or parts[0] != queue.id:
                resolved.append(
                    ReceiptHandleIsInvalid(
                        f"ReceiptHandle: {str(handle)[:60]!r} is not a receipt handle "
                        f"of queue {queue.name!r}"
                    )
                )
                continue
            _, row, nonce = parts
            state = found.get(row)
            if state is None or state[0] != queue.id:
                resolved.append(None)
            elif state[1] != nonce:
                resolved.append(_stale())
            else:
                resolved.append((row, state[2], state[3]))
        return resolved

    def delete_message(self, name: str, receipt_handle: str) -> None:
        """DeleteMessage with the latest receipt handle (see the module docstring)."""
        (outcome,) = self._delete(self._queue(name), [receipt_handle])
        if outcome is not None:
            raise outcome

    def delete_message_batch(self, name: str, entries: Sequence[ReceiptEntry]) -> BatchResult[str]:
        """DeleteMessageBatch: the ids that succeeded and the entries that failed."""
        queue = self._queue(name)
        _check_batch(entries, "DeleteMessageBatch")
        return _batch_result(entries, self._delete(queue, [e.receipt_handle for e in entries]))

    def _delete(self, queue: _Queue, handles: Sequence[object]) -> list[QueueError | None]:
        """Delete by latest handles in one statement; look up only the handles that
        deleted nothing, to tell a gone message (success) from a stale handle."""
        decoded = [self._codec.decode(h) for h in handles]
        pairs = [[d[1], d[2]] for d in decoded if d is not None and d[0] == queue.id]
        outcomes: list[QueueError | None] = [None] * len(handles)
        with self._transaction() as db:
            deleted = dict(db.execute(_DELETE_LATEST, (json.dumps(pairs),)).fetchall())
            rest = []
            for i, d in enumerate(decoded):
                if d is not None and d[0] == queue.id and d[1] in deleted:
                    if deleted[d[1]] != d[2]:  # another entry deleted it by a newer handle
                        outcomes[i] = _stale()
                else:
                    rest.append(i)
            if rest:
                states = self._resolve(
                    db, queue, [handles[i] for i in rest], [decoded[i] for i in rest]
                )
                for i, state in zip(rest, states, strict=True):
                    if isinstance(state, QueueError):
                        outcomes[i] = state
        queue.total -= len(deleted)
        queue.counters.deleted += len(deleted)
        return outcomes

    def change_message_visibility(
        self, name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        """ChangeMessageVisibility: hide an in-flight message for ``visibility_timeout``
        seconds from now (0: visible at once), within 12 h of its receive."""
        queue = self._queue(name)
        (outcome,) = self._change(queue, [(receipt_handle, visibility_timeout)])
        if outcome is not None:
            raise outcome

    def change_message_visibility_batch(
        self, name: str, entries: Sequence[VisibilityEntry]
    ) -> BatchResult[str]:
        """ChangeMessageVisibilityBatch: per-entry results as DeleteMessageBatch."""
        queue = self._queue(name)
        _check_batch(entries, "ChangeMessageVisibilityBatch")
        changes = [(e.receipt_handle, e.visibility_timeout) for e in entries]
        return _batch_result(entries, self._change(queue, changes))

    def _change(
        self, queue: _Queue, changes: Sequence[tuple[object, object]]
    ) -> list[QueueError | None]:
        now = self._clock()
        outcomes: list[QueueError | None] = []
        updates: list[tuple[float, int]] = []
        with self._transaction() as db:
            handles = [handle for handle, _ in changes]
            decoded = [self._codec.decode(h) for h in handles]
            resolved = self._resolve(db, queue, handles, decoded)
            for (_, requested), state in zip(changes, resolved, strict=True):
                outcome = self._visibility(state, requested, now)
                if isinstance(outcome, QueueError):
                    outcomes.append(outcome)
                else:
                    outcomes.append(None)
                    updates.append(outcome)
            if updates:
                db.executemany("UPDATE messages SET visible_at = ? WHERE id = ?", updates)
        if updates:
            self._notify(queue.name)
        return outcomes

    @staticmethod
    def _visibility(
        state: tuple[int, float, float] | QueueError | None, requested: object, now: float
    ) -> tuple[float, int] | QueueError:
        """The ``(visible_at, row)`` update a ChangeMessageVisibility entry asks for."""
        timeout = parse_int(requested)
        if timeout is None or not 0 <= timeout <= MAX_VISIBILITY_TIMEOUT:
            return InvalidParameterValue(
                f"VisibilityTimeout: must be 0..{MAX_VISIBILITY_TIMEOUT}, got {requested!r}"
            )
        if isinstance(state, QueueError):
            return state
        if state is None:
            return ReceiptHandleIsInvalid(
                "ReceiptHandle: the message no longer exists (deleted, expired, purged or moved)"
            )
        row, visible_at, received_at = state
        if visible_at <= now:
            return MessageNotInflight(
                "ReceiptHandle: the message is not in flight (its visibility timeout expired)"
            )
        if now + timeout > received_at + MAX_VISIBILITY_TIMEOUT:
            return InvalidParameterValue(
                f"VisibilityTimeout: must keep the message within {MAX_VISIBILITY_TIMEOUT} s "
                f"of its receive ({now - received_at:.0f} s ago), got {timeout}"
            )
        return now + timeout, row

    # --- dead-letter redrive, retention ---

    def redrive(self, dlq: str, to: str | None = None, limit: int | None = None) -> int:
        """StartMessageMoveTask's step: move up to ``limit`` visible messages of ``dlq``
        (all when None) back to their source queues, or all to ``to``; return how many
        moved. Messages whose source queue is gone stay unless ``to`` is given."""
        source = self._queues.get(dlq)
        if source is None:
            raise ResourceNotFoundException(f"SourceArn: queue {dlq!r} does not exist")
        target = None
        if to is not None:
            target = self._queues.get(to)
            if target is None:
                raise ResourceNotFoundException(f"DestinationArn: queue {to!r} does not exist")
        cap = -1 if limit is None else _param("MaxNumberOfMessages", limit, 1, 2**31)
        now = self._clock()
        with self._transaction() as db:
            sweep = self._sweep(db, source, now)
            destinations = db.execute(
                "UPDATE messages SET queue = coalesce(?, source), enqueued = ?, visible_at = ?,"
                " receive_count = 0, first_receive = NULL, receipt = NULL, received_at = NULL,"
                " source = NULL WHERE id IN (SELECT id FROM messages WHERE queue = ?"
                " AND visible_at <= ? AND (? IS NOT NULL OR source IN (SELECT id FROM queues))"
                " ORDER BY visible_at LIMIT ?) RETURNING queue",
                (
                    None if target is None else target.id,
                    now,
                    now,
                    source.id,
                    now,
                    None if target is None else target.id,
                    cap,
                ),
            ).fetchall()
        self._swept(source, sweep)
        source.total -= len(destinations)
        source.counters.redriven += len(destinations)
        arrived: dict[int, int] = {}
        for (queue_id,) in destinations:
            arrived[queue_id] = arrived.get(queue_id, 0) + 1
        for queue_id, count in arrived.items():
            self._by_id[queue_id].total += count
            self._by_id[queue_id].expires_at = -math.inf
            self._notify(self._by_id[queue_id].name)
        return len(destinations)

    def _sweep(self, db: sqlite3.Connection, queue: _Queue, now: float) -> _Sweep | None:
        """Inside the caller's transaction, delete the queue's messages past retention if
        its oldest one may have expired by now; return (expired, next expiry time)."""
        if now < queue.expires_at:
            return None
        retention = queue.config.message_retention_period
        cutoff = now - retention
        expired = (
            db.execute(
                "DELETE FROM messages WHERE queue = ? AND enqueued <= ?", (queue.id, cutoff)
            ).rowcount
            + db.execute(
                "DELETE FROM messages WHERE queue = ? AND sent < enqueued AND sent <= ?",
                (queue.id, cutoff),
            ).rowcount
        )
        (oldest,) = db.execute(
            "SELECT min(enqueued) FROM messages WHERE queue = ?", (queue.id,)
        ).fetchone()
        (moved,) = db.execute(
            "SELECT min(sent) FROM messages WHERE queue = ? AND sent < enqueued", (queue.id,)
        ).fetchone()
        times = [t for t in (oldest, moved) if t is not None]
        return expired, min(times) + retention if times else math.inf

    @staticmethod
    def _swept(queue: _Queue, sweep: _Sweep | None) -> None:
        if sweep is not None:
            expired, queue.expires_at = sweep
            queue.total -= expired
            queue.counters.expired += expired

    def expire(self, name: str | None = None) -> int:
        """Apply retention now to one queue or all; return how many messages expired.
        Free when no message can have expired yet (the next expiry time is tracked)."""
        queues = [self._queue(name)] if name is not None else list(self._queues.values())
        now = self._clock()
        due = [q for q in queues if now >= q.expires_at]
        if not due:
            return 0
        with self._transaction() as db:
            sweeps = [self._sweep(db, q, now) for q in due]
        for queue, sweep in zip(due, sweeps, strict=True):
            self._swept(queue, sweep)
        return sum(sweep[0] for sweep in sweeps if sweep is not None)

    # --- metrics ---

    def queue_names(self) -> list[str]:
        return sorted(self._queues)

    def counters(self, name: str) -> QueueCounters:
        """The queue's live counters (plain ints, updated in place)."""
        return self._queue(name).counters

    def stats(self, name: str) -> QueueStats:
        """Visible, in-flight and delayed counts and the oldest message's age, after
        applying retention: one covering index range (the not-visible messages) and one
        index seek, never a scan of the visible backlog."""
        queue = self._queue(name)
        self.expire(name)
        now = self._clock()
        hidden, in_flight = self._db.execute(
            "SELECT count(*), total(receive_count > 0) FROM messages"
            " WHERE queue = ? AND visible_at > ?",
            (queue.id, now),
        ).fetchone()
        (oldest,) = self._db.execute(
            "SELECT min(enqueued) FROM messages WHERE queue = ?", (queue.id,)
        ).fetchone()
        return QueueStats(
            visible=queue.total - hidden,
            in_flight=int(in_flight),
            delayed=hidden - int(in_flight),
            oldest_age_seconds=0.0 if oldest is None else max(0.0, now - oldest),
        )


# --- helpers ------------------------------------------------------------------------------


class _WalSyncer:
    """A daemon thread that fdatasyncs the WAL every ``WAL_SYNC_INTERVAL`` seconds (see the
    module docstring). It never touches SQLite: an fd of its own on the ``-wal`` file (which
    holds no SQLite lock), reopened when the file is replaced; errors are retried."""

    def __init__(self, wal: str) -> None:
        self._wal = wal
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-wal-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fd = -1
        try:
            while not self._stopping.wait(WAL_SYNC_INTERVAL):
                try:
                    if fd < 0 or os.fstat(fd).st_nlink == 0:  # not yet opened, or replaced
                        if fd >= 0:
                            os.close(fd)
                        fd = -1
                        fd = os.open(self._wal, os.O_RDONLY | os.O_CLOEXEC)
                    os.fdatasync(fd)
                except OSError:
                    continue  # no WAL yet, or a transient error: next tick
        finally:
            if fd >= 0:
                os.close(fd)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5.0)


def _stale() -> ReceiptHandleIsInvalid:
    return ReceiptHandleIsInvalid(
        "ReceiptHandle: stale, the message was received again since; use the latest handle"
    )


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _param(name: str, value: object, low: int, high: int) -> int:
    number = parse_int(value)
    if number is None or not low <= number <= high:
        raise InvalidParameterValue(f"{name}: must be {low}..{high}, got {value!r}")
    return number


def _entry_size(entry: SendEntry) -> int:
    body = entry.body
    size = 0
    if isinstance(body, str):  # an ASCII str has as many UTF-8 bytes as characters
        size = len(body) if body.isascii() else len(body.encode())
    for name, attribute in (entry.message_attributes or {}).items():
        size += attribute.size(name)
    return size


def _check_batch(
    entries: Sequence[SendEntry | ReceiptEntry | VisibilityEntry], action: str
) -> None:
    if not entries:
        raise EmptyBatchRequest(f"Entries: {action} needs at least one entry")
    if len(entries) > MAX_BATCH_ENTRIES:
        raise TooManyEntriesInBatchRequest(
            f"Entries: at most {MAX_BATCH_ENTRIES} entries per {action}, got {len(entries)}"
        )
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry.id, str) or _BATCH_ID.fullmatch(entry.id) is None:
            raise InvalidBatchEntryId(
                f"Entries.Id: 1..80 characters of A-Z a-z 0-9 _ -, got {entry.id!r}"
            )
        if entry.id in seen:
            raise BatchEntryIdsNotDistinct(f"Entries.Id: {entry.id!r} appears twice")
        seen.add(entry.id)


def _batch_result(
    entries: Sequence[ReceiptEntry | VisibilityEntry], outcomes: Sequence[QueueError | None]
) -> BatchResult[str]:
    successful: list[str] = []
    failed: list[BatchFailure] = []
    for entry, outcome in zip(entries, outcomes, strict=True):
        if outcome is None:
            successful.append(entry.id)
        else:
            failed.append(BatchFailure.of(entry.id, outcome))
    return BatchResult(successful, failed)
