"""Sans-I/O core of an elastic load balancer modelled on AWS ALB target groups.

It models one target group: registration, active health checks with ALB's
thresholds and reason codes, fail-open routing, connection draining on
deregistration, slow start, and the routing algorithms round robin, least
outstanding requests and weighted random. There is no I/O and no clock: every
call takes ``now`` (monotonic seconds) and, where randomness is needed, an
``rng``; the adapter owns sockets, timers and probes.

Deliberate differences from ALB:

* lab-scale defaults (5 s deregistration delay instead of 300 s) and
  thresholds allowed from 1 (ALB requires at least 2);
* a refused or reset connection ejects a target at once (passive detection,
  reason ``Target.ConnectionFailed``); ALB relies on probes alone;
* target weights are honoured by every algorithm (round robin is nginx's
  smooth weighted round robin; least outstanding divides by weight);
* when every healthy target is excluded by the caller (a retry), routing
  falls back to the remaining unhealthy targets instead of failing;
* slow start ramps from 10 % of the weight, never from zero;
* no availability zones, stickiness, listener rules or per-target ports
  beyond ``host:port``.
"""

from __future__ import annotations

import enum
import functools
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Final

from targets.checks import as_enum, finite, require

__all__ = [
    "Algorithm",
    "ConfigError",
    "GroupConfig",
    "HealthPolicy",
    "Reason",
    "Target",
    "TargetGroup",
    "TargetState",
    "Transition",
    "parse_matcher",
    "probe_ok",
]

SLOW_START_FLOOR: Final = 0.1
"""Share of its weight a target gets at the very start of slow start."""

_TARGET_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_MATCHER_PART = re.compile(r"(\d{3})(?:-(\d{3}))?")
_MATCHER_CODES: Final = range(200, 500)


class ConfigError(ValueError):
    """Bad load balancer configuration; message names the field."""


class TargetState(enum.StrEnum):
    INITIAL = "initial"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"


