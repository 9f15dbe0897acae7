"""The workers' policy, without I/O or clock: what a provider does, what a worker does next.

Provider side: `ProviderModel` samples how long one send takes (constant or lognormal with the
requested mean, seeded) and whether it fails (500 or 503 at `failure_rate`). Worker side:
`decide(delivered, receive_count, policy)` turns one delivery's result into an `Action`:
delete the message, leave it to come back when its visibility timeout ends, or change its
visibility to back off for `backoff_seconds(receive_count, ...)` (exponential, capped). The
queue's redrive policy, not the worker, moves a message that keeps failing to the dead-letter
queue after maxReceiveCount receives.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass
from typing import Final

from targets.checks import as_enum, finite, require

MAX_VISIBILITY_S: Final = 43_200
"""SQS's largest visibility timeout (12 hours): a back-off never asks for more."""

FAILURE_STATUSES: Final = (500, 503)


class WorkerConfigError(ValueError):
    """Bad provider or worker settings; the message names the field."""


def _require(ok: bool, field: str, rule: str, got: object) -> None:
    require(ok, field, rule, got, WorkerConfigError)


class Latency(enum.StrEnum):
    CONSTANT = "constant"
    LOGNORMAL = "lognormal"


class Kind(enum.StrEnum):
    EMAIL = "email"
    WHATSAPP = "whatsapp"
    NOTIFICATION = "notification"
    FRAUD = "fraud"


@dataclass(frozen=True, slots=True)
class Send:
    """One sampled send: how long it takes and the status it ends with (200 or a failure)."""

    latency_s: float
    status: int

    @property
    def delivered(self) -> bool:
        return self.status == 200


@dataclass(frozen=True, slots=True)
class ProviderModel:
    """How the simulated provider behaves: latency distribution and failure rate."""

    latency: Latency = Latency.LOGNORMAL
    mean_s: float = 0.05
    sigma: float = 0.5  # lognormal shape (tail spread)
    failure_rate: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "latency", as_enum(Latency, self.latency, "latency", WorkerConfigError)
        )
        _require(
            finite(self.mean_s) and 0 <= self.mean_s <= 600,
            "latency_ms",
            "between 0 and 600000",
            self.mean_s * 1000,
        )
        _require(
            finite(self.sigma) and 0 <= self.sigma <= 3, "sigma", "between 0 and 3", self.sigma
        )
        _require(
            finite(self.failure_rate) and 0 <= self.failure_rate <= 1,
            "failure_rate",
            "between 0 and 1",
            self.failure_rate,
        )

    def sample(self, rng: random.Random, *, poison: bool = False) -> Send:
        """One send's latency and status; a poison message always fails (500)."""
        latency = self._latency(rng)
        if poison:
            return Send(latency, 500)
        if self.failure_rate > 0 and rng.random() < self.failure_rate:
            return Send(latency, rng.choice(FAILURE_STATUSES))
        return Send(latency, 200)

    def _latency(self, rng: random.Random) -> float:
        if self.mean_s == 0:
            return 0.0
        if self.latency is Latency.CONSTANT:
            return self.mean_s
        mu = math.log(self.mean_s) - self.sigma * self.sigma / 2  # keeps the requested mean
        return rng.lognormvariate(mu, self.sigma)


class OnFailure(enum.StrEnum):
    RETURN = "return"  # do nothing: the message comes back when its visibility timeout ends
    BACKOFF = "backoff"  # change its visibility to an exponential back-off


class Ack(enum.StrEnum):
    """When a worker deletes (acknowledges) a message."""

    AFTER_SEND = "after_send"  # once the provider took it: at least once
    BEFORE_SEND = "before_send"  # as soon as it is received: a failed send is lost (at most once)


class Verb(enum.Enum):
    DELETE = "delete"
    LEAVE = "leave"
    BACKOFF = "backoff"


@dataclass(frozen=True, slots=True)
class Action:
    """What the worker does with a message after one delivery attempt."""

    verb: Verb
    visibility_s: int = 0  # for BACKOFF: the new visibility timeout, in whole seconds


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    on_failure: OnFailure = OnFailure.RETURN
    backoff_s: float = 1.0  # the first back-off (receive count 1)
    backoff_max_s: float = 60.0

    def __post_init__(self) -> None:
        field = "on_failure"
        object.__setattr__(
            self, field, as_enum(OnFailure, self.on_failure, field, WorkerConfigError)
        )
        _require(
            finite(self.backoff_s) and 0 <= self.backoff_s <= MAX_VISIBILITY_S,
            "backoff_s",
            f"between 0 and {MAX_VISIBILITY_S}",
            self.backoff_s,
        )
        _require(
            finite(self.backoff_max_s) and self.backoff_s <= self.backoff_max_s <= MAX_VISIBILITY_S,
            "backoff_max_s",
            f"between backoff_s and {MAX_VISIBILITY_S}",
            self.backoff_max_s,
        )


def backoff_seconds(receive_count: int, base_s: float, cap_s: float) -> int:
    """``base * 2^(receive_count - 1)``, capped, rounded up to whole seconds (SQS's unit)."""
    exponent = max(receive_count, 1) - 1
    if base_s <= 0:
        return 0
    if exponent >= 64 or base_s * 2.0**exponent >= cap_s:
        return min(math.ceil(cap_s), MAX_VISIBILITY_S)
    return min(math.ceil(base_s * 2.0**exponent), MAX_VISIBILITY_S)


def decide(delivered: bool, receive_count: int, policy: FailurePolicy) -> Action:
    """The worker's move after one attempt at a message received ``receive_count`` times."""
    if delivered:
        return Action(Verb.DELETE)
    if policy.on_failure is OnFailure.RETURN:
        return Action(Verb.LEAVE)
    return Action(
        Verb.BACKOFF, backoff_seconds(receive_count, policy.backoff_s, policy.backoff_max_s)
    )
