"""Sans-I/O core of a target-tracking autoscaler modelled on the Kubernetes HPA and
AWS target tracking (EC2 Auto Scaling / Application Auto Scaling), lab-scaled.

The caller evaluates it periodically (every ``evaluation_interval_s``) with the
number of ``ready`` replicas, the number of ``warming`` replicas (started or
ready for less than ``warmup_s``; see ``Policy.split_warm``) and ``metric``, the
per-replica average of a load metric (in-flight requests, req/s, ...) over the
ready replicas only. There is no I/O and no clock: ``now`` (monotonic seconds)
is an argument, and the result is a ``Decision`` whose ``desired`` replica count
the adapter converges to.

Formula (HPA's replica calculator)::

    ratio          = metric / target
    recommendation = current                      if metric is missing or |ratio - 1| <= tolerance
                   = ceil(ready * metric / target) otherwise

``ready * metric / target`` is HPA's ``ceil(current * metric / target)`` with the
warming replicas counted at 0 load on scale-up, and AWS's rule that warming
instances neither feed the aggregated metric nor count as capacity for a second
scale-out: the recommendation is compared with ``current = ready + warming``, so
replicas already launched are not launched again. Then:

* scale-out (metric above the band) acts on this evaluation, to the clamped
  recommendation, but never more than ``scale_out_step_max`` above the capacity
  at the start of the rolling ``scale_out_period_s``;
* scale-in (metric below the band) goes to the highest clamped recommendation of
  the last ``scale_in_stabilization_s`` (HPA's downscale stabilization), and not
  while any replica is warming;
* missing data (``None``, NaN, or no ready replica) holds: it is recorded as a
  recommendation of ``current`` and never scales in;
* ``desired`` always lies in ``[min_replicas, max_replicas]``: a count outside is
  brought back at once (reasons ``below_min`` and ``above_max``), bypassing the
  rate limit and the stabilization window, as the HPA does.

Deliberate differences from HPA and AWS:

* lab-scale defaults: 30 s stabilization (HPA 300 s), 10 s warm-up (AWS falls
  back to 300 s), 1 s evaluation (HPA 15 s, AWS alarms over 1-minute datapoints);
* one metric, already averaged by the caller: no per-pod missing-metric
  assumptions, no multiple metrics or policies, no CloudWatch alarm datapoints
  (AWS's "3 of 3 minutes" / "15 of 15 minutes") - every evaluation decides;
* the scale-out limit is a flat ``scale_out_step_max`` per period (HPA's default
  is max(4 pods, +100 %) per 15 s); scale-in has no rate limit (HPA's default
  100 % per 15 s amounts to none) and no separate cooldown (the stabilization
  window replaces Application Auto Scaling's scale-in cooldown);
* scale-in also waits one full window after the first evaluation (HPA starts
  with an empty window and may scale down at once), and is blocked outright
  while replicas warm up (AWS behaviour; HPA only discounts unready pods);
* ``min_replicas`` is at least 1 (no scale to zero) and ``max_replicas`` at most 64.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from targets.checks import finite, require

__all__ = [
    "MAX_REPLICAS",
    "Autoscaler",
    "ConfigError",
    "Decision",
    "Direction",
    "Policy",
    "Reason",
]

MAX_REPLICAS: Final = 64
"""Upper bound for ``min_replicas`` and ``max_replicas``: a lab, not a fleet."""

_RAW_CAP: Final = 1_000_000.0
"""The raw recommendation saturates here, so an absurd metric cannot overflow ``ceil``."""

_EPS: Final = 1e-9
"""Float slack: (0.1 + 0.2) / 0.1 must not ceil to 4, nor 55 / 50 leave a 0.1 band."""


class ConfigError(ValueError):
    """Bad autoscaler policy; the message names the field."""


class Direction(enum.StrEnum):
    OUT = "out"
    IN = "in"
    NONE = "none"


class Reason(enum.StrEnum):
    """Why a decision's ``desired`` is what it is."""

    ABOVE_TARGET = "above_target"
    """Scale out to the recommendation (metric above the tolerance band)."""
    BELOW_TARGET = "below_target"
    """Scale in to the highest recommendation of the stabilization window."""
    WITHIN_TOLERANCE = "within_tolerance"
    """Hold: the metric is within the band, or the proportional count equals ``current``."""
    STABILIZING = "stabilizing"
    """Hold: below target, but a higher recommendation is still inside the window."""
    RATE_LIMITED = "rate_limited"
    """Scale-out capped (or held) by ``scale_out_step_max`` per ``scale_out_period_s``."""
    AT_MAX = "at_max"
    """Scale-out stopped by ``max_replicas``."""
    AT_MIN = "at_min"
    """Scale-in stopped by ``min_replicas``."""
    MISSING_METRICS = "missing_metrics"
    """Hold: no usable metric (None, NaN or no ready replica)."""
    WARMING = "warming"
    """Hold: warming replicas already cover the scale-out, or block a scale-in."""
    BELOW_MIN = "below_min"
    """``current`` was below ``min_replicas``: raised to it at once."""
    ABOVE_MAX = "above_max"
    """``current`` was above ``max_replicas``: cut to it at once."""


