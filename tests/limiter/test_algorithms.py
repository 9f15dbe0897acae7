"""Worked examples for each rate-limiting algorithm (targets.limiter), with a fake clock."""

from __future__ import annotations

import copy
import math

import pytest

from targets.limiter import LimitConfig, Limiter, create
from targets.limiter.core import ALGORITHM_NAMES, Decision

pytestmark = pytest.mark.core

# Algorithms that admit a burst at once and reject beyond it (shaping queues instead).
IMMEDIATE = ("token_bucket", "leaky_bucket_policing", "gcra", "sliding_window")
# Algorithms equivalent to a token bucket (semantics 10.6.5).
BUCKETS = ("token_bucket", "leaky_bucket_shaping", "leaky_bucket_policing", "gcra")

# --- helpers -------------------------------------------------------------------------------------


def make(algorithm: str, rate: float = 10.0, burst: int = 5) -> Limiter:
    return create(LimitConfig(rate, burst, algorithm))


def check(
    decision: Decision,
    allowed: bool,
    delay_s: float = 0.0,
    retry_after_s: float = 0.0,
    remaining: float | None = None,
    reset_s: float | None = None,
) -> None:
    assert decision.allowed is allowed
    assert decision.delay_s == pytest.approx(delay_s, abs=1e-9)
    assert decision.retry_after_s == pytest.approx(retry_after_s, abs=1e-9)
    if remaining is not None:
        assert decision.remaining == pytest.approx(remaining, abs=1e-9)
    if reset_s is not None:
        assert decision.reset_s == pytest.approx(reset_s, abs=1e-9)


def at_once(limiter: Limiter, now: float, count: int) -> list[Decision]:
    return [limiter.decide(now) for _ in range(count)]


def steady(limiter: Limiter, start: float, stop: float, every: float) -> int:
    """Offer a request every `every` seconds in [start, stop); return how many were allowed."""
    allowed, i = 0, 0
    while (now := start + i * every) < stop:
        allowed += limiter.decide(now).allowed
        i += 1
    return allowed


# --- burst, then the steady rate -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", IMMEDIATE)
@pytest.mark.parametrize("k", [1, 7])
def test_burst_plus_k_at_one_instant_gives_burst_allowed_k_rejected(algorithm, k):
    """B + k simultaneous requests: exactly B pass at once, k are rejected (semantics 10.6.1)."""
    decisions = at_once(make(algorithm, rate=10.0, burst=5), 0.0, 5 + k)
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * k
    assert all(d.delay_s == 0.0 for d in decisions)


@pytest.mark.parametrize("algorithm", BUCKETS)
def test_after_the_burst_the_steady_rate_passes(algorithm):
    """Offered 4x the rate for 10 s after the burst, rate x 10 s pass (give or take one)."""
    limiter = make(algorithm, rate=10.0, burst=5)
    at_once(limiter, 0.0, 5)
    assert abs(steady(limiter, 0.025, 10.025, 0.025) - 100) <= 1


def test_sliding_window_steady_rate_loses_up_to_one_per_window():
    """Under overload each window admits burst - 1 to burst: with burst 5, 8 to 10 per second."""
    limiter = make("sliding_window", rate=10.0, burst=5)  # W = 0.5 s
    at_once(limiter, 0.0, 5)
    assert 80 - 5 <= steady(limiter, 0.025, 10.025, 0.025) <= 100


@pytest.mark.parametrize("algorithm", BUCKETS)
def test_idle_key_regains_min_burst_rate_t(algorithm):
    """After an idle t, min(B, R*t) requests pass at one instant again (semantics 10.6.1)."""
    limiter = make(algorithm, rate=10.0, burst=5)
    at_once(limiter, 0.0, 5)
    assert sum(d.allowed for d in at_once(limiter, 0.3, 10)) == 3
    assert sum(d.allowed for d in at_once(limiter, 10.0, 10)) == 5


