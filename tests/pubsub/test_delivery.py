"""SNS delivery policies (targets.pubsub.delivery): SNS's defaults, the four backoff
functions between minDelayTarget and maxDelayTarget, jitter, the policies SNS refuses, AWS's
managed schedule for SQS, and which answers count as delivered (reference/semantics.md 6.3,
6.4 and 10.5.5)."""

from __future__ import annotations

import itertools
import json
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.pubsub.delivery import (
    BACKOFFS,
    JITTER,
    MANAGED_MAX_RETRIES,
    MAX_TOTAL_S,
    DeliveryPolicy,
    Outcome,
    base_delay,
    classify,
    managed_base_delay,
    managed_retry_delay,
    parse_delivery_policy,
    retry_delay,
    total_time,
)
from targets.pubsub.errors import InvalidParameter

pytestmark = pytest.mark.core

# Float error allowed on the backoff's steps.
EPS = 1e-9


def delays(policy: DeliveryPolicy) -> list[float]:
    found = [base_delay(policy, r) for r in range(1, policy.num_retries + 1)]
    assert all(d is not None for d in found)
    return [d for d in found if d is not None]


def healthy(**fields: Any) -> DeliveryPolicy:
    return parse_delivery_policy({"healthyRetryPolicy": fields})


def assert_monotone(values: list[float]) -> None:
    for earlier, later in itertools.pairwise(values):
        assert later >= earlier - EPS * max(1.0, abs(earlier)), values


# --- SNS's default policy ------------------------------------------------------------------


def test_default_policy_is_three_retries_20_s_apart_linear() -> None:
    policy = DeliveryPolicy()
    assert policy.num_retries == 3
    assert (policy.min_delay_s, policy.max_delay_s) == (20.0, 20.0)
    assert (
        policy.num_no_delay_retries,
        policy.num_min_delay_retries,
        policy.num_max_delay_retries,
    ) == (0, 0, 0)
    assert policy.backoff == "linear"
    assert policy.timeout_s == 15.0
    assert delays(policy) == [20.0, 20.0, 20.0]
    assert base_delay(policy, 4) is None
    assert base_delay(policy, 0) is None
    assert total_time(policy) == 60.0


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        '{"healthyRetryPolicy": {}}',
        '{"http": {}}',
        '{"http": {"defaultHealthyRetryPolicy": {}}}',
    ],
)
def test_empty_policies_are_the_default(text: str) -> None:
    assert parse_delivery_policy(text) == DeliveryPolicy()
    assert parse_delivery_policy(json.loads(text)) == DeliveryPolicy()


def test_subscription_and_topic_forms() -> None:
    fields = {
        "numRetries": 10,
        "numNoDelayRetries": 1,
        "minDelayTarget": 2,
        "maxDelayTarget": 30,
        "numMinDelayRetries": 2,
        "numMaxDelayRetries": 3,
        "backoffFunction": "Exponential",
    }
    sub = parse_delivery_policy(json.dumps({"healthyRetryPolicy": fields}))
    topic = parse_delivery_policy({"http": {"defaultHealthyRetryPolicy": fields}})
    assert sub == topic
    assert sub == DeliveryPolicy(10, 1, 2.0, 30.0, 2, 3, "exponential")
    assert sub.backoff_retries == 4
    assert parse_delivery_policy(sub.as_json()) == sub


def test_as_json_is_the_effective_policy_sns_shows() -> None:
    document = DeliveryPolicy().as_json()
    assert document == {
        "http": {
            "defaultHealthyRetryPolicy": {
                "numRetries": 3,
                "numNoDelayRetries": 0,
                "minDelayTarget": 20.0,
                "maxDelayTarget": 20.0,
                "numMinDelayRetries": 0,
                "numMaxDelayRetries": 0,
                "backoffFunction": "linear",
            },
            "disableSubscriptionOverrides": False,
        }
    }


# --- the phases and the backoff functions ---------------------------------------------------


@pytest.mark.parametrize("backoff", BACKOFFS)
def test_backoff_phase_runs_from_min_to_max(backoff: str) -> None:
    policy = healthy(numRetries=10, minDelayTarget=1, maxDelayTarget=30, backoffFunction=backoff)
    found = delays(policy)
    assert found[0] == 1.0
    assert math.isclose(found[-1], 30.0)
    assert all(1.0 <= d <= 30.0 + EPS for d in found)
    assert_monotone(found)
    assert len(set(found)) == 10  # strictly increasing: every step moves