class Algorithm(enum.StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_OUTSTANDING = "least_outstanding_requests"
    WEIGHTED_RANDOM = "weighted_random"


class Reason(enum.StrEnum):
    """ALB target health reason codes (empty while healthy)."""

    REGISTRATION_IN_PROGRESS = "Elb.RegistrationInProgress"
    INITIAL_HEALTH_CHECKING = "Elb.InitialHealthChecking"
    FAILED_HEALTH_CHECKS = "Target.FailedHealthChecks"
    CONNECTION_FAILED = "Target.ConnectionFailed"
    DEREGISTRATION_IN_PROGRESS = "Target.DeregistrationInProgress"
    HEALTHY = ""


def _require(ok: bool, name: str, rule: str, got: object) -> None:
    require(ok, name, rule, got, ConfigError)


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """How targets are probed and how many probes flip their state."""

    interval_s: float = 1.0
    timeout_s: float = 0.5
    healthy_threshold: int = 3
    unhealthy_threshold: int = 2
    path: str = "/health"

    def __post_init__(self) -> None:
        interval = self.interval_s
        _require(finite(interval) and interval > 0, "health.interval_s", "> 0", interval)
        _require(
            finite(self.timeout_s) and 0 < self.timeout_s < self.interval_s,
            "health.timeout_s",
            f"> 0 and shorter than health.interval_s ({self.interval_s})",
            self.timeout_s,
        )
        for name in ("healthy_threshold", "unhealthy_threshold"):
            value = getattr(self, name)
            _require(type(value) is int and 1 <= value <= 10, f"health.{name}", "1..10", value)
        _require(self.path.startswith("/"), "health.path", "a path starting with '/'", self.path)


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Target group settings; ``slow_start_s`` of 0 disables slow start."""

    algorithm: Algorithm = Algorithm.ROUND_ROBIN
    health: HealthPolicy = field(default_factory=HealthPolicy)
    deregistration_delay_s: float = 5.0  # ALB default is 300 s; lab scale
    slow_start_s: float = 0.0

    def __post_init__(self) -> None:
        algorithm = as_enum(Algorithm, self.algorithm, "algorithm", ConfigError)
        object.__setattr__(self, "algorithm", algorithm)
        delay = self.deregistration_delay_s
        _require(finite(delay) and 0 <= delay <= 3600, "deregistration_delay_s", "0..3600", delay)
        ramp = self.slow_start_s
        _require(finite(ramp) and 0 <= ramp <= 900, "slow_start_s", "0..900", ramp)
        _require(
            not (self.algorithm is Algorithm.LEAST_OUTSTANDING and ramp > 0),
            "slow_start_s",
            f"0 with algorithm {Algorithm.LEAST_OUTSTANDING.value} (as on ALB)",
            ramp,
        )


@dataclass(slots=True, eq=False)
class Target:
    """One registered backend and its health and load bookkeeping."""

    id: str
    host: str
    port: int
    weight: int = 1
    state: TargetState = TargetState.INITIAL
    reason: str = Reason.REGISTRATION_IN_PROGRESS
    in_flight: int = 0
    consecutive_ok: int = 0
    consecutive_fail: int = 0
    registered_at: float = 0.0
    slow_start_until: float = 0.0
    slow_start_began: float = 0.0
    drain_deadline: float = 0.0
    _rr_current: float = field(default=0.0, init=False, repr=False)
    _last_picked: int = field(default=0, init=False, repr=False)

    def effective_weight(self, now: float, slow_start_s: float) -> float:
        """Weight, ramped linearly from 10 % (never 0) to 100 % during slow start."""
        if slow_start_s <= 0 or now >= self.slow_start_until:
            return float(self.weight)
        progress = min(max(now - self.slow_start_began, 0.0) / slow_start_s, 1.0)
        return self.weight * (SLOW_START_FLOOR + (1.0 - SLOW_START_FLOOR) * progress)

    def _record_probe(self, ok: bool) -> None:
        if ok:
            self.consecutive_ok, self.consecutive_fail = self.consecutive_ok + 1, 0
        else:
            self.consecutive_ok, self.consecutive_fail = 0, self.consecutive_fail + 1

    def _in_slow_start(self, now: float) -> bool:
        return now < self.slow_start_until


@dataclass(frozen=True, slots=True)
class Transition:
    """A target changed state; ``reason`` is the new ALB reason code."""

    target_id: str
    old: TargetState
    new: TargetState
    reason: str


# --- routing algorithms --------------------------------------------------------------------------

Picker = Callable[[Sequence[Target], Sequence[float], random.Random], Target]
"""Choose one of ``candidates`` (non-empty) given their effective weights."""


def _smooth_round_robin(
    candidates: Sequence[Target], weights: Sequence[float], rng: random.Random
) -> Target:
    """nginx smooth weighted round robin: strict rotation when weights are equal."""
    best = candidates[0]
    best_current = -math.inf
    total = 0.0
    for target, weight in zip(candidates, weights, strict=True):
        current = target._rr_current = target._rr_current + weight
        total += weight
        if current > best_current:
            best, best_current = target, current
    best._rr_current -= total
    return best


def _least_outstanding(
    candidates: Sequence[Target], weights: Sequence[float], rng: random.Random
) -> Target:
    """Fewest in-flight requests per unit of weight; ties go to the least recently picked."""
    ranked = zip(candidates, weights, strict=True)
    best, _ = min(ranked, key=lambda tw: (tw[0].in_flight / tw[1], tw[0]._last_picked))
    return best


def _weighted_random(
    candidates: Sequence[Target], weights: Sequence[float], rng: random.Random
) -> Target:
    """Random choice proportional to effective weight."""
    return rng.choices(candidates, weights=weights)[0]


_PICKERS: Final[Mapping[Algorithm, Picker]] = {
    Algorithm.ROUND_ROBIN: _smooth_round_robin,
    Algorithm.LEAST_OUTSTANDING: _least_outstanding,
    Algorithm.WEIGHTED_RANDOM: _weighted_random,
}


# --- the target group ----------------------------------------------------------------------------


class TargetGroup:
    """Registered targets, their health, and request routing among them."""

    def __init__(self, config: GroupConfig) -> None:
        self.config = config
        self.targets: dict[str, Target] = {}
        self._picker = _PICKERS[config.algorithm]
        self._picks = 0
        # pick()'s candidates without exclusions, rebuilt only after a membership or state change
        self._routing: list[Target] | None = None

    # registration

    def register(self, target_id: str, host: str, port: int, now: float, weight: int = 1) -> Target:
        """Add a target (state initial) or update an existing one.

        Re-registering keeps the state, except that a draining target starts over as
        initial with fresh health checking; in-flight requests stay counted.
        """
        _validate_target(target_id, host, port, weight)
        self._routing = None
        target = self.targets.get(target_id)
        if target is None:
            target = Target(target_id, host, port, weight, registered_at=now)
            self.targets[target_id] = target
            return target
        target.host, target.port, target.weight = host, port, weight
        if target.state is TargetState.DRAINING:
            self._restart(target, now)
        return target

    def deregister(self, target_id: str, now: float) -> bool:
        """Start draining; False for an unknown target, which counts as success.

        Deregistering a draining target again keeps its original deadline.
        """
        target = self.targets.get(target_id)
        if target is None:
            return False
        if target.state is not TargetState.DRAINING:
            self._move(target, TargetState.DRAINING, Reason.DEREGISTRATION_IN_PROGRESS, now)
            target.drain_deadline = now + self.config.deregistration_delay_s
        return True

    def remove(self, target_id: str) -> Target | None:
        """Forget a target (after draining completes)."""
        self._routing = None
        return self.targets.pop(target_id, None)

    def expire(self, now: float) -> list[Target]:
        """Remove and return draining targets whose deregistration delay has passed."""
        expired = [
            t
            for t in self.targets.values()
            if t.state is TargetState.DRAINING and now >= t.drain_deadline
        ]
        for target in expired:
            del self.targets[target.id]
        if expired:
            self._routing = None
        return expired

    # health

    def health_result(self, target_id: str, ok: bool, now: float) -> Transition | None:
        """Apply one probe verdict; return the transition if the state changed."""
        target = self._checkable(target_id)
        if target is None:
            return None
        target._record_probe(ok)
        verdict = self._probe_verdict(target)
        if verdict is None:
            if target.state is TargetState.INITIAL:
                target.reason = Reason.INITIAL_HEALTH_CHECKING
            return None
        return self._move(target, *verdict, now)

    def connection_failed(self, target_id: str, now: float) -> Transition | None:
        """Passive detection: a refused or reset connection ejects the target at once.

        The target then needs ``healthy_threshold`` good probes to come back.
        """
        target = self._checkable(target_id)
        if target is None:
            return None
        target.consecutive_ok = 0
        if target.state is TargetState.UNHEALTHY:
            return None
        return self._move(target, TargetState.UNHEALTHY, Reason.CONNECTION_FAILED, now)

    # routing

    def pick(
        self, now: float, rng: random.Random, exclude: AbstractSet[str] = frozenset()
    ) -> Target | None:
        """Choose a target for a new request, or None when there is none (503).

        Candidates are the healthy targets not in ``exclude``. If there are none,
        either because no target is healthy (fail-open, as ALB does) or because the
        caller excluded every healthy one on a retry, the candidates are all
        non-draining targets not in ``exclude``: a retry on an unhealthy target
        beats an error. Draining targets are never picked.
        """
        if exclude:
            candidates = self._candidates(exclude)
        elif self._routing is not None:
            candidates = self._routing
        else:
            candidates = self._routing = self._candidates(exclude)
        if not candidates:
            return None
        ramp = self.config.slow_start_s
        weights = [t.effective_weight(now, ramp) if ramp else t.weight for t in candidates]
        chosen = self._picker(candidates, weights, rng)
        self._picks += 1
        chosen._last_picked = self._picks
        return chosen

    def begin(self, target: Target) -> None:
        """A request was sent to ``target``."""
        target.in_flight += 1

    def end(self, target: Target, now: float) -> bool:
        """A request finished; True if the target is draining and now idle.

        The adapter may then drop it via :meth:`remove`. An unmatched call never
        drives ``in_flight`` below zero.
        """
        target.in_flight = max(target.in_flight - 1, 0)
        return target.state is TargetState.DRAINING and target.in_flight == 0

    # introspection

    def counts(self) -> dict[TargetState, int]:
        """Number of targets per state; every state is a key."""
        counts = dict.fromkeys(TargetState, 0)
        for target in self.targets.values():
            counts[target.state] += 1
        return counts

    def routable(self) -> int:
        """Number of targets :meth:`pick` could choose now (without exclusions)."""
        return len(self._candidates(frozenset()))

    # internals

    def _candidates(self, exclude: AbstractSet[str]) -> list[Target]:
        eligible = [
            t
            for t in self.targets.values()
            if t.state is not TargetState.DRAINING and t.id not in exclude
        ]
        healthy = [t for t in eligible if t.state is TargetState.HEALTHY]
        return healthy or eligible

    def _checkable(self, target_id: str) -> Target | None:
        target = self.targets.get(target_id)
        if target is None or target.state is TargetState.DRAINING:
            return None
        return target

    def _probe_verdict(self, target: Target) -> tuple[TargetState, Reason] | None:
        health = self.config.health
        needed_ok = 1 if target.state is TargetState.INITIAL else health.healthy_threshold
        if target.state is not TargetState.HEALTHY and target.consecutive_ok >= needed_ok:
            return TargetState.HEALTHY, Reason.HEALTHY
        failing = target.consecutive_fail >= health.unhealthy_threshold
        if target.state is not TargetState.UNHEALTHY and failing:
            return TargetState.UNHEALTHY, Reason.FAILED_HEALTH_CHECKS
        return None

    def _move(self, target: Target, new: TargetState, reason: str, now: float) -> Transition:
        transition = Transition(target.id, target.state, new, reason)
        self._routing = None
        target.state, target.reason = new, reason
        target._rr_current = 0.0
        target.slow_start_until = 0.0
        if new is TargetState.HEALTHY and self._slow_start_applies(target, now):
            target.slow_start_began = now
            target.slow_start_until = now + self.config.slow_start_s
        return transition

    def _slow_start_applies(self, target: Target, now: float) -> bool:
        """ALB: no slow start unless another healthy target is already out of it."""
        return self.config.slow_start_s > 0 and any(
            other is not target
            and other.state is TargetState.HEALTHY
            and not other._in_slow_start(now)
            for other in self.targets.values()
        )

    def _restart(self, target: Target, now: float) -> None:
        self._routing = None
        target.state, target.reason = TargetState.INITIAL, Reason.REGISTRATION_IN_PROGRESS
        target.consecutive_ok = target.consecutive_fail = 0
        target.registered_at = now
        target.drain_deadline = 0.0
        target._rr_current = 0.0


def _validate_target(target_id: str, host: str, port: int, weight: int) -> None:
    _require(
        isinstance(target_id, str) and _TARGET_ID.fullmatch(target_id) is not None,
        "target_id",
        "1..64 characters from [A-Za-z0-9._:-]",
        target_id,
    )
    _require(isinstance(host, str) and host != "", "host", "a non-empty host name", host)
    _require(type(port) is int and 1 <= port <= 65535, "port", "1..65535", port)
    _require(type(weight) is int and 1 <= weight <= 1000, "weight", "1..1000", weight)


# --- health probe verdicts -----------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def parse_matcher(spec: str) -> frozenset[int]:
    """Parse an ALB success-code matcher: ``"200"``, ``"200,202"`` or ``"200-299"``."""
    codes: set[int] = set()
    for part in spec.split(","):
        match = _MATCHER_PART.fullmatch(part.strip())
        if match is None:
            raise ConfigError(f"matcher: {part.strip()!r} is not a code or range (got {spec!r})")
        low = int(match[1])
        high = int(match[2]) if match[2] else low
        if low > high or low not in _MATCHER_CODES or high not in _MATCHER_CODES:
            raise ConfigError(f"matcher: codes must be ascending within 200-499 (got {spec!r})")
        codes.update(range(low, high + 1))
    return frozenset(codes)


def probe_ok(status: int | None, matcher: str = "200") -> bool:
    """Whether a probe passed; ``None`` (timeout or connection error) never does."""
    return status is not None and status in parse_matcher(matcher)
