"""Sliding-window counter, Cloudflare's approximation of a rolling window (for comparison).

Time is cut into fixed windows of ``W = burst / rate`` seconds, aligned on
multiples of ``W`` (so a fresh key and a forgotten one agree). Each key counts
what it admitted in the current window (``current``) and the previous one
(``previous``), and estimates the last ``W`` seconds as if the previous window's
requests had been spread evenly::

    estimate = previous * (1 - f) + current     f = elapsed fraction of the current window

A request of ``cost`` is admitted when ``estimate + cost <= burst``, and counted.
Cloudflare described the formula in "Counting things, a lot of different
things" (blog.cloudflare.com, 2017), measuring 0.003 % of requests wrongly
allowed or limited on its traffic [secondary sources, not re-checked]. Only
admitted requests count here; rejected ones do not (Cloudflare's rules also
block for a "mitigation timeout", not modelled).

It is approximate both ways (tested):

* **over a rolling window it may exceed the limit**: ``burst`` requests at the
  very end of one window weigh ``burst * (1 - f)`` in the next, so requests
  come back at ``rate`` while the true rolling count is still ``burst``: up to
  ``2 * burst - 1`` requests in a span of ``W`` seconds, where an exact sliding
  log admits ``burst``;
* it may reject below the true rolling count (requests early in the previous
  window still weigh as if spread evenly), and under sustained overload it
  passes less than ``rate``: each window ends about one request short of
  ``burst`` (8 rather than 10 a second with ``burst`` 5, ``rate`` 10);
* the bound it does satisfy is the token bucket's: over any interval of length
  ``T``, at most ``burst + rate * T`` requests (each fixed window admits at most
  ``burst``, and the window after one that admitted ``p`` admits at most
  ``burst - p * (1 - f)`` by fraction ``f``). So its worst case is that of a
  token bucket with the same ``burst`` and ``rate``; it is only less even.
"""

from __future__ import annotations

import math

from targets.limiter.core import EPS_S, Decision, LimitConfig

__all__ = ["SlidingWindow"]

_new = tuple.__new__  # Decision(...) at half the cost: see core.Decision


class SlidingWindow:
    """One key's pair of window counters; see the module docstring."""

    __slots__ = (
        "_burst",
        "_current",
        "_index",
        "_limit",
        "_per_window",
        "_previous",
        "_slack",
        "_window",
    )

    def __init__(self, config: LimitConfig) -> None:
        self._window = config.window_s
        self._per_window = config.rate / config.burst  # windows per second
        self._burst = float(config.burst)
        self._limit = config.burst
        self._slack = config.rate * EPS_S  # EPS_S expressed in requests
        self._index = -math.inf  # the current window: [index * W, (index + 1) * W)
        self._previous = 0.0
        self._current = 0.0

    def decide(self, now: float, cost: float = 1.0) -> Decision:
        position = now * self._per_window  # in windows
        index = position // 1.0
        current = self._current
        previous = self._previous
        if index != self._index:
            if index > self._index:
                previous = current if index == self._index + 1.0 else 0.0
                current = 0.0
                self._index = index
                self._previous = previous
                self._current = 0.0
            else:  # a step back into an earlier window: count as the current one's start
                index = position = self._index
        burst = self._burst
        fraction = position - index
        estimate = previous * (1.0 - fraction) + current
        if estimate + cost <= burst + self._slack:
            current += cost
            self._current = current
            remaining = burst - estimate - cost
            remaining = 0.0 if remaining < 0.0 else remaining  # < 0: admitted within the slack
            if current > 0.0:  # self._reset(...), inlined on the hot path
                reset = (2.0 - fraction) * self._window
            else:
                reset = self._reset(fraction, previous, current)
            return _new(Decision, (True, 0.0, 0.0, remaining, self._limit, reset))
        if cost > burst:
            retry = math.inf
        elif current + cost <= burst:  # later in this window, as `previous` fades
            retry = (1.0 - (burst - current - cost) / previous - fraction) * self._window
        else:  # in the next window, as `current` (then previous) fades
            fade = 1.0 - (burst - cost) / current
            retry = (1.0 - fraction + fade) * self._window
        reset = self._reset(fraction, previous, current)
        return _new(Decision, (False, 0.0, retry, max(burst - estimate, 0.0), self._limit, reset))

    def _reset(self, fraction: float, previous: float, current: float) -> float:
        """Seconds until the estimate is back at 0."""
        if current > 0.0:
            return (2.0 - fraction) * self._window
        if previous > 0.0:
            return (1.0 - fraction) * self._window
        return 0.0

    def full_at(self) -> float:
        if self._current > 0.0:
            ends = self._index + 2.0
        elif self._previous > 0.0:
            ends = self._index + 1.0
        else:
            return -math.inf
        return ends * self._window + EPS_S  # past any rounding of `now * _per_window`
