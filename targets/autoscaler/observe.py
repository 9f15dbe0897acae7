"""Sans-I/O: from samples of the load balancer's target view to the autoscaler's inputs.

The adapter samples `GET /targets` of the service's load balancer several times per evaluation
and feeds each sample here with the time it was taken. `LoadWindow` keeps, per target:

* since when it has been healthy without interruption (`healthy_since`), which
  `Policy.split_warm` turns into ready and warming replicas; an unhealthy or missing sample
  restarts the clock, so a replica that flaps warms up again;
* the samples of the current evaluation interval, from which `per_replica` computes the load
  metric averaged over the given (ready) replicas only:

  - ``in_flight``: requests outstanding at each replica, averaged over the replicas and over the
    samples of the interval (HPA's pods metric; a time average, so a burst between two samples
    counts for what it lasted, not for its peak);
  - ``request_rate``: requests answered per second per replica, from the change of each
    replica's answered-requests counter between the first and last sample (AWS's
    ALBRequestCountPerTarget, per second instead of per minute).

  ``None`` (missing) when no ready replica appears in the samples, or, for a rate, fewer than
  two samples span the interval: the core then holds and never scales in.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Metric = Literal["in_flight", "request_rate"]
METRICS: tuple[Metric, ...] = ("in_flight", "request_rate")


@dataclass(frozen=True, slots=True)
class TargetSample:
    """One target as the load balancer reported it."""

    id: str
    healthy: bool
    in_flight: int
    requests: int  # answered so far: a counter

    @classmethod
    def of(cls, view: Mapping[str, object]) -> TargetSample:
        """From one entry of the load balancer's `GET /targets` answer."""
        in_flight, requests = view.get("in_flight", 0), view.get("requests", 0)
        return cls(
            str(view["id"]),
            view.get("state") == "healthy",
            in_flight if isinstance(in_flight, int) else 0,
            requests if isinstance(requests, int) else 0,
        )


class LoadWindow:
    """Samples of one evaluation interval, and how long each target has been healthy."""

    def __init__(self, metric: Metric) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric: must be one of {', '.join(METRICS)}, got {metric!r}")
        self.metric = metric
        self.healthy_since: dict[str, float] = {}
        self._samples: list[tuple[float, dict[str, TargetSample]]] = []

    def add(self, now: float, targets: Iterable[TargetSample]) -> None:
        """One sample of every target, taken at `now`."""
        healthy = {t.id: t for t in targets if t.healthy}
        for target_id in list(self.healthy_since):
            if target_id not in healthy:
                del self.healthy_since[target_id]
        for target_id in healthy:
            self.healthy_since.setdefault(target_id, now)
        self._samples.append((now, healthy))

    def per_replica(self, replicas: Collection[str]) -> float | None:
        """The metric averaged over `replicas` for the samples since the last call (then reset).

        The last sample is kept as the start of the next interval, so a rate has no gap.
        """
        samples, self._samples = self._samples, self._samples[-1:]
        if self.metric == "in_flight":
            return _mean_in_flight(samples, replicas)
        return _mean_rate(samples, replicas)


def _mean_in_flight(
    samples: list[tuple[float, dict[str, TargetSample]]], replicas: Collection[str]
) -> float | None:
    means = []
    for _at, healthy in samples:
        seen = [healthy[r].in_flight for r in replicas if r in healthy]
        if seen:
            means.append(sum(seen) / len(seen))
    return sum(means) / len(means) if means else None


def _mean_rate(
    samples: list[tuple[float, dict[str, TargetSample]]], replicas: Collection[str]
) -> float | None:
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return None
    (first_at, first), (last_at, last) = samples[0], samples[-1]
    rates = [
        max(0, last[r].requests - first[r].requests) / (last_at - first_at)
        for r in replicas
        if r in first and r in last
    ]
    return sum(rates) / len(rates) if rates else None
