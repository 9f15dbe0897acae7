"""Durability of the queue engine: a crash loses no acknowledged send and no deadline."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from targets.queue.store import QueueStore, SendEntry
from tests.queue.conftest import START, FakeClock

pytestmark = pytest.mark.core

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
from targets.queue.store import QueueStore, SendEntry

store = QueueStore(sys.argv[1], clock=lambda: float(sys.argv[2]))
store.create_queue("q", {"VisibilityTimeout": "30"})
batch = 0
while True:
    result = store.send_message_batch(
        "q", [SendEntry(str(k), f"m{batch}-{k}") for k in range(10)]
    )
    print(json.dumps({"sent": [m.message_id for m in result.successful]}), flush=True)
    if batch % 3 == 0:
        held = store.receive_message("q", 5, wait_time_seconds=20).messages
        print(json.dumps({"held": [m.message_id for m in held]}), flush=True)
    batch += 1
"""


def drain(store: QueueStore, queue: str) -> list[str]:
    """Every visible message id, received with a long visibility timeout."""
    ids: list[str] = []
    while batch := store.receive_message(
        queue, 10, wait_time_seconds=20, visibility_timeout=3600
    ).messages:
        ids.extend(m.message_id for m in batch)
    return ids


def check(store: QueueStore, queue: str, visible: int, in_flight: int) -> None:
    stats = store.stats(queue)
    assert (stats.visible, stats.in_flight, stats.delayed) == (visible, in_flight, 0)


def test_a_crash_image_keeps_every_acknowledged_message(tmp_path: Path, clock: FakeClock):
    """Files copied from a live store (what kill -9 leaves) reopen with every committed
    send, delete and visibility deadline."""
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    live.mkdir()
    crashed.mkdir()
    with QueueStore(live / "queue.db", clock=clock) as store:
        store.create_queue("q", {"VisibilityTimeout": "30"})
        sent = [
            r.message_id
            for b in range(5)
            for r in store.send_message_batch(
                "q", [SendEntry(str(k), f"m{b}-{k}") for k in range(10)]
            ).successful
        ]
        held = store.receive_message("q", 10, wait_time_seconds=20).messages
        for message in held[:3]:
            store.delete_message("q", message.receipt_handle)
        for name in os.listdir(live):
            shutil.copy(live / name, crashed / name)
    with QueueStore(crashed / "queue.db", clock=clock) as store:
        check(store, "q", visible=40, in_flight=7)
        assert store.next_visible_at("q") == START + 30
        store.delete_message("q", held[3].receipt_handle)
        clock.advance(30)
        remaining = drain(store, "q")
    deleted = {m.message_id for m in held[:4]}
    assert sorted(remaining) == sorted(set(sent) - deleted)


@pytest.mark.e2e
def test_kill_9_loses_no_acknowledged_send(tmp_path: Path):
    """A queue process killed with SIGKILL mid-load: every send it acknowledged is there
    after reopening, visible or in flight until its own deadline."""
    path = tmp_path / "queue.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(START)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    lines = [child.stdout.readline() for _ in range(300)]
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    sent: set[str] = set()
    held: set[str] = set()
    for line in [*lines, *rest.splitlines()]:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill was never acknowledged
        sent.update(record.get("sent", []))
        held.update(record.get("held", []))
    assert len(sent) >= 2000
    clock = FakeClock(START)
    with QueueStore(path, clock=clock) as store:
        stats = store.stats("q")
        assert stats.in_flight >= len(held)
        assert stats.visible + stats.in_flight >= len(sent)
        visible_now = set(drain(store, "q"))
        assert not visible_now & held
        clock.advance(30)
        back = set(drain(store, "q"))
    assert sent <= visible_now | back
    assert held <= back
