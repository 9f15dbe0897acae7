"""Commit scheduling (targets/durable.py) on a bare SQLite connection: a transaction
per call, group commit with a savepoint per call, failed commits, the WAL syncer."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets import durable as commits
from targets.durable import GroupCommit, WalSyncer

pytestmark = pytest.mark.core

GUARD_S = 10.0  # only against a hang: the syncer ticks every 0.1 s


class Boom(Exception):
    pass


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    db.execute("CREATE TABLE t (v INTEGER)")
    try:
        yield db
    finally:
        db.close()


def rows(db: sqlite3.Connection) -> list[int]:
    return [v for (v,) in db.execute("SELECT v FROM t ORDER BY v")]


def insert(group: GroupCommit, db: sqlite3.Connection, value: int, fail: bool = False) -> None:
    """One store call: insert `value`, then fail if asked."""
    with group.transaction():
        db.execute("INSERT INTO t VALUES (?)", (value,))
        if fail:
            raise Boom


def test_without_a_schedule_each_call_commits_alone(connection: sqlite3.Connection) -> None:
    """No group: a call commits before it returns; a failing call changes nothing."""
    group = GroupCommit(connection, on_rollback=lambda: None)
    insert(group, connection, 1)
    assert not group.pending
    with pytest.raises(Boom):
        insert(group, connection, 2, fail=True)
    assert not group.pending
    assert rows(connection) == [1]


def test_a_group_holds_its_calls_until_commit(connection: sqlite3.Connection) -> None:
    """The first call of a group schedules its commit once; a failing call in the group is
    undone alone (its savepoint); commit() makes the rest durable."""
    scheduled: list[int] = []
    group = GroupCommit(connection, on_rollback=lambda: None)
    group.schedule(lambda: scheduled.append(1) is None)
    insert(group, connection, 1)
    with pytest.raises(Boom):
        insert(group, connection, 2, fail=True)
    insert(group, connection, 3)
    assert group.pending
    assert scheduled == [1]
    assert rows(connection) == [1, 3]  # reads see the group's changes
    group.commit()
    assert not group.pending
    group.commit()  # nothing pending: nothing to do
    insert(group, connection, 4)
    assert scheduled == [1, 1]  # the next group schedules again
    group.schedule(None)  # off: what is pending commits first
    assert not group.pending
    assert rows(connection) == [1, 3, 4]


def test_a_schedule_that_declines_commits_the_call_at_once(
    connection: sqlite3.Connection,
) -> None:
    """The callback returning False (no event loop) means: this call alone, now."""
    group = GroupCommit(connection, on_rollback=lambda: None)
    group.schedule(lambda: False)
    insert(group, connection, 1)
    assert not group.pending


def test_a_failed_commit_rolls_back_reloads_and_raises(connection: sqlite3.Connection) -> None:
    """When COMMIT fails, the whole group is rolled back, on_rollback runs (the store
    reloads its state) and the error propagates: none of the group is acknowledged."""
    connection.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    connection.execute(
        "CREATE TABLE child (p INTEGER REFERENCES parent DEFERRABLE INITIALLY DEFERRED)"
    )
    connection.execute("PRAGMA foreign_keys = ON")  # a deferred violation fails COMMIT
    reloads: list[int] = []
    group = GroupCommit(connection, on_rollback=lambda: reloads.append(1))
    group.schedule(lambda: True)
    insert(group, connection, 1)
    with group.transaction():
        connection.execute("INSERT INTO child VALUES (5)")  # no parent 5
    with pytest.raises(sqlite3.IntegrityError):
        group.commit()
    assert reloads == [1]
    assert not group.pending
    assert rows(connection) == []


def test_a_group_sqlite_rolled_back_is_reported_at_commit(connection: sqlite3.Connection) -> None:
    """If SQLite ended the group itself (a call failed with no transaction left), nothing
    of it may be acknowledged: commit() reloads and raises."""
    reloads: list[int] = []
    group = GroupCommit(connection, on_rollback=lambda: reloads.append(1))
    group.schedule(lambda: True)
    insert(group, connection, 1)

    def call_sqlite_aborts() -> None:
        with group.transaction():
            connection.execute("ROLLBACK")  # what SQLite does itself on e.g. SQLITE_FULL
            raise Boom

    with pytest.raises(Boom):
        call_sqlite_aborts()
    assert group.pending
    with pytest.raises(sqlite3.OperationalError, match="rolled back by SQLite"):
        group.commit()
    assert reloads == [1]
    assert not group.pending
    assert rows(connection) == []
    group.close()  # nothing left to commit


def test_close_commits_an_open_group(tmp_path: Path, connection: sqlite3.Connection) -> None:
    """close() commits what a group holds (a graceful stop loses nothing)."""
    group = GroupCommit(connection, on_rollback=lambda: None)
    group.schedule(lambda: True)
    insert(group, connection, 1)
    group.close()
    assert not connection.in_transaction
    with sqlite3.connect(tmp_path / "t.db") as other:
        assert [v for (v,) in other.execute("SELECT v FROM t")] == [1]
    other.close()


def test_the_wal_syncer_fdatasyncs_the_wal_until_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon thread fdatasyncs the -wal file (waiting for it to exist) and ends on
    stop(), closing its descriptor."""
    wal = tmp_path / "q.db-wal"
    synced = threading.Event()
    opened: list[int] = []
    real_open = os.open

    def fdatasync(fd: int) -> None:
        assert os.fstat(fd).st_ino == wal.stat().st_ino
        synced.set()

    def track(path: str, flags: int, *args: int) -> int:
        fd = real_open(path, flags, *args)
        opened.append(fd)
        return fd

    monkeypatch.setattr(commits.os, "fdatasync", fdatasync)
    monkeypatch.setattr(commits.os, "open", track)
    syncer = WalSyncer(str(wal))  # no WAL yet: it retries
    wal.write_bytes(b"frames")
    assert synced.wait(GUARD_S)
    syncer.stop()
    assert not syncer._thread.is_alive()
    for fd in opened:
        with pytest.raises(OSError):
            os.fstat(fd)
