"""Properties of every rate-limiting algorithm over arbitrary traffic (hypothesis).

Examples per test are capped so the module runs in seconds; every property held over 2,000
examples when written (the bound and retry_after also over float times with `now` up to 1e6).
Request times are drawn on a millisecond grid (nginx's resolution), so exact ties with the
limit (a request precisely when the next token arrives) come up often, and floats within
EPS_S of the limit but not on it do not.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.limiter import KeyedLimiter, LimitConfig, Limiter, create
from targets.limiter.core import ALGORITHM_NAMES, EPS_S, Decision

pytestmark = pytest.mark.core

BUCKETS = ("token_bucket", "leaky_bucket_shaping", "leaky_bucket_policing", "gcra")

# --- helpers -------------------------------------------------------------------------------------


class Step(NamedTuple):
    now: float
    cost: int
    decision: Decision

    @property
    def released(self) -> float:
        """When the request goes upstream (shaping holds it for delay_s)."""
        return self.now + self.decision.delay_s


rates = st.sampled_from([0.5, 1.0, 3.0, 7.0, 10.0, 64.0, 1000.0])
bursts = st.integers(1, 12)
starts = st.sampled_from([0.0, 1.0, 86_400.123])
# (gap in ms, cost): mostly simultaneous or close requests, sometimes long pauses.
requests = st.lists(
    st.tuples(
        st.one_of(st.just(0), st.integers(0, 50), st.integers(0, 5000)),
        st.sampled_from([1, 1, 1, 1, 2, 3]),
    ),
    min_size=1,
    max_size=60,
)


def run(limiter: Limiter, start: float, traffic: list[tuple[int, int]]) -> list[Step]:
    steps, ms = [], 0
    for gap, cost in traffic:
        ms += gap
        now = start + ms / 1000
        steps.append(Step(now, cost, limiter.decide(now, cost)))
    return steps


def tolerance(rate: float) -> float:
    """What EPS_S (and float noise) may add to an interval's count."""
    return rate * 2 * EPS_S + 1e-9


def most_in_any_interval_excess(steps: list[Step], rate: float, burst: int) -> float:
    """max over intervals [a, b] of admitted cost - (burst + rate * (b - a)), by release time."""
    admitted = sorted((s.released, s.cost) for s in steps if s.decision.allowed)
    worst = -math.inf
    for i, (first, _) in enumerate(admitted):
        total = 0
        for last, cost in admitted[i:]:
            total += cost
            worst = max(worst, total - (burst + rate * (last - first)))
    return worst


def admits_at_once(limiter: Limiter, now: float, count: int) -> int:
    return sum(limiter.decide(now).allowed for _ in range(count))


# --- the bound every algorithm keeps -------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
@settings(max_examples=100, deadline=None)
@given(rate=rates, burst=bursts, start=starts, traffic=requests)
def test_never_more_than_burst_plus_rate_times_t(algorithm, rate, burst, start, traffic):
    """Over any interval T, admitted cost <= burst + rate x T (shaping: by release time)."""
    steps = run(create(LimitConfig(rate, burst, algorithm)), start, traffic)
    assert most_in_any_interval_excess(steps, rate, burst) <= tolerance(rate)


@settings(max_examples=150, deadline=None)
@given(rate=rates, burst=bursts, start=starts, traffic=requests)
def test_sliding_window_admits_at_most_burst_per_fixed_window(rate, burst, start, traffic):
    """Each fixed window of W = burst / rate seconds admits at most burst."""
    limiter = create(LimitConfig(rate, burst, "sliding_window"))
    per_window: dict[float, int] = {}
    for step in run(limiter, start, traffic):
        if step.decision.allowed:
            index = (step.now * (rate / burst)) // 1.0
            per_window[index] = per_window.get(index, 0) + step.cost
    assert max(per_window.values(), default=0) <= burst


# --- equivalences --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(rate=rates, burst=bursts, start=starts, traffic=requests)
def test_token_bucket_gcra_and_leaky_buckets_agree(rate, burst, start, traffic):
    """Same traffic, same verdicts, retry times, remaining and reset (semantics 10.6.5)."""
    runs = {
        algorithm: run(create(LimitConfig(rate, burst, algorithm)), start, traffic)
        for algorithm in BUCKETS
    }
    reference = runs["token_bucket"]
    for algorithm, steps in runs.items():
        for ours, theirs in zip(steps, reference, strict=True):
            a, b = ours.decision, theirs.decision
            assert a.allowed == b.allowed, algorithm
            assert a.retry_after_s == pytest.approx(b.retry_after_s, abs=1e-7), algorithm
            assert a.remaining == pytest.approx(b.remaining, abs=1e-6), algorithm
            assert a.reset_s == pytest.approx(b.reset_s, abs=1e-7), algorithm


