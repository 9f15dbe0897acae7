"""The SLO engine on canned series: threshold, always, recovery, no data, run validity, exit
codes. Series are on the run's grid: one point a second, the last at the end of the run."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from harness.scenario import Slo
from harness.slo import (
    EXIT_INVALID,
    EXIT_PASS,
    EXIT_VIOLATED,
    Event,
    Run,
    Series,
    Verdict,
    aggregate,
    check_run,
    evaluate,
    exit_code,
    no_data_problems,
    outcome,
)

pytestmark = pytest.mark.core

SLO = TypeAdapter(Slo)
NAN = math.nan
KILL = Event(10, "kill", "orders", ("orders-2",))


def slo(**fields: Any) -> Slo:
    return SLO.validate_python({"name": "s", "expr": "q", **fields})


def judge(
    fields: dict[str, Any],
    series: Series,
    events: tuple[Event, ...] = (),
    duration_s: float | None = None,
    down: tuple[float, ...] = (),
) -> Verdict:
    """One SLO's verdict over `series`; the run ends at the series' last point by default."""
    end = duration_s if duration_s is not None else (series[-1][0] if series else 30)
    (verdict,) = evaluate([slo(**fields)], {"q": series}, events, Run(end), {"q": down})
    return verdict


def check(
    fields: dict[str, Any],
    series: Series,
    passed: bool,
    measured: float | None,
    events: tuple[Event, ...] = (),
    duration_s: float | None = None,
) -> Verdict:
    """Evaluate one SLO over `series` and check its pass/fail and measured value."""
    verdict = judge(fields, series, events, duration_s)
    assert (verdict.passed, verdict.measured) == (passed, measured), verdict
    return verdict


def ramp(values: list[float], start: float = 0) -> Series:
    """One point per second from `start`."""
    return [(start + i, v) for i, v in enumerate(values)]


def test_the_grid_ends_at_the_final_scrape() -> None:
    """The judged points are one a second back from the end; the last one is the end."""
    assert Run(3.25).grid() == [0.25, 1.25, 2.25, 3.25]
    assert Run(2).grid() == [0, 1, 2]


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


def test_threshold_skips_nan() -> None:
    """NaN points (a quantile without traffic) are undefined: skipped, and counted as such."""
    verdict = check(
        {"kind": "threshold", "max": 1, "agg": "avg"}, ramp([NAN, 1, NAN, 0]), True, 0.5
    )
    assert (verdict.points, verdict.missing, verdict.skipped) == (2, 0, 2)


def test_threshold_with_only_undefined_points_has_no_data() -> None:
    """No judged point in the window: no data, measured None, the run invalid."""
    verdict = check({"kind": "threshold", "max": 1}, ramp([NAN, NAN]), False, None)
    assert verdict.no_data
    assert verdict.detail.startswith("no data from 0 s to 1 s")


def test_expression_missing_from_the_data() -> None:
    """An expression the runner did not query has no data: every point missing."""
    (verdict,) = evaluate([slo(kind="always", max=1, expr="other")], {}, [], Run(30))
    assert (verdict.passed, verdict.no_data, verdict.measured) == (False, True, None)
    assert (verdict.points, verdict.missing) == (0, 31)
    assert verdict.expr == "other"


def test_points_outside_the_run_are_ignored() -> None:
    """A query that overshoots the run does not count the extra points."""
    series = [(-1, 9), *ramp([1] * 31), (31, 9)]
    check({"kind": "threshold", "max": 1}, series, True, 1, duration_s=30)


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


def test_always_skips_nan_but_an_empty_series_has_no_data() -> None:
    """NaN points are skipped; an empty series is no data at every point."""
    check({"kind": "always", "max": 1}, ramp([NAN, 1, NAN]), True, 1)
    verdict = check({"kind": "always", "max": 1}, [], False, None, duration_s=30)
    assert verdict.no_data
    assert verdict.detail == "no data at 31 of 31 points (0 s to 30 s) while its sources were up"


def test_always_window() -> None:
    """A window limits where the bound must hold."""
    series = ramp([9, 9, 0, 0, 0])
    check({"kind": "always", "max": 1, "window": {"from_s": 2, "to_s": 4}}, series, True, 0)


values = st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40)


@given(values=values, limit=st.floats(-1e6, 1e6))
def test_always_passes_iff_the_max_is_within(values: list[float], limit: float) -> None:
    """An always SLO with max passes exactly when max(series) <= max."""
    run = Run(len(values) - 1)
    (verdict,) = evaluate([slo(kind="always", max=limit)], {"q": ramp(values)}, [], run)
    assert verdict.passed == (max(values) <= limit)
    assert verdict.measured == max(values)


@given(values=values, limit=st.floats(-1e6, 1e6))
def test_threshold_max_agrees_with_always(values: list[float], limit: float) -> None:
    """A threshold SLO (agg max) and an always SLO with the same max agree."""
    slos = [slo(kind="always", max=limit), slo(name="t", kind="threshold", max=limit)]
    always, threshold = evaluate(slos, {"q": ramp(values)}, [], Run(len(values) - 1))
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
    series = ramp([0.1] * 5 + [0.9] * 26)  # degraded on purpose after the latency event
    events = (Event(5, "latency", "orders"), Event(20, "clear", "orders"))
    check({**RECOVERY, "after": ["clear"]}, series, False, 10, events)
    series = ramp([0.1] * 5 + [0.9] * 17 + [0.1] * 9)
    check({**RECOVERY, "after": ["clear"]}, series, True, 2, events)


def test_recovery_without_events_fails() -> None:
    """No event to recover from: failed, "no ... event"."""
    verdict = check({**RECOVERY, "after": ["add"]}, ramp([0.1] * 31), False, None, (KILL,))
    assert verdict.detail == "no add event to recover from"


def test_recovery_without_data_after_the_event() -> None:
    """No judged point between the event and event + within_s: no data, the run invalid."""
    series = ramp([0.1] * 10) + ramp([NAN] * 21, start=10)
    verdict = check(RECOVERY, series, False, None, (KILL,))
    assert verdict.no_data
    assert "kill orders at 10 s: no data from 10 s to 15 s" in verdict.detail


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


# -- every SLO can fail, and none judges data that is not there -------------------------------

# (SLO fields, a series it passes on, one it fails on): each kind and aggregation.
COUNTER = [0, 0, 3, 5, 5, 6]  # a failure counter: 6 failures in the run
CASES = {
    "threshold max": ({"agg": "max", "max": 6}, COUNTER, [0, 9, 9, 9, 9, 9]),
    "threshold min": ({"agg": "min", "min": 1}, [2, 1, 3, 1, 2, 2], [2, 0, 2, 2, 2, 2]),
    "threshold avg": ({"agg": "avg", "max": 1}, [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 2]),
    "threshold last": ({"agg": "last", "min": 6}, COUNTER, [0, 0, 3, 5, 5, 5]),
    "threshold increase": ({"agg": "increase", "max": 6}, COUNTER, [0, 0, 3, 5, 5, 7]),
    "threshold seconds_nonzero": (
        {"agg": "seconds_nonzero", "max": 1}, [0, 0, 4, 0, 0, 0], [0, 0, 4, 4, 0, 0]
    ),
    "always max": ({"max": 0.5}, [0.1, 0.5, 0.2, 0.1, 0.1, 0.1], [0.1, 0.5, 0.2, 0.1, 0.1, 0.6]),
    "always min": ({"min": 10}, [10, 12, 11, 10, 10, 10], [10, 12, 11, 10, 9, 10]),
    "recovery max": (
        {"max": 0.5, "within_s": 2}, [0.1, 0.1, 0.9, 0.1, 0.1, 0.1], [0.1, 0.1, 0.9, 0.9, 0.9, 0.1]
    ),
    "recovery min": (
        {"min": 90, "within_s": 2}, [99, 99, 10, 95, 99, 99], [99, 99, 10, 10, 80, 99]
    ),
}  # fmt: skip
AT_2 = (Event(2, "kill", "orders"),)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_every_kind_and_aggregation_passes_fails_and_has_no_data_when_its_data_ends_early(
    case: str,
) -> None:
    """Each SLO kind and aggregation passes on good data, fails on bad data, and when its
    series stops before the end of the run (a source that exited) says "no data" for the
    missing points instead of reading them as a number."""
    bound, good, bad = CASES[case]
    fields = {"kind": case.split(maxsplit=1)[0], **bound}
    passed = judge(fields, ramp(good), AT_2)
    judged = 4 if fields["kind"] == "recovery" else 6  # recovery looks from the event on
    assert (passed.passed, passed.no_data, passed.points, passed.missing) == (
        True,
        False,
        judged,
        0,
    )
    failed = judge(fields, ramp(bad), AT_2)
    assert (failed.passed, failed.no_data) == (False, False), failed
    for series in (good, bad):
        early = judge(fields, ramp(series[:4]), AT_2, duration_s=5)
        assert (early.passed, early.no_data, early.missing) == (False, True, 2), early
        assert "s) while its sources were up" in early.detail


def test_a_source_that_stops_before_the_last_point_is_not_read_as_zero() -> None:
    """The CI failure: a failure counter at 25 whose source (Locust) stopped before the last
    point. With the run ending at the final scrape its last point is 25 and the SLO passes;
    a point after the source stopped is no data (exit 2), never 0 (which passed `max 0`)."""
    counter = ramp([0, 0, 5, 12, 25, 25])
    at_least_one = {"kind": "threshold", "agg": "last", "min": 1}
    assert judge(at_least_one, counter).measured == 25
    never = {"kind": "threshold", "agg": "last", "max": 0}
    assert (judge(never, counter).passed, judge(never, counter).measured) == (False, 25)
    vanished = judge(never, counter[:-1], duration_s=5)
    assert (vanished.no_data, vanished.measured) == (True, None)
    increase = judge({"kind": "threshold", "agg": "increase", "max": 100}, counter[:-1], (), 5)
    assert increase.no_data


def test_a_single_failure_shows_in_a_rate_based_slo() -> None:
    """A counter that appears at 0 and then counts one failure has a non-zero increase and
    rate: the SLO fails (a series born at 1 would have shown neither)."""
    one = ramp([0, 0, 0, 1, 1, 1])
    verdict = judge({"kind": "threshold", "agg": "increase", "max": 0}, one)
    assert (verdict.passed, verdict.measured) == (False, 1)
    rate = ramp([0, 0, 0, 0.2, 0.2, 0.2])  # rate(...[5s]) after that one failure
    assert judge({"kind": "threshold", "agg": "seconds_nonzero", "max": 0}, rate).measured == 3


def test_absent_means_reads_declared_absence_as_its_value() -> None:
    """An SLO that declares what absence means reads points without a value as that value,
    and counts them; without the declaration the same points make the run invalid."""
    appears_late = [(3, 1.0), (4, 1.0), (5, 2.0)]
    fields = {"kind": "threshold", "agg": "increase", "max": 1, "absent_means": 0}
    verdict = judge(fields, appears_late)
    assert (verdict.passed, verdict.measured, verdict.absent, verdict.points) == (False, 2, 3, 6)
    assert "3 absent read as absent_means" in verdict.detail
    undeclared = judge({**fields, "absent_means": None}, appears_late)
    assert (undeclared.no_data, undeclared.missing) == (True, 3)
    assert "(0 s to 2 s)" in undeclared.detail


def test_points_without_a_value_while_a_source_was_down_are_skipped() -> None:
    """A queue killed for two seconds has no depth then: those points are skipped (counted),
    not missing; the rest is judged."""
    depth = [(0, 3.0), (1, 2.0), (4, 0.0), (5, 0.0)]
    verdict = judge({"kind": "always", "max": 5}, depth, down=(2, 3))
    assert (verdict.passed, verdict.points, verdict.missing, verdict.skipped) == (True, 4, 0, 2)
    assert judge({"kind": "always", "max": 5}, depth).no_data


def test_missing_points_name_their_time_ranges() -> None:
    """The verdict says where data is missing, as ranges of run time."""
    series = ramp([1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    holes = [p for p in series if p[0] not in (2, 3, 4, 8)]
    verdict = judge({"kind": "always", "max": 5}, holes, duration_s=9)
    assert "no data at 4 of 10 points (2 s to 4 s, 8 s) while its sources were up" in verdict.detail


def test_outcome_and_exit_code_of_each_verdict_state() -> None:
    """pass -> 0, fail -> 1, no data -> 2 (and the outcome says which)."""
    fields = {"kind": "always", "max": 1}
    verdicts = [judge(fields, ramp([0, 1])), judge(fields, ramp([0, 2])), judge(fields, [])]
    assert [v.outcome for v in verdicts] == ["pass", "fail", "no data"]
    assert [exit_code([v], []) for v in verdicts] == [EXIT_PASS, EXIT_VIOLATED, EXIT_INVALID]


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
    """0 all passed, 1 an SLO violated, 2 the run is invalid (whatever the SLOs say), and an
    SLO without data makes it invalid too."""
    ok = Verdict("a", "always", True, 1, 1, "")
    bad = Verdict("b", "always", False, 2, 1, "")
    empty = Verdict("c", "always", False, None, 1, "no data at ...", no_data=True)
    assert (exit_code([ok], []), outcome([ok], [])) == (0, "pass")
    assert (exit_code([ok, bad], []), outcome([ok, bad], [])) == (1, "fail")
    assert (exit_code([ok], ["x"]), outcome([bad], ["x"])) == (2, "invalid")
    assert (exit_code([ok, bad, empty], []), outcome([empty], [])) == (2, "invalid")
    assert no_data_problems([ok, empty]) == ["SLO c: no data at ..."]
    assert exit_code([], []) == 0
