"""When a SQLite-backed service's changes become durable (the queue's and the topic's): a
transaction per call, or one per group of calls (group commit) paced by the event loop
(``LoopCommits``), and the WAL's fdatasync on a daemon thread.

Every store call that changes something runs in ``GroupCommit.transaction()``. Without a
schedule (the default) that is a transaction of its own, committed before the call returns
(a send batch in one transaction). With group commit on (``schedule(callback)``, what the
queue service does), a call's changes no longer commit when it returns; they join one open
transaction, each call in a savepoint of its own (a failing call still changes nothing),
and the first call of a group calls the callback, which arranges for ``commit()`` soon (the
service: once per event-loop iteration, so the requests served in one iteration share one
commit: one WAL write instead of one per request). While ``pending`` is true nothing is
durable, and reads may see the group's changes: whoever answers a client must wait for
``commit()`` first (the service does, for every response). The callback returning False
means "commit now": the call then runs in a transaction of its own, as without group commit.

If the commit fails, or SQLite rolled the whole group back meanwhile (disk full), the group
is rolled back, ``on_rollback`` runs (the store reloads its in-memory state from the
database) and ``commit()`` raises: none of the group's calls may be acknowledged.

``WalSyncer``: checkpoints run on the owner's thread (``locking_mode=EXCLUSIVE`` allows one
connection). With ``synchronous=NORMAL`` SQLite fsyncs the whole WAL written since the last
checkpoint first (~40 MB: ~100 ms on a virtual disk, a stall of the event loop); a daemon
thread fdatasyncs the WAL every ``WAL_SYNC_INTERVAL`` instead, so that fsync finds little
left to write. It changes no guarantee: it only writes earlier what the checkpoint would
have synced anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, Protocol

log = logging.getLogger(__name__)

WAL_SYNC_INTERVAL: Final = 0.1  # seconds between background fdatasync of the WAL (NORMAL)


class GroupCommit:
    """The transactions of one connection: per call, or grouped (see the module docstring)."""

    def __init__(self, connection: sqlite3.Connection, on_rollback: Callable[[], None]) -> None:
        self._db = connection
        self._on_rollback = on_rollback
        self._schedule: Callable[[], bool] | None = None
        self._lost = False  # SQLite rolled the open group back under us

    def schedule(self, callback: Callable[[], bool] | None) -> None:
        """Group calls from now on, ``callback()`` arranging each group's commit; or stop
        grouping (None), after committing what is pending."""
        if callback is None:
            self.commit()
        self._schedule = callback

    @property
    def pending(self) -> bool:
        """Changes (or reads of changes) are waiting for ``commit()``: not durable yet."""
        return self._db.in_transaction or self._lost

    def commit(self) -> None:
        """Commit the group (nothing when none is pending); on failure roll back, run
        ``on_rollback`` and raise."""
        db = self._db
        if self._lost:
            self._lost = False
            self._abandon()
            raise sqlite3.OperationalError("the grouped transaction was rolled back by SQLite")
        if not db.in_transaction:
            return
        try:
            db.execute("COMMIT")
        except BaseException:
            self._abandon()
            raise

    def close(self) -> None:
        """Commit what a group holds, unless SQLite already rolled it back."""
        if self._db.in_transaction and not self._lost:
            self._db.execute("COMMIT")

    def _abandon(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
        self._on_rollback()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One call's changes: all or nothing, committed now or with its group."""
        db = self._db
        if not db.in_transaction:
            if self._schedule is None or not self._schedule():
                db.execute("BEGIN IMMEDIATE")  # one call, one transaction
                try:
                    yield
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return
            db.execute("BEGIN IMMEDIATE")  # the group's; commit() ends it
        db.execute("SAVEPOINT call")
        try:
            yield
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK TO call")
                db.execute("RELEASE call")
            else:  # SQLite rolled back the whole group (e.g. disk full)
                self._lost = True
            raise
        db.execute("RELEASE call")


class WalSyncer:
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


class CommitFailed(Exception):
    """The group commit a response waited for failed: the request's effect is not durable."""


class LoopCommits:
    """Group commit paced by the event loop, for a service over a store that groups its
    calls: the first call of a group schedules ``flush`` for the next loop iteration; a
    response awaits ``durable()`` first, so nothing is acknowledged before it is on disk.

    ``commit`` is the store's commit (raising on failure); ``after`` (optional) runs after
    each successful commit, e.g. to hand what just became durable to a delivery loop.
    """

    def __init__(self, commit: Callable[[], None], after: Callable[[], None] | None = None):
        self._commit = commit
        self._after = after
        self._waiting: list[asyncio.Future[None]] = []

    def schedule(self) -> bool:
        """The store opens a group: commit it next iteration (False: no loop, commit now)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Commit the open group, then release the responses that waited for it."""
        waiting, self._waiting = self._waiting, []
        try:
            self._commit()
        except Exception as error:
            log.exception("commit failed: the %d requests waiting for it get 500", len(waiting))
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_exception(CommitFailed(f"commit failed: {error}"))
            return
        if self._after is not None:
            self._after()
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)

    async def durable(self, pending: bool) -> None:
        """Return once everything done so far is committed (at once when nothing is
        ``pending``)."""
        if pending:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            await waiter


def connect(
    path: str | Path,
    synchronous: str,
    *,
    cache_kib: int = 16_384,
    checkpoint_pages: int = 10_000,
    owner: str = "store",
) -> sqlite3.Connection:
    """Open (or create) a database this process alone owns: exclusive locking (set before
    WAL, so no shared memory), WAL, the given ``synchronous``, checkpoints every
    ``checkpoint_pages`` (SQLite's default is 1000). A second opener fails at once
    (busy timeout 0): RuntimeError "<path>: in use by another <owner>"."""
    db = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"journal_mode: WAL unavailable for this database, got {mode}")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        db.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        db.execute(f"PRAGMA wal_autocheckpoint = {int(checkpoint_pages)}")
        db.execute("PRAGMA journal_size_limit = 67108864")
    except sqlite3.OperationalError as error:
        db.close()
        if "locked" in str(error):
            raise RuntimeError(f"{path}: in use by another {owner}") from error
        raise
    except BaseException:
        db.close()
        raise
    return db


def create_schema(db: sqlite3.Connection, schema: str, version: int, seed: str = "") -> bool:
    """Create the schema (and run the ``seed`` statements) in one transaction when the file
    is new (``user_version`` 0); True if it did. A file of another version: RuntimeError."""
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found == version:
        return False
    if found != 0:
        raise RuntimeError(f"user_version: schema {found} is not {version}")
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in (schema + ";" + seed).split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {int(version)}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return True


class _Closes(Protocol):
    def close(self) -> None: ...


def close(commits: GroupCommit, syncer: WalSyncer | None, db: _Closes) -> None:
    """Commit what the open group holds, stop the WAL syncer, close the database."""
    try:
        commits.close()
    finally:
        if syncer is not None:
            syncer.stop()
        db.close()
