"""Fixtures for the queue engine tests: a store on a temporary database and a fake clock."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.queue.store import QueueStore

START = 1_700_000_000.0


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[QueueStore]:
    with QueueStore(tmp_path / "queue.db", clock=clock, rng=random.Random(7)) as opened:
        yield opened