def _require(ok: bool, name: str, rule: str, got: object) -> None:
    require(ok, name, rule, got, ConfigError)


def _count(value: object) -> bool:
    return type(value) is int and 1 <= value <= MAX_REPLICAS


@dataclass(frozen=True, slots=True)
class Policy:
    """Target-tracking settings; ``target`` is the per-replica metric to hold."""

    target: float
    min_replicas: int = 1
    max_replicas: int = 10
    tolerance: float = 0.1
    scale_out_step_max: int = 4
    scale_out_period_s: float = 15.0
    scale_in_stabilization_s: float = 30.0  # HPA default is 300 s; lab scale
    warmup_s: float = 10.0  # AWS falls back to 300 s; lab scale
    evaluation_interval_s: float = 1.0  # HPA sync period is 15 s; lab scale

    def __post_init__(self) -> None:
        _require(finite(self.target) and self.target > 0, "target", "> 0", self.target)
        bounds = f"1..{MAX_REPLICAS}"
        _require(_count(self.min_replicas), "min_replicas", bounds, self.min_replicas)
        _require(_count(self.max_replicas), "max_replicas", bounds, self.max_replicas)
        _require(
            self.max_replicas >= self.min_replicas,
            "max_replicas",
            f">= min_replicas ({self.min_replicas})",
            self.max_replicas,
        )
        tol = self.tolerance
        _require(finite(tol) and 0 <= tol < 1, "tolerance", ">= 0 and < 1", tol)
        step = self.scale_out_step_max
        _require(_count(step), "scale_out_step_max", bounds, step)
        period = self.scale_out_period_s
        _require(
            finite(period) and 0 < period <= 1800, "scale_out_period_s", "> 0 and <= 1800", period
        )
        window = self.scale_in_stabilization_s
        _require(
            finite(window) and 0 <= window <= 3600, "scale_in_stabilization_s", "0..3600", window
        )
        _require(
            finite(self.warmup_s) and 0 <= self.warmup_s <= 3600,
            "warmup_s",
            "0..3600",
            self.warmup_s,
        )
        interval = self.evaluation_interval_s
        _require(
            finite(interval) and 0 < interval <= period,
            "evaluation_interval_s",
            f"> 0 and <= scale_out_period_s ({period})",
            interval,
        )

    def clamp(self, replicas: int) -> int:
        """``replicas`` brought into ``[min_replicas, max_replicas]``."""
        return min(max(replicas, self.min_replicas), self.max_replicas)

    def split_warm(self, ready_since: Iterable[float | None], now: float) -> tuple[int, int]:
        """``(ready, warming)`` for replicas that became ready at the given times.

        A replica counts as ready once it has been ready for ``warmup_s``; one not
        ready yet (``None``) or ready for less is warming.
        """
        ready = warming = 0
        for since in ready_since:
            if since is not None and now - since >= self.warmup_s:
                ready += 1
            else:
                warming += 1
        return ready, warming


@dataclass(frozen=True, slots=True)
class Decision:
    """One evaluation's outcome; the adapter converges the replica count to ``desired``.

    ``recommendation`` is the replica calculator's raw output, before min/max,
    the rate limit and stabilization: ``current`` when the metric is missing or
    within tolerance, else ``ceil(ready * metric / target)``.
    """

    desired: int
    current: int
    direction: Direction
    reason: Reason
    recommendation: int


def _missing(metric: float | None) -> bool:
    return metric is None or math.isnan(metric)


