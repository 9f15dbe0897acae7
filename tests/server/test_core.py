"""Tests for the server's pure capacity model (targets.server.core)."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.server.core import (
    NO_FAULTS,
    Admission,
    Capacity,
    CapacityError,
    Distribution,
    Faults,
    ServiceTime,
    Verdict,
)

pytestmark = pytest.mark.core

RUN, WAIT, REJECT = Verdict.RUN, Verdict.WAIT, Verdict.REJECT


# --- helpers -------------------------------------------------------------------------------------


def admission(slots: int, backlog: int) -> Admission:
    return Admission(Capacity(slots=slots, backlog=backlog))


def check(adm: Admission, in_service: int, waiting: int, served: int = 0, rejected: int = 0):
    """Assert all four counters of an Admission at once."""
    got = (adm.in_service, adm.waiting, adm.served, adm.rejected)
    assert got == (in_service, waiting, served, rejected)


def capacity_error(fn, *args, **kwargs) -> str:
    with pytest.raises(CapacityError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def samples(service: ServiceTime, n: int, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [service.sample(rng) for _ in range(n)]


# --- admission -----------------------------------------------------------------------------------


def test_free_slots_run_at_once():
    """Arrivals up to the slot count are served immediately."""
    adm = admission(slots=3, backlog=2)
    assert [adm.arrive() for _ in range(3)] == [RUN, RUN, RUN]
    check(adm, in_service=3, waiting=0)


def test_busy_slots_queue_then_reject():
    """Once every slot is busy arrivals wait in the backlog; when it is full they are rejected."""
    adm = admission(slots=2, backlog=2)
    verdicts = [adm.arrive() for _ in range(6)]
    assert verdicts == [RUN, RUN, WAIT, WAIT, REJECT, REJECT]
    check(adm, in_service=2, waiting=2, rejected=2)


def test_zero_backlog_rejects_when_slots_full():
    """With no backlog, an arrival finding every slot busy is rejected straight away."""
    adm = admission(slots=1, backlog=0)
    assert [adm.arrive(), adm.arrive()] == [RUN, REJECT]
    check(adm, in_service=1, waiting=0, rejected=1)


def test_finish_hands_slot_to_waiter():
    """Finishing while someone waits passes the slot on: in_service stays, waiting drops."""
    adm = admission(slots=1, backlog=2)
    adm.arrive()
    adm.arrive()
    adm.arrive()
    assert adm.finish() is True
    check(adm, in_service=1, waiting=1, served=1)
    assert adm.finish() is True
    check(adm, in_service=1, waiting=0, served=2)


def test_finish_without_waiters_frees_slot():
    """Finishing with an empty backlog frees the slot."""
    adm = admission(slots=2, backlog=2)
    adm.arrive()
    assert adm.finish() is False
    check(adm, in_service=0, waiting=0, served=1)


def test_waiters_keep_fifo_priority_over_new_arrivals():
    """A new arrival cannot jump the backlog: it waits even if a slot was just freed."""
    adm = admission(slots=1, backlog=3)
    adm.arrive()
    adm.arrive()
    assert adm.finish() is True  # the slot went to the waiter
    assert adm.arrive() is WAIT
    check(adm, in_service=1, waiting=1, served=1)


def test_freed_backlog_room_accepts_again():
    """After a rejection, a finish makes room and the next arrival waits instead of failing."""
    adm = admission(slots=1, backlog=1)
    assert [adm.arrive(), adm.arrive(), adm.arrive()] == [RUN, WAIT, REJECT]
    adm.finish()
    assert adm.arrive() is WAIT
    check(adm, in_service=1, waiting=1, served=1, rejected=1)


def test_give_up_leaves_backlog_without_serving():
    """A waiter that gives up frees its backlog place and is not counted as served."""
    adm = admission(slots=1, backlog=1)
    adm.arrive()
    adm.arrive()
    adm.give_up()
    check(adm, in_service=1, waiting=0)
    assert adm.arrive() is WAIT
    assert adm.finish() is True
    assert adm.finish() is False
    check(adm, in_service=0, waiting=0, served=2)


def test_full_cycle_returns_to_idle():
    """After every accepted request finishes the model is idle and runs the next one at once."""
    adm = admission(slots=2, backlog=3)
    verdicts = [adm.arrive() for _ in range(7)]
    accepted = sum(v is not REJECT for v in verdicts)
    for _ in range(accepted):
        adm.finish()
    check(adm, in_service=0, waiting=0, served=5, rejected=2)
    assert adm.arrive() is RUN


ops = st.lists(st.sampled_from(["arrive", "finish", "give_up"]), max_size=200)


@settings(max_examples=300, deadline=None)
@given(slots=st.integers(1, 5), backlog=st.integers(0, 5), ops=ops)
def test_admission_invariants(slots, backlog, ops):
    """For any arrive/finish/give_up sequence the counts stay within capacity and add up."""
    adm = admission(slots, backlog)
    accepted = finished = gave_up = rejected = 0
    for op in ops:
        if op == "arrive":
            before = (adm.in_service, adm.waiting)
            verdict = adm.arrive()
            if verdict is REJECT:
                rejected += 1
                assert before == (slots, backlog)
            else:
                accepted += 1
                # RUN only when a slot is free and nobody waits (FIFO), WAIT otherwise
                assert (verdict is RUN) == (before[0] < slots and before[1] == 0)
        elif op == "finish" and adm.in_service > 0:
            had_waiters = adm.waiting > 0
            assert adm.finish() is had_waiters
            finished += 1
        elif op == "give_up" and adm.waiting > 0:
            adm.give_up()
            gave_up += 1
        assert 0 <= adm.in_service <= slots
        assert 0 <= adm.waiting <= backlog
        assert adm.waiting == 0 or adm.in_service == slots  # nobody waits beside a free slot
        assert adm.in_service + adm.waiting == accepted - finished - gave_up
        assert (adm.served, adm.rejected) == (finished, rejected)


# --- capacity validation -------------------------------------------------------------------------


def test_default_capacity_is_valid():
    """The defaults build: 8 slots and a backlog of 64."""
    assert Capacity() == Capacity(slots=8, backlog=64)


def test_capacity_error_is_value_error():
    """CapacityError is a ValueError so generic callers can catch it."""
    assert issubclass(CapacityError, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"slots": 0}, "slots"),
        ({"slots": -1}, "slots"),
        ({"slots": 100_001}, "slots"),
        ({"backlog": -1}, "backlog"),
        ({"backlog": 1_000_001}, "backlog"),
    ],
)
def test_capacity_validation_names_field(kwargs, field_name):
    """An out-of-range slot or backlog count raises CapacityError naming the field and value."""
    message = capacity_error(Capacity, **kwargs)
    assert message.startswith(f"{field_name}:")
    assert repr(next(iter(kwargs.values()))) in message


def test_capacity_extremes_are_valid():
    """The documented bounds themselves are accepted."""
    assert Capacity(slots=1, backlog=0).slots == 1
    assert Capacity(slots=100_000, backlog=1_000_000).backlog == 1_000_000


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"mean_s": -0.001}, "service_time.mean_s"),
        ({"mean_s": 601}, "service_time.mean_s"),
        ({"mean_s": math.nan}, "service_time.mean_s"),
        ({"mean_s": math.inf}, "service_time.mean_s"),
        ({"sigma": -0.1}, "service_time.sigma"),
        ({"sigma": 3.5}, "service_time.sigma"),
        ({"sigma": math.nan}, "service_time.sigma"),
    ],
)
def test_service_time_validation_names_field(kwargs, field_name):
    """A bad mean or sigma raises CapacityError naming the field."""
    assert capacity_error(ServiceTime, **kwargs).startswith(f"{field_name}:")


def test_service_time_distribution_given_as_string():
    """A distribution given as its string value behaves as that distribution (or is refused)."""
    try:
        service = ServiceTime("constant", mean_s=0.1)  # type: ignore[arg-type]
    except CapacityError:
        return
    assert samples(service, 5) == [0.1] * 5


# --- service time --------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", list(Distribution))
def test_fastest_mode_samples_zero(distribution):
    """mean_s=0 is the fastest mode: every distribution samples exactly 0."""
    assert set(samples(ServiceTime(distribution, mean_s=0), 100)) == {0.0}


def test_constant_samples_the_mean():
    """The constant distribution always returns the mean."""
    assert set(samples(ServiceTime(Distribution.CONSTANT, mean_s=0.25), 100)) == {0.25}


def test_constant_does_not_consume_randomness():
    """Sampling the constant distribution leaves the rng untouched."""
    rng = random.Random(7)
    ServiceTime(Distribution.CONSTANT, mean_s=0.25).sample(rng)
    assert rng.random() == random.Random(7).random()


# n=20_000: the sample mean's standard error is mean/141 (exponential) and 0.53*mean/141
# (lognormal, sigma=0.5), so +-5% is over 7 standard errors; the seeds are fixed anyway.
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("distribution", "sigma"),
    [(Distribution.EXPONENTIAL, 0.5), (Distribution.LOGNORMAL, 0.5), (Distribution.LOGNORMAL, 1)],
)
def test_random_distributions_have_configured_mean(distribution, sigma, seed):
    """Exponential and lognormal samples average to the configured mean."""
    values = samples(ServiceTime(distribution, mean_s=0.04, sigma=sigma), 20_000, seed)
    assert all(v > 0 for v in values)
    assert statistics.fmean(values) == pytest.approx(0.04, rel=0.05 if sigma <= 0.5 else 0.08)


def test_lognormal_sigma_sets_the_spread():
    """A larger sigma gives a wider lognormal at the same mean; sigma=0 is constant."""
    narrow = samples(ServiceTime(Distribution.LOGNORMAL, 0.05, sigma=0.2), 5_000)
    wide = samples(ServiceTime(Distribution.LOGNORMAL, 0.05, sigma=1.0), 5_000)
    assert statistics.stdev(wide) > 2 * statistics.stdev(narrow)
    flat = samples(ServiceTime(Distribution.LOGNORMAL, 0.05, sigma=0), 10)
    assert flat == pytest.approx([0.05] * 10)


def test_exponential_median_below_mean():
    """The exponential's median is ln 2 times its mean (right skew)."""
    values = samples(ServiceTime(Distribution.EXPONENTIAL, mean_s=1.0), 20_000)
    assert statistics.median(values) == pytest.approx(math.log(2), rel=0.05)


