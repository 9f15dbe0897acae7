"""Event loop selection: uvloop when installed, the standard loop otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on uvloop if it is importable."""
    try:
        import uvloop  # noqa: PLC0415 - optional accelerator, imported only when running
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