def test_token_bucket_reports_tokens_and_time_to_full():
    """remaining is the tokens left; reset_s the time until the bucket is full again."""
    limiter = make("token_bucket", rate=10.0, burst=5)
    check(limiter.decide(0.0), True, remaining=4, reset_s=0.1)
    check(limiter.decide(0.0), True, remaining=3, reset_s=0.2)
    check(limiter.decide(0.05), True, remaining=2.5, reset_s=0.25)
    assert limiter.full_at() == pytest.approx(0.3)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_fresh_limiter_is_full_since_forever(algorithm):
    """A limiter that never decided is full: full_at is -inf."""
    assert make(algorithm).full_at() == -math.inf


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_full_at_is_now_plus_reset(algorithm):
    """After an admitted request, full_at() == now + reset_s."""
    limiter = make(algorithm, rate=10.0, burst=5)
    limiter.decide(0.31)
    decision = limiter.decide(0.31)
    assert limiter.full_at() == pytest.approx(0.31 + decision.reset_s, abs=1e-8)


# --- retry_after ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_retry_after_is_exactly_when_the_next_request_passes(algorithm):
    """A retry at now + retry_after_s passes; a microsecond earlier it does not."""
    limiter = make(algorithm, rate=10.0, burst=5)
    decisions = at_once(limiter, 0.123, 6)
    rejected = decisions[-1]
    assert not rejected.allowed
    assert rejected.retry_after_s > 0
    early = copy.copy(limiter)
    assert not early.decide(0.123 + rejected.retry_after_s - 1e-6).allowed
    assert limiter.decide(0.123 + rejected.retry_after_s).allowed


@pytest.mark.parametrize("algorithm", BUCKETS)
def test_retry_after_is_one_emission_interval(algorithm):
    """With the bucket just emptied, the next request waits 1 / rate."""
    limiter = make(algorithm, rate=10.0, burst=5)
    check(at_once(limiter, 0.0, 6)[-1], False, retry_after_s=0.1, remaining=0)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_rejection_takes_nothing(algorithm):
    """Rejected requests do not drain the limiter: the retry time does not move."""
    limiter = make(algorithm, rate=10.0, burst=2)
    first = at_once(limiter, 0.0, 3)[-1]
    at_once(limiter, 0.01, 20)
    assert limiter.decide(first.retry_after_s).allowed


# --- cost ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_cost_takes_that_many(algorithm):
    """A request of cost 3 leaves burst - 3; the next of cost 3 is rejected."""
    limiter = make(algorithm, rate=10.0, burst=5)
    check(limiter.decide(0.0, 3), True, remaining=2)
    assert not limiter.decide(0.0, 3).allowed
    assert limiter.decide(0.0, 2).allowed


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_cost_above_burst_never_passes(algorithm):
    """A cost above the burst is rejected with retry_after_s = inf, even on a full key."""
    decision = make(algorithm, rate=10.0, burst=5).decide(0.0, 6)
    assert not decision.allowed
    assert decision.retry_after_s == math.inf


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_cost_zero_asks_without_taking(algorithm):
    """Cost 0 always passes and leaves the state as it was."""
    limiter = make(algorithm, rate=10.0, burst=2)
    at_once(limiter, 0.0, 2)
    decision = limiter.decide(0.0, 0)  # shaping: also says how long the queue is
    assert decision.allowed
    assert decision.remaining == pytest.approx(0)
    assert not limiter.decide(0.0).allowed


# --- nginx's leaky bucket (semantics 4.2, 10.6.3, 10.6.4) ----------------------------------------


def test_shaping_queues_the_burst_and_releases_it_at_the_rate():
    """nginx rate=10r/s burst=20 (our burst 21): 21 admitted, released every 100 ms; 22nd 503."""
    decisions = at_once(make("leaky_bucket_shaping", rate=10.0, burst=21), 0.0, 22)
    for i, decision in enumerate(decisions[:21]):
        check(decision, True, delay_s=i / 10)
    check(decisions[21], False, retry_after_s=0.1)


def test_shaping_delays_only_the_excess():
    """Requests arriving slower than the rate are never delayed."""
    limiter = make("leaky_bucket_shaping", rate=10.0, burst=3)
    assert [limiter.decide(t / 5).delay_s for t in range(10)] == [0.0] * 10