@pytest.mark.parametrize("distribution", [Distribution.EXPONENTIAL, Distribution.LOGNORMAL])
def test_same_seed_same_sequence(distribution):
    """Two rngs with the same seed draw the same service times; another seed differs."""
    service = ServiceTime(distribution, mean_s=0.02)
    assert samples(service, 50, seed=42) == samples(service, 50, seed=42)
    assert samples(service, 50, seed=42) != samples(service, 50, seed=43)


def test_default_service_time():
    """By default service time is lognormal with a 20 ms mean."""
    service = ServiceTime()
    assert (service.distribution, service.mean_s, service.sigma) == (
        Distribution.LOGNORMAL,
        0.02,
        0.5,
    )


# --- faults --------------------------------------------------------------------------------------


def test_no_faults_is_inactive():
    """The default Faults injects nothing and never fails a request."""
    assert Faults() == NO_FAULTS
    assert not NO_FAULTS.active
    rng = random.Random(0)
    assert not any(NO_FAULTS.fails(rng) for _ in range(1000))


@pytest.mark.parametrize(
    "faults", [Faults(latency_s=0.1), Faults(error_rate=0.01), Faults(hang=True)]
)
def test_any_fault_is_active(faults):
    """Latency, an error rate or a hang each make the faults active."""
    assert faults.active


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"latency_s": -0.001}, "latency_ms"),
        ({"latency_s": 600.5}, "latency_ms"),
        ({"latency_s": math.nan}, "latency_ms"),
        ({"latency_s": math.inf}, "latency_ms"),
        ({"error_rate": -0.1}, "error_rate"),
        ({"error_rate": 1.01}, "error_rate"),
        ({"error_rate": math.nan}, "error_rate"),
    ],
)
def test_faults_validation_names_field(kwargs, field_name):
    """Bad latency or error rate raise CapacityError naming the field as the admin API spells it."""
    assert capacity_error(Faults, **kwargs).startswith(f"{field_name}:")