@settings(max_examples=100, deadline=None)
@given(rate=rates, burst=bursts, start=starts, traffic=requests)
def test_policing_and_shaping_differ_only_in_delay(rate, burst, start, traffic):
    """nodelay admits what the shaping bucket admits, but never delays."""
    shaped = run(create(LimitConfig(rate, burst, "leaky_bucket_shaping")), start, traffic)
    policed = run(create(LimitConfig(rate, burst, "leaky_bucket_policing")), start, traffic)
    assert [s.decision.allowed for s in shaped] == [p.decision.allowed for p in policed]
    assert all(p.decision.delay_s == 0.0 for p in policed)


# --- shaping -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(rate=rates, burst=bursts, start=starts, traffic=requests)
def test_shaping_releases_in_order_at_most_one_per_interval(rate, burst, start, traffic):
    """Admitted requests go in arrival order, each at least cost / rate after the previous."""
    steps = run(create(LimitConfig(rate, burst, "leaky_bucket_shaping")), start, traffic)
    admitted = [s for s in steps if s.decision.allowed]
    for before, after in itertools.pairwise(admitted):
        assert after.released - before.released >= before.cost / rate - 1e-9
    assert all(s.decision.delay_s <= (burst - s.cost) / rate + 1e-9 for s in admitted)


# --- idle keys and retries -----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", BUCKETS)
@settings(max_examples=100, deadline=None)
@given(rate=rates, burst=bursts, start=starts, traffic=requests)
def test_idle_key_regains_full_burst_after_burst_over_rate(algorithm, rate, burst, start, traffic):
    """burst / rate seconds after its last request, a key admits burst at once again."""
    limiter = create(LimitConfig(rate, burst, algorithm))
    last = run(limiter, start, traffic)[-1].now
    assert limiter.full_at() <= last + burst / rate + 1e-9
    assert admits_at_once(limiter, last + burst / rate, burst + 1) == burst


@settings(max_examples=100, deadline=None)
@given(rate=rates, burst=bursts, start=starts, traffic=requests)
def test_sliding_window_is_full_two_windows_after_its_last_request(rate, burst, start, traffic):
    """The sliding window forgets a request by the end of the next window (at most 2 W)."""
    limiter = create(LimitConfig(rate, burst, "sliding_window"))
    last = run(limiter, start, traffic)[-1].now
    full = max(limiter.full_at(), last)
    assert full <= last + 2 * burst / rate + 1e-6
    assert admits_at_once(limiter, full, burst + 1) == burst


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
@settings(max_examples=60, deadline=None)
@given(rate=rates, burst=bursts, start=starts, traffic=requests)
def test_retry_after_is_exact(algorithm, rate, burst, start, traffic):
    """Every rejection's retry passes at now + retry_after_s, and not a microsecond earlier."""
    limiter = create(LimitConfig(rate, burst, algorithm))
    ms = 0
    for gap, cost in traffic:
        ms += gap
        now = start + ms / 1000
        decision = limiter.decide(now, cost)
        if decision.allowed or math.isinf(decision.retry_after_s):
            continue
        retry = decision.retry_after_s
        assert retry > 0
        assert copy.copy(limiter).decide(now + retry, cost).allowed
        if retry > 1e-5:
            assert not copy.copy(limiter).decide(now + retry - 1e-6, cost).allowed


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
@settings(max_examples=60, deadline=None)
@given(rate=rates, burst=bursts, start=starts, traffic=requests)
def test_remaining_is_what_still_passes_now(algorithm, rate, burst, start, traffic):
    """After any decision, exactly floor(remaining) more requests pass at the same instant."""
    limiter = create(LimitConfig(rate, burst, algorithm))
    ms = 0
    for gap, cost in traffic:
        ms += gap
        now = start + ms / 1000
        whole = math.floor(limiter.decide(now, cost).remaining + 1e-6)
        assert admits_at_once(copy.copy(limiter), now, whole + 1) == whole


# --- keys ----------------------------------------------------------------------------------------

keyed_requests = st.lists(
    st.tuples(st.sampled_from("ABCD"), st.integers(0, 400), st.booleans()), max_size=80
)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
@settings(max_examples=100, deadline=None)
@given(rate=rates, burst=bursts, traffic=keyed_requests)
def test_other_keys_and_expiry_never_change_a_keys_decisions(algorithm, rate, burst, traffic):
    """Key A decides the same alone as among B, C, D, with idle keys dropped at once."""
    config = LimitConfig(rate, burst, algorithm)
    shared = KeyedLimiter(config, max_keys=4, idle_ttl_s=0.0)
    alone = create(config)
    ms = 0
    for key, gap, sweep in traffic:
        ms += gap
        now = ms / 1000
        if sweep:
            shared.sweep(now)
        decision = shared.decide(key, now)
        if key == "A":
            expected = alone.decide(now)
            assert decision.allowed == expected.allowed
            assert decision == pytest.approx(expected, abs=1e-9)
    assert shared.evicted == 0
