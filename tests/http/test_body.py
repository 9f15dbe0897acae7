"""BodyReader: a body streams with flow control instead of piling up in memory."""

from __future__ import annotations

import pytest

from targets.http.body import HIGH_WATER, LOW_WATER, BodyReader

pytestmark = pytest.mark.inprocess


class Switch:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pause(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume(self) -> None:
        self.paused = False


async def test_producer_is_paused_above_high_water_and_resumed_below_low_water() -> None:
    """The sender is paused once more than HIGH_WATER bytes wait, resumed under LOW_WATER."""
    switch = Switch()
    body = BodyReader(switch.pause, switch.resume)
    chunk = b"x" * 16384
    fed = 0
    while not switch.paused:
        body.feed(chunk)
        fed += len(chunk)
    assert HIGH_WATER < fed <= HIGH_WATER + len(chunk)
    read = 0
    while switch.paused:
        read += len(await body.read())
    assert fed - read < LOW_WATER
    body.feed_eof()
    rest = await body.read_all()
    assert read + len(rest) == fed
    assert switch.pauses == 1


async def test_reader_sees_the_error_when_the_sender_breaks_off() -> None:
    """A body cut short raises the cause on read, after the bytes that did arrive."""
    body = BodyReader(lambda: None, lambda: None)
    body.feed(b"abc")
    body.fail(ConnectionResetError("gone"))
    assert await body.read() == b"abc"
    with pytest.raises(ConnectionResetError):
        await body.read()


async def test_read_all_refuses_a_body_over_its_limit() -> None:
    """read_all with a limit stops with ValueError instead of growing without bound."""
    body = BodyReader(lambda: None, lambda: None)
    body.feed(b"a" * 600)
    body.feed(b"a" * 600)
    body.feed_eof()
    with pytest.raises(ValueError, match="1000"):
        await body.read_all(1000)
