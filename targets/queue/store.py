"""The queue engine: SQS standard queues, durable in one SQLite database (WAL).

``QueueStore`` has one method per SQS action (``create_queue``, ``send_message_batch``,
``receive_message``, ...; queues named by name, the adapter maps QueueUrl <-> name), raises
the errors of ``targets.queue.errors`` and reports batch failures per entry, so the HTTP
adapters (plain JSON and ``X-Amz-Target: AmazonSQS.*``) only translate. Each method is the
same few steps over three parts, each readable alone:

    rules.py      what the call means (SQS's rules, pure: no SQLite, no clock)
    database.py   where it is kept (the SQLite schema and statements, one owner)
    targets/durable.py  when it is durable (a transaction per call or group commit; WAL sync)

plus what only the engine holds: each queue's in-memory state (``rules.Queue``: totals,
next expiry, counters) and the listeners. It is synchronous and never blocks beyond its
SQLite calls: long polling is the adapter's loop over ``receive_message`` (poll.py). One
store owns one database file and is used from one thread (the event loop's); several
processes must not share a database.

Time is ``clock()``, epoch seconds (injected: tests pass a fake clock and never sleep);
deadlines are stored as absolute epoch times, so they survive a restart.

Long polling: ``receive_message`` returns at once; ``Received.wait_time_seconds`` tells the
adapter how long it may wait. While empty, it waits until a listener (``add_listener``:
called with the queue name after a call that may have made messages available) fires or
``next_visible_at`` comes, then asks again with ``final=False``; only the final attempt's
empty answer counts as an empty receive.

Durability: every acknowledged send is committed before the call returns, or, with group
commit on (``group_commits``), before the service acknowledges it (targets/durable.py); the
guarantees of ``synchronous`` NORMAL and FULL are database.py's, their cost is measured in
``benchmarks/queue_engine.py``.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from targets import durable
from targets.durable import GroupCommit, WalSyncer
from targets.queue import rules
from targets.queue.config import Arns, QueueConfig
from targets.queue.database import ROW_ID_BLOCK, QueueDatabase
from targets.queue.errors import BatchFailure, QueueError
from targets.queue.handles import HandleCodec
from targets.queue.messages import MessageAttribute
from targets.queue.rules import (
    BatchResult,
    Queue,
    QueueCounters,
    QueueStats,
    ReceiptEntry,
    Received,
    ReceivedMessage,
    SendEntry,
    SendResult,
    Sweep,
    VisibilityEntry,
)

__all__ = [
    "BatchResult",
    "QueueCounters",
    "QueueStats",
    "QueueStore",
    "ReceiptEntry",
    "Received",
    "ReceivedMessage",
    "SendEntry",
    "SendResult",
    "VisibilityEntry",
]


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
        self._polling = rules.ShortPolling(short_poll_partitions, short_poll_sampled)
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._ids = random.Random(secrets.randbits(128))  # message ids and receive nonces
        self.arns = arns if arns is not None else Arns()
        self._listeners: list[Callable[[str], None]] = []
        self._queues: dict[str, Queue] = {}
        self._by_id: dict[int, Queue] = {}
        self._db = QueueDatabase(path, synchronous, cache_kib)
        try:
            self._codec = HandleCodec(self._db.handle_key)
            self._delivery = rules.Delivery(self._codec, self.arns, self._by_id)
            self._commits = GroupCommit(self._db.connection, on_rollback=self._load)
            self._load()
        except BaseException:
            self._db.close()
            raise
        self._syncer = WalSyncer(f"{path}-wal") if synchronous == "NORMAL" else None

    # --- lifecycle ---

    def _load(self) -> None:
        """(Re)build the in-memory state from the database; counters restart."""
        self._queues.clear()
        self._by_id.clear()
        for queue_id, name, attributes, created, modified, purged in self._db.queues():
            config = QueueConfig().apply(attributes, self.arns, creating=True)
            self._add(Queue(queue_id, name, config, created, modified, purged))
        for queue_id, count in self._db.message_counts():
            if queue_id in self._by_id:
                self._by_id[queue_id].total = count
        # Every row id handed out so far is below the stored reservation: start there.
        self._next_row = self._reserved = self._db.next_row()

    def close(self) -> None:
        """Commit what a group holds (see ``group_commits``) and close the database."""
        durable.close(self._commits, self._syncer, self._db)

    def __enter__(self) -> QueueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- group commit (targets/durable.py) ---

    def group_commits(self, schedule: Callable[[], bool] | None) -> None:
        """Turn group commit on (``schedule``) or off (None, after committing what is
        pending); see targets/durable.py."""
        self._commits.schedule(schedule)

    @property
    def pending(self) -> bool:
        """Changes (or reads of changes) are waiting for ``commit()``: not durable yet."""
        return self._commits.pending

    def commit(self) -> None:
        """Commit the grouped calls (nothing when none is pending). If that fails, or SQLite
        rolled the group back meanwhile, roll back, reload the engine's state from the
        database (counters restart) and raise: none of the group's calls may be
        acknowledged."""
        self._commits.commit()

    # --- listeners ---

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

    def _add(self, queue: Queue) -> None:
        self._queues[queue.name] = queue
        self._by_id[queue.id] = queue

    def _queue(self, name: str, where: str = "QueueUrl") -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            raise rules.no_such_queue(name, where)
        return queue

    def create_queue(self, name: str, attributes: Mapping[str, object] | None = None) -> str:
        """CreateQueue: the queue's name; idempotent when the attributes match."""
        rules.check_queue_name(name)
        config = QueueConfig().apply(attributes or {}, self.arns, creating=True)
        rules.check_redrive(name, config, self._queues)
        if rules.exists_alike(name, config, self._queues):
            return name
        now = self._clock()
        with self._commits.transaction():
            queue_id = self._db.insert_queue(name, config.attributes(), now)
        self._add(Queue(queue_id, name, config, now, now, None))
        return name

    def get_queue_url(self, name: str) -> str:
        """GetQueueUrl: the name of an existing queue (the adapter builds the URL)."""
        return self._queue(name, "QueueName").name

    def list_queues(self, prefix: str = "", max_results: int | None = None) -> list[str]:
        """ListQueues: names starting with ``prefix``, sorted."""
        names = sorted(n for n in self._queues if n.startswith(prefix))
        limit = rules.list_limit(max_results)
        return names if limit is None else names[:limit]

    def delete_queue(self, name: str) -> None:
        """DeleteQueue: the queue and all its messages, at once."""
        queue = self._queue(name)
        with self._commits.transaction():
            self._db.delete_queue(queue.id)
        del self._queues[name], self._by_id[queue.id]

    def get_queue_attributes(
        self, name: str, attribute_names: Sequence[str] = ("All",)
    ) -> dict[str, str]:
        """GetQueueAttributes: the named attributes (``All`` for every one), as strings."""
        queue = self._queue(name)
        wanted = rules.check_attribute_names(attribute_names)
        stats = self.stats(name) if rules.wants_counts(wanted) else None
        return rules.queue_attributes(queue, self.arns, wanted, stats)

    def set_queue_attributes(self, name: str, attributes: Mapping[str, object]) -> None:
        """SetQueueAttributes: takes effect at once (SQS: up to 60 s)."""
        queue = self._queue(name)
        config = queue.config.apply(attributes, self.arns)
        rules.check_redrive(name, config, self._queues)
        now = self._clock()
        with self._commits.transaction():
            self._db.update_queue(queue.id, config.attributes(), now)
        queue.configured(config, now)

    def purge_queue(self, name: str) -> None:
        """PurgeQueue: delete every message now; at most one purge per 60 s."""
        queue = self._queue(name)
        now = self._clock()
        rules.check_purge(queue, now)
        with self._commits.transaction():
            purged = self._db.purge(queue.id, now)
        queue.emptied(purged, now)

    def list_dead_letter_source_queues(self, name: str) -> list[str]:
        """ListDeadLetterSourceQueues: queues whose RedrivePolicy targets ``name``."""
        self._queue(name)
        return rules.dead_letter_sources(name, self._queues)

    # --- sending ---

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
        entry = SendEntry("", body, delay_seconds, message_attributes)
        row, result = rules.new_message(queue, entry, now, self._ids)
        self._insert(queue, [row], now)
        return result

    def send_message_batch(
        self, name: str, entries: Sequence[SendEntry]
    ) -> BatchResult[SendResult]:
        """SendMessageBatch: 1..10 entries with distinct ids and at most 256 KiB in all;
        entries that fail on their own are reported, the others committed together."""
        queue = self._queue(name)
        rules.check_send_batch(entries)
        now = self._clock()
        rows: list[rules.NewMessage] = []
        successful: list[SendResult] = []
        failed: list[BatchFailure] = []
        for entry in entries:
            try:
                row, result = rules.new_message(queue, entry, now, self._ids)
            except QueueError as error:
                failed.append(BatchFailure.of(entry.id, error))
                continue
            rows.append(row)
            successful.append(result)
        if rows:
            self._insert(queue, rows, now)
        return BatchResult(successful, failed)

    def _insert(self, queue: Queue, rows: list[rules.NewMessage], now: float) -> None:
        """Commit new messages under fresh row ids, reserving ids a block at a time (the
        reservation commits with the first rows that use it, so ids survive a crash)."""
        first, reserved = self._next_row, self._reserved
        with self._commits.transaction():
            if first + len(rows) > reserved:
                reserved = first + len(rows) + ROW_ID_BLOCK
                self._db.reserve_rows(reserved)
            self._db.insert_messages(first, rows)
        self._next_row, self._reserved = first + len(rows), reserved
        queue.sent(len(rows), now)
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
        polling; ``final=False`` marks an attempt that will be retried). The steps: check
        the request, sample the partitions, then in one transaction apply retention,
        dead-letter what was received too often and claim the rest; count and answer."""
        queue = self._queue(name)
        request = rules.receive_request(
            queue.config,
            max_number_of_messages,
            visibility_timeout=visibility_timeout,
            wait_time_seconds=wait_time_seconds,
            attribute_names=attribute_names,
            message_attribute_names=message_attribute_names,
        )
        mask = self._polling.mask(request.wait, self._rng)
        now = self._clock()
        dlq = rules.dead_letter_queue(queue, self._queues)
        nonce = self._ids.getrandbits(63)
        with self._commits.transaction():
            sweep = self._sweep(queue, now)
            candidates, moved = self._dead_letter(queue, dlq, now, mask, request.count)
            claimed = self._claim(candidates, now + request.visibility_timeout, nonce, now)
        queue.swept(sweep)
        if moved and dlq is not None:
            self._moved_to_dlq(queue, dlq, moved)
        queue.received(len(claimed), final)
        deliver = self._delivery.message
        messages = [deliver(row, queue, nonce, request) for row in claimed]
        return Received(messages, request.wait)

    def _dead_letter(
        self, queue: Queue, dlq: Queue | None, now: float, mask: int, count: int
    ) -> tuple[list[tuple[int, int]], int]:
        """The receive's candidates once those past maxReceiveCount moved to the DLQ
        (looking again until none is), and how many moved."""
        policy = queue.config.redrive_policy
        moved = 0
        while True:
            candidates = self._db.candidates(queue.id, now, mask, self._polling.partitions, count)
            if dlq is None:
                return candidates, moved
            over = rules.over_receive_limit(candidates, policy)
            if not over:
                return candidates, moved
            self._db.move_to_dlq(over, dlq.id, queue.id, now)
            moved += len(over)

    def _claim(
        self, candidates: list[tuple[int, int]], visible_at: float, nonce: int, now: float
    ) -> list[rules.Claimed]:
        """Receive the candidates; their rows in the candidates' order."""
        if not candidates:
            return []
        order = {row: i for i, (row, _) in enumerate(candidates)}
        claimed = self._db.claim(list(order), visible_at, nonce, now)
        claimed.sort(key=lambda r: order[r[0]])
        return claimed

    def _moved_to_dlq(self, queue: Queue, dlq: Queue, moved: int) -> None:
        queue.dead_lettered(moved)
        dlq.arrived(moved)
        self._notify(dlq.name)

    def next_visible_at(self, name: str, after: float | None = None) -> float | None:
        """When the next delayed or in-flight message of the queue becomes visible, if any
        (a long poll waits at most until then before asking again): the first to turn
        visible after `after` (default: now). A long poll passes the time of its empty
        receive, so a message that turned visible since is a time already past, not missed."""
        return self._db.next_visible_at(
            self._queue(name).id, self._clock() if after is None else after
        )

    # --- deleting and changing visibility ---

    def delete_message(self, name: str, receipt_handle: str) -> None:
        """DeleteMessage with the latest receipt handle (see rules.py)."""
        (outcome,) = self._delete(self._queue(name), [receipt_handle])
        if outcome is not None:
            raise outcome

    def delete_message_batch(self, name: str, entries: Sequence[ReceiptEntry]) -> BatchResult[str]:
        """DeleteMessageBatch: the ids that succeeded and the entries that failed."""
        queue = self._queue(name)
        rules.check_batch(entries, "DeleteMessageBatch")
        outcomes = self._delete(queue, [e.receipt_handle for e in entries])
        return rules.batch_result(entries, outcomes)

    def _delete(self, queue: Queue, handles: Sequence[object]) -> list[QueueError | None]:
        """Delete by latest handles in one statement; look up only the handles that
        deleted nothing, to tell a gone message (success) from a stale handle."""
        decoded = [self._codec.decode(h) for h in handles]
        with self._commits.transaction():
            deleted = self._db.delete_latest(rules.latest_pairs(queue, decoded))
            outcomes, rest = rules.deleted_outcomes(queue, decoded, deleted)
            if rest:
                states = self._resolve(
                    queue, [handles[i] for i in rest], [decoded[i] for i in rest]
                )
                for i, state in zip(rest, states, strict=True):
                    if isinstance(state, QueueError):
                        outcomes[i] = state
        queue.deleted(len(deleted))
        return outcomes

    def _resolve(
        self, queue: Queue, handles: Sequence[object], decoded: Sequence[rules.Decoded]
    ) -> list[rules.HandleState]:
        found = self._db.lookup(rules.rows_of(queue, decoded))
        return rules.resolve(queue, handles, decoded, found)

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
        rules.check_batch(entries, "ChangeMessageVisibilityBatch")
        changes = [(e.receipt_handle, e.visibility_timeout) for e in entries]
        return rules.batch_result(entries, self._change(queue, changes))

    def _change(
        self, queue: Queue, changes: Sequence[tuple[object, object]]
    ) -> list[QueueError | None]:
        now = self._clock()
        outcomes: list[QueueError | None] = []
        updates: list[tuple[float, int]] = []
        with self._commits.transaction():
            handles = [handle for handle, _ in changes]
            resolved = self._resolve(queue, handles, [self._codec.decode(h) for h in handles])
            for (_, requested), state in zip(changes, resolved, strict=True):
                outcome = rules.visibility_change(state, requested, now)
                if isinstance(outcome, QueueError):
                    outcomes.append(outcome)
                else:
                    outcomes.append(None)
                    updates.append(outcome)
            if updates:
                self._db.set_visibility(updates)
        if updates:
            self._notify(queue.name)
        return outcomes

    # --- dead-letter redrive, retention ---

    def redrive(self, dlq: str, to: str | None = None, limit: int | None = None) -> int:
        """StartMessageMoveTask's step: move up to ``limit`` visible messages of ``dlq``
        (all when None) back to their source queues, or all to ``to``; return how many
        moved. Messages whose source queue is gone stay unless ``to`` is given."""
        source, target = rules.move_queues(dlq, to, self._queues)
        cap = rules.redrive_limit(limit)
        now = self._clock()
        with self._commits.transaction():
            sweep = self._sweep(source, now)
            destinations = self._db.redrive(
                source.id, None if target is None else target.id, now, cap
            )
        source.swept(sweep)
        source.redriven(len(destinations))
        arrived: dict[int, int] = {}
        for queue_id in destinations:
            arrived[queue_id] = arrived.get(queue_id, 0) + 1
        for queue_id, count in arrived.items():
            self._by_id[queue_id].arrived(count)
            self._notify(self._by_id[queue_id].name)
        return len(destinations)

    def _sweep(self, queue: Queue, now: float) -> Sweep | None:
        """Inside the caller's transaction, delete the queue's messages past retention if
        its oldest one may have expired by now; return (expired, next expiry time)."""
        if not queue.due(now):
            return None
        retention = queue.config.message_retention_period
        expired = self._db.expire(queue.id, now - retention)
        db = self._db
        return expired, rules.next_expiry(db.oldest(queue.id), db.oldest_moved(queue.id), retention)

    def expire(self, name: str | None = None) -> int:
        """Apply retention now to one queue or all; return how many messages expired.
        Free when no message can have expired yet (the next expiry time is tracked)."""
        queues = [self._queue(name)] if name is not None else list(self._queues.values())
        now = self._clock()
        due = [q for q in queues if q.due(now)]
        if not due:
            return 0
        with self._commits.transaction():
            sweeps = [self._sweep(q, now) for q in due]
        for queue, sweep in zip(due, sweeps, strict=True):
            queue.swept(sweep)
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
        hidden, in_flight = self._db.hidden(queue.id, now)
        return queue.stats(hidden, in_flight, self._db.oldest(queue.id), now)
