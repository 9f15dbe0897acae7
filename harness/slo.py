"""The SLO engine: verdicts from series the runner already queried. Pure: no I/O, no clock.

Time is run time: seconds since the start of the run (t = 0 is the start of the first load
stage). The run ends at the final scrape (`Run.duration_s`): the first scrape after the load
generator stopped that already showed all its series. Each SLO's `expr` is judged on the
run's grid (`Run.grid`): one point a second counted back from that end, so the last point
holds every counter's final value. An expression should give one series (aggregate with
`sum`/`max`); the runner hands over the worst value at each point when it gives several.

No data is never a number. At each grid point in the span an SLO looks at, the expression has
a value (judged), is NaN or infinite (undefined: a quantile or ratio without traffic; skipped),
or has none. A point with none is skipped when a scrape target the expression reads was down
then (killed or paused by chaos: `down`), read as `absent_means` when the SLO declares what
absence means (a failure counter that appears only on the first failure, say), and otherwise
missing. One missing point, or no judged point at all, makes the verdict "no data" and the
run invalid (exit 2): an SLO cannot pass, nor fail, on data that is not there. Every verdict
counts its judged, missing, skipped and absent points.

Kinds (bounds are `max`, at most, or `min`, at least):

- threshold: one number for the run or its `window`: `agg` of the points there (`max`, `min`,
  `avg`, `last`, `increase`: last minus first of a counter, counter resets handled as
  Prometheus does, or `seconds_nonzero`: how many seconds the series was not 0, one per 1 s
  point - downtime, from a failure rate). `measured` is that number.
- always: every point in the window (default: the run) within the bound; `measured` is the
  worst point.
- recovery: after each chaos event (of the actions in `after`, default every event) at t, the
  series is within the bound from some time r <= t + within_s through t + within_s (the end of
  the run if sooner). The recovery time is r - t (0 when it never left the bound); `measured`
  is the worst over the events, and `limit` is `within_s`. The expression's own smoothing
  counts: a `[5s]` rate lags a change by up to 5 s.

A violated SLO is a `Verdict` with `passed=False`, never an exception. `check_run` says whether
the run itself can be trusted (exit code 2 when not): the load generator saturated, a Locust
worker lost, a scrape target never up; `no_data_problems` adds the SLOs without data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from harness.scenario import AlwaysSlo, RecoverySlo, Slo, ThresholdSlo

Series = list[tuple[float, float]]  # (run time in seconds, value), oldest first
Outcome = Literal["pass", "fail", "invalid"]

EXIT_PASS, EXIT_VIOLATED, EXIT_INVALID = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Event:
    """A chaos action as it happened, at run time `t`."""

    t: float
    action: str
    service: str
    instances: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Run:
    """The run an SLO judges: run time [0, duration_s], duration_s at the final scrape."""

    duration_s: float

    def grid(self) -> list[float]:
        """The judged run times, oldest first: one a second back from the end, the end last."""
        steps = math.floor(self.duration_s + 1e-6)
        return [grid_time(self.duration_s - k) for k in range(steps, -1, -1)]


def grid_time(t: float) -> float:
    """A run time as the grid keys it (to the millisecond, as Prometheus stores time)."""
    return round(t, 3)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One SLO's result: `measured` (None without data) against `limit`, `op` the bound's sense."""

    name: str
    kind: str
    passed: bool
    measured: float | None
    limit: float
    detail: str
    op: str = "<="
    expr: str = ""
    points: int = 0
    """Grid points judged (absent ones read as `absent_means` included)."""
    missing: int = 0
    """Grid points without a value while every source was up: any makes the run invalid."""
    skipped: int = 0
    """Grid points not judged: undefined (NaN) values, and no value while a source was down."""
    absent: int = 0
    """Grid points without a value read as the SLO's `absent_means`."""
    no_data: bool = False
    """Nothing to judge, or points missing: the run is invalid, whatever `passed` says."""

    @property
    def outcome(self) -> str:
        return "no data" if self.no_data else "pass" if self.passed else "fail"


