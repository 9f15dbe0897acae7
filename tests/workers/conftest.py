"""The `lab` fixture: processes started by a test, always killed in its teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workers.procs import Lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    processes = Lab(tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()
