"""Tests for per-key limiting in bounded memory (targets.limiter.keyed)."""

from __future__ import annotations

import pytest

from targets.limiter import KeyedLimiter, LimitConfig
from targets.limiter.core import ALGORITHM_NAMES
from targets.limiter.keyed import SWEEP_PER_NEW_KEY

pytestmark = pytest.mark.core

# --- helpers -------------------------------------------------------------------------------------


def make(
    algorithm: str = "token_bucket",
    rate: float = 10.0,
    burst: int = 2,
    max_keys: int = 100,
    idle_ttl_s: float = 1.0,
) -> KeyedLimiter:
    return KeyedLimiter(LimitConfig(rate, burst, algorithm), max_keys, idle_ttl_s)


def allowed(limits: KeyedLimiter, key: str, now: float, count: int) -> int:
    return sum(limits.decide(key, now).allowed for _ in range(count))


def check(limits: KeyedLimiter, held: int, created: int, expired: int, evicted: int) -> None:
    assert (len(limits), limits.created, limits.expired, limits.evicted) == (
        held,
        created,
        expired,
        evicted,
    )


# --- isolation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_exhausting_one_key_leaves_others_alone(algorithm):
    """Key a spends its burst; key b still gets its full burst (semantics 10.6.6)."""
    limits = make(algorithm, burst=3)
    assert allowed(limits, "a", 0.0, 10) == 3
    assert allowed(limits, "b", 0.0, 10) == 3


def test_keys_are_any_hashable():
    """Routes, addresses and (route, client) tuples are all keys."""
    limits = make(burst=1)
    for key in ("/api/orders", ("/api/pay", "10.0.0.1"), 42):
        assert limits.decide(key, 0.0).allowed
        assert key in limits
    assert len(limits) == 3


# --- the cap -------------------------------------------------------------------------------------


def test_cap_evicts_the_least_recently_used():
    """With max_keys 2, a third key evicts the key used longest ago, not the oldest."""
    limits = make(max_keys=2, idle_ttl_s=60.0)
    limits.decide("a", 0.0)
    limits.decide("b", 0.0)
    limits.decide("a", 0.0)  # a is now the most recent
    limits.decide("c", 0.0)
    assert ("a" in limits, "b" in limits, "c" in limits) == (True, False, True)
    check(limits, held=2, created=3, expired=0, evicted=1)


def test_an_evicted_key_comes_back_fresh():
    """Eviction is the one visible loss: an evicted key that was not full gets a new burst."""
    limits = make(burst=2, max_keys=1, idle_ttl_s=60.0)
    assert allowed(limits, "a", 0.0, 5) == 2
    limits.decide("b", 0.0)
    assert allowed(limits, "a", 0.0, 5) == 2


def test_a_million_distinct_keys_stay_within_max_keys():
    """1,000,000 distinct keys through a 1,000-key limiter: never more than 1,000 held."""
    limits = make(max_keys=1000, idle_ttl_s=3600.0)
    most = 0
    for i in range(1_000_000):
        limits.decide(i, i * 1e-6)
        if i % 997 == 0:
            most = max(most, len(limits))
    assert most == 1000
    check(limits, held=1000, created=1_000_000, expired=0, evicted=999_000)


# --- expiry --------------------------------------------------------------------------------------


def test_keys_expire_while_new_keys_come():
    """Keys full for idle_ttl_s are dropped as new keys arrive: memory follows the active set."""
    limits = make(rate=100.0, burst=1, max_keys=100_000, idle_ttl_s=0.01)
    most = 0
    for i in range(100_000):
        limits.decide(i, i * 1e-4)  # each key is full 10 ms after its request, expired 10 ms later
        most = max(most, len(limits))
    assert most <= 202  # 20 ms of keys, and the 2 a new key may find just expired
    assert limits.evicted == 0
    assert limits.expired == 100_000 - len(limits)


def test_a_new_key_drops_at_most_two_expired_keys():
    """Like nginx, each new key looks at the two least recently used keys only."""
    limits = make(idle_ttl_s=1.0)
    for key in range(10):
        limits.decide(key, 0.0)
    limits.decide("new", 100.0)
    check(limits, held=11 - SWEEP_PER_NEW_KEY, created=11, expired=2, evicted=0)


def test_known_keys_do_not_sweep():
    """A decision on a key already held never drops others (the O(1) hot path)."""
    limits = make(idle_ttl_s=1.0)
    for key in range(10):
        limits.decide(key, 0.0)
    limits.decide(3, 100.0)
    assert len(limits) == 10


def test_sweep_drops_every_expired_key():
    """sweep(now), for the adapter's timer, drops all expired keys and says how many."""
    limits = make(rate=10.0, burst=2, idle_ttl_s=1.0)
    for key in range(10):
        limits.decide(key, 0.0)
    limits.decide("late", 0.5)
    assert limits.sweep(1.05) == 0  # full at 0.1, expired at 1.1 ("late": 1.6)
    assert limits.sweep(1.1) == 10
    assert "late" in limits
    check(limits, held=1, created=11, expired=10, evicted=0)


def test_sweep_respects_its_budget():
    """sweep(now, budget) drops at most `budget` keys."""
    limits = make(idle_ttl_s=0.0)
    for key in range(10):
        limits.decide(key, 0.0)
    assert limits.sweep(10.0, budget=3) == 3
    assert len(limits) == 7


def test_sweep_stops_at_the_first_key_not_expired():
    """Least recently used first: a recently used key shields the ones used after it."""
    limits = make(rate=1.0, burst=20, idle_ttl_s=0.0)
    limits.decide("old", 0.0)  # full at 1.0
    for _ in range(20):
        limits.decide("busy", 0.0)  # full at 20.0
    limits.decide("new", 0.5)  # full at 1.5, but used after "busy"
    assert limits.sweep(10.0) == 1
    assert ("old" in limits, "busy" in limits, "new" in limits) == (False, True, True)


def test_a_key_is_not_dropped_before_it_is_full():
    """Expiry waits until the key is back at full burst, whatever idle_ttl_s says."""
    limits = make(rate=1.0, burst=5, idle_ttl_s=0.0)
    assert allowed(limits, "a", 0.0, 5) == 5
    assert limits.sweep(4.9) == 0
    assert limits.sweep(5.0) == 1


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_an_expired_key_decides_like_a_kept_one(algorithm):
    """Expiry is invisible: a key dropped and recreated decides as if it had been kept."""
    kept = make(algorithm, burst=3, idle_ttl_s=3600.0)
    dropped = make(algorithm, burst=3, idle_ttl_s=0.0)
    times = [0.0, 0.0, 0.0, 0.05, 0.4, 0.4, 0.4, 0.4, 3.0, 3.0, 3.0, 3.0, 7.5]
    for now in times:
        dropped.sweep(now)
        assert kept.decide("a", now) == dropped.decide("a", now)
    assert dropped.expired >= 2