def test_shaping_delay_counts_the_partly_drained_excess():
    """A second request 50 ms after the first at 10 r/s waits the other 50 ms."""
    limiter = make("leaky_bucket_shaping", rate=10.0, burst=3)
    limiter.decide(1.0)
    check(limiter.decide(1.05), True, delay_s=0.05)


def test_nginx_without_burst_rejects_a_request_10_ms_later():
    """rate=10r/s, no burst (our burst 1): a second request 10 ms after the first is rejected."""
    for algorithm in ("leaky_bucket_shaping", "leaky_bucket_policing"):
        limiter = make(algorithm, rate=10.0, burst=1)
        check(limiter.decide(0.0), True)
        check(limiter.decide(0.01), False, retry_after_s=0.09)


def test_policing_serves_the_burst_at_once_then_one_per_interval():
    """nodelay at 1 r/s, nginx burst 5 (ours 6): sustained 5 r/s gives 1 success per second."""
    limiter = make("leaky_bucket_policing", rate=1.0, burst=6)
    first = at_once(limiter, 0.0, 5)
    assert all(d.allowed and d.delay_s == 0.0 for d in first)
    per_second = [
        sum(limiter.decide(second + i / 5).allowed for i in range(5)) for second in range(1, 11)
    ]
    assert sum(per_second[:2]) == 3  # the last slot of the burst, then 1 per second
    assert per_second[2:] == [1] * 8


# --- GCRA (semantics 4.3) ------------------------------------------------------------------------


def test_gcra_matches_redis_cell_example():
    """CL.THROTTLE user123 15 30 60 -> limited 0, limit 16, remaining 15, retry -1, reset 2."""
    decision = make("gcra", rate=30 / 60, burst=15 + 1).decide(0.0)
    check(decision, True, remaining=15, reset_s=2.0)
    assert decision.limit == 16


def test_gcra_tolerance_is_burst_minus_one_intervals():
    """At rate 1 with burst 3, the 4th request waits TAT - tau - t = 1 s."""
    limiter = make("gcra", rate=1.0, burst=3)
    decisions = at_once(limiter, 0.0, 4)
    check(decisions[2], True, remaining=0, reset_s=3.0)
    check(decisions[3], False, retry_after_s=1.0, remaining=0, reset_s=3.0)


# --- sliding window ------------------------------------------------------------------------------


def test_sliding_window_weights_the_previous_window():
    """42 in the previous minute, 15 s into this one: 42 * 45/60 + 18 = 49.5 of 50 (Cloudflare)."""
    limiter = make("sliding_window", rate=50 / 60, burst=50)  # W = 60 s
    assert all(d.allowed for d in at_once(limiter, 30.0, 42))
    decisions = at_once(limiter, 75.0, 19)
    assert [d.allowed for d in decisions] == [True] * 18 + [False]
    check(limiter.decide(75.0, 0), True, remaining=0.5)


def test_sliding_window_may_exceed_burst_in_a_rolling_window():
    """Worst case: B at a window's very end, then B - 1 more within the next W seconds."""
    limiter = make("sliding_window", rate=10.0, burst=10)  # W = 1 s
    admitted = [t for t in [0.999] * 10 if limiter.decide(t).allowed]
    admitted += [t for t in (1.0 + i / 100 for i in range(100)) if limiter.decide(t).allowed]
    in_rolling_second = [t for t in admitted if 0.999 <= t < 1.999]
    assert len(in_rolling_second) == 2 * 10 - 1


def test_sliding_window_may_reject_below_the_true_rolling_count():
    """B early in a window still weighs half at mid-next window: only B/2 pass, none in view."""
    limiter = make("sliding_window", rate=10.0, burst=10)
    at_once(limiter, 0.0, 10)
    assert sum(d.allowed for d in at_once(limiter, 1.5, 10)) == 5


# --- the clock -----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_clock_step_back_admits_nothing_extra(algorithm):
    """A `now` earlier than the last decision counts as no time passing."""
    limiter = make(algorithm, rate=10.0, burst=5)
    at_once(limiter, 100.0, 5)
    assert not any(d.allowed for d in at_once(limiter, 50.0, 3))
    assert not limiter.decide(100.0).allowed