@pytest.mark.parametrize("backoff", BACKOFFS)
def test_four_phases_in_order(backoff: str) -> None:
    policy = healthy(
        numRetries=12,
        numNoDelayRetries=2,
        minDelayTarget=5,
        maxDelayTarget=60,
        numMinDelayRetries=2,
        numMaxDelayRetries=3,
        backoffFunction=backoff,
    )
    found = delays(policy)
    assert found[:2] == [0.0, 0.0]
    assert found[2:4] == [5.0, 5.0]
    backoff_phase = found[4:9]
    assert backoff_phase[0] == 5.0
    assert math.isclose(backoff_phase[-1], 60.0)
    assert all(5.0 <= d <= 60.0 + EPS for d in backoff_phase)
    assert found[9:] == [60.0, 60.0, 60.0]
    assert_monotone(found)
    assert base_delay(policy, 13) is None
    assert math.isclose(total_time(policy), sum(found))


def test_backoff_shapes() -> None:
    """linear: equal steps; arithmetic: steps growing by equal amounts; geometric: steps
    doubling; exponential: a constant ratio."""

    def phase(backoff: str) -> list[float]:
        return delays(
            healthy(numRetries=5, minDelayTarget=2, maxDelayTarget=32, backoffFunction=backoff)
        )

    def steps(values: list[float]) -> list[float]:
        return [b - a for a, b in itertools.pairwise(values)]

    linear = steps(phase("linear"))
    assert all(math.isclose(x, 7.5) for x in linear)
    arithmetic = steps(phase("arithmetic"))
    growth = steps(arithmetic)
    assert all(math.isclose(g, growth[0]) for g in growth)
    assert growth[0] > 0
    geometric = steps(phase("geometric"))
    assert all(math.isclose(b, 2 * a) for a, b in itertools.pairwise(geometric))
    exponential = phase("exponential")
    assert [round(x, 9) for x in exponential] == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_exponential_from_zero_backs_off_like_geometric() -> None:
    policy = healthy(
        numRetries=4, minDelayTarget=0, maxDelayTarget=21, backoffFunction="exponential"
    )
    geometric = healthy(
        numRetries=4, minDelayTarget=0, maxDelayTarget=21, backoffFunction="geometric"
    )
    assert delays(policy) == delays(geometric) == [0.0, 3.0, 9.0, 21.0]


@pytest.mark.parametrize("backoff", BACKOFFS)
def test_one_backoff_step_is_the_max(backoff: str) -> None:
    policy = healthy(
        numRetries=2,
        minDelayTarget=3,
        maxDelayTarget=9,
        numMinDelayRetries=1,
        backoffFunction=backoff,
    )
    assert delays(policy) == [3.0, 9.0]


@pytest.mark.parametrize("backoff", BACKOFFS)
def test_min_equal_to_max_is_flat(backoff: str) -> None:
    policy = healthy(numRetries=6, minDelayTarget=7, maxDelayTarget=7, backoffFunction=backoff)
    assert delays(policy) == [7.0] * 6


def test_fractional_seconds_are_kept() -> None:
    policy = healthy(numRetries=3, minDelayTarget=0.25, maxDelayTarget=0.75)
    assert delays(policy) == [0.25, 0.5, 0.75]


def test_no_retries() -> None:
    policy = healthy(numRetries=0)
    assert base_delay(policy, 1) is None
    assert retry_delay(policy, 1, random.Random(1)) is None
    assert total_time(policy) == 0.0


def test_total_of_3600_s_allowed_more_rejected() -> None:
    exact = healthy(numRetries=100, minDelayTarget=36, maxDelayTarget=36)
    assert total_time(exact) == MAX_TOTAL_S == 3600.0
    with pytest.raises(InvalidParameter, match=r"numRetries: .*3600"):
        healthy(numRetries=100, minDelayTarget=36.01, maxDelayTarget=36.01)


def test_exponential_last_step_is_exactly_the_max() -> None:
    policy = healthy(
        numRetries=5, minDelayTarget=7, maxDelayTarget=29, backoffFunction="exponential"
    )
    assert base_delay(policy, 5) == 29.0


@pytest.mark.parametrize("low", [5e-324, 1e-306])
def test_exponential_from_a_tiny_min(low: float) -> None:
    policy = DeliveryPolicy(3, 0, low, 3500.0, 0, 0, "exponential")
    assert all(low <= d <= 3500.0 for d in delays(policy))


# --- jitter --------------------------------------------------------------------------------


def test_jitter_within_ten_percent() -> None:
    assert JITTER == 0.1
    policy = healthy(
        numRetries=20,
        numNoDelayRetries=1,
        minDelayTarget=1,
        maxDelayTarget=100,
        backoffFunction="geometric",
    )
    rng = random.Random(7)
    jittered: list[float] = []
    for retry in range(1, 21):
        base = base_delay(policy, retry)
        assert base is not None
        delay = retry_delay(policy, retry, rng)
        assert delay is not None
        assert base * 0.9 <= delay <= base * 1.1
        jittered.append(delay)
    assert jittered[0] == 0.0  # no-delay retries stay immediate
    assert retry_delay(policy, 21, rng) is None


