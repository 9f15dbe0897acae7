"""Response header fields from a ``Decision``, for the adapter to send (semantics 4.4, 10.6.7).

Three families, each a list of ``(name, value)`` pairs; the adapter picks one
(the lab documents its choice) and adds ``Retry-After`` to a 429:

* ``ratelimit_fields``: draft-ietf-httpapi-ratelimit-headers-10 (still a draft),
  ``RateLimit-Policy: "default";q=<burst>;w=<window>`` and
  ``RateLimit: "default";r=<remaining>;t=<seconds>``. ``t`` is "seconds until
  additional quota is made available": on an admitted request, until the key is
  back at its full burst (a window-based limiter's reset); on a rejection, the
  ``Retry-After`` value, because the draft says ``Retry-After`` SHOULD NOT
  point earlier than ``t``. A token bucket has no window: ``w`` is the time it
  takes to refill, ``burst / rate``, rounded to whole seconds (at least 1);
* ``draft06_fields``: the draft's earlier separate fields (up to -06, still
  emitted by many libraries), ``RateLimit-Limit``, ``RateLimit-Remaining``,
  ``RateLimit-Reset`` (delta seconds until full);
* ``x_ratelimit_fields``: the de-facto GitHub family, ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (epoch seconds, UTC, so the
  adapter passes its wall clock: the cores have none).

``Retry-After`` is delta-seconds, rounded up and at least 1 (semantics 10.6.7),
and absent when no retry can pass (a cost above the burst).
"""

from __future__ import annotations

import math

from targets.limiter.core import Decision, LimitConfig

__all__ = ["draft06_fields", "ratelimit_fields", "retry_after", "x_ratelimit_fields"]

Fields = list[tuple[str, str]]

_ROUNDING = 1e-6
"""Remaining counts within this of a whole number are that number (float noise)."""


def _whole_remaining(decision: Decision) -> int:
    return max(0, math.floor(decision.remaining + _ROUNDING))


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - _ROUNDING))


def retry_after(decision: Decision) -> str | None:
    """The ``Retry-After`` value for a rejection (None when allowed or never retryable)."""
    if decision.allowed or math.isinf(decision.retry_after_s):
        return None
    return str(max(1, _seconds(decision.retry_after_s)))


def ratelimit_fields(decision: Decision, config: LimitConfig, policy: str = "default") -> Fields:
    """``RateLimit-Policy`` and ``RateLimit`` as draft-ietf-httpapi-ratelimit-headers-10."""
    window = max(1, round(config.window_s))
    after = retry_after(decision)
    t = int(after) if after is not None else _seconds(decision.reset_s)
    return [
        ("RateLimit-Policy", f'"{policy}";q={decision.limit};w={window}'),
        ("RateLimit", f'"{policy}";r={_whole_remaining(decision)};t={t}'),
    ]


def draft06_fields(decision: Decision) -> Fields:
    """``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (delta seconds), drafts up to -06."""
    return [
        ("RateLimit-Limit", str(decision.limit)),
        ("RateLimit-Remaining", str(_whole_remaining(decision))),
        ("RateLimit-Reset", str(_seconds(decision.reset_s))),
    ]


def x_ratelimit_fields(decision: Decision, wall_now: float) -> Fields:
    """GitHub's ``X-RateLimit-*``; ``wall_now`` is the adapter's ``time.time()``."""
    return [
        ("X-RateLimit-Limit", str(decision.limit)),
        ("X-RateLimit-Remaining", str(_whole_remaining(decision))),
        ("X-RateLimit-Reset", str(math.ceil(wall_now + decision.reset_s))),
    ]
