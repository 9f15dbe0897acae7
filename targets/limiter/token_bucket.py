"""Token bucket: API Gateway throttling and Envoy's local rate limit (semantics 3.2, 4.1).

A bucket of ``burst`` tokens starts full and refills at ``rate`` tokens per
second, never above ``burst``. A request of ``cost`` tokens passes at once if
that many are in the bucket, and takes them; otherwise it is rejected and takes
nothing. Nothing is queued or delayed (semantics 10.6.2). So ``burst + k``
requests at one instant give ``burst`` allowed and ``k`` rejected, an idle key
has ``min(burst, rate * t)`` tokens again after ``t`` seconds, and no interval of
length ``T`` admits more than ``burst + rate * T``.

Differences from the real systems:

* Envoy adds ``tokens_per_fill`` every ``fill_interval`` from a timer; we refill
  continuously, computed from ``now`` at each decision (Envoy's behaviour as the
  fill interval shrinks to zero): no timer, no step at interval edges;
* API Gateway throttles "on a best-effort basis"; this core is exact.
"""

from __future__ import annotations

import math

from targets.limiter.core import EPS_S, Decision, LimitConfig

__all__ = ["TokenBucket"]

_new = tuple.__new__  # Decision(...) at half the cost: see core.Decision


class TokenBucket:
    """One key's token bucket; see the module docstring."""

    __slots__ = ("_burst", "_last", "_limit", "_rate", "_slack", "_tokens")

    def __init__(self, config: LimitConfig) -> None:
        self._rate = config.rate
        self._burst = float(config.burst)
        self._limit = config.burst
        self._slack = config.rate * EPS_S  # EPS_S expressed in tokens
        self._tokens = self._burst
        self._last = -math.inf

    def decide(self, now: float, cost: float = 1.0) -> Decision:
        rate = self._rate
        burst = self._burst
        tokens = self._tokens
        elapsed = now - self._last
        if elapsed > 0.0:
            tokens += elapsed * rate
            tokens = burst if tokens > burst else tokens
            self._last = now
        if tokens + self._slack >= cost:
            tokens -= cost
            tokens = 0.0 if tokens < 0.0 else tokens  # < 0: admitted within the slack
            self._tokens = tokens
            return _new(Decision, (True, 0.0, 0.0, tokens, self._limit, (burst - tokens) / rate))
        self._tokens = tokens
        retry = (cost - tokens) / rate if cost <= burst else math.inf
        return _new(Decision, (False, 0.0, retry, tokens, self._limit, (burst - tokens) / rate))

    def full_at(self) -> float:
        return self._last + (self._burst - self._tokens) / self._rate
