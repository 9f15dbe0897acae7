"""The algorithms by name, so the gateway and queue workers pick one from configuration.

Adding an algorithm: a module with one class taking a ``LimitConfig`` and
implementing ``core.Limiter`` (``decide``, ``full_at``), its name in
``core.ALGORITHM_NAMES`` and an entry here; the property tests then run on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from targets.limiter.core import LimitConfig, Limiter
from targets.limiter.gcra import Gcra
from targets.limiter.leaky_bucket import LeakyBucketPolicing, LeakyBucketShaping
from targets.limiter.sliding_window import SlidingWindow
from targets.limiter.token_bucket import TokenBucket

__all__ = ["ALGORITHMS", "create"]

ALGORITHMS: Final[Mapping[str, Callable[[LimitConfig], Limiter]]] = MappingProxyType(
    {
        "token_bucket": TokenBucket,
        "leaky_bucket_shaping": LeakyBucketShaping,
        "leaky_bucket_policing": LeakyBucketPolicing,
        "gcra": Gcra,
        "sliding_window": SlidingWindow,
    }
)
"""Read-only: name -> the class, called with a ``LimitConfig`` to make one key's limiter."""


def create(config: LimitConfig) -> Limiter:
    """A fresh limiter (one key's state) running ``config.algorithm``."""
    return ALGORITHMS[config.algorithm](config)
