"""GCRA, the generic cell rate algorithm (semantics 4.3; brandur's redis-cell).

The state is one number, the theoretical arrival time ``TAT``: when the key would
be back at full if nothing else came. With the emission interval
``T = 1 / rate`` and a capacity of ``burst * T`` seconds, a request of ``cost``
arriving at ``t`` is allowed when::

    max(TAT, t) + cost * T - t <= burst * T

and then ``TAT = max(TAT, t) + cost * T``; a rejection changes nothing and may
retry after ``max(TAT, t) + cost * T - burst * T - t`` seconds. In redis-cell's
terms (tolerance ``tau = T * max_burst``) ``burst = max_burst + 1``, its
``limit``; ``CL.THROTTLE key 15 30 60`` is ``LimitConfig(rate=0.5, burst=16)``.

It admits exactly the same requests as a token bucket of capacity ``burst`` and
refill ``rate`` (semantics 10.6.5; a test drives both with the same traffic),
with one float of state and no refill arithmetic.
"""

from __future__ import annotations

import math

from targets.limiter.core import EPS_S, Decision, LimitConfig

__all__ = ["Gcra"]

_new = tuple.__new__  # Decision(...) at half the cost: see core.Decision


class Gcra:
    """One key's GCRA state; see the module docstring."""

    __slots__ = ("_capacity_s", "_interval", "_limit", "_rate", "_tat")

    def __init__(self, config: LimitConfig) -> None:
        self._rate = config.rate
        self._interval = 1.0 / config.rate
        self._capacity_s = config.burst / config.rate  # tau + T
        self._limit = config.burst
        self._tat = -math.inf

    def decide(self, now: float, cost: float = 1.0) -> Decision:
        capacity = self._capacity_s
        tat = self._tat
        tat = now if tat < now else tat
        new_tat = tat + cost * self._interval
        reset = new_tat - now
        if reset <= capacity + EPS_S:
            self._tat = new_tat
            remaining = (capacity - reset) * self._rate
            remaining = 0.0 if remaining < 0.0 else remaining  # < 0: admitted within EPS_S
            return _new(Decision, (True, 0.0, 0.0, remaining, self._limit, reset))
        retry = reset - capacity if cost <= self._limit else math.inf
        reset = tat - now
        remaining = max((capacity - reset) * self._rate, 0.0)
        return _new(Decision, (False, 0.0, retry, remaining, self._limit, reset))

    def full_at(self) -> float:
        return self._tat