@dataclass(frozen=True, slots=True)
class _Points:
    """One span of the grid, sorted out: the points to judge and the counts of the others."""

    judged: Series
    missing: list[float]
    skipped: int
    absent: int

    def counts(self) -> dict[str, int]:
        return {
            "points": len(self.judged),
            "missing": len(self.missing),
            "skipped": self.skipped,
            "absent": self.absent,
        }


class _Judge:
    """One SLO's series on the run's grid."""

    def __init__(self, slo: Slo, series: Series, down: Iterable[float], run: Run) -> None:
        self.slo = slo
        self.values = {grid_time(t): v for t, v in series}
        self.down = {grid_time(t) for t in down}
        self.grid = run.grid()

    def span(self, start: float, end: float) -> _Points:
        judged: Series = []
        missing: list[float] = []
        skipped = absent = 0
        start, end = grid_time(start), grid_time(end)
        for t in self.grid:
            if not start <= t <= end:
                continue
            value = self.values.get(t)
            if value is None:
                if t in self.down:
                    skipped += 1
                elif self.slo.absent_means is not None:
                    judged.append((t, self.slo.absent_means))
                    absent += 1
                else:
                    missing.append(t)
            elif math.isfinite(value):
                judged.append((t, value))
            else:
                skipped += 1
        return _Points(judged, missing, skipped, absent)


def evaluate(
    slos: Sequence[Slo],
    data: Mapping[str, Series],
    events: Sequence[Event],
    run: Run,
    down: Mapping[str, Sequence[float]] | None = None,
) -> list[Verdict]:
    """A verdict per SLO, in order. `data` holds each expression's series on `run.grid()` (an
    expression missing from it has no data); `down`, the grid times at which a scrape target
    the expression reads was down."""
    verdicts: list[Verdict] = []
    for slo in slos:
        judge = _Judge(slo, data.get(slo.expr, []), (down or {}).get(slo.expr, ()), run)
        if isinstance(slo, ThresholdSlo):
            verdicts.append(_threshold(slo, judge, run))
        elif isinstance(slo, AlwaysSlo):
            verdicts.append(_always(slo, judge, run))
        else:
            verdicts.append(_recovery(slo, judge, events, run))
    return verdicts


def no_data_problems(verdicts: Sequence[Verdict]) -> list[str]:
    """Why the run is invalid because of its SLOs' data: one line per SLO without data."""
    return [f"SLO {v.name}: {v.detail}" for v in verdicts if v.no_data]


def _points(series: Series, start: float, end: float) -> Series:
    return [(t, v) for t, v in series if start <= t <= end and math.isfinite(v)]


def _span(slo: ThresholdSlo | AlwaysSlo, run: Run) -> tuple[float, float]:
    if slo.window is None:
        return 0.0, run.duration_s
    return slo.window.from_s, min(slo.window.to_s, run.duration_s)


def _verdict(
    slo: Slo,
    passed: bool,
    measured: float | None,
    detail: str,
    counts: Mapping[str, int],
    *,
    limit: float | None = None,
    no_data: bool = False,
) -> Verdict:
    return Verdict(
        slo.name,
        slo.kind,
        passed and not no_data,
        measured,
        slo.limit if limit is None else limit,
        detail,
        "<=" if limit is not None else slo.op,
        slo.expr,
        no_data=no_data,
        **counts,
    )


def _lack(points: _Points, start: float, end: float) -> str | None:
    """Why `points` cannot be judged ("no data ..."), or None when they can."""
    if points.missing:
        return (
            f"no data at {len(points.missing)} of {len(points.missing) + len(points.judged)}"
            f" points ({_ranges(points.missing)}) while its sources were up"
        )
    if not points.judged:
        why = f", {points.skipped} points undefined or with a source down" if points.skipped else ""
        return f"no data from {num(start)} s to {num(end)} s{why}"
    return None


def _ranges(times: Sequence[float]) -> str:
    """`3 s to 5 s, 44.2 s`: runs of consecutive grid times."""
    runs: list[tuple[float, float]] = []
    for t in times:
        if runs and t - runs[-1][1] <= 1.001:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return ", ".join(f"{num(a)} s" if a == b else f"{num(a)} s to {num(b)} s" for a, b in runs)


