"""Tests for the sans-I/O target-tracking autoscaler core (targets.autoscaler.core)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.autoscaler.core import (
    MAX_REPLICAS,
    Autoscaler,
    ConfigError,
    Decision,
    Direction,
    Policy,
    Reason,
)

pytestmark = pytest.mark.core

# --- helpers -------------------------------------------------------------------------------------


def make(**overrides: float) -> Autoscaler:
    """An autoscaler with target 10 per replica, 1..20 replicas, other settings default."""
    settings_: dict[str, float] = {"target": 10.0, "max_replicas": 20, **overrides}
    return Autoscaler(Policy(**settings_))  # type: ignore[arg-type]


def check(decision: Decision, desired: int, direction: str, reason: str) -> None:
    assert (decision.desired, decision.direction, decision.reason) == (desired, direction, reason)


def run(scaler: Autoscaler, start: float, stop: float, ready: int, metric: float | None):
    """Evaluate once a second over [start, stop) with a steady load; return the decisions."""
    return [scaler.evaluate(float(t), ready, 0, metric) for t in range(int(start), int(stop))]


def config_error(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        Policy(**{"target": 10.0, **kwargs})  # type: ignore[arg-type]
    return str(info.value)


# --- policy --------------------------------------------------------------------------------------


def test_defaults_are_the_documented_lab_values():
    """Defaults: 1..10 replicas, 0.1 tolerance, 4 per 15 s out, 30 s window, 10 s warm-up, 1 s."""
    policy = Policy(target=5.0)
    assert (policy.min_replicas, policy.max_replicas, policy.tolerance) == (1, 10, 0.1)
    assert (policy.scale_out_step_max, policy.scale_out_period_s) == (4, 15.0)
    assert (policy.scale_in_stabilization_s, policy.warmup_s) == (30.0, 10.0)
    assert policy.evaluation_interval_s == 1.0


def test_config_error_is_value_error():
    """ConfigError is a ValueError so generic callers can catch it."""
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"target": 0}, "target"),
        ({"target": -1.0}, "target"),
        ({"target": math.nan}, "target"),
        ({"target": math.inf}, "target"),
        ({"min_replicas": 0}, "min_replicas"),
        ({"min_replicas": 1.0}, "min_replicas"),
        ({"min_replicas": 65, "max_replicas": 64}, "min_replicas"),
        ({"max_replicas": 0}, "max_replicas"),
        ({"max_replicas": MAX_REPLICAS + 1}, "max_replicas"),
        ({"min_replicas": 5, "max_replicas": 4}, "max_replicas"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"tolerance": 1.0}, "tolerance"),
        ({"scale_out_step_max": 0}, "scale_out_step_max"),
        ({"scale_out_step_max": True}, "scale_out_step_max"),
        ({"scale_out_period_s": 0}, "scale_out_period_s"),
        ({"scale_out_period_s": 1801}, "scale_out_period_s"),
        ({"scale_in_stabilization_s": -1}, "scale_in_stabilization_s"),
        ({"scale_in_stabilization_s": math.inf}, "scale_in_stabilization_s"),
        ({"warmup_s": -1}, "warmup_s"),
        ({"warmup_s": 3601}, "warmup_s"),
        ({"evaluation_interval_s": 0}, "evaluation_interval_s"),
        ({"evaluation_interval_s": 16}, "evaluation_interval_s"),
    ],
)
def test_policy_validation_names_field(kwargs, field_name):
    """Invalid settings raise ConfigError starting with the field name and quoting the value."""
    message = config_error(**kwargs)
    assert message.startswith(f"{field_name}:")
    assert repr(kwargs[field_name]) in message


def test_policy_is_frozen():
    """A policy cannot be changed after validation."""
    policy = Policy(target=1.0)
    with pytest.raises(AttributeError):
        policy.target = 2.0  # type: ignore[misc]


def test_split_warm_counts_replicas_ready_for_warmup_s():
    """Ready for warmup_s or longer counts as ready; shorter or not ready yet (None) is warming."""
    policy = Policy(target=1.0, warmup_s=10)
    assert policy.split_warm([0.0, 5.0, None, 9.5, -3.0], now=10.0) == (2, 3)
    assert policy.split_warm([], now=10.0) == (0, 0)


# --- the proportional formula and the tolerance band ---------------------------------------------


def test_three_replicas_at_twice_the_target_become_six():
    """ceil(3 * 20 / 10) = 6, at once, as a scale-out above target."""
    decision = make().evaluate(0.0, 3, 0, 20.0)
    check(decision, 6, "out", "above_target")
    assert (decision.current, decision.recommendation) == (3, 6)


def test_recommendation_rounds_up():
    """4 replicas at 80 against a target of 50 give ceil(6.4) = 7 (semantics 10.2)."""
    decision = make(target=50.0).evaluate(0.0, 4, 0, 80.0)
    check(decision, 7, "out", "above_target")


def test_float_noise_does_not_add_a_replica():
    """(0.1 + 0.2) / 0.1 is 3.0000000000000004, which still recommends 3, not 4."""
    decision = make(target=0.1).evaluate(0.0, 1, 0, 0.1 + 0.2)
    assert decision.recommendation == 3


@pytest.mark.parametrize("metric", [45.0, 46.0, 50.0, 54.9, 55.0])
def test_tolerance_band_holds(metric):
    """At target 50 the metric must leave 45..55 (edges included) before anything changes."""
    decision = make(target=50.0).evaluate(0.0, 5, 0, metric)
    check(decision, 5, "none", "within_tolerance")
    assert decision.recommendation == 5


def test_just_outside_the_band_scales_out():
    """55.5 against 50 is outside the 0.1 band: ceil(5 * 1.11) = 6."""
    check(make(target=50.0).evaluate(0.0, 5, 0, 55.5), 6, "out", "above_target")


def test_zero_tolerance_reacts_to_any_change():
    """With tolerance 0, 10 replicas at 10.5 against 10 become 11."""
    check(make(tolerance=0.0).evaluate(0.0, 10, 0, 10.5), 11, "out", "above_target")


def test_ceil_back_to_current_below_target_holds():
    """3 replicas at 0.8x target recommend ceil(2.4) = 3: nothing to remove."""
    scaler = make()
    run(scaler, 0, 40, 3, 10.0)
    check(scaler.evaluate(40.0, 3, 0, 8.0), 3, "none", "within_tolerance")


# --- min and max ---------------------------------------------------------------------------------


def test_scale_out_is_clamped_to_max():
    """A recommendation of 100 stops at max_replicas and says so."""
    decision = make(max_replicas=8, scale_out_step_max=64).evaluate(0.0, 4, 0, 250.0)
    check(decision, 8, "out", "at_max")
    assert decision.recommendation == 100


def test_at_max_holds():
    """Already at max, a high metric changes nothing."""
    check(make(max_replicas=8).evaluate(0.0, 8, 0, 50.0), 8, "none", "at_max")


def test_scale_in_is_clamped_to_min():
    """An idle group shrinks to min_replicas after the window, not to zero."""
    scaler = make(min_replicas=2)
    decisions = run(scaler, 0, 30, 6, 0.0)
    assert {d.reason for d in decisions} == {Reason.STABILIZING}
    decision = scaler.evaluate(30.0, 6, 0, 0.0)
    check(decision, 2, "in", "at_min")
    assert decision.recommendation == 0


def test_at_min_holds():
    """At min, a low metric changes nothing."""
    check(make(min_replicas=2).evaluate(0.0, 2, 0, 1.0), 2, "none", "at_min")


def test_below_min_is_raised_at_once_even_without_metrics():
    """No replicas at all: desired jumps to min_replicas whatever the metric."""
    check(make(min_replicas=3).evaluate(0.0, 0, 0, None), 3, "out", "below_min")
    check(make(min_replicas=3).evaluate(0.0, 1, 0, 10.0), 3, "out", "below_min")


def test_above_max_is_cut_at_once():
    """More replicas than max_replicas (say after a policy change) are cut to max immediately."""
    check(make(max_replicas=5).evaluate(0.0, 9, 0, None), 5, "in", "above_max")
    check(make(max_replicas=5).evaluate(0.0, 9, 0, 100.0), 5, "in", "above_max")


# --- scale-out rate limit ------------------------------------------------------------------------


def test_spike_adds_step_max_now_and_more_after_the_period():
    """A 10x spike on 3 replicas: 7 now, held within 15 s, 11 at 15 s, 15 at 30 s."""
    scaler = make(max_replicas=64)
    decision = scaler.evaluate(0.0, 3, 0, 100.0)
    check(decision, 7, "out", "rate_limited")
    assert decision.recommendation == 30
    for t in (1.0, 7.0, 14.9):
        check(scaler.evaluate(t, 3, 4, 100.0), 7, "none", "rate_limited")
    check(scaler.evaluate(15.0, 3, 4, 100.0), 11, "out", "rate_limited")
    check(scaler.evaluate(29.0, 7, 4, 60.0), 11, "none", "rate_limited")
    check(scaler.evaluate(30.0, 7, 4, 60.0), 15, "out", "rate_limited")


def test_lagging_adapter_gets_the_same_desired_again():
    """If replicas have not appeared yet, the same desired is re-issued, not a smaller step."""
    scaler = make(max_replicas=64)
    check(scaler.evaluate(0.0, 3, 0, 100.0), 7, "out", "rate_limited")
    check(scaler.evaluate(1.0, 3, 0, 100.0), 7, "out", "rate_limited")
    check(scaler.evaluate(15.0, 7, 0, 100.0), 11, "out", "rate_limited")


def test_scale_out_within_the_step_is_not_limited():
    """Growth of at most step_max in a period goes through in one evaluation."""
    scaler = make()
    check(scaler.evaluate(0.0, 4, 0, 20.0), 8, "out", "above_target")


def test_scale_out_acts_on_the_next_evaluation_after_a_quiet_period():
    """No scale-out stabilization: the first evaluation above target acts."""
    scaler = make()
    run(scaler, 0, 20, 4, 10.0)
    check(scaler.evaluate(20.0, 4, 0, 15.0), 6, "out", "above_target")


# --- scale-in stabilization ----------------------------------------------------------------------


def test_scale_in_waits_for_the_window_after_the_last_higher_recommendation():
    """At target until 34 s, then half load: scale-in to 5 only at 64 s (34 + 30)."""
    scaler = make()
    run(scaler, 0, 35, 10, 10.0)
    held = run(scaler, 35, 64, 10, 5.0)
    assert all(d.desired == 10 and d.reason == Reason.STABILIZING for d in held)
    check(scaler.evaluate(64.0, 10, 0, 5.0), 5, "in", "below_target")


def test_scale_in_waits_a_window_after_startup():
    """The time before the first evaluation counts as a recommendation of current capacity."""
    scaler = make()
    held = run(scaler, 100, 130, 10, 1.0)
    assert all(d.direction == Direction.NONE for d in held)
    check(scaler.evaluate(130.0, 10, 0, 1.0), 1, "in", "below_target")


def test_dip_then_rise_within_the_window_removes_nothing():
    """A 6 s dip to 0.2x then a rise to 0.8x: the window keeps 8 and never drops to 2."""
    scaler = make()
    run(scaler, 0, 35, 10, 10.0)
    dip = run(scaler, 35, 41, 10, 2.0)
    after = run(scaler, 41, 64, 10, 8.0)
    assert all(d.desired == 10 for d in dip + after)
    assert [d.recommendation for d in dip] == [2] * 6
    check(scaler.evaluate(64.0, 10, 0, 8.0), 8, "in", "below_target")


def test_scale_in_uses_the_highest_recommendation_in_the_window():
    """Recommendations 6, 4, 5 after 10 at target: each expires in turn, never below the max."""
    scaler = make()
    run(scaler, 0, 31, 10, 10.0)  # last 10 at t=30
    run(scaler, 31, 41, 10, 6.0)  # 6 until t=40
    run(scaler, 41, 46, 10, 4.0)  # 4 until t=45
    check(scaler.evaluate(60.0, 10, 0, 5.0), 6, "in", "below_target")  # 10 expired at 60
    check(scaler.evaluate(69.0, 6, 0, 8.0), 6, "none", "stabilizing")  # 6 from t=40 in window
    check(scaler.evaluate(70.0, 6, 0, 8.0), 5, "in", "below_target")  # 5 from t=60, not 4


def test_zero_window_scales_in_at_once():
    """scale_in_stabilization_s = 0 turns stabilization off."""
    scaler = make(scale_in_stabilization_s=0)
    check(scaler.evaluate(0.0, 10, 0, 2.0), 2, "in", "below_target")


def test_recommendation_history_stays_bounded():
    """The window is a sliding maximum: at most one entry per distinct replica count."""
    scaler = make(scale_in_stabilization_s=3600)
    for i in range(5000):
        scaler.evaluate(i * 0.1, 10, 0, float(20 - i % 19))
    assert len(scaler._window) <= scaler.policy.max_replicas
    assert len(scaler._scale_outs) <= scaler.policy.max_replicas


# --- missing metrics -----------------------------------------------------------------------------


@pytest.mark.parametrize(("ready", "metric"), [(5, None), (5, math.nan), (0, 3.0)])
def test_missing_metrics_hold(ready, metric):
    """None, NaN or no ready replica: hold, never scale in, even long after the window."""
    scaler = make()
    warming = 5 - ready
    decisions = [scaler.evaluate(float(t), ready, warming, metric) for t in range(0, 200, 5)]
    for decision in decisions:
        check(decision, 5, "none", "missing_metrics")
        assert decision.recommendation == 5


def test_missing_metrics_restart_the_scale_in_window():
    """A gap in the data counts as a recommendation of current: scale-in waits a full window."""
    scaler = make()
    run(scaler, 0, 40, 10, 2.0)  # would have scaled in at 30
    scaler.evaluate(40.0, 10, 0, None)
    held = run(scaler, 41, 70, 10, 2.0)
    assert all(d.reason in {Reason.STABILIZING, Reason.BELOW_TARGET} for d in held)


def test_missing_metrics_then_data_scales_out_on_known_data():
    """After a gap, the first high reading scales out at once."""
    scaler = make()
    scaler.evaluate(0.0, 4, 0, None)
    check(scaler.evaluate(1.0, 4, 0, 15.0), 6, "out", "above_target")


# --- warming replicas ----------------------------------------------------------------------------


def test_warming_replicas_prevent_a_second_scale_out():
    """3 at 2x become 6; while 3 warm up, the ready ones still report 2x: nothing more launches."""
    scaler = make()
    check(scaler.evaluate(0.0, 3, 0, 20.0), 6, "out", "above_target")
    for t in range(1, 12):
        decision = scaler.evaluate(float(t), 3, 3, 20.0)
        check(decision, 6, "none", "warming")
        assert decision.current == 6
    check(scaler.evaluate(12.0, 6, 0, 10.0), 6, "none", "within_tolerance")


def test_more_load_while_warming_adds_only_the_difference():
    """re:Post example: 4 + 1 warming; more load asks for 6, so one more, not a second doubling."""
    scaler = make()
    check(scaler.evaluate(0.0, 4, 0, 12.5), 5, "out", "above_target")
    check(scaler.evaluate(1.0, 4, 1, 12.5), 5, "none", "warming")
    check(scaler.evaluate(2.0, 4, 1, 15.0), 6, "out", "above_target")


def test_warming_replicas_block_scale_in():
    """Long after the window, a low metric does not remove capacity while a replica warms up."""
    scaler = make()
    run(scaler, 0, 40, 6, 2.0)
    check(scaler.evaluate(40.0, 5, 1, 2.0), 6, "none", "warming")
    check(scaler.evaluate(41.0, 6, 0, 2.0), 2, "in", "below_target")


def test_warming_replicas_are_excluded_from_the_metric():
    """The recommendation is ceil(ready * metric / target): warming replicas carry no load yet."""
    decision = make(scale_out_step_max=64).evaluate(0.0, 2, 6, 40.0)
    assert decision.recommendation == 8
    check(decision, 8, "none", "warming")


# --- inputs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field_name"),
    [
        ((math.nan, 1, 0, 1.0), "now"),
        ((0.0, -1, 0, 1.0), "ready"),
        ((0.0, 1, -1, 1.0), "warming"),
        ((0.0, 1.5, 0, 1.0), "ready"),
        ((0.0, 1, 0, -1.0), "metric"),
        ((0.0, 1, 0, math.inf), "metric"),
    ],
)
def test_bad_inputs_name_the_argument(args, field_name):
    """evaluate() rejects impossible inputs with a ValueError naming the argument."""
    with pytest.raises(ValueError, match=rf"^{field_name}:"):
        make().evaluate(*args)


def test_time_must_not_go_backwards():
    """now is monotonic: an earlier now than the previous evaluation is rejected."""
    scaler = make()
    scaler.evaluate(5.0, 1, 0, 10.0)
    scaler.evaluate(5.0, 1, 0, 10.0)
    with pytest.raises(ValueError, match=r"^now:"):
        scaler.evaluate(4.0, 1, 0, 10.0)


def test_absurd_metric_saturates_at_max():
    """A metric of 1e308 per replica does not overflow: desired is capped at max."""
    decision = make(target=1e-3, scale_out_step_max=64).evaluate(0.0, 3, 0, 1e308)
    check(decision, 20, "out", "at_max")


# --- properties ----------------------------------------------------------------------------------

policies = st.builds(
    lambda lo, span, step, period, window, tol: Policy(
        target=10.0,
        min_replicas=lo,
        max_replicas=lo + span,
        scale_out_step_max=step,
        scale_out_period_s=period,
        scale_in_stabilization_s=window,
        tolerance=tol,
    ),
    lo=st.integers(1, 5),
    span=st.integers(0, 15),
    step=st.integers(1, 6),
    period=st.sampled_from([1.0, 5.0, 15.0]),
    window=st.sampled_from([0.0, 3.0, 10.0, 30.0]),
    tol=st.sampled_from([0.0, 0.1, 0.3]),
)
metrics = st.one_of(
    st.none(), st.just(math.nan), st.floats(0, 200, allow_nan=False), st.sampled_from([0.0, 10.0])
)
steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.5, 1.0, 2.5, 7.0, 31.0]),
        st.integers(0, 25),
        st.integers(0, 4),
        metrics,
    ),
    min_size=1,
    max_size=40,
)


def replay(policy: Policy, sequence) -> list[tuple[float, Decision]]:
    scaler = Autoscaler(policy)
    now, out = 0.0, []
    for dt, ready, warming, metric in sequence:
        now += dt
        out.append((now, scaler.evaluate(now, ready, warming, metric)))
    return out


@settings(max_examples=300, deadline=None)
@given(policy=policies, sequence=steps)
def test_desired_always_within_min_and_max(policy, sequence):
    """Whatever the inputs, desired lies in [min, max] and direction matches desired vs current."""
    for _, decision in replay(policy, sequence):
        assert policy.min_replicas <= decision.desired <= policy.max_replicas
        expected = (decision.desired > decision.current) - (decision.desired < decision.current)
        assert decision.direction == {1: "out", -1: "in", 0: "none"}[expected]


@settings(max_examples=200, deadline=None)
@given(policy=policies, data=st.data())
def test_metric_at_target_never_changes_the_count(policy, data):
    """With metric == target and current within [min, max], desired is always current."""
    lo, hi = policy.min_replicas, policy.max_replicas
    sequence = data.draw(
        st.lists(
            st.tuples(st.floats(0, 40), st.integers(lo, hi), st.integers(0, 4)),
            min_size=1,
            max_size=40,
        )
    )
    scaler = Autoscaler(policy)
    now = 0.0
    for dt, current, warming in sequence:
        now += dt
        ready = max(current - warming, 1)
        decision = scaler.evaluate(now, ready, current - ready, policy.target)
        check(decision, current, "none", "within_tolerance")


@settings(max_examples=300, deadline=None)
@given(policy=policies, sequence=steps)
def test_scale_in_never_before_the_window_since_a_higher_recommendation(policy, sequence):
    """A metric-driven scale-in goes to the highest recommendation in the window, never earlier."""
    window = policy.scale_in_stabilization_s
    history = replay(policy, sequence)
    start = history[0][0]
    for i, (now, decision) in enumerate(history):
        if decision.direction != "in" or decision.reason == Reason.ABOVE_MAX:
            continue
        assert now - start >= window
        recent = [policy.clamp(d.recommendation) for t, d in history[:i] if now - t < window]
        recent.append(policy.clamp(decision.recommendation))
        assert decision.desired == max(recent)


@settings(max_examples=200, deadline=None)
@given(policy=policies, sequence=steps)
def test_missing_metrics_never_scale_in(policy, sequence):
    """An evaluation without a usable metric never lowers a count that is within max."""
    decisions = [decision for _, decision in replay(policy, sequence)]
    for (_, ready, _, metric), decision in zip(sequence, decisions, strict=True):
        missing = metric is None or math.isnan(metric) or ready == 0
        if missing and decision.current <= policy.max_replicas:
            assert decision.direction != "in"
            assert decision.reason in {Reason.MISSING_METRICS, Reason.BELOW_MIN}
