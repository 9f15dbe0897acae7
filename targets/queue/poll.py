"""Long polling over the non-blocking engine: wait for a wake-up, never spin.

``LongPoller.receive`` asks ``QueueStore.receive_message`` once; when the answer is empty and
the effective wait (the request's ``WaitTimeSeconds``, else the queue's
``ReceiveMessageWaitTimeSeconds``) is above zero, it sleeps until the first of:

* the store's listener names the queue (a send, a visibility change, a move in),
* the queue's ``next_visible_at`` (a delayed or in-flight message turns visible),
* the deadline,
* ``close()`` (the process is stopping: answer now, empty),

then asks again. Only the last attempt's empty answer counts as an empty receive. Each
waiter is one future in a per-queue FIFO; a wake-up resolves only the oldest waiting future
of that queue, not all of them (no thundering herd: with many waiters, one send would
otherwise make each of them run a receive for the same few messages). The wake is chained
instead: a waiter that got as many messages as it asked for (so more may be left) wakes the
next one, and a woken waiter that leaves without asking (cancelled) hands its wake-up on.
``close`` still wakes everyone. The wait is a coroutine, so a client that disconnects
cancels it (the engine cancels the handler).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from targets.queue.config import parse_int
from targets.queue.rules import Received
from targets.queue.store import QueueStore


class LongPoller:
    def __init__(self, store: QueueStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock  # the store's clock: next_visible_at is on it
        # Per queue, the waiting futures in arrival order (a dict as an ordered set).
        self._waiters: dict[str, dict[asyncio.Future[None], None]] = {}
        self.closing = False
        store.add_listener(self._wake)

    def _wake(self, name: str) -> None:
        """Wake the oldest waiter of the queue that is not woken yet (the listener)."""
        waiters = self._waiters.get(name)
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
                    return

    def close(self) -> None:
        """Answer every long poll now (empty when nothing is there) and wait no more."""
        self.closing = True
        for waiters in list(self._waiters.values()):
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self.store.remove_listener(self._wake)

    @property
    def waiting(self) -> int:
        """Long polls waiting now."""
        return sum(len(w) for w in self._waiters.values())

    def _effective_wait(self, name: str, wait_time_seconds: object) -> int:
        """The wait this receive may take (0: short poll); out-of-range values are the
        store's to refuse, so they count as a short poll here."""
        if wait_time_seconds is None:
            attrs = self.store.get_queue_attributes(name, ("ReceiveMessageWaitTimeSeconds",))
            return int(attrs.get("ReceiveMessageWaitTimeSeconds", "0"))
        wait = parse_int(wait_time_seconds)
        return wait if wait is not None and wait > 0 else 0

    async def receive(
        self,
        name: str,
        max_number_of_messages: int = 1,
        *,
        visibility_timeout: int | None = None,
        wait_time_seconds: int | None = None,
        attribute_names: Sequence[str] = (),
        message_attribute_names: Sequence[str] = (),
    ) -> Received:
        """ReceiveMessage with long polling (see the module docstring)."""
        store = self.store
        wait = 0 if self.closing else self._effective_wait(name, wait_time_seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            remaining = deadline - loop.time()
            final = remaining <= 0 or self.closing
            asked_at = self._clock()
            received = store.receive_message(
                name,
                max_number_of_messages,
                visibility_timeout=visibility_timeout,
                wait_time_seconds=wait_time_seconds,
                attribute_names=attribute_names,
                message_attribute_names=message_attribute_names,
                final=final,
            )
            if received.messages or final:
                if self._waiters.get(name) and len(received.messages) >= max_number_of_messages:
                    self._wake(name)  # it took a full batch: more may be left for the next
                return received
            timeout = remaining
            # Since `asked_at`, not now: a message that turned visible between the two (a
            # wake-up a hair early, before its time) must end the wait at once, not be left
            # for the whole WaitTimeSeconds.
            visible_at = store.next_visible_at(name, after=asked_at)
            if visible_at is not None:
                timeout = min(timeout, max(0.0, visible_at - self._clock()))
            await self._sleep(name, timeout)

    async def _sleep(self, name: str, seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(name, {})
        waiters[waiter] = None
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._handoff(name, waiters, waiter)  # woken, then gone: pass the wake on
            raise
        finally:
            waiters.pop(waiter, None)
            if not waiters and self._waiters.get(name) is waiters:
                del self._waiters[name]

    def _handoff(
        self, name: str, waiters: dict[asyncio.Future[None], None], waiter: asyncio.Future[None]
    ) -> None:
        waiters.pop(waiter, None)
        self._wake(name)