def test_faults_latency_error_reports_milliseconds():
    """The latency error message shows the rejected value in milliseconds."""
    assert "(got 700000" in capacity_error(Faults, latency_s=700.0)


def test_faults_bounds_are_valid():
    """Latency 0..600 s and error rate 0..1 are accepted."""
    assert Faults(latency_s=600, error_rate=1).error_rate == 1
    assert Faults(latency_s=0, error_rate=0) == NO_FAULTS


def test_error_rate_zero_never_fails():
    """error_rate=0 fails no request and draws no randomness."""
    rng = random.Random(3)
    faults = Faults(latency_s=0.5, error_rate=0)
    assert not any(faults.fails(rng) for _ in range(1000))
    assert rng.random() == random.Random(3).random()


def test_error_rate_one_always_fails():
    """error_rate=1 fails every request."""
    rng = random.Random(3)
    assert all(Faults(error_rate=1).fails(rng) for _ in range(1000))


def test_error_rate_fraction_fails_that_share():
    """error_rate=0.3 fails about 30% of requests (10_000 seeded draws, +-3 points: 6.5 sd)."""
    rng = random.Random(11)
    failed = sum(Faults(error_rate=0.3).fails(rng) for _ in range(10_000))
    assert 2_700 <= failed <= 3_300


def test_error_rate_is_reproducible():
    """The same seed picks the same failing requests."""
    faults = Faults(error_rate=0.5)
    first, second = random.Random(5), random.Random(5)
    assert [faults.fails(first) for _ in range(200)] == [faults.fails(second) for _ in range(200)]
