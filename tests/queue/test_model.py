"""The queue engine against a tiny in-memory model of SQS visibility (hypothesis stateful)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from targets.queue.errors import MessageNotInflight, ReceiptHandleIsInvalid
from targets.queue.store import QueueStore
from tests.queue.conftest import FakeClock

pytestmark = pytest.mark.core


@dataclass
class Message:
    """What the model knows of one message."""

    body: str
    visible_at: float
    receives: int = 0
    handles: list[str] = field(default_factory=list)


class QueueModel(RuleBasedStateMachine):
    """Send, receive (long poll), delete by latest or stale handle, change visibility and
    let time pass; after each step the engine's counts equal the model's."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="queue-model-"))
        self.clock = FakeClock()
        self.store = QueueStore(self.folder / "queue.db", clock=self.clock)
        self.store.create_queue("q")
        self.live: dict[str, Message] = {}
        self.gone: dict[str, Message] = {}
        self.sent = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def visible(self) -> set[str]:
        return {i for i, m in self.live.items() if m.visible_at <= self.clock.now}

    @rule(delay=st.integers(0, 5))
    def send(self, delay: int) -> None:
        body = f"m{self.sent}"
        self.sent += 1
        message_id = self.store.send_message("q", body, delay_seconds=delay).message_id
        self.live[message_id] = Message(body, self.clock.now + delay)

    @rule(count=st.integers(1, 10), timeout=st.integers(0, 5))
    def receive(self, count: int, timeout: int) -> None:
        visible = self.visible()
        got = self.store.receive_message(
            "q",
            count,
            visibility_timeout=timeout,
            wait_time_seconds=20,
            attribute_names=["ApproximateReceiveCount"],
        ).messages
        ids = [m.message_id for m in got]
        assert len(ids) == min(count, len(visible))
        assert len(set(ids)) == len(ids)
        assert set(ids) <= visible
        for received in got:
            model = self.live[received.message_id]
            assert received.body == model.body
            model.receives += 1
            model.visible_at = self.clock.now + timeout
            model.handles.append(received.receipt_handle)
            assert received.attributes["ApproximateReceiveCount"] == str(model.receives)

    def received_ids(self) -> list[str]:
        """In send order (dict order): message ids are random, draws must not depend on them."""
        return [i for i, m in self.live.items() if m.handles]

    @precondition(lambda self: self.received_ids())
    @rule(data=st.data())
    def delete_latest(self, data: st.DataObject) -> None:
        message_id = data.draw(st.sampled_from(self.received_ids()))
        self.store.delete_message("q", self.live[message_id].handles[-1])
        self.gone[message_id] = self.live.pop(message_id)

    @precondition(lambda self: any(len(m.handles) > 1 for m in self.live.values()))
    @rule(data=st.data())
    def delete_stale(self, data: st.DataObject) -> None:
        candidates = [i for i, m in self.live.items() if len(m.handles) > 1]
        message = self.live[data.draw(st.sampled_from(candidates))]
        stale = data.draw(st.sampled_from(message.handles[:-1]))
        with pytest.raises(ReceiptHandleIsInvalid):
            self.store.delete_message("q", stale)

    @precondition(lambda self: self.gone)
    @rule(data=st.data())
    def delete_again(self, data: st.DataObject) -> None:
        message = self.gone[data.draw(st.sampled_from(list(self.gone)))]
        self.store.delete_message("q", message.handles[-1])

    @precondition(lambda self: self.received_ids())
    @rule(data=st.data(), timeout=st.integers(0, 5))
    def change_visibility(self, data: st.DataObject, timeout: int) -> None:
        message = self.live[data.draw(st.sampled_from(self.received_ids()))]
        if message.visible_at > self.clock.now:
            self.store.change_message_visibility("q", message.handles[-1], timeout)
            message.visible_at = self.clock.now + timeout
        else:
            with pytest.raises(MessageNotInflight):
                self.store.change_message_visibility("q", message.handles[-1], timeout)

    @rule(seconds=st.integers(0, 7))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @invariant()
    def counts_agree(self) -> None:
        now = self.clock.now
        hidden = [m for m in self.live.values() if m.visible_at > now]
        stats = self.store.stats("q")
        assert stats.visible == len(self.live) - len(hidden)
        assert stats.in_flight == sum(1 for m in hidden if m.receives)
        assert stats.delayed == sum(1 for m in hidden if not m.receives)


QueueModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestQueueModel = QueueModel.TestCase