def _extras(points: _Points) -> str:
    notes = []
    if points.skipped:
        notes.append(f"{points.skipped} skipped (undefined, or a source down)")
    if points.absent:
        notes.append(f"{points.absent} absent read as absent_means")
    return f" ({'; '.join(notes)})" if notes else ""


def _threshold(slo: ThresholdSlo, judge: _Judge, run: Run) -> Verdict:
    start, end = _span(slo, run)
    points = judge.span(start, end)
    if (lack := _lack(points, start, end)) is not None:
        return _verdict(slo, False, None, lack, points.counts(), no_data=True)
    value = aggregate(slo.agg, [v for _, v in points.judged])
    detail = (
        f"{slo.agg} from {num(start)} s to {num(end)} s over {len(points.judged)} points"
        + _extras(points)
    )
    return _verdict(slo, slo.ok(value), value, detail, points.counts())


def aggregate(agg: str, values: Sequence[float]) -> float:
    """`agg` of `values` (not empty); `increase` treats a drop as a counter reset."""
    if agg == "max":
        return max(values)
    if agg == "min":
        return min(values)
    if agg == "avg":
        return sum(values) / len(values)
    if agg == "last":
        return values[-1]
    if agg == "increase":
        return sum(b - a if b >= a else b for a, b in itertools.pairwise(values))
    if agg == "seconds_nonzero":
        return float(sum(1 for v in values if v != 0))  # the runner's step is 1 s
    raise ValueError(f"unknown aggregation {agg!r}")


def _always(slo: AlwaysSlo, judge: _Judge, run: Run) -> Verdict:
    start, end = _span(slo, run)
    span = judge.span(start, end)
    if (lack := _lack(span, start, end)) is not None:
        return _verdict(slo, False, None, lack, span.counts(), no_data=True)
    points = span.judged
    worst_of = max if slo.max is not None else min
    t_worst, worst = worst_of(points, key=lambda p: p[1])
    outside = [t for t, v in points if not slo.ok(v)]
    if outside:
        detail = (
            f"outside {slo.op} {num(slo.limit)} at {len(outside)} of {len(points)} points, first"
            f" at {num(outside[0])} s; worst {num(worst)} at {num(t_worst)} s"
        )
    else:
        detail = f"worst {num(worst)} at {num(t_worst)} s over {len(points)} points"
    return _verdict(slo, not outside, worst, detail + _extras(span), span.counts())


def _recovery(slo: RecoverySlo, judge: _Judge, events: Sequence[Event], run: Run) -> Verdict:
    chosen = [e for e in events if slo.after is None or e.action in slo.after]
    bound = f"{slo.op} {num(slo.limit)}"
    whole = judge.span(0.0, run.duration_s)
    if not chosen:
        which = "/".join(slo.after) if slo.after else "chaos"
        detail = f"no {which} event to recover from"
        return _verdict(slo, False, None, detail, whole.counts(), limit=slo.within_s)
    times: list[float] = []
    notes: list[str] = []
    passed = True
    no_data = False
    for event in chosen:
        label = f"{event.action} {event.service} at {num(event.t)} s"
        horizon = min(event.t + slo.within_s, run.duration_s)
        span = judge.span(event.t, horizon)
        if (lack := _lack(span, event.t, horizon)) is not None:
            no_data = True
            notes.append(f"{label}: {lack}")
            continue
        points = span.judged
        back = _back_at(slo, points, event.t)
        if back is not None:
            times.append(back - event.t)
            notes.append(f"{label}: {bound} after {num(back - event.t)} s")
            continue
        passed = False
        later = _back_at(slo, judge.span(event.t, run.duration_s).judged, event.t)
        if later is not None:
            times.append(later - event.t)
            notes.append(f"{label}: {bound} only after {num(later - event.t)} s")
        else:
            times.append(run.duration_s - event.t)
            notes.append(f"{label}: not {bound} by the end of the run")
    measured = max(times) if times else None
    after = judge.span(min(e.t for e in chosen), run.duration_s)
    return _verdict(
        slo,
        passed,
        measured,
        "; ".join(notes) + _extras(after),
        after.counts(),
        limit=slo.within_s,
        no_data=no_data,
    )


