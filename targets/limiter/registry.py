"""The algorithms by name, so the gateway and queue workers pick one from configuration.

The names live here and only here: ``ALGORITHMS``'s keys. ``ALGORITHM_NAMES`` (what
``LimitConfig`` accepts) and ``AlgorithmName`` (the type of a config's ``algorithm`` field:
``Literal`` of the names for pydantic, ``str`` for mypy) derive from them.

Adding an algorithm: a module with one class taking a ``LimitConfig`` and
implementing ``core.Limiter`` (``decide``, ``full_at``), and an entry here; the property
tests then run on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from targets.limiter.core import LimitConfig, Limiter
from targets.limiter.gcra import Gcra
from targets.limiter.leaky_bucket import LeakyBucketPolicing, LeakyBucketShaping
from targets.limiter.sliding_window import SlidingWindow
from targets.limiter.token_bucket import TokenBucket

__all__ = ["ALGORITHMS", "ALGORITHM_NAMES", "AlgorithmName", "create"]

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

ALGORITHM_NAMES: Final[tuple[str, ...]] = tuple(ALGORITHMS)
"""Every algorithm's name, in registration order (error messages list them so)."""

if TYPE_CHECKING:
    AlgorithmName: TypeAlias = str
else:
    AlgorithmName = Literal[ALGORITHM_NAMES]
"""A config field naming an algorithm: pydantic checks it is one of ``ALGORITHM_NAMES``
(and lists them when it is not); to mypy it is a ``str``."""


def create(config: LimitConfig) -> Limiter:
    """A fresh limiter (one key's state) running ``config.algorithm``."""
    return ALGORITHMS[config.algorithm](config)
