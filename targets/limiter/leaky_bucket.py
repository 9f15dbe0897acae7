"""Leaky bucket as nginx's ``limit_req`` runs it, shaping or policing (semantics 4.2, 10.6).

Each key holds a bucket that drains at ``rate`` requests per second; a request
pours ``cost`` into it. nginx (``ngx_http_limit_req_module.c``) keeps, per key,
``excess`` in milli-requests and ``last`` in milliseconds, and for a request at
``now`` computes ``excess = max(0, excess - rate * (now - last) + 1000)``
(``rate`` in milli-requests per second; a key's very first request gets
``excess = 0``). Above ``burst * 1000`` it rejects and changes nothing;
otherwise it stores the new excess, and delays the request by
``excess / rate`` unless ``nodelay``. Here the bucket's ``level`` is nginx's
excess after the request plus that request: ``level = excess / 1000 + 1``, so
``level <= burst`` is nginx's ``excess <= burst_nginx`` with our
``burst = burst_nginx + 1`` (``rate=10r/s burst=20`` admits 21 at once; see
``core.py``). The two registered forms:

* ``leaky_bucket_shaping`` (``limit_req`` without ``nodelay``): an admitted
  request waits for the water already in the bucket, ``delay_s = level / rate``
  before its own share is poured; the adapter sleeps that long, then forwards.
  So ``burst`` simultaneous requests are all admitted, the first forwarded at
  once and the rest one every ``1 / rate`` seconds; the next is rejected. Two
  released requests are never closer than ``cost / rate`` seconds.
* ``leaky_bucket_policing`` (``nodelay``): the same admission, forwarded at
  once; each admitted request holds its place until the bucket drains it.

Both admit exactly what a token bucket of capacity ``burst`` admits; shaping
differs only in when the requests go.

Deliberate differences from nginx:

* float arithmetic in seconds: nginx truncates the drain to whole
  milli-requests per millisecond step and the rate to a whole milli-request per
  second (``rate=1r/m`` drains 16, not 16.67, milli-requests a second), so it is
  slightly stricter than its nominal rate; and it sees time in milliseconds
  (two requests 0.4 ms apart are simultaneous to nginx, not to us);
* ``burst`` counts the first request (above);
* a step back of the clock counts as no time passing (nginx treats a step back
  of more than 60 s as 1 ms passing);
* nginx's ``delay=n`` (the first ``n`` excess requests undelayed) is not
  modelled: shaping is ``delay=0``, policing is ``nodelay``;
* the rejection status (``limit_req_status``, 503 by default in nginx) is the
  adapter's choice; the lab answers 429.
"""

from __future__ import annotations

import math
from typing import ClassVar

from targets.limiter.core import EPS_S, Decision, LimitConfig

__all__ = ["LeakyBucketPolicing", "LeakyBucketShaping"]

_new = tuple.__new__  # Decision(...) at half the cost: see core.Decision


class _LeakyBucket:
    __slots__ = ("_burst", "_last", "_level", "_limit", "_rate", "_slack")

    _SHAPING: ClassVar[bool]

    def __init__(self, config: LimitConfig) -> None:
        self._rate = config.rate
        self._burst = float(config.burst)
        self._limit = config.burst
        self._slack = config.rate * EPS_S  # EPS_S expressed in requests
        self._level = 0.0
        self._last = -math.inf

    def decide(self, now: float, cost: float = 1.0) -> Decision:
        rate = self._rate
        burst = self._burst
        level = self._level
        elapsed = now - self._last
        if elapsed > 0.0:
            level -= elapsed * rate
            level = 0.0 if level < 0.0 else level
        filled = level + cost
        if filled <= burst + self._slack:
            self._level = filled
            if elapsed > 0.0:
                self._last = now
            remaining = burst - filled
            remaining = 0.0 if remaining < 0.0 else remaining  # < 0: admitted within the slack
            delay = level / rate if self._SHAPING else 0.0
            return _new(Decision, (True, delay, 0.0, remaining, self._limit, filled / rate))
        retry = (filled - burst) / rate if cost <= burst else math.inf
        return _new(
            Decision, (False, 0.0, retry, max(burst - level, 0.0), self._limit, level / rate)
        )

    def full_at(self) -> float:
        return self._last + self._level / self._rate


class LeakyBucketShaping(_LeakyBucket):
    """nginx ``limit_req`` without ``nodelay``: excess requests are delayed, not passed."""

    __slots__ = ()
    _SHAPING = True


class LeakyBucketPolicing(_LeakyBucket):
    """nginx ``limit_req ... nodelay``: excess requests within the burst pass at once."""

    __slots__ = ()
    _SHAPING = False