def _back_at(slo: RecoverySlo, points: Series, since: float) -> float | None:
    """When the last stretch of points within the bound began (`since` if every point is in
    it); None when the last point is outside the bound."""
    back = None
    for i in range(len(points) - 1, -1, -1):
        if not slo.ok(points[i][1]):
            return back
        back = since if i == 0 else points[i][0]
    return back


def check_run(
    locust_cpu: Series,
    workers_expected: int,
    workers_seen: Series,
    scrape_up: Mapping[str, Series],
    *,
    cpu_limit: float = 90.0,
    cpu_grace_s: float = 3.0,
) -> list[str]:
    """Why the run cannot be trusted (empty: it can).

    `locust_cpu` is the busiest Locust process's CPU percent; `workers_seen` the number of
    connected Locust workers over the run (ignored when `workers_expected` is 0); `scrape_up`
    Prometheus's `up` per scrape target. A generator at or above `cpu_limit` for more than
    `cpu_grace_s` seconds in a row set the pace itself.
    """
    problems: list[str] = []
    cpu = _points(locust_cpu, -math.inf, math.inf)
    if not cpu:
        problems.append("no data on Locust's CPU: cannot tell whether the load generator kept up")
    else:
        start, end = _longest(cpu, lambda v: v >= cpu_limit)
        if end - start > cpu_grace_s:
            problems.append(
                f"Locust's CPU was at or above {num(cpu_limit)}% for {num(end - start)} s"
                f" ({num(start)} s to {num(end)} s): the load generator, not the system under"
                " test, set the pace (add workers)"
            )
    if workers_expected > 0:
        seen = _points(workers_seen, -math.inf, math.inf)
        if not seen:
            problems.append(f"no data on Locust workers ({workers_expected} expected)")
        else:
            # Workers connect while the master starts: only a drop after all were in counts.
            full = next((i for i, (_, v) in enumerate(seen) if v >= workers_expected), None)
            if full is None:
                most = max(v for _, v in seen)
                problems.append(
                    f"only {num(most)} of {workers_expected} Locust workers ever connected"
                )
            else:
                t_low, low = min(seen[full:], key=lambda p: p[1])
                if low < workers_expected:
                    problems.append(
                        f"a Locust worker was lost: {num(low)} of {workers_expected} connected"
                        f" at {num(t_low)} s"
                    )
    for target, series in sorted(scrape_up.items()):
        if not any(v >= 1 for _, v in _points(series, -math.inf, math.inf)):
            problems.append(f"scrape target {target} was never up: its metrics are missing")
    return problems


def _longest(points: Series, bad: Callable[[float], bool]) -> tuple[float, float]:
    """(first, last) run time of the longest stretch of consecutive points where `bad` holds."""
    best = (0.0, 0.0)
    start: float | None = None
    for t, v in points:
        if bad(v):
            start = t if start is None else start
            if t - start > best[1] - best[0]:
                best = (start, t)
        else:
            start = None
    return best


def exit_code(verdicts: Sequence[Verdict], problems: Sequence[str]) -> int:
    """0 every SLO passed, 1 an SLO was violated, 2 the run is invalid (a problem, or an SLO
    without data)."""
    if problems or any(v.no_data for v in verdicts):
        return EXIT_INVALID
    return EXIT_VIOLATED if any(not v.passed for v in verdicts) else EXIT_PASS


def outcome(verdicts: Sequence[Verdict], problems: Sequence[str]) -> Outcome:
    """The exit code as a word."""
    code = exit_code(verdicts, problems)
    return "invalid" if code == EXIT_INVALID else "fail" if code == EXIT_VIOLATED else "pass"


def num(value: float) -> str:
    """A number for people: 4 significant digits, no trailing zeros."""
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"
