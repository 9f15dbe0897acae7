"""The SQLite storage (targets/queue/database.py) alone: schema, pragmas, one owner, the
statements the engine runs, each inside a transaction the test opens."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.queue.database import ROW_ID_BLOCK, SCHEMA_VERSION, QueueDatabase
from targets.queue.handles import KEY_SIZE

pytestmark = pytest.mark.core

NOW = 1_700_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[QueueDatabase]:
    opened = QueueDatabase(tmp_path / "queue.db")
    try:
        yield opened
    finally:
        opened.close()


def run(db: QueueDatabase, sql: str = "COMMIT") -> None:
    db.connection.execute(sql)


def stored(db: QueueDatabase, queue: int, *bodies: str, first: int = 1) -> list[int]:
    """Insert messages visible now into `queue`; their row ids."""
    rows = [(queue, NOW, NOW, NOW, f"id-{b}", b, None) for b in bodies]
    run(db, "BEGIN IMMEDIATE")
    db.insert_messages(first, rows)
    run(db)
    return list(range(first, first + len(rows)))


def test_a_new_file_gets_the_schema_a_key_and_wal(tmp_path: Path) -> None:
    """Creating: user_version, a random handle key, WAL, exclusive locking, the pragmas."""
    with_key = QueueDatabase(tmp_path / "a.db")
    other = QueueDatabase(tmp_path / "b.db", synchronous="FULL", cache_kib=1024)
    try:
        pragma = with_key.connection.execute
        assert pragma("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert pragma("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert pragma("PRAGMA locking_mode").fetchone()[0] == "exclusive"
        assert pragma("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert other.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert other.connection.execute("PRAGMA cache_size").fetchone()[0] == -1024
        assert len(with_key.handle_key) == KEY_SIZE
        assert with_key.handle_key != other.handle_key
    finally:
        with_key.close()
        other.close()


def test_reopening_keeps_the_key_and_the_queues(tmp_path: Path) -> None:
    """The handle key and the queue rows survive a reopen (handles stay valid)."""
    first = QueueDatabase(tmp_path / "q.db")
    run(first, "BEGIN IMMEDIATE")
    queue = first.insert_queue("q", {"VisibilityTimeout": "5"}, NOW)
    run(first)
    key = first.handle_key
    first.close()
    again = QueueDatabase(tmp_path / "q.db")
    try:
        assert again.handle_key == key
        assert again.queues() == [(queue, "q", {"VisibilityTimeout": "5"}, NOW, NOW, None)]
    finally:
        again.close()


def test_one_owner_per_file(db: QueueDatabase, tmp_path: Path) -> None:
    """A second opener fails at once, naming the file; another schema version is refused."""
    with pytest.raises(RuntimeError, match="in use by another queue store"):
        QueueDatabase(tmp_path / "queue.db")
    with sqlite3.connect(tmp_path / "old.db") as raw:
        raw.execute("PRAGMA user_version = 7")
    raw.close()
    with pytest.raises(RuntimeError, match="schema 7 is not 1"):
        QueueDatabase(tmp_path / "old.db")


def test_row_ids_start_past_the_reservation_and_the_highest_row(db: QueueDatabase) -> None:
    """next_row is past both the reserved block and every stored row."""
    assert db.next_row() == 1
    stored(db, 1, "a", "b", first=5)
    assert db.next_row() == 7
    run(db, "BEGIN IMMEDIATE")
    db.reserve_rows(ROW_ID_BLOCK)
    run(db)
    assert db.next_row() == ROW_ID_BLOCK


def test_receive_statements_claim_candidates_oldest_first(db: QueueDatabase) -> None:
    """candidates: visible rows of the sampled partitions, oldest first; claim hides them,
    counts the receive and stores the nonce; hidden and next_visible_at see it."""
    rows = stored(db, 1, "a", "b", "c")
    every = 0xFF
    assert db.candidates(1, NOW, every, 8, 10) == [(r, 0) for r in rows]
    assert db.candidates(1, NOW, 1 << (rows[0] % 8), 8, 10) == [(rows[0], 0)]
    assert db.candidates(1, NOW, every, 8, 2) == [(rows[0], 0), (rows[1], 0)]
    run(db, "BEGIN IMMEDIATE")
    claimed = db.claim(rows[:2], NOW + 30, 77, NOW)
    run(db)
    assert sorted(r[0] for r in claimed) == rows[:2]
    assert {(r[5], r[6]) for r in claimed} == {(1, NOW)}  # receive count, first receive
    assert db.candidates(1, NOW, every, 8, 10) == [(rows[2], 0)]
    assert db.hidden(1, NOW) == (2, 2)
    assert db.next_visible_at(1, NOW) == NOW + 30
    assert db.lookup([*rows, 99]) == {
        rows[0]: (1, 77, NOW + 30, NOW),
        rows[1]: (1, 77, NOW + 30, NOW),
        rows[2]: (1, None, NOW, None),
    }


def test_delete_latest_deletes_only_by_the_latest_nonce(db: QueueDatabase) -> None:
    """A [row, nonce] pair deletes its row only when nonce is the row's latest receipt."""
    rows = stored(db, 1, "a", "b")
    run(db, "BEGIN IMMEDIATE")
    db.claim(rows, NOW + 30, 5, NOW)
    deleted = db.delete_latest([[rows[0], 5], [rows[1], 4]])
    run(db)
    assert deleted == {rows[0]: 5}
    assert list(db.lookup(rows)) == [rows[1]]


def test_dead_letter_moves_and_redrive(db: QueueDatabase) -> None:
    """A move keeps the source; redrive sends each message back to it (or to `to`), fresh,
    and leaves messages whose source queue is gone."""
    run(db, "BEGIN IMMEDIATE")
    work = db.insert_queue("work", {}, NOW)
    dlq = db.insert_queue("dlq", {}, NOW)
    run(db)
    rows = stored(db, work, "a", "b")
    run(db, "BEGIN IMMEDIATE")
    db.claim(rows, NOW, 1, NOW)  # received once, visible again at once
    db.move_to_dlq(rows, dlq, work, NOW + 1)
    run(db)
    assert db.oldest(dlq) == NOW + 1
    assert db.oldest_moved(dlq) == NOW  # sent before it entered the DLQ
    run(db, "BEGIN IMMEDIATE")
    assert db.redrive(dlq, None, NOW + 2, 1) == [work]
    assert db.redrive(dlq, dlq, NOW + 2, -1) == [dlq]  # an explicit destination
    run(db)
    assert db.candidates(work, NOW + 2, 0xFF, 8, 10) == [(rows[0], 0)]  # a fresh count


def test_expire_and_purge_count_what_they_delete(db: QueueDatabase) -> None:
    """expire deletes by enqueue time (and by send time for moved messages); purge deletes
    every message and notes when."""
    run(db, "BEGIN IMMEDIATE")
    queue = db.insert_queue("q", {}, NOW)
    run(db)
    rows = stored(db, queue, "a", "b", "c")
    run(db, "BEGIN IMMEDIATE")
    assert db.expire(queue, NOW - 1) == 0
    db.move_to_dlq(rows[:1], queue, queue, NOW + 100)  # re-enqueued later, sent at NOW
    assert db.expire(queue, NOW) == 3
    run(db)
    stored(db, queue, "d", first=10)
    run(db, "BEGIN IMMEDIATE")
    assert db.purge(queue, NOW + 1) == 1
    db.update_queue(queue, {"DelaySeconds": "1"}, NOW + 5)
    run(db)
    assert db.message_counts() == []
    assert db.queues() == [(queue, "q", {"DelaySeconds": "1"}, NOW, NOW + 5, NOW + 1)]
