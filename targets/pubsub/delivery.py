"""When a failed delivery is tried again: SNS's delivery policies, without I/O or clock.

HTTP subscriptions follow their delivery policy (``healthyRetryPolicy``): ``numRetries``
retries after the first attempt, in four phases: ``numNoDelayRetries`` at once,
``numMinDelayRetries`` at ``minDelayTarget``, a backoff phase from ``minDelayTarget`` up to
``maxDelayTarget`` (``linear``, ``arithmetic``, ``geometric`` or ``exponential``), then
``numMaxDelayRetries`` at ``maxDelayTarget``. SNS's default: 3 retries, 20 s apart, linear.
The sum of the delays may not exceed 3,600 s. AWS takes whole seconds; this model also takes
fractions (the lab's scenarios retry within seconds), and every delay gets up to 10 % of
jitter from the seeded RNG, as SNS jitters its retries.

SQS subscriptions (AWS-managed endpoints) retry on a fixed schedule: 3 at once, 2 one second
apart, 10 backing off exponentially from 1 to 20 s, then 100,000 twenty seconds apart
(100,015 attempts over about 23 days); ``managed_retry_delay`` may be capped shorter.

``classify``: a 2xx-4xx answer is delivered (SNS does not retry client errors, 429 included);
5xx, a timeout or a connection failure (``None``) is a failed attempt.
"""

from __future__ import annotations

import enum
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from targets.pubsub.errors import InvalidParameter

MAX_TOTAL_S: Final = 3600.0
JITTER: Final = 0.1
BACKOFFS: Final = ("linear", "arithmetic", "geometric", "exponential")
MANAGED_MAX_RETRIES: Final = 100_014
_MANAGED_PHASES: Final = ((3, 0.0), (2, 1.0))  # (retries, delay) before the backoff
_MANAGED_BACKOFF: Final = (10, 1.0, 20.0)  # retries, from, to


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"


def classify(status: int | None) -> Outcome:
    """A delivery attempt's answer: None is a timeout or a connection failure."""
    return Outcome.DELIVERED if status is not None and 200 <= status < 500 else Outcome.RETRY


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    num_retries: int = 3
    num_no_delay_retries: int = 0
    min_delay_s: float = 20.0
    max_delay_s: float = 20.0
    num_min_delay_retries: int = 0
    num_max_delay_retries: int = 0
    backoff: str = "linear"
    timeout_s: float = 15.0

    def __post_init__(self) -> None:
        _check(0 <= self.num_retries <= 100, "numRetries", "0..100", self.num_retries)
        for name, value in (
            ("minDelayTarget", self.min_delay_s),
            ("maxDelayTarget", self.max_delay_s),
        ):
            _check(math.isfinite(value) and 0 <= value <= MAX_TOTAL_S, name, "0..3600", value)
        _check(
            self.min_delay_s <= self.max_delay_s,
            "minDelayTarget",
            "at most maxDelayTarget",
            self.min_delay_s,
        )
        counts = (self.num_no_delay_retries, self.num_min_delay_retries, self.num_max_delay_retries)
        for name, value in zip(
            ("numNoDelayRetries", "numMinDelayRetries", "numMaxDelayRetries"), counts, strict=True
        ):
            _check(value >= 0, name, "0 or more", value)
        _check(
            sum(counts) <= self.num_retries,
            "numRetries",
            "at least the retries of the fixed phases",
            self.num_retries,
        )
        _check(self.backoff in BACKOFFS, "backoffFunction", " | ".join(BACKOFFS), self.backoff)
        _check(0 < self.timeout_s <= 3600, "timeout_s", "in (0, 3600]", self.timeout_s)
        total = total_time(self)
        _check(total <= MAX_TOTAL_S, "numRetries", "delays totalling at most 3600 s", total)

    @property
    def backoff_retries(self) -> int:
        return (
            self.num_retries
            - self.num_no_delay_retries
            - self.num_min_delay_retries
            - self.num_max_delay_retries
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "http": {
                "defaultHealthyRetryPolicy": {
                    "numRetries": self.num_retries,
                    "numNoDelayRetries": self.num_no_delay_retries,
                    "minDelayTarget": self.min_delay_s,
                    "maxDelayTarget": self.max_delay_s,
                    "numMinDelayRetries": self.num_min_delay_retries,
                    "numMaxDelayRetries": self.num_max_delay_retries,
                    "backoffFunction": self.backoff,
                },
                "disableSubscriptionOverrides": False,
            }
        }


def _check(ok: bool, field: str, rule: str, got: object) -> None:
    if not ok:
        raise InvalidParameter(f"DeliveryPolicy: {field}: must be {rule} (got {got!r})")