def test_jitter_reproducible_for_a_seed() -> None:
    policy = DeliveryPolicy()

    def run(seed: int) -> list[float | None]:
        rng = random.Random(seed)
        return [retry_delay(policy, r, rng) for r in range(1, 4)] + [
            managed_retry_delay(r, rng) for r in range(1, 20)
        ]

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_jitter_spreads_over_the_band() -> None:
    rng = random.Random(3)
    found = [retry_delay(DeliveryPolicy(), 1, rng) for _ in range(2000)]
    values = [d for d in found if d is not None]
    assert min(values) >= 18.0
    assert max(values) <= 22.0
    assert min(values) < 18.2
    assert max(values) > 21.8


# --- policies SNS refuses ------------------------------------------------------------------

INVALID: list[tuple[str, Any, str]] = [
    ("numRetries over 100", {"numRetries": 101}, "numRetries"),
    ("numRetries negative", {"numRetries": -1}, "numRetries"),
    ("numRetries a string", {"numRetries": "3"}, "numRetries"),
    ("numRetries a float", {"numRetries": 3.5}, "numRetries"),
    ("numRetries a boolean", {"numRetries": True}, "numRetries"),
    ("minDelayTarget a string", {"minDelayTarget": "20"}, "minDelayTarget"),
    ("minDelayTarget negative", {"minDelayTarget": -1}, "minDelayTarget"),
    ("minDelayTarget over max", {"minDelayTarget": 30, "maxDelayTarget": 20}, "minDelayTarget"),
    ("maxDelayTarget over 3600", {"maxDelayTarget": 3601, "numRetries": 1}, "maxDelayTarget"),
    ("maxDelayTarget null", {"maxDelayTarget": None}, "maxDelayTarget"),
    ("numNoDelayRetries negative", {"numNoDelayRetries": -1}, "numNoDelayRetries"),
    ("numMinDelayRetries negative", {"numMinDelayRetries": -1}, "numMinDelayRetries"),
    ("numMaxDelayRetries negative", {"numMaxDelayRetries": -2}, "numMaxDelayRetries"),
    (
        "fixed phases over numRetries",
        {"numRetries": 3, "numNoDelayRetries": 2, "numMaxDelayRetries": 2},
        "numRetries",
    ),
    (
        "delays over 3600 s",
        {"numRetries": 100, "minDelayTarget": 40, "maxDelayTarget": 40},
        "numRetries",
    ),
    ("unknown backoff", {"backoffFunction": "cubic"}, "backoffFunction"),
    ("backoff a number", {"backoffFunction": 2}, "backoffFunction"),
    ("unknown field", {"numRetrys": 3}, "numRetrys"),
]


