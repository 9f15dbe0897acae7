"""Long polling over the non-blocking engine: wait for a wake-up, never spin.

``LongPoller.receive`` asks ``QueueStore.receive_message`` once; when the answer is empty and
the effective wait (the request's ``WaitTimeSeconds``, else the queue's
``ReceiveMessageWaitTimeSeconds``) is above zero, it sleeps until the first of:

* the store's listener names the queue (a send, a visibility change, a move in),
* the queue's ``next_visible_at`` (a delayed or in-flight message turns visible),
* the deadline,
* ``close()`` (the process is stopping: answer now, empty),

then asks again. Only the last attempt's empty answer counts as an empty receive. Each
waiter is one future in a per-queue set; a wake-up resolves every future of that queue (the
waiters race for the messages; losers wait again). The wait is a coroutine, so a client that
disconnects cancels it (the engine cancels the handler).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from targets.queue.config import parse_int
from targets.queue.store import QueueStore, Received


class LongPoller:
    def __init__(self, store: QueueStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock  # the store's clock: next_visible_at is on it
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.closing = False
        store.add_listener(self._wake)

    def _wake(self, name: str) -> None:
        waiters = self._waiters.pop(name, None)
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def close(self) -> None:
        """Answer every long poll now (empty when nothing is there) and wait no more."""
        self.closing = True
        for name in list(self._waiters):
            self._wake(name)
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
                return received
            timeout = remaining
            visible_at = store.next_visible_at(name)
            if visible_at is not None:
                timeout = min(timeout, max(0.0, visible_at - self._clock()))
            await self._sleep(name, timeout)

    async def _sleep(self, name: str, seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(name, set())
        waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await waiter
        finally:
            waiters.discard(waiter)
            if not waiters and self._waiters.get(name) is waiters:
                del self._waiters[name]
