"""A streamed message body with flow control.

The parser of one connection pushes chunks in (`feed`, `feed_eof`, `fail`); one consumer pulls
them out (`read`). When more than `HIGH_WATER` bytes wait unread, the producing transport is
paused, and it resumes once the consumer has taken the buffer below `LOW_WATER`. So a slow
reader never makes the proxy hold a whole large body in memory: TCP pushes back on the sender.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class BodyReader:
    """One message body, read chunk by chunk; `read()` returns b"" at the end."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_done",
        "_error",
        "_on_first_read",
        "_pause",
        "_paused",
        "_resume",
        "_waiter",
        "received",
    )

    def __init__(
        self,
        pause: Callable[[], None],
        resume: Callable[[], None],
        on_first_read: Callable[[], None] | None = None,
    ) -> None:
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._pause = pause
        self._resume = resume
        self._paused = False
        self._on_first_read = on_first_read
        self.received = 0

    @classmethod
    def empty(cls) -> BodyReader:
        """A body that is already complete and has no bytes."""
        body = cls(_nothing, _nothing)
        body._done = True
        return body

    @property
    def done(self) -> bool:
        """True once the whole body has arrived (it may still be unread)."""
        return self._done

    # -- producer side (the parser) ----------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self.received += len(data)
        if self._buffered > HIGH_WATER and not self._paused:
            self._paused = True
            self._pause()
        self._wake()

    def feed_eof(self) -> None:
        self._done = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The connection broke before the body was complete."""
        if not self._done:
            self._error = error
            self._done = True
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- consumer side -----------------------------------------------------------------------
    async def read(self) -> bytes:
        """The next chunk, or b"" once the body is complete. Raises if the sender broke off."""
        if self._on_first_read is not None:
            self._on_first_read()
            self._on_first_read = None
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered < LOW_WATER:
            self._paused = False
            self._resume()
        return data

    async def read_all(self, limit: int | None = None) -> bytes:
        """The whole body; `ValueError` if it grows past `limit` bytes."""
        parts = []
        size = 0
        while chunk := await self.read():
            size += len(chunk)
            if limit is not None and size > limit:
                raise ValueError(f"body larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)


def _nothing() -> None:
    return None


EMPTY_BODY = BodyReader.empty()
"""The body of every request without one: complete, no bytes, nothing to feed (never mutated)."""