@pytest.mark.parametrize(("fields", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_policy_names_the_field(fields: dict[str, Any], field: str) -> None:
    for document in (
        {"healthyRetryPolicy": fields},
        {"http": {"defaultHealthyRetryPolicy": fields}},
    ):
        with pytest.raises(InvalidParameter) as caught:
            parse_delivery_policy(json.dumps(document))
        error = caught.value
        assert error.code == "InvalidParameter"
        assert error.status == 400
        assert error.message.startswith("DeliveryPolicy: ")
        assert field in error.message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('"text"', "expected a JSON object"),
        ('{"healthyRetryPolicy": [3]}', "healthyRetryPolicy"),
        ('{"healthyRetryPolicy": {"minDelayTarget": NaN}}', "minDelayTarget"),
        ('{"healthyRetryPolicy": {"maxDelayTarget": Infinity}}', "maxDelayTarget"),
    ],
)
def test_malformed_documents_rejected(text: str, says: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_delivery_policy(text)
    assert caught.value.message.startswith("DeliveryPolicy: ")
    assert says in caught.value.message


def test_timeout_must_be_positive() -> None:
    with pytest.raises(InvalidParameter, match="timeout_s"):
        DeliveryPolicy(timeout_s=0)


# --- AWS's managed schedule (SQS subscriptions) --------------------------------------------


def test_managed_schedule_phases() -> None:
    assert [managed_base_delay(r) for r in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert [managed_base_delay(r) for r in (4, 5)] == [1.0, 1.0]
    backoff = [managed_base_delay(r) for r in range(6, 16)]
    assert all(d is not None for d in backoff)
    values = [d for d in backoff if d is not None]
    assert values[0] == 1.0
    assert math.isclose(values[-1], 20.0)
    assert all(1.0 <= d <= 20.0 + EPS for d in values)
    ratios = [b / a for a, b in itertools.pairwise(values)]
    assert all(math.isclose(r, 20 ** (1 / 9)) for r in ratios)  # exponential
    assert [managed_base_delay(r) for r in (16, 17, 1000, MANAGED_MAX_RETRIES)] == [20.0] * 4


def test_managed_schedule_length_and_duration() -> None:
    """100,015 attempts in all: the first and 100,014 retries, about 23 days."""
    assert MANAGED_MAX_RETRIES == 100_014
    assert managed_base_delay(MANAGED_MAX_RETRIES) == 20.0
    assert managed_base_delay(MANAGED_MAX_RETRIES + 1) is None
    assert managed_base_delay(0) is None
    total = 0.0
    for retry in range(1, MANAGED_MAX_RETRIES + 1):
        delay = managed_base_delay(retry)
        assert delay is not None
        total += delay
    assert 22 * 86400 < total < 24 * 86400


def test_managed_schedule_can_be_capped() -> None:
    assert managed_base_delay(5, max_retries=5) == 1.0
    assert managed_base_delay(6, max_retries=5) is None
    assert managed_retry_delay(6, random.Random(0), max_retries=5) is None
    assert managed_base_delay(MANAGED_MAX_RETRIES + 1, max_retries=10**9) is None


def test_managed_jitter() -> None:
    rng = random.Random(11)
    for retry in range(1, 40):
        base = managed_base_delay(retry)
        assert base is not None
        delay = managed_retry_delay(retry, rng)
        assert delay is not None
        assert base * 0.9 <= delay <= base * 1.1
    assert [managed_retry_delay(r, rng) for r in (1, 2, 3)] == [0.0, 0.0, 0.0]


# --- what counts as delivered --------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 299, 302, 400, 404, 429, 499])
def test_2xx_to_4xx_delivered(status: int) -> None:
    assert classify(status) is Outcome.DELIVERED


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, None, 100, 199])
def test_5xx_timeouts_and_connection_failures_retried(status: int | None) -> None:
    assert classify(status) is Outcome.RETRY


# --- properties ----------------------------------------------------------------------------


@st.composite
def valid_policies(draw: st.DrawFn) -> DeliveryPolicy:
    retries = draw(st.integers(0, 100))
    no_delay = draw(st.integers(0, retries))
    at_min = draw(st.integers(0, retries - no_delay))
    at_max = draw(st.integers(0, retries - no_delay - at_min))
    ceiling = 3500.0 / max(retries, 1)  # every delay <= max: the total stays under 3600 s
    # Delays of 0 or at least a millisecond (tiny positive minimums have their own test).
    delay = st.one_of(st.just(0.0), st.floats(1e-3, ceiling))
    bounds = draw(st.lists(delay, min_size=2, max_size=2).map(sorted))
    backoff = draw(st.sampled_from(BACKOFFS))
    return DeliveryPolicy(retries, no_delay, bounds[0], bounds[1], at_min, at_max, backoff)


@settings(max_examples=300, deadline=None)
@given(policy=valid_policies(), seed=st.integers(0, 2**32))
def test_delays_stay_within_min_and_max(policy: DeliveryPolicy, seed: int) -> None:
    low, high = policy.min_delay_s, policy.max_delay_s
    found = delays(policy)
    assert found[: policy.num_no_delay_retries] == [0.0] * policy.num_no_delay_retries
    for delay in found[policy.num_no_delay_retries :]:
        assert low <= delay <= high * (1 + EPS)
    assert_monotone(found)
    if policy.num_max_delay_retries:
        assert found[-policy.num_max_delay_retries :] == [high] * policy.num_max_delay_retries
    assert base_delay(policy, policy.num_retries + 1) is None
    assert total_time(policy) <= MAX_TOTAL_S
    rng = random.Random(seed)
    for retry, base in enumerate(found, start=1):
        delay = retry_delay(policy, retry, rng)
        assert delay is not None
        assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)
        if retry > policy.num_no_delay_retries:
            assert low * (1 - JITTER) <= delay <= high * (1 + JITTER) * (1 + EPS)
    assert retry_delay(policy, policy.num_retries + 1, rng) is None
    assert parse_delivery_policy(policy.as_json()) == policy


@settings(max_examples=300, deadline=None)
@given(retry=st.integers(1, MANAGED_MAX_RETRIES), seed=st.integers(0, 2**32))
def test_managed_delays_within_zero_and_20_s(retry: int, seed: int) -> None:
    base = managed_base_delay(retry)
    assert base is not None
    assert 0.0 <= base <= 20.0 * (1 + EPS)
    earlier = managed_base_delay(retry - 1) if retry > 1 else 0.0
    assert earlier is not None
    assert earlier <= base * (1 + EPS)
    delay = managed_retry_delay(retry, random.Random(seed))
    assert delay is not None
    assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)