class Autoscaler:
    """Evaluates a ``Policy`` against observed replicas and load, one ``now`` at a time."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._started_at: float | None = None
        self._last_now: float | None = None
        # (time, clamped recommendation), values strictly decreasing from the left: a sliding
        # maximum over the stabilization window, at most max_replicas entries.
        self._window: deque[tuple[float, int]] = deque()
        # (time, from, to) of scale-outs in the current period, `to` strictly increasing.
        self._scale_outs: deque[tuple[float, int, int]] = deque()

    def evaluate(self, now: float, ready: int, warming: int, metric: float | None) -> Decision:
        """Decide the desired replica count from ``ready`` + ``warming`` replicas and ``metric``."""
        self._check(now, ready, warming, metric)
        policy = self.policy
        if self._started_at is None:
            self._started_at = now
        self._last_now = now
        self._prune(now)

        current = ready + warming
        ratio = None if metric is None or _missing(metric) or ready == 0 else metric / policy.target
        in_band = ratio is not None and abs(ratio - 1.0) <= policy.tolerance + _EPS
        if ratio is None or in_band:
            recommendation = current
        else:
            recommendation = math.ceil(min(ready * ratio, _RAW_CAP) - _EPS)
        self._remember(now, policy.clamp(recommendation))

        if ratio is None:
            desired, reason = current, Reason.MISSING_METRICS
        elif in_band:
            desired, reason = current, Reason.WITHIN_TOLERANCE
        elif ratio > 1.0:
            desired, reason = self._scale_out(current, warming, recommendation)
        else:
            desired, reason = self._scale_in(now, current, warming, recommendation)

        if current < policy.min_replicas and desired < policy.min_replicas:
            desired, reason = policy.min_replicas, Reason.BELOW_MIN
        elif current > policy.max_replicas and desired > policy.max_replicas:
            desired, reason = policy.max_replicas, Reason.ABOVE_MAX
        if desired > current:
            self._note_scale_out(now, current, desired)

        if desired > current:
            direction = Direction.OUT
        elif desired < current:
            direction = Direction.IN
        else:
            direction = Direction.NONE
        return Decision(desired, current, direction, reason, recommendation)

    # --- internals -------------------------------------------------------------------------------

    def _check(self, now: float, ready: int, warming: int, metric: float | None) -> None:
        last = self._last_now
        require(finite(now), "now", "finite", now, ValueError)
        if last is not None:
            require(now >= last, "now", f">= the previous evaluation ({last!r})", now, ValueError)
        for name, value in (("ready", ready), ("warming", warming)):
            require(type(value) is int and value >= 0, name, "an int >= 0", value, ValueError)
        if not _missing(metric):
            ok = metric is not None and finite(metric) and metric >= 0
            require(ok, "metric", "None, NaN or a finite number >= 0", metric, ValueError)

    def _prune(self, now: float) -> None:
        window = self.policy.scale_in_stabilization_s
        while self._window and now - self._window[0][0] >= window:
            self._window.popleft()
        period = self.policy.scale_out_period_s
        while self._scale_outs and now - self._scale_outs[0][0] >= period:
            self._scale_outs.popleft()

    def _remember(self, now: float, clamped: int) -> None:
        while self._window and self._window[-1][1] <= clamped:
            self._window.pop()
        self._window.append((now, clamped))

    def _note_scale_out(self, now: float, current: int, desired: int) -> None:
        # Re-issuing a desired count already granted in this period (an adapter that lags) is
        # not a new scale-out, so it does not move the period on.
        if not self._scale_outs or desired > self._scale_outs[-1][2]:
            self._scale_outs.append((now, current, desired))

    def _scale_out(self, current: int, warming: int, recommendation: int) -> tuple[int, Reason]:
        policy = self.policy
        want = policy.clamp(recommendation)
        if current >= policy.max_replicas:
            return current, Reason.AT_MAX
        if want <= current:
            # Replicas still warming up already cover the demand the ready ones report.
            return current, Reason.WARMING if warming else Reason.WITHIN_TOLERANCE
        period_start = self._scale_outs[0][1] if self._scale_outs else current
        cap = period_start + policy.scale_out_step_max
        if want > cap:
            return max(cap, current), Reason.RATE_LIMITED
        return want, Reason.AT_MAX if recommendation > want else Reason.ABOVE_TARGET

    def _scale_in(
        self, now: float, current: int, warming: int, recommendation: int
    ) -> tuple[int, Reason]:
        policy = self.policy
        if recommendation >= current:
            # ceil() rounds the proportional count back up to current: nothing to remove.
            return current, Reason.WITHIN_TOLERANCE
        if current <= policy.min_replicas:
            return current, Reason.AT_MIN
        if warming:
            return current, Reason.WARMING
        highest = self._window[0][1]
        started_at = self._started_at if self._started_at is not None else now
        if highest >= current or now - started_at < policy.scale_in_stabilization_s:
            return current, Reason.STABILIZING
        at_min = highest == policy.min_replicas and recommendation < highest
        return highest, Reason.AT_MIN if at_min else Reason.BELOW_TARGET
