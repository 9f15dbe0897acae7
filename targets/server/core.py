"""The capacity model of an application server, without I/O or clock.

A server has `slots`: how many requests it serves at once (its CPUs and RAM). A request that finds
every slot busy waits in a FIFO backlog of at most `backlog` requests; beyond that it is rejected
(the adapter answers 503). Each served request holds its slot for a service time drawn from a
seeded distribution. So load beyond capacity shows as queueing latency first and errors second,
like a real saturated server, while the machine running the lab stays idle (the adapter sleeps).

Capacity is fixed for the life of the process: a bigger server is a restart (vertical scaling).
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

from targets.checks import as_enum, require


class CapacityError(ValueError):
    """Bad capacity, service-time or fault settings; the message names the field."""


def _require(ok: bool, field: str, rule: str, got: object) -> None:
    require(ok, field, rule, got, CapacityError)


@dataclass(frozen=True, slots=True)
class Capacity:
    slots: int = 8
    backlog: int = 64

    def __post_init__(self) -> None:
        for name in ("slots", "backlog"):
            _require(type(getattr(self, name)) is int, name, "an integer", getattr(self, name))
        _require(1 <= self.slots <= 100_000, "slots", "between 1 and 100000", self.slots)
        _require(0 <= self.backlog <= 1_000_000, "backlog", "between 0 and 1000000", self.backlog)


class Distribution(enum.StrEnum):
    CONSTANT = "constant"
    EXPONENTIAL = "exponential"
    LOGNORMAL = "lognormal"


@dataclass(frozen=True, slots=True)
class ServiceTime:
    """How long a request holds its slot. `mean_s=0` is the fastest mode: no wait at all."""

    distribution: Distribution = Distribution.LOGNORMAL
    mean_s: float = 0.02
    sigma: float = 0.5  # shape of the lognormal (spread of the tail)

    def __post_init__(self) -> None:
        field = "service_time.distribution"
        distribution = as_enum(Distribution, self.distribution, field, CapacityError)
        object.__setattr__(self, "distribution", distribution)
        _require(
            math.isfinite(self.mean_s) and 0 <= self.mean_s <= 600,
            "service_time.mean_s",
            "between 0 and 600",
            self.mean_s,
        )
        _require(
            math.isfinite(self.sigma) and 0 <= self.sigma <= 3,
            "service_time.sigma",
            "between 0 and 3",
            self.sigma,
        )

    def sample(self, rng: random.Random) -> float:
        if self.mean_s == 0:
            return 0.0
        if self.distribution is Distribution.CONSTANT:
            return self.mean_s
        if self.distribution is Distribution.EXPONENTIAL:
            return rng.expovariate(1.0 / self.mean_s)
        # lognormal with the requested mean: mu = ln(mean) - sigma^2 / 2
        mu = math.log(self.mean_s) - self.sigma * self.sigma / 2
        return rng.lognormvariate(mu, self.sigma)


class Verdict(enum.Enum):
    RUN = "run"  # a slot is free: serve now
    WAIT = "wait"  # every slot busy, room in the backlog: queue
    REJECT = "reject"  # slots and backlog full: 503


class Admission:
    """Slot and backlog accounting. The adapter keeps the FIFO of waiters; this keeps the counts."""

    __slots__ = ("capacity", "in_service", "rejected", "served", "waiting")

    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity
        self.in_service = 0
        self.waiting = 0
        self.served = 0
        self.rejected = 0

    def arrive(self) -> Verdict:
        if self.in_service < self.capacity.slots and self.waiting == 0:
            self.in_service += 1
            return Verdict.RUN
        if self.waiting < self.capacity.backlog:
            self.waiting += 1
            return Verdict.WAIT
        self.rejected += 1
        return Verdict.REJECT

    def finish(self) -> bool:
        """A served request left its slot. True: hand the slot to the first waiter."""
        self.served += 1
        if self.waiting > 0:
            self.waiting -= 1
            return True
        self.in_service -= 1
        return False

    def give_up(self) -> None:
        """A waiting request left the backlog without being served (its client went away)."""
        if self.waiting > 0:
            self.waiting -= 1


@dataclass(frozen=True, slots=True)
class Faults:
    """Injected faults: extra latency, a share of requests failing with 500, or hanging."""

    latency_s: float = 0.0
    error_rate: float = 0.0
    hang: bool = False

    def __post_init__(self) -> None:
        _require(
            math.isfinite(self.latency_s) and 0 <= self.latency_s <= 600,
            "latency_ms",
            "between 0 and 600000",
            self.latency_s * 1000,
        )
        _require(
            math.isfinite(self.error_rate) and 0 <= self.error_rate <= 1,
            "error_rate",
            "between 0 and 1",
            self.error_rate,
        )

    @property
    def active(self) -> bool:
        return self.hang or self.latency_s > 0 or self.error_rate > 0

    def fails(self, rng: random.Random) -> bool:
        """Whether this request is one of the injected errors."""
        return self.error_rate > 0 and rng.random() < self.error_rate


NO_FAULTS = Faults()
