"""The SLO engine on canned series: threshold, always, recovery, run validity, exit codes."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from harness.scenario import Slo
from harness.slo import (
    Event,
    Run,
    Series,
    Verdict,
    aggregate,
    check_run,
    evaluate,
    exit_code,
    outcome,
)

SLO = TypeAdapter(Slo)
NAN = math.nan
KILL = Event(10, "kill", "orders", ("orders-2",))


def slo(**fields: Any) -> Slo:
    return SLO.validate_python({"name": "s", "expr": "q", **fields})


def check(
    fields: dict[str, Any],
    series: Series,
    passed: bool,
    measured: float | None,
    events: tuple[Event, ...] = (),
    duration_s: float = 30,
) -> Verdict:
    """Evaluate one SLO over `series` and check its pass/fail and measured value."""
    (verdict,) = evaluate([slo(**fields)], {"q": series}, events, Run(duration_s))
    assert (verdict.passed, verdict.measured) == (passed, measured), verdict
    return verdict


def ramp(values: list[float], start: float = 0) -> Series:
    """One point per second from `start`."""
    return [(start + i, v) for i, v in enumerate(values)]


# -- threshold -------------------------------------------------------------------------------


def test_threshold_max_by_default() -> None:
    """A threshold SLO judges the largest value over the run by default."""
    check({"kind": "threshold", "max": 5}, ramp([1, 7, 2]), False, 7)
    check({"kind": "threshold", "max": 7}, ramp([1, 7, 2]), True, 7)


@pytest.mark.parametrize(
    ("agg", "measured"), [("avg", 3.0), ("last", 2.0), ("min", 0.0), ("max", 7.0)]
)
def test_threshold_aggregations(agg: str, measured: float) -> None:
    """avg, last, min and max of the points."""
    check({"kind": "threshold", "max": 100, "agg": agg}, ramp([3, 0, 7, 2]), True, measured)


def test_threshold_increase_of_a_counter() -> None:
    """increase is last minus first, a drop counting as a counter reset."""
    check({"kind": "threshold", "max": 3, "agg": "increase"}, ramp([5, 5, 7, 8]), True, 3)
    check({"kind": "threshold", "max": 3, "agg": "increase"}, ramp([5, 9, 2, 4]), False, 8)


def test_threshold_seconds_nonzero_counts_downtime() -> None:
    """seconds_nonzero counts the 1 s points where the series is not 0 (a failure rate)."""
    check({"kind": "threshold", "min": 1, "agg": "seconds_nonzero"}, ramp([0, 4, 9, 0, 2]), True, 3)
    check({"kind": "threshold", "max": 0, "agg": "seconds_nonzero"}, ramp([0, 0, 0]), True, 0)


def test_threshold_window() -> None:
    """Only points inside the window (bounds included) count."""
    series = ramp([9, 9, 1, 2, 3, 9, 9])
    check({"kind": "threshold", "max": 3, "window": {"from_s": 2, "to_s": 4}}, series, True, 3)


def test_threshold_min_bound() -> None:
    """With `min`, the aggregate must be at least the limit."""
    verdict = check({"kind": "threshold", "min": 1, "agg": "max"}, ramp([0, 0, 1]), True, 1)
    assert verdict.op == ">="
    check({"kind": "threshold", "min": 1, "agg": "max"}, ramp([0, 0, 0]), False, 0)


def test_threshold_ignores_nan() -> None:
    """NaN points (a quantile without traffic) do not count."""
    check({"kind": "threshold", "max": 1, "agg": "avg"}, ramp([NAN, 1, NAN, 0]), True, 0.5)


def test_threshold_without_data_fails() -> None:
    """No point in the window: failed, measured None, "no data"."""
    verdict = check({"kind": "threshold", "max": 1}, ramp([NAN, NAN]), False, None)
    assert verdict.detail.startswith("no data")


def test_expression_missing_from_the_data() -> None:
    """An expression the runner did not query has no data."""
    (verdict,) = evaluate([slo(kind="always", max=1, expr="other")], {}, [], Run(30))
    assert not verdict.passed
    assert verdict.measured is None
    assert verdict.expr == "other"


def test_points_outside_the_run_are_ignored() -> None:
    """A query that overshoots the run does not count the extra points."""
    check({"kind": "threshold", "max": 1}, [(-1, 9), (0, 1), (30, 1), (31, 9)], True, 1)


# -- always ----------------------------------------------------------------------------------


def test_always_passes_when_every_point_is_within() -> None:
    """An always SLO passes when no point is above max; measured is the worst point."""
    check({"kind": "always", "max": 0.5}, ramp([0.1, 0.5, 0.2]), True, 0.5)


def test_always_fails_on_one_point_above() -> None:
    """One point above max fails it; the detail says when first and how bad."""
    verdict = check({"kind": "always", "max": 0.5}, ramp([0.1, 0.9, 0.6, 0.2]), False, 0.9)
    assert "at 2 of 4 points, first at 1 s; worst 0.9 at 1 s" in verdict.detail


def test_always_min_bound() -> None:
    """With `min`, every point must be at least the limit; the worst is the lowest."""
    check({"kind": "always", "min": 2}, ramp([3, 2, 4]), True, 2)
    check({"kind": "always", "min": 2}, ramp([3, 1, 4]), False, 1)


def test_always_ignores_nan_but_fails_on_no_data() -> None:
    """NaN points are skipped; an empty series fails as no data."""
    check({"kind": "always", "max": 1}, ramp([NAN, 1, NAN]), True, 1)
    verdict = check({"kind": "always", "max": 1}, [], False, None)
    assert verdict.detail == "no data from 0 s to 30 s"


def test_always_window() -> None:
    """A window limits where the bound must hold."""
    series = ramp([9, 9, 0, 0, 0])
    check({"kind": "always", "max": 1, "window": {"from_s": 2, "to_s": 4}}, series, True, 0)


values = st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40)


@given(values=values, limit=st.floats(-1e6, 1e6))
def test_always_passes_iff_the_max_is_within(values: list[float], limit: float) -> None:
    """An always SLO with max passes exactly when max(series) <= max."""
    (verdict,) = evaluate([slo(kind="always", max=limit)], {"q": ramp(values)}, [], Run(60))
    assert verdict.passed == (max(values) <= limit)
    assert verdict.measured == max(values)


@given(values=values, limit=st.floats(-1e6, 1e6))
def test_threshold_max_agrees_with_always(values: list[float], limit: float) -> None:
    """A threshold SLO (agg max) and an always SLO with the same max agree."""
    slos = [slo(kind="always", max=limit), slo(name="t", kind="threshold", max=limit)]
    always, threshold = evaluate(slos, {"q": ramp(values)}, [], Run(60))
    assert (always.passed, always.measured) == (threshold.passed, threshold.measured)


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=40))
def test_increase_of_a_growing_counter(steps: list[float]) -> None:
    """For a counter that only grows, increase is last minus first."""
    counter = [sum(steps[: i + 1]) for i in range(len(steps))]
    assert aggregate("increase", counter) == pytest.approx(counter[-1] - counter[0])


# -- recovery --------------------------------------------------------------------------------


RECOVERY = {"kind": "recovery", "max": 0.5, "within_s": 5}


def test_recovery_never_left_the_bound() -> None:
    """A series that stays within the bound recovers in 0 s."""
    check(RECOVERY, ramp([0.1] * 31), True, 0, (KILL,))


def test_recovery_within_time() -> None:
    """Back under max 3 s after the event, and still there at event + within_s."""
    series = ramp([0.1] * 10 + [0.9, 0.9, 0.9] + [0.1] * 18)
    verdict = check(RECOVERY, series, True, 3, (KILL,))
    assert verdict.limit == 5
    assert verdict.detail == "kill orders at 10 s: <= 0.5 after 3 s"


def test_recovery_too_slow() -> None:
    """Back only 8 s after the event: failed, measured says when it did recover."""
    series = ramp([0.1] * 10 + [0.9] * 8 + [0.1] * 13)
    verdict = check(RECOVERY, series, False, 8, (KILL,))
    assert "only after 8 s" in verdict.detail


def test_recovery_relapse_inside_the_window() -> None:
    """Dipping under max and going back above before within_s is not a recovery."""
    series = ramp([0.1] * 10 + [0.9, 0.1, 0.1, 0.9, 0.1, 0.1] + [0.1] * 15)
    check(RECOVERY, series, True, 4, (KILL,))


def test_recovery_never() -> None:
    """Never back: failed, measured is the time from the event to the end of the run."""
    series = ramp([0.1] * 10 + [0.9] * 21)
    verdict = check(RECOVERY, series, False, 20, (KILL,))
    assert "not <= 0.5 by the end of the run" in verdict.detail


def test_recovery_worst_of_several_events() -> None:
    """measured is the slowest recovery; one slow event fails the SLO."""
    series = ramp([0.1] * 5 + [0.9] * 2 + [0.1] * 8 + [0.9] * 7 + [0.1] * 9)
    events = (Event(5, "kill", "orders"), Event(15, "add", "orders"))
    check(RECOVERY, series, False, 7, events)


def test_recovery_after_selected_actions() -> None:
    """`after` limits the events the SLO recovers from."""
    series = ramp([0.1] * 5 + [0.9] * 25)  # degraded on purpose after the latency event
    events = (Event(5, "latency", "orders"), Event(20, "clear", "orders"))
    check({**RECOVERY, "after": ["clear"]}, series, False, 10, events)
    series = ramp([0.1] * 5 + [0.9] * 17 + [0.1] * 9)
    check({**RECOVERY, "after": ["clear"]}, series, True, 2, events)


def test_recovery_without_events_fails() -> None:
    """No event to recover from: failed, "no ... event"."""
    verdict = check({**RECOVERY, "after": ["add"]}, ramp([0.1] * 31), False, None, (KILL,))
    assert verdict.detail == "no add event to recover from"


def test_recovery_without_data_after_the_event() -> None:
    """No point between the event and event + within_s: failed."""
    series = ramp([0.1] * 10) + ramp([NAN] * 21, start=10)
    verdict = check(RECOVERY, series, False, None, (KILL,))
    assert "no data until 15 s" in verdict.detail


def test_recovery_min_bound() -> None:
    """A min bound: throughput back above the limit."""
    series = ramp([100] * 10 + [20, 40, 90, 100] + [100] * 17)
    check({**RECOVERY, "max": None, "min": 90}, series, True, 2, (KILL,))


def test_recovery_event_between_points() -> None:
    """An event at a fractional time measures from the event, not from the next point."""
    series = ramp([0.1] * 10 + [0.9, 0.9] + [0.1] * 19)
    check(RECOVERY, series, True, 1.5, (Event(10.5, "kill", "orders"),))


@given(st.lists(st.floats(0, 0.5), min_size=31, max_size=31))
def test_recovery_is_zero_for_a_series_within_the_bound(values: list[float]) -> None:
    """Whatever the values, a series never above max recovers in 0 s."""
    check(RECOVERY, ramp(values), True, 0, (KILL,))


# -- run validity ----------------------------------------------------------------------------

UP = {"lb": ramp([1, 1, 1])}


def test_a_good_run_has_no_problems() -> None:
    """Locust below 90 % CPU, every worker, every target up: no problem."""
    assert check_run(ramp([50, 95, 95, 95, 95, 60]), 2, ramp([2, 2, 2]), UP) == []


def test_locust_saturated() -> None:
    """Locust at or above 90 % CPU for more than 3 s makes the run invalid."""
    (problem,) = check_run(ramp([50, 90, 95, 99, 97, 96, 40]), 0, [], UP)
    assert "at or above 90% for 4 s (1 s to 5 s)" in problem


def test_locust_cpu_missing() -> None:
    """Without Locust CPU data the run cannot be trusted."""
    (problem,) = check_run([], 0, [], UP)
    assert problem.startswith("no data on Locust's CPU")


def test_worker_lost() -> None:
    """Fewer workers than expected after all had connected: a worker was lost."""
    (problem,) = check_run(ramp([10]), 2, ramp([0, 1, 2, 2, 1, 2]), UP)
    assert problem == "a Locust worker was lost: 1 of 2 connected at 4 s"


def test_workers_connecting_at_start_are_not_lost() -> None:
    """Workers joining while the master starts are not a loss; never all joining is."""
    assert check_run(ramp([10]), 2, ramp([0, 1, 2, 2]), UP) == []
    (problem,) = check_run(ramp([10]), 2, ramp([0, 1, 1]), UP)
    assert problem == "only 1 of 2 Locust workers ever connected"


def test_workers_ignored_in_one_process() -> None:
    """With no workers expected, the worker series is not looked at."""
    assert check_run(ramp([10]), 0, [], UP) == []


def test_scrape_target_never_up() -> None:
    """A target never up means its metrics, and the SLOs on them, are missing."""
    problems = check_run(ramp([10]), 0, [], {"orders-1": ramp([0, 0]), "lb": [], "x": ramp([1])})
    assert problems == [
        "scrape target lb was never up: its metrics are missing",
        "scrape target orders-1 was never up: its metrics are missing",
    ]


def test_exit_codes() -> None:
    """0 all passed, 1 an SLO violated, 2 the run is invalid (whatever the SLOs say)."""
    ok = Verdict("a", "always", True, 1, 1, "")
    bad = Verdict("b", "always", False, 2, 1, "")
    assert (exit_code([ok], []), outcome([ok], [])) == (0, "pass")
    assert (exit_code([ok, bad], []), outcome([ok, bad], [])) == (1, "fail")
    assert (exit_code([ok], ["x"]), outcome([bad], ["x"])) == (2, "invalid")
    assert exit_code([], []) == 0
