"""The queue's SQLite storage: the schema, every statement, WAL, one owner per file.

``QueueDatabase`` opens (or creates) one database file and is the only code that speaks SQL.
Its statements run inside the caller's transaction (targets/durable.py opens and ends them); it
decides nothing about SQS (rules.py does) and keeps no state but the connection.

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

Gauges read one covering range of ``messages_by_visibility`` (only the not-visible
messages, ``hidden``); the engine subtracts it from a per-queue total kept in memory
(``message_counts`` at open), so a scrape costs no table scan. Row ids are reserved a block
at a time in ``meta`` (``reserve_rows`` commits with the first rows that use a block), so an
id handed out is never handed out again, even after a crash.

One owner: ``locking_mode=EXCLUSIVE`` (set before WAL, so no shared memory) and a busy
timeout of 0 make a second opener fail at once (``RuntimeError``: "in use by another queue
store"). WAL with ``synchronous=NORMAL`` (the default) survives a crash of the process
(``kill -9``: committed WAL frames are in the OS page cache), not a power loss or kernel
crash; ``FULL`` fsyncs the WAL on each commit and survives those too. Checkpoints stay on
the owner's thread, every ``WAL_CHECKPOINT_PAGES`` (see targets/durable.py for the WAL's background
fdatasync that keeps them short).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from targets.durable import connect, create_schema

SCHEMA_VERSION: Final = 1
ROW_ID_BLOCK: Final = 1_000_000
WAL_CHECKPOINT_PAGES: Final = 10_000  # ~40 MB of WAL between checkpoints (SQLite: 1000)

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
_CANDIDATES: Final = (
    "SELECT id, receive_count FROM messages WHERE queue = ? AND visible_at <= ?"
    " AND (? >> (id % ?)) & 1 ORDER BY visible_at LIMIT ?"
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
_REDRIVE: Final = (
    "UPDATE messages SET queue = coalesce(?, source), enqueued = ?, visible_at = ?,"
    " receive_count = 0, first_receive = NULL, receipt = NULL, received_at = NULL,"
    " source = NULL WHERE id IN (SELECT id FROM messages WHERE queue = ?"
    " AND visible_at <= ? AND (? IS NOT NULL OR source IN (SELECT id FROM queues))"
    " ORDER BY visible_at LIMIT ?) RETURNING queue"
)


class QueueDatabase:
    """One database file, owned by this process: open it with ``QueueDatabase(path)``."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", cache_kib: int = 16_384):
        # timeout=0: the store is the database's only user, so "busy" means another owner.
        self.connection = db = connect(
            path,
            synchronous,
            cache_kib=cache_kib,
            checkpoint_pages=WAL_CHECKPOINT_PAGES,
            owner="queue store",
        )
        self._execute = db.execute
        try:
            seed = (
                "INSERT INTO meta VALUES ('handle_key', randomblob(32));"  # handles.KEY_SIZE bytes
                "INSERT INTO meta VALUES ('rows_reserved', 1)"
            )
            create_schema(db, _SCHEMA, SCHEMA_VERSION, seed)
            row = db.execute("SELECT value FROM meta WHERE key = 'handle_key'").fetchone()
            self.handle_key = bytes(row[0])
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        self.connection.close()

    # --- queues ---

    def queues(self) -> list[tuple[int, str, dict[str, Any], float, float, float | None]]:
        """Every queue: id, name, attributes, created, modified, purged."""
        rows = self._execute(
            "SELECT id, name, attributes, created, modified, purged FROM queues"
        ).fetchall()
        return [(i, name, json.loads(attrs), c, m, p) for i, name, attrs, c, m, p in rows]

    def message_counts(self) -> list[tuple[int, int]]:
        """``(queue id, stored messages)`` of every queue that has any."""
        return self._execute("SELECT queue, count(*) FROM messages GROUP BY queue").fetchall()

    def next_row(self) -> int:
        """The first row id never handed out: past the reservation and every stored row."""
        (reserved,) = self._execute("SELECT value FROM meta WHERE key = 'rows_reserved'").fetchone()
        (highest,) = self._execute("SELECT max(id) FROM messages").fetchone()
        return max(int(reserved), (highest or 0) + 1)

    def insert_queue(self, name: str, attributes: dict[str, str], now: float) -> int:
        cursor = self._execute(
            "INSERT INTO queues (name, attributes, created, modified) VALUES (?, ?, ?, ?)",
            (name, json.dumps(attributes), now, now),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def update_queue(self, queue: int, attributes: dict[str, str], now: float) -> None:
        self._execute(
            "UPDATE queues SET attributes = ?, modified = ? WHERE id = ?",
            (json.dumps(attributes), now, queue),
        )

    def delete_queue(self, queue: int) -> None:
        self._execute("DELETE FROM messages WHERE queue = ?", (queue,))
        self._execute("DELETE FROM queues WHERE id = ?", (queue,))

    def purge(self, queue: int, now: float) -> int:
        """Delete every message of the queue and note when; return how many."""
        purged = self._execute("DELETE FROM messages WHERE queue = ?", (queue,)).rowcount
        self._execute("UPDATE queues SET purged = ? WHERE id = ?", (now, queue))
        return purged

    # --- messages ---

    def reserve_rows(self, below: int) -> None:
        """Row ids below ``below`` may be handed out (commits with the caller's rows)."""
        self._execute("UPDATE meta SET value = ? WHERE key = 'rows_reserved'", (below,))

    def insert_messages(self, first: int, rows: Sequence[tuple[object, ...]]) -> None:
        """Store new messages under row ids ``first``, ``first + 1``, ..."""
        self.connection.executemany(_INSERT, [(first + i, *row) for i, row in enumerate(rows)])

    def candidates(
        self, queue: int, now: float, mask: int, partitions: int, count: int
    ) -> list[tuple[int, int]]:
        """Up to ``count`` visible messages of the partitions in ``mask``, oldest
        ``visible_at`` first: ``(row, receive_count)``."""
        return self._execute(_CANDIDATES, (queue, now, mask, partitions, count)).fetchall()

    def move_to_dlq(self, rows: list[int], dlq: int, source: int, now: float) -> None:
        """Move messages into the dead-letter queue, enqueued there now, visible at once."""
        self._execute(_MOVE_TO_DLQ, (dlq, now, now, source, json.dumps(rows)))

    def claim(self, rows: list[int], visible_at: float, nonce: int, now: float) -> list[Any]:
        """Receive messages: hidden until ``visible_at``, counted, the latest receipt
        ``nonce``; the rows as ``rules.Claimed``, in no particular order."""
        return self._execute(_CLAIM, (visible_at, now, nonce, now, json.dumps(rows))).fetchall()

    def lookup(self, rows: list[int]) -> dict[int, tuple[int, int | None, float, float]]:
        """row -> (queue, receipt nonce, visible_at, received_at) of the rows that exist."""
        return {row[0]: row[1:] for row in self._execute(_LOOKUP, (json.dumps(rows),))}

    def delete_latest(self, pairs: list[list[int]]) -> dict[int, int]:
        """Delete the messages whose latest receipt is the nonce of a ``[row, nonce]``
        pair; return row -> nonce of those deleted."""
        return dict(self._execute(_DELETE_LATEST, (json.dumps(pairs),)).fetchall())

    def set_visibility(self, updates: list[tuple[float, int]]) -> None:
        """``(visible_at, row)`` each."""
        self.connection.executemany("UPDATE messages SET visible_at = ? WHERE id = ?", updates)

    def redrive(self, dlq: int, to: int | None, now: float, cap: int) -> list[int]:
        """Move up to ``cap`` (-1: all) visible messages of ``dlq`` to ``to``, or to the
        queue each came from when that still exists; fresh, visible now. The destination
        queue id of each message moved."""
        rows = self._execute(_REDRIVE, (to, now, now, dlq, now, to, cap)).fetchall()
        return [queue for (queue,) in rows]

    def expire(self, queue: int, cutoff: float) -> int:
        """Delete the queue's messages enqueued, or first sent (moved ones), at or before
        ``cutoff``; return how many."""
        return (
            self._execute(
                "DELETE FROM messages WHERE queue = ? AND enqueued <= ?", (queue, cutoff)
            ).rowcount
            + self._execute(
                "DELETE FROM messages WHERE queue = ? AND sent < enqueued AND sent <= ?",
                (queue, cutoff),
            ).rowcount
        )

    def oldest(self, queue: int) -> float | None:
        """The earliest enqueue time of the queue's messages (None: empty)."""
        (oldest,) = self._execute(
            "SELECT min(enqueued) FROM messages WHERE queue = ?", (queue,)
        ).fetchone()
        return oldest  # type: ignore[no-any-return]

    def oldest_moved(self, queue: int) -> float | None:
        """The earliest send time among messages that moved into the queue."""
        (moved,) = self._execute(
            "SELECT min(sent) FROM messages WHERE queue = ? AND sent < enqueued", (queue,)
        ).fetchone()
        return moved  # type: ignore[no-any-return]

    def hidden(self, queue: int, now: float) -> tuple[int, int]:
        """Messages not visible at ``now`` and, of those, the ones received (in flight)."""
        hidden, in_flight = self._execute(
            "SELECT count(*), total(receive_count > 0) FROM messages"
            " WHERE queue = ? AND visible_at > ?",
            (queue, now),
        ).fetchone()
        return hidden, int(in_flight)

    def next_visible_at(self, queue: int, now: float) -> float | None:
        """When the first message not visible at ``now`` becomes visible."""
        (first,) = self._execute(
            "SELECT min(visible_at) FROM messages WHERE queue = ? AND visible_at > ?",
            (queue, now),
        ).fetchone()
        return None if first is None else float(first)
