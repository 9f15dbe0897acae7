"""Long polling wakes one waiter per wake-up and chains the rest; group commit holds a
group's changes until ``commit()`` (in process, no HTTP)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from targets.queue.poll import LongPoller
from targets.queue.store import QueueStore, Received, SendEntry
from tests.queue.conftest import FakeClock

pytestmark = pytest.mark.inprocess

GUARD_S = 10.0  # only against a hang: every wait below ends long before


def counting(store: QueueStore) -> list[int]:
    """Count the store's receive attempts (one per waiter woken, plus the first)."""
    calls = [0]
    receive: Callable[..., Received] = store.receive_message

    def wrapped(*args: Any, **kwargs: Any) -> Received:
        calls[0] += 1
        return receive(*args, **kwargs)

    store.receive_message = wrapped  # type: ignore[method-assign]
    return calls


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_one_send_wakes_one_waiter_not_all(tmp_path: Path) -> None:
    with QueueStore(tmp_path / "queue.db") as store:
        store.create_queue("q")
        poller = LongPoller(store)
        calls = counting(store)
        waiters = [
            asyncio.create_task(poller.receive("q", 10, wait_time_seconds=20)) for _ in range(3)
        ]
        await settle()
        assert calls[0] == 3
        assert poller.waiting == 3
        store.send_message("q", "one")
        await settle()
        assert calls[0] == 4  # one waiter woke and took it; the other two still sleep
        done = [w for w in waiters if w.done()]
        assert len(done) == 1
        assert [m.body for m in done[0].result().messages] == ["one"]
        assert poller.waiting == 2
        poller.close()
        rest = await asyncio.wait_for(asyncio.gather(*waiters), GUARD_S)
        assert sum(len(r.messages) for r in rest) == 1


async def test_a_waiter_that_took_a_full_batch_wakes_the_next(tmp_path: Path) -> None:
    with QueueStore(tmp_path / "queue.db") as store:
        store.create_queue("q")
        poller = LongPoller(store)
        waiters = [
            asyncio.create_task(poller.receive("q", 1, wait_time_seconds=20)) for _ in range(3)
        ]
        await settle()
        store.send_message_batch("q", [SendEntry(str(i), f"m{i}") for i in range(3)])  # 1 wake
        results = await asyncio.wait_for(asyncio.gather(*waiters), GUARD_S)
        assert sorted(r.messages[0].body for r in results) == ["m0", "m1", "m2"]
        poller.close()


async def test_a_woken_waiter_that_is_cancelled_hands_the_wake_on(tmp_path: Path) -> None:
    with QueueStore(tmp_path / "queue.db") as store:
        store.create_queue("q")
        poller = LongPoller(store)
        first = asyncio.create_task(poller.receive("q", 10, wait_time_seconds=20))
        await settle()
        second = asyncio.create_task(poller.receive("q", 10, wait_time_seconds=20))
        await settle()
        store.send_message("q", "one")  # wakes the first (the oldest) ...
        first.cancel()  # ... whose client leaves before it runs
        result = await asyncio.wait_for(second, GUARD_S)
        assert [m.body for m in result.messages] == ["one"]
        assert first.cancelled()
        poller.close()


async def test_a_message_visible_just_after_an_empty_receive_ends_the_wait(
    store: QueueStore, clock: FakeClock
) -> None:
    """A message turning visible between the poll's empty receive and its question of when
    to look again (a wake-up a hair early) is taken at once, by a receive before the last,
    not left for the whole WaitTimeSeconds (before the fix it came with the final one, 20 s
    later)."""
    store.create_queue("q", {"VisibilityTimeout": "1"})
    store.send_message("q", "backed off")
    store.receive_message("q", 1)  # in flight until START + 1
    clock.advance(0.9995)
    poller = LongPoller(store, clock=clock)
    finals: list[bool] = []
    receive: Callable[..., Received] = store.receive_message

    def then_time_passes(*args: Any, **kwargs: Any) -> Received:
        finals.append(kwargs["final"])
        received = receive(*args, **kwargs)
        clock.advance(0.001)  # the message turns visible just after this receive
        return received

    store.receive_message = then_time_passes  # type: ignore[method-assign]
    result = await asyncio.wait_for(poller.receive("q", 1, wait_time_seconds=20), GUARD_S)
    assert [m.body for m in result.messages] == ["backed off"]
    assert finals == [False, False]  # the second receive, not the final one
    poller.close()


def crash_copy(live: Path, target: Path) -> Path:
    """The files a kill -9 would leave, copied from a live store."""
    target.mkdir()
    for name in os.listdir(live):
        shutil.copy(live / name, target / name)
    return target / "queue.db"


@pytest.mark.core
def test_a_group_is_durable_only_once_committed(tmp_path: Path, clock: FakeClock) -> None:
    live = tmp_path / "live"
    live.mkdir()
    scheduled: list[int] = []
    with QueueStore(live / "queue.db", clock=clock) as store:
        store.create_queue("q")
        store.group_commits(lambda: scheduled.append(1) is None)
        store.send_message("q", "a")
        store.send_message("q", "b")
        assert store.pending
        assert scheduled == [1]
        before = crash_copy(live, tmp_path / "before")
        store.commit()
        assert not store.pending
        after = crash_copy(live, tmp_path / "after")
        store.group_commits(None)
    with QueueStore(before, clock=clock) as crashed:
        assert crashed.stats("q").visible == 0
    with QueueStore(after, clock=clock) as crashed:
        assert crashed.stats("q").visible == 2


@pytest.mark.core
def test_a_group_that_cannot_be_scheduled_commits_at_once(tmp_path: Path, clock: FakeClock):
    with QueueStore(tmp_path / "queue.db", clock=clock) as store:
        store.create_queue("q")
        store.group_commits(lambda: False)
        store.send_message("q", "a")
        assert not store.pending
        assert store.stats("q").visible == 1
