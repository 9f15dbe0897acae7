"""The workers' pure core: provider sampling, the back-off schedule, the decision on a result."""

from __future__ import annotations

import random

import pytest

from targets.workers.core import (
    MAX_VISIBILITY_S,
    Action,
    FailurePolicy,
    Latency,
    OnFailure,
    ProviderModel,
    Verb,
    WorkerConfigError,
    backoff_seconds,
    decide,
)

pytestmark = pytest.mark.core


def check_backoff(receive_count: int, base: float, cap: float, expected: int) -> None:
    assert backoff_seconds(receive_count, base, cap) == expected


def test_backoff_doubles_from_the_base_per_receive() -> None:
    """The first failure backs off by the base, each further receive doubles it."""
    check_backoff(1, 1, 60, 1)
    check_backoff(2, 1, 60, 2)
    check_backoff(3, 1, 60, 4)
    check_backoff(6, 1, 60, 32)
    check_backoff(3, 2.5, 60, 10)


def test_backoff_is_capped_and_whole_seconds() -> None:
    """The cap holds for any receive count; fractions round up (SQS takes whole seconds)."""
    check_backoff(7, 1, 60, 60)
    check_backoff(10_000, 1, 60, 60)
    check_backoff(1, 0.2, 60, 1)
    check_backoff(0, 1, 60, 1)
    check_backoff(5, 0, 60, 0)
    check_backoff(100, 1, MAX_VISIBILITY_S, MAX_VISIBILITY_S)


def check_decide(delivered: bool, count: int, policy: FailurePolicy, expected: Action) -> None:
    assert decide(delivered, count, policy) == expected


def test_decide_deletes_on_success_whatever_the_policy() -> None:
    """A delivered message is deleted, in both failure modes."""
    for mode in OnFailure:
        check_decide(True, 3, FailurePolicy(mode), Action(Verb.DELETE))


def test_decide_leaves_or_backs_off_on_failure() -> None:
    """On failure: leave it to its visibility timeout, or back off by the schedule."""
    check_decide(False, 1, FailurePolicy(OnFailure.RETURN), Action(Verb.LEAVE))
    backoff = FailurePolicy(OnFailure.BACKOFF, backoff_s=2, backoff_max_s=10)
    check_decide(False, 1, backoff, Action(Verb.BACKOFF, 2))
    check_decide(False, 2, backoff, Action(Verb.BACKOFF, 4))
    check_decide(False, 4, backoff, Action(Verb.BACKOFF, 10))


def test_failure_policy_refuses_bad_settings() -> None:
    """Bad settings fail with the field's name."""
    with pytest.raises(WorkerConfigError, match=r"^on_failure:"):
        FailurePolicy("retry")  # type: ignore[arg-type]
    with pytest.raises(WorkerConfigError, match=r"^backoff_max_s:"):
        FailurePolicy(OnFailure.BACKOFF, backoff_s=10, backoff_max_s=5)


def test_provider_sampling_is_seeded() -> None:
    """The same seed gives the same latencies and failures."""
    model = ProviderModel(Latency.LOGNORMAL, 0.1, 0.5, failure_rate=0.3)
    a, b = random.Random(7), random.Random(7)
    assert [model.sample(a) for _ in range(50)] == [model.sample(b) for _ in range(50)]


def test_provider_failure_rate_and_statuses() -> None:
    """About `failure_rate` of sends fail, each with 500 or 503; rate 0 never, 1 always."""
    rng = random.Random(1)
    sends = [ProviderModel(failure_rate=0.25).sample(rng) for _ in range(4000)]
    failed = [s for s in sends if not s.delivered]
    assert 800 < len(failed) < 1200
    assert {s.status for s in failed} == {500, 503}
    assert all(ProviderModel(failure_rate=0).sample(rng).delivered for _ in range(200))
    assert not any(ProviderModel(failure_rate=1).sample(rng).delivered for _ in range(200))


def test_provider_latency_distributions() -> None:
    """Constant is exact; lognormal keeps the requested mean; 0 ms waits not at all."""
    rng = random.Random(2)
    assert ProviderModel(Latency.CONSTANT, 0.2).sample(rng).latency_s == 0.2
    assert ProviderModel(Latency.LOGNORMAL, 0).sample(rng).latency_s == 0
    samples = [
        ProviderModel(Latency.LOGNORMAL, 0.1, 0.5).sample(rng).latency_s for _ in range(5000)
    ]
    assert 0.095 < sum(samples) / len(samples) < 0.105
    assert len(set(samples)) == len(samples)


def test_poison_messages_always_fail() -> None:
    """A poison message fails with 500 even with no failure rate."""
    send = ProviderModel(failure_rate=0).sample(random.Random(3), poison=True)
    assert (send.delivered, send.status) == (False, 500)


def test_provider_model_refuses_bad_settings() -> None:
    """Out-of-range settings name the field (the process maps it to its flag)."""
    with pytest.raises(WorkerConfigError, match=r"^failure_rate:"):
        ProviderModel(failure_rate=1.5)
    with pytest.raises(WorkerConfigError, match=r"^latency_ms:"):
        ProviderModel(mean_s=-1)
    with pytest.raises(WorkerConfigError, match=r"^latency:"):
        ProviderModel(latency="uniform")  # type: ignore[arg-type]
