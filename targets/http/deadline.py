"""A resettable deadline that costs one timer per expiry, not one per reset.

Connections move their deadline on every request (header timeout, idle timeout, upstream
response timeout). Creating and cancelling a timer each time is measurable on the hot path, so
`set` only stores a time; the single timer, when it fires early, re-arms itself for the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    __slots__ = ("_armed_for", "_callback", "_handle", "_loop", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._when = 0.0  # 0: no deadline
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = 0.0

    def set(self, delay_s: float) -> None:
        """Call the callback `delay_s` from now, unless the deadline moves or clears first."""
        when = self._loop.time() + delay_s
        self._when = when
        if self._handle is None or when < self._armed_for:
            self._arm(when)

    def clear(self) -> None:
        """No deadline for now (an armed timer will find nothing to do)."""
        self._when = 0.0

    def cancel(self) -> None:
        """No deadline ever again (the connection is gone)."""
        self._when = 0.0
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        when = self._when
        if not when:
            return
        if self._loop.time() < when:
            self._arm(when)
            return
        self._when = 0.0
        self._callback()
