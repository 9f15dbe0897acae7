"""Tests for the rate-limit response fields derived from decisions (targets.limiter.headers)."""

from __future__ import annotations

import math

import pytest

from targets.limiter import LimitConfig, create
from targets.limiter.core import Decision
from targets.limiter.headers import (
    draft06_fields,
    ratelimit_fields,
    retry_after,
    x_ratelimit_fields,
)

pytestmark = pytest.mark.core

ALLOWED = Decision(True, 0.0, 0.0, 2.9999999999, 5, 0.2000000001)
REJECTED = Decision(False, 0.0, 0.1, 0.0, 5, 0.5)


def check(fields: list[tuple[str, str]], expected: dict[str, str]) -> None:
    assert dict(fields) == expected
    assert len(fields) == len(expected)


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(0.1, "1"), (1.0, "1"), (1.0000000001, "1"), (1.2, "2"), (59.5, "60")],
)
def test_retry_after_rounds_up_to_whole_seconds_at_least_one(seconds, header):
    """Retry-After is delta-seconds, rounded up, never 0 (semantics 10.6.7)."""
    assert retry_after(REJECTED._replace(retry_after_s=seconds)) == header


def test_no_retry_after_when_allowed_or_never_retryable():
    """Allowed requests, and costs above the burst (retry_after_s inf), get no Retry-After."""
    assert retry_after(ALLOWED) is None
    assert retry_after(REJECTED._replace(retry_after_s=math.inf)) is None


def test_ratelimit_fields_on_an_admitted_request():
    """draft-10: policy q=burst, w=burst/rate; r=remaining rounded down through float noise."""
    check(
        ratelimit_fields(ALLOWED, LimitConfig(rate=2.5, burst=5)),
        {"RateLimit-Policy": '"default";q=5;w=2', "RateLimit": '"default";r=3;t=1'},
    )


def test_ratelimit_t_on_a_rejection_is_the_retry_after():
    """On a 429, t equals Retry-After: the draft says Retry-After SHOULD NOT precede t."""
    fields = dict(ratelimit_fields(REJECTED._replace(retry_after_s=2.5), LimitConfig(1, 5)))
    assert fields["RateLimit"] == '"default";r=0;t=3'


def test_ratelimit_window_is_at_least_one_second():
    """w has no sub-second precision: a 50 ms refill advertises w=1."""
    fields = dict(ratelimit_fields(ALLOWED, LimitConfig(rate=100, burst=5), policy="per-ip"))
    assert fields["RateLimit-Policy"] == '"per-ip";q=5;w=1'


def test_draft06_fields():
    """The earlier draft's three fields: limit, remaining, seconds until full."""
    check(
        draft06_fields(ALLOWED),
        {"RateLimit-Limit": "5", "RateLimit-Remaining": "3", "RateLimit-Reset": "1"},
    )


def test_x_ratelimit_reset_is_epoch_seconds():
    """GitHub style: Reset is the wall-clock second the key is full again."""
    check(
        x_ratelimit_fields(ALLOWED, wall_now=1_700_000_000.9),
        {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "3",
            "X-RateLimit-Reset": "1700000002",
        },
    )


def test_fields_from_a_real_gcra_decision():
    """GCRA's remaining carries float noise from time arithmetic; the fields do not."""
    limiter = create(LimitConfig(rate=0.1, burst=3, algorithm="gcra"))
    limiter.decide(1e6 + 0.3)
    fields = dict(draft06_fields(limiter.decide(1e6 + 0.3)))
    assert fields == {"RateLimit-Limit": "3", "RateLimit-Remaining": "1", "RateLimit-Reset": "20"}
