"""One limiter per key (client id, client address, route), in bounded memory.

``KeyedLimiter(config).decide(key, now)`` runs ``key``'s own limiter, created on
first sight: keys never affect each other (semantics 10.6.6). Memory stays
bounded however many keys come, as nginx's ``limit_req_zone`` does it:

* keys live in an ``OrderedDict`` in least-recently-used order (a decision
  moves its key to the end: O(1));
* **expiry**: a key that has been back at its full burst for ``idle_ttl_s``
  seconds (default 60, nginx's idle time) is dropped, because a fresh limiter
  decides exactly as it would (``Limiter.full_at``): expiry is invisible.
  Like nginx (which drops up to two drained states idle for 60 s whenever it
  creates one), each new key first looks at the two least recently used keys
  and drops those that expired; the adapter may also call ``sweep(now)`` from
  a timer to give memory back when no new keys come;
* **cap**: with ``max_keys`` keys already held, a new key evicts the least
  recently used one (nginx evicts the LRU state when its zone is full). This
  one may not be full yet, so eviction can hand a client a fresh burst early:
  size ``max_keys`` above the number of keys active within ``burst / rate``
  seconds, and watch ``evicted``. A key costs about 250 to 350 bytes (the
  ``OrderedDict`` entry and the limiter; nginx needs 128): the default 100,000
  keys take some 30 MB.

Every decision is O(1): nothing ever scans the keys, except ``sweep`` within
its budget. ``created``, ``expired`` and ``evicted`` count keys for metrics.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from targets.checks import finite, require
from targets.limiter.core import ConfigError, Decision, LimitConfig, Limiter
from targets.limiter.registry import ALGORITHMS

__all__ = ["KeyedLimiter"]

SWEEP_PER_NEW_KEY = 2
"""Expired keys a new key may drop first, nginx's two."""


class KeyedLimiter:
    """A ``config.algorithm`` limiter per key; see the module docstring."""

    __slots__ = (
        "_entries",
        "_factory",
        "_idle_ttl_s",
        "_max_keys",
        "config",
        "created",
        "evicted",
        "expired",
    )

    def __init__(
        self, config: LimitConfig, max_keys: int = 100_000, idle_ttl_s: float = 60.0
    ) -> None:
        require(
            type(max_keys) is int and max_keys >= 1,
            "max_keys",
            "an integer >= 1",
            max_keys,
            ConfigError,
        )
        require(
            not isinstance(idle_ttl_s, bool) and finite(idle_ttl_s) and idle_ttl_s >= 0,
            "idle_ttl_s",
            ">= 0",
            idle_ttl_s,
            ConfigError,
        )
        self.config = config
        self._factory = ALGORITHMS[config.algorithm]
        self._max_keys = max_keys
        self._idle_ttl_s = float(idle_ttl_s)
        self._entries: OrderedDict[Hashable, Limiter] = OrderedDict()
        self.created = 0
        self.expired = 0
        self.evicted = 0

    def decide(self, key: Hashable, now: float, cost: float = 1.0) -> Decision:
        """``key``'s limiter decides on a request of ``cost`` at ``now``."""
        entries = self._entries
        limiter = entries.get(key)
        if limiter is None:
            limiter = self._add(key, now)
        else:
            entries.move_to_end(key)
        return limiter.decide(now, cost)

    def _add(self, key: Hashable, now: float) -> Limiter:
        entries = self._entries
        if entries:
            self.sweep(now, SWEEP_PER_NEW_KEY)
            if len(entries) >= self._max_keys:
                entries.popitem(last=False)
                self.evicted += 1
        limiter = entries[key] = self._factory(self.config)
        self.created += 1
        return limiter

    def sweep(self, now: float, budget: int | None = None) -> int:
        """Drop expired keys, least recently used first, until one has not expired or
        ``budget`` are dropped (no budget: all of them); return how many were dropped."""
        entries = self._entries
        deadline = now - self._idle_ttl_s
        dropped = 0
        while entries and dropped != budget:
            key, limiter = next(iter(entries.items()))
            if limiter.full_at() > deadline:
                break
            del entries[key]
            dropped += 1
        self.expired += dropped
        return dropped

    def __len__(self) -> int:
        """Keys held now."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