_FIELDS: Final = {
    "numRetries": "num_retries",
    "numNoDelayRetries": "num_no_delay_retries",
    "minDelayTarget": "min_delay_s",
    "maxDelayTarget": "max_delay_s",
    "numMinDelayRetries": "num_min_delay_retries",
    "numMaxDelayRetries": "num_max_delay_retries",
    "backoffFunction": "backoff",
}


def parse_delivery_policy(text: str | Mapping[str, Any]) -> DeliveryPolicy:
    """A subscription's ``{"healthyRetryPolicy": {...}}`` or a topic's
    ``{"http": {"defaultHealthyRetryPolicy": {...}}}``; InvalidParameter naming the field."""
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except ValueError:
            raise InvalidParameter("DeliveryPolicy: not JSON") from None
    else:
        data = text
    if not isinstance(data, Mapping):
        raise InvalidParameter("DeliveryPolicy: expected a JSON object")
    if isinstance(data.get("http"), Mapping):
        data = {"healthyRetryPolicy": data["http"].get("defaultHealthyRetryPolicy", {})}
    raw = data.get("healthyRetryPolicy", {})
    if not isinstance(raw, Mapping):
        raise InvalidParameter("DeliveryPolicy: healthyRetryPolicy: expected an object")
    values: dict[str, Any] = {}
    for key, given in raw.items():
        field = _FIELDS.get(key)
        value = given
        if field is None:
            raise InvalidParameter(f"DeliveryPolicy: healthyRetryPolicy: unknown field {key!r}")
        if field == "backoff":
            if not isinstance(value, str):
                raise InvalidParameter(f"DeliveryPolicy: {key}: must be a string (got {value!r})")
        elif field.endswith("_s"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParameter(f"DeliveryPolicy: {key}: must be a number (got {value!r})")
            value = float(value)
        elif isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParameter(f"DeliveryPolicy: {key}: must be an integer (got {value!r})")
        values[field] = value.lower() if field == "backoff" else value
    return DeliveryPolicy(**values)


def _backoff(kind: str, step: int, steps: int, low: float, high: float) -> float:
    """Delay of backoff step `step` (1..steps): from `low` up to exactly `high` at the last."""
    if steps <= 1 or high == low:
        return high
    k, n = step - 1, steps - 1  # 0..n
    if kind == "linear":
        share = k / n
    elif kind == "arithmetic":
        share = k * (k + 1) / (n * (n + 1))
    elif kind == "exponential" and low > 0:
        if k in (0, n):
            return low if k == 0 else high
        grown = math.exp(math.log(low) + (math.log(high) - math.log(low)) * k / n)  # no overflow
        return min(high, max(low, grown))
    else:  # geometric (and exponential from 0): doubling increments
        share = (2**k - 1) / (2**n - 1)
    return low + (high - low) * share


def base_delay(policy: DeliveryPolicy, retry: int) -> float | None:
    """The delay before retry `retry` (1-based) without jitter; None past the last."""
    if retry < 1 or retry > policy.num_retries:
        return None
    if retry <= policy.num_no_delay_retries:
        return 0.0
    retry -= policy.num_no_delay_retries
    if retry <= policy.num_min_delay_retries:
        return policy.min_delay_s
    retry -= policy.num_min_delay_retries
    steps = policy.backoff_retries
    if retry <= steps:
        return _backoff(policy.backoff, retry, steps, policy.min_delay_s, policy.max_delay_s)
    return policy.max_delay_s


def _jittered(delay: float, rng: random.Random) -> float:
    return max(0.0, delay * (1 + rng.uniform(-JITTER, JITTER)))


def retry_delay(policy: DeliveryPolicy, retry: int, rng: random.Random) -> float | None:
    """The jittered delay before retry `retry` of an http delivery; None: exhausted."""
    delay = base_delay(policy, retry)
    return None if delay is None else _jittered(delay, rng)


def managed_base_delay(retry: int, max_retries: int = MANAGED_MAX_RETRIES) -> float | None:
    if retry < 1 or retry > min(max_retries, MANAGED_MAX_RETRIES):
        return None
    for count, delay in _MANAGED_PHASES:
        if retry <= count:
            return delay
        retry -= count
    steps, low, high = _MANAGED_BACKOFF
    if retry <= steps:
        return _backoff("exponential", retry, steps, low, high)
    return high


def managed_retry_delay(
    retry: int, rng: random.Random, max_retries: int = MANAGED_MAX_RETRIES
) -> float | None:
    """The jittered delay before retry `retry` of a delivery to an SQS queue."""
    delay = managed_base_delay(retry, max_retries)
    return None if delay is None else _jittered(delay, rng)


def total_time(policy: DeliveryPolicy) -> float:
    """The sum of the policy's delays without jitter (the default policy: 60 s)."""
    total = 0.0
    for retry in range(1, policy.num_retries + 1):
        total += base_delay(policy, retry) or 0.0
    return total
