"""Tests for the sans-I/O load balancer core (targets.lb.core)."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.lb.core import (
    Algorithm,
    ConfigError,
    GroupConfig,
    HealthPolicy,
    Reason,
    Target,
    TargetGroup,
    TargetState,
    Transition,
    parse_matcher,
    probe_ok,
)

pytestmark = pytest.mark.core

INITIAL, HEALTHY, UNHEALTHY, DRAINING = TargetState


# --- helpers -------------------------------------------------------------------------------------


def make_group(
    algorithm: Algorithm = Algorithm.ROUND_ROBIN,
    healthy_threshold: int = 3,
    unhealthy_threshold: int = 2,
    **config: float,
) -> TargetGroup:
    health = HealthPolicy(
        healthy_threshold=healthy_threshold, unhealthy_threshold=unhealthy_threshold
    )
    return TargetGroup(GroupConfig(algorithm=algorithm, health=health, **config))


def add(group: TargetGroup, n: int, *, healthy: bool = True, weights: list[int] | None = None):
    """Register t0..t{n-1} at time 0 and, if asked, pass one probe each."""
    ids = [f"t{i}" for i in range(n)]
    for i, target_id in enumerate(ids):
        group.register(target_id, "127.0.0.1", 9000 + i, now=0.0, weight=(weights or [1] * n)[i])
        if healthy:
            group.health_result(target_id, ok=True, now=0.0)
    return ids


def probes(group: TargetGroup, target_id: str, *results: bool, now: float = 1.0):
    """Feed probe results; return the transitions (None where the state held)."""
    return [group.health_result(target_id, ok, now) for ok in results]


def check(group: TargetGroup, target_id: str, state: TargetState, reason: str) -> None:
    target = group.targets[target_id]
    assert (target.state, target.reason) == (state, reason)


def tally(group: TargetGroup, picks: int, now: float = 0.0, seed: int = 0) -> Counter[str]:
    rng = random.Random(seed)
    chosen = (group.pick(now, rng) for _ in range(picks))
    return Counter(t.id for t in chosen if t is not None)


def config_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# --- configuration -------------------------------------------------------------------------------


def test_defaults_are_valid():
    """Default health policy and group config construct without error."""
    config = GroupConfig()
    assert config.algorithm is Algorithm.ROUND_ROBIN
    assert config.health == HealthPolicy()


def test_config_error_is_value_error():
    """ConfigError is a ValueError so generic callers can catch it."""
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"interval_s": 0}, "health.interval_s"),
        ({"interval_s": math.nan}, "health.interval_s"),
        ({"timeout_s": 0}, "health.timeout_s"),
        ({"timeout_s": 1.0}, "health.timeout_s"),
        ({"timeout_s": 2.0}, "health.timeout_s"),
        ({"healthy_threshold": 0}, "health.healthy_threshold"),
        ({"healthy_threshold": 11}, "health.healthy_threshold"),
        ({"unhealthy_threshold": 0}, "health.unhealthy_threshold"),
        ({"unhealthy_threshold": 11}, "health.unhealthy_threshold"),
        ({"path": "health"}, "health.path"),
    ],
)
def test_health_policy_validation_names_field(kwargs, field_name):
    """Invalid health settings raise ConfigError naming the field and the bad value."""
    message = config_error(HealthPolicy, **kwargs)
    assert message.startswith(f"{field_name}:")
    assert repr(next(iter(kwargs.values()))) in message


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"deregistration_delay_s": -1}, "deregistration_delay_s"),
        ({"deregistration_delay_s": 3601}, "deregistration_delay_s"),
        ({"slow_start_s": -1}, "slow_start_s"),
        ({"slow_start_s": 901}, "slow_start_s"),
        ({"algorithm": "fastest"}, "algorithm"),
    ],
)
def test_group_config_validation_names_field(kwargs, field_name):
    """Invalid group settings raise ConfigError naming the field."""
    assert config_error(GroupConfig, **kwargs).startswith(f"{field_name}:")


def test_algorithm_given_as_string_is_coerced():
    """An algorithm passed as its string value becomes the enum member."""
    config = GroupConfig(algorithm="weighted_random")  # type: ignore[arg-type]
    assert config.algorithm is Algorithm.WEIGHTED_RANDOM


def test_least_outstanding_with_slow_start_is_rejected():
    """Slow start cannot be combined with least outstanding requests; both fields are named."""
    message = config_error(GroupConfig, algorithm=Algorithm.LEAST_OUTSTANDING, slow_start_s=30)
    assert "algorithm" in message
    assert "slow_start_s" in message


def test_least_outstanding_without_slow_start_is_fine():
    """Least outstanding requests with slow start disabled is a valid config."""
    assert GroupConfig(algorithm=Algorithm.LEAST_OUTSTANDING).slow_start_s == 0


@pytest.mark.parametrize(
    ("args", "field_name"),
    [
        (("", "h", 80), "target_id"),
        (("x" * 65, "h", 80), "target_id"),
        (("bad id", "h", 80), "target_id"),
        (("a/b", "h", 80), "target_id"),
        (("t", "", 80), "host"),
        (("t", "h", 0), "port"),
        (("t", "h", 65536), "port"),
        (("t", "h", 80, 0.0, 0), "weight"),
        (("t", "h", 80, 0.0, 1001), "weight"),
    ],
)
def test_register_validation_names_field(args, field_name):
    """register() rejects bad ids, hosts, ports and weights, naming the field."""
    group = make_group()
    now_and_weight = args[3:] or (0.0,)
    message = config_error(group.register, *args[:3], *now_and_weight)
    assert message.startswith(f"{field_name}:")
    assert group.targets == {}


def test_register_accepts_full_id_alphabet():
    """Target ids may use letters, digits and . _ : - up to 64 characters."""
    group = make_group()
    target_id = "Web-1.az_a:8080" + "x" * 49
    assert group.register(target_id, "h", 65535, now=0.0, weight=1000).id == target_id


# --- matcher -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "codes"),
    [
        ("200", {200}),
        ("200,202", {200, 202}),
        (" 200 , 302 ", {200, 302}),
        ("200-204", {200, 201, 202, 203, 204}),
        ("200-299,404", {*range(200, 300), 404}),
        ("499", {499}),
    ],
)
def test_parse_matcher(spec, codes):
    """Matcher specs parse to the set of accepted status codes."""
    assert parse_matcher(spec) == frozenset(codes)


@pytest.mark.parametrize(
    "spec", ["", "abc", "199", "500", "200-500", "300-200", "200-", "2000", "200,,201", "20x"]
)
def test_parse_matcher_rejects_bad_specs(spec):
    """Bad syntax or codes outside 200-499 raise ConfigError naming the matcher."""
    assert config_error(parse_matcher, spec).startswith("matcher:")


@pytest.mark.parametrize(
    ("status", "matcher", "ok"),
    [
        (200, "200", True),
        (204, "200", False),
        (204, "200-299", True),
        (302, "200,302", True),
        (500, "200-299", False),
        (None, "200", False),
    ],
)
def test_probe_ok(status, matcher, ok):
    """A probe passes only when its status is in the matcher; None (timeout) never passes."""
    assert probe_ok(status, matcher) is ok


def test_probe_ok_default_matcher_is_200():
    """Without a matcher only 200 counts as healthy."""
    assert probe_ok(200)
    assert not probe_ok(201)


# --- health state machine ------------------------------------------------------------------------


def test_new_target_is_initial():
    """A new registration starts initial with reason Elb.RegistrationInProgress."""
    group = make_group()
    target = group.register("a", "10.0.0.1", 8080, now=3.0, weight=5)
    assert (target.host, target.port, target.weight, target.registered_at) == (
        "10.0.0.1",
        8080,
        5,
        3.0,
    )
    check(group, "a", INITIAL, "Elb.RegistrationInProgress")


def test_initial_becomes_healthy_after_one_success():
    """One passing probe makes an initial target healthy with an empty reason."""
    group = make_group(healthy_threshold=5)
    group.register("a", "h", 80, now=0.0)
    assert probes(group, "a", True) == [Transition("a", INITIAL, HEALTHY, "")]
    check(group, "a", HEALTHY, "")


def test_initial_failure_keeps_checking():
    """A failed initial probe keeps the target initial, reason Elb.InitialHealthChecking."""
    group = make_group(unhealthy_threshold=2)
    group.register("a", "h", 80, now=0.0)
    assert probes(group, "a", False) == [None]
    check(group, "a", INITIAL, "Elb.InitialHealthChecking")


def test_initial_becomes_unhealthy_after_threshold_failures():
    """An initial target failing unhealthy_threshold probes becomes unhealthy."""
    group = make_group(unhealthy_threshold=3)
    group.register("a", "h", 80, now=0.0)
    transitions = probes(group, "a", False, False, False)
    assert transitions == [
        None,
        None,
        Transition("a", INITIAL, UNHEALTHY, Reason.FAILED_HEALTH_CHECKS),
    ]
    check(group, "a", UNHEALTHY, "Target.FailedHealthChecks")


def test_single_failure_never_ejects():
    """One failed probe leaves a healthy target healthy (unhealthy_threshold >= 2)."""
    group = make_group(unhealthy_threshold=2)
    add(group, 1)
    assert probes(group, "t0", False) == [None]
    assert group.targets["t0"].consecutive_fail == 1
    check(group, "t0", HEALTHY, "")


@pytest.mark.parametrize("threshold", [1, 2, 3, 10])
def test_exactly_unhealthy_threshold_failures_eject(threshold):
    """A healthy target turns unhealthy on exactly the unhealthy_threshold-th failure in a row."""
    group = make_group(unhealthy_threshold=threshold)
    add(group, 1)
    transitions = probes(group, "t0", *[False] * threshold)
    assert transitions[:-1] == [None] * (threshold - 1)
    assert transitions[-1] == Transition("t0", HEALTHY, UNHEALTHY, "Target.FailedHealthChecks")


def test_interrupted_failures_do_not_accumulate():
    """A success between failures resets the count, so alternating results never eject."""
    group = make_group(unhealthy_threshold=2)
    add(group, 1)
    assert probes(group, "t0", *[False, True] * 5) == [None] * 10
    check(group, "t0", HEALTHY, "")


@pytest.mark.parametrize("threshold", [1, 2, 3, 10])
def test_healthy_threshold_successes_restore(threshold):
    """An unhealthy target needs exactly healthy_threshold consecutive successes to return."""
    group = make_group(healthy_threshold=threshold, unhealthy_threshold=1)
    add(group, 1)
    probes(group, "t0", False)
    transitions = probes(group, "t0", *[True] * threshold)
    assert transitions[:-1] == [None] * (threshold - 1)
    assert transitions[-1] == Transition("t0", UNHEALTHY, HEALTHY, "")


def test_failure_during_recovery_restarts_count():
    """A failure while recovering resets the success streak."""
    group = make_group(healthy_threshold=3, unhealthy_threshold=1)
    add(group, 1)
    probes(group, "t0", False, True, True, False, True, True)
    check(group, "t0", UNHEALTHY, "Target.FailedHealthChecks")
    assert probes(group, "t0", True)[0] == Transition("t0", UNHEALTHY, HEALTHY, "")


def test_probe_results_for_unknown_or_draining_targets_are_ignored():
    """health_result returns None and changes nothing for unknown or draining targets."""
    group = make_group(unhealthy_threshold=1)
    add(group, 1)
    group.deregister("t0", now=1.0)
    assert group.health_result("nope", ok=False, now=1.0) is None
    assert group.health_result("t0", ok=False, now=1.0) is None
    check(group, "t0", DRAINING, "Target.DeregistrationInProgress")


def test_counts_has_every_state():
    """counts() reports every state, zero when absent."""
    group = make_group(unhealthy_threshold=1)
    assert group.counts() == dict.fromkeys(TargetState, 0)
    add(group, 3)
    group.register("new", "h", 80, now=0.0)
    group.health_result("t1", ok=False, now=1.0)
    group.deregister("t2", now=1.0)
    assert group.counts() == {INITIAL: 1, HEALTHY: 1, UNHEALTHY: 1, DRAINING: 1}


# --- passive detection ---------------------------------------------------------------------------


def test_connection_failure_ejects_healthy_target_at_once():
    """A refused connection marks a healthy target unhealthy with Target.ConnectionFailed."""
    group = make_group(unhealthy_threshold=5)
    add(group, 2)
    probes(group, "t0", True, True)
    transition = group.connection_failed("t0", now=1.0)
    assert transition == Transition("t0", HEALTHY, UNHEALTHY, "Target.ConnectionFailed")
    assert group.targets["t0"].consecutive_ok == 0
    assert tally(group, 10) == {"t1": 10}


def test_connection_failure_needs_healthy_threshold_probes_to_return():
    """After a passive ejection the target needs healthy_threshold good probes."""
    group = make_group(healthy_threshold=3)
    add(group, 1)
    group.connection_failed("t0", now=1.0)
    assert probes(group, "t0", True, True) == [None, None]
    assert probes(group, "t0", True) == [Transition("t0", UNHEALTHY, HEALTHY, "")]


def test_connection_failure_ejects_initial_target():
    """An initial target whose connection is refused becomes unhealthy at once."""
    group = make_group()
    group.register("a", "h", 80, now=0.0)
    assert group.connection_failed("a", now=0.5) == Transition(
        "a", INITIAL, UNHEALTHY, "Target.ConnectionFailed"
    )


def test_connection_failure_on_unhealthy_target_resets_recovery():
    """A connection failure on an unhealthy target is no transition but resets its streak."""
    group = make_group(healthy_threshold=3, unhealthy_threshold=1)
    add(group, 1)
    probes(group, "t0", False, True, True)
    assert group.connection_failed("t0", now=1.0) is None
    assert group.targets["t0"].consecutive_ok == 0
    assert probes(group, "t0", True, True) == [None, None]


def test_connection_failure_ignored_for_unknown_or_draining():
    """connection_failed returns None for unknown and draining targets."""
    group = make_group()
    add(group, 1)
    group.deregister("t0", now=1.0)
    assert group.connection_failed("t0", now=1.0) is None
    assert group.connection_failed("ghost", now=1.0) is None
    check(group, "t0", DRAINING, "Target.DeregistrationInProgress")


# --- round robin ---------------------------------------------------------------------------------


@given(n=st.integers(1, 12), picks=st.integers(0, 200))
def test_round_robin_is_fair_within_one(n, picks):
    """With equal weights every one of N targets gets picks/N rounded down or up."""
    group = make_group()
    ids = add(group, n)
    counts = tally(group, picks)
    assert all(picks // n <= counts[i] <= -(-picks // n) for i in ids)
    assert sum(counts.values()) == picks


def test_round_robin_rotates_in_registration_order():
    """Equal-weight round robin is a strict rotation."""
    group = make_group()
    add(group, 3)
    rng = random.Random(0)
    order = [t.id for t in (group.pick(0.0, rng) for _ in range(6)) if t]
    assert order == ["t0", "t1", "t2", "t0", "t1", "t2"]


@given(weights=st.lists(st.integers(1, 20), min_size=1, max_size=6), cycles=st.integers(1, 3))
def test_round_robin_honours_weights_per_cycle(weights, cycles):
    """Smooth weighted round robin picks each target exactly weight times per sum(weights) picks."""
    group = make_group()
    ids = add(group, len(weights), weights=weights)
    counts = tally(group, sum(weights) * cycles)
    assert [counts[i] for i in ids] == [w * cycles for w in weights]


def test_round_robin_spreads_heavy_target():
    """Smooth WRR interleaves a heavy target instead of sending it a burst."""
    group = make_group()
    add(group, 3, weights=[5, 1, 1])
    rng = random.Random(0)
    order = "".join(t.id[1] for t in (group.pick(0.0, rng) for _ in range(7)) if t)
    assert order == "0010200"


# --- least outstanding requests ------------------------------------------------------------------


def test_least_outstanding_picks_least_busy():
    """LOR picks the target with the fewest in-flight requests."""
    group = make_group(Algorithm.LEAST_OUTSTANDING)
    add(group, 3)
    for target_id, busy in (("t0", 3), ("t1", 1), ("t2", 2)):
        for _ in range(busy):
            group.begin(group.targets[target_id])
    picked = group.pick(0.0, random.Random(0))
    assert picked is not None
    assert picked.id == "t1"


def test_least_outstanding_divides_by_weight():
    """LOR compares in-flight per unit of weight."""
    group = make_group(Algorithm.LEAST_OUTSTANDING)
    add(group, 2, weights=[4, 1])
    for _ in range(3):
        group.begin(group.targets["t0"])
    group.begin(group.targets["t1"])
    picked = group.pick(0.0, random.Random(0))
    assert picked is not None
    assert picked.id == "t0"


@given(n=st.integers(1, 8), rounds=st.integers(1, 5))
def test_least_outstanding_rotates_among_idle_ties(n, rounds):
    """Idle targets with equal load share sequential picks evenly."""
    group = make_group(Algorithm.LEAST_OUTSTANDING)
    ids = add(group, n)
    counts = tally(group, n * rounds)
    assert [counts[i] for i in ids] == [rounds] * n


def test_least_outstanding_balances_concurrent_load():
    """Picks that begin() and never end() spread in-flight evenly."""
    group = make_group(Algorithm.LEAST_OUTSTANDING)
    add(group, 4)
    rng = random.Random(0)
    for _ in range(40):
        target = group.pick(0.0, rng)
        assert target is not None
        group.begin(target)
    assert [t.in_flight for t in group.targets.values()] == [10, 10, 10, 10]


# --- weighted random -----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.integers(1, 10), min_size=1, max_size=5), seed=st.integers(0, 2**32))
def test_weighted_random_is_proportional(weights, seed):
    """Weighted random picks each target about weight/total of the time (6 sigma bound)."""
    picks = 3000
    group = make_group(Algorithm.WEIGHTED_RANDOM)
    ids = add(group, len(weights), weights=weights)
    counts = tally(group, picks, seed=seed)
    total = sum(weights)
    for target_id, weight in zip(ids, weights, strict=True):
        p = weight / total
        assert abs(counts[target_id] - picks * p) <= 6 * math.sqrt(picks * p * (1 - p)) + 1


def test_weighted_random_is_reproducible_with_seed():
    """The same seed gives the same sequence of picks."""
    group = make_group(Algorithm.WEIGHTED_RANDOM)
    add(group, 4)
    assert tally(group, 50, seed=7) == tally(group, 50, seed=7)


# --- fail-open and exclusions --------------------------------------------------------------------


def test_empty_group_picks_none():
    """With no registered targets pick() returns None and nothing is routable."""
    group = make_group()
    assert group.pick(0.0, random.Random(0)) is None
    assert group.routable() == 0


def test_all_unhealthy_fails_open():
    """When every target is unhealthy, requests still go to all of them."""
    group = make_group(unhealthy_threshold=1)
    add(group, 3)
    for target_id in ("t0", "t1", "t2"):
        probes(group, target_id, False)
    assert group.routable() == 3
    assert tally(group, 9) == {"t0": 3, "t1": 3, "t2": 3}


def test_all_initial_fails_open():
    """Targets still in initial health checking are routed to when none is healthy."""
    group = make_group()
    add(group, 2, healthy=False)
    assert group.routable() == 2
    assert tally(group, 4) == {"t0": 2, "t1": 2}


def test_unhealthy_targets_skipped_while_one_is_healthy():
    """With at least one healthy target, unhealthy and initial ones get no traffic."""
    group = make_group(unhealthy_threshold=1)
    add(group, 2)
    probes(group, "t1", False)
    group.register("new", "h", 80, now=1.0)
    assert group.routable() == 1
    assert tally(group, 5) == {"t0": 5}


def test_only_draining_targets_pick_none():
    """Draining targets are never picked, even when nothing else is registered."""
    group = make_group()
    add(group, 2)
    group.deregister("t0", now=1.0)
    group.deregister("t1", now=1.0)
    assert group.pick(1.0, random.Random(0)) is None
    assert group.routable() == 0


def test_fail_open_excludes_draining():
    """Fail-open covers unhealthy targets but still skips draining ones."""
    group = make_group(unhealthy_threshold=1)
    add(group, 2)
    probes(group, "t0", False)
    group.deregister("t1", now=1.0)
    assert tally(group, 4) == {"t0": 4}


def test_exclude_skips_tried_target():
    """Excluded ids (already tried on a retry) are not picked while others are healthy."""
    group = make_group()
    add(group, 3)
    rng = random.Random(0)
    picks = {group.pick(0.0, rng, exclude=frozenset({"t1"})) for _ in range(10)}
    assert {t.id for t in picks if t} == {"t0", "t2"}


def test_exclude_of_every_healthy_target_falls_back_to_unhealthy():
    """If all healthy targets are excluded, a remaining unhealthy target is tried instead."""
    group = make_group(unhealthy_threshold=1)
    add(group, 2)
    probes(group, "t1", False)
    picked = group.pick(1.0, random.Random(0), exclude=frozenset({"t0"}))
    assert picked is not None
    assert picked.id == "t1"


def test_exclude_everything_picks_none():
    """With every target excluded pick() returns None."""
    group = make_group()
    add(group, 2)
    assert group.pick(0.0, random.Random(0), exclude=frozenset({"t0", "t1"})) is None


# --- draining ------------------------------------------------------------------------------------


def test_deregister_starts_draining():
    """deregister() sets draining, the reason and a deadline deregistration_delay_s away."""
    group = make_group(deregistration_delay_s=30)
    add(group, 1)
    assert group.deregister("t0", now=10.0) is True
    check(group, "t0", DRAINING, "Target.DeregistrationInProgress")
    assert group.targets["t0"].drain_deadline == 40.0


def test_deregister_unknown_is_idempotent():
    """Deregistering an unknown target succeeds quietly and returns False."""
    assert make_group().deregister("ghost", now=0.0) is False


def test_deregister_twice_keeps_deadline():
    """A second deregister of a draining target returns True and keeps the deadline."""
    group = make_group(deregistration_delay_s=5)
    add(group, 1)
    group.deregister("t0", now=1.0)
    assert group.deregister("t0", now=3.0) is True
    assert group.targets["t0"].drain_deadline == 6.0


def test_draining_target_gets_no_new_requests():
    """After deregistration traffic goes only to the remaining targets."""
    group = make_group()
    add(group, 3)
    group.deregister("t1", now=0.0)
    assert tally(group, 10) == {"t0": 5, "t2": 5}


def test_end_reports_drained_when_last_request_finishes():
    """end() returns True only once a draining target has no requests in flight."""
    group = make_group()
    add(group, 1)
    target = group.targets["t0"]
    group.begin(target)
    group.begin(target)
    group.deregister("t0", now=1.0)
    assert target.in_flight == 2
    assert group.end(target, now=1.5) is False
    assert group.end(target, now=2.0) is True
    assert group.remove("t0") is target
    assert group.remove("t0") is None


def test_end_on_serving_target_is_false():
    """end() on a non-draining target returns False and decrements in-flight."""
    group = make_group()
    add(group, 1)
    target = group.targets["t0"]
    group.begin(target)
    assert group.end(target, now=1.0) is False
    assert target.in_flight == 0


def test_end_never_goes_negative():
    """An unmatched end() leaves in_flight at zero."""
    group = make_group()
    add(group, 1)
    group.end(group.targets["t0"], now=1.0)
    assert group.targets["t0"].in_flight == 0


def test_expire_removes_targets_past_deadline():
    """expire() removes and returns draining targets once the delay has passed."""
    group = make_group(deregistration_delay_s=5)
    add(group, 2)
    group.begin(group.targets["t0"])
    group.deregister("t0", now=1.0)
    assert group.expire(5.9) == []
    expired = group.expire(6.0)
    assert [t.id for t in expired] == ["t0"]
    assert expired[0].in_flight == 1
    assert list(group.targets) == ["t1"]


def test_expire_with_zero_delay_is_immediate():
    """With deregistration_delay_s=0 a target expires at the moment it is deregistered."""
    group = make_group(deregistration_delay_s=0)
    add(group, 1)
    group.deregister("t0", now=2.0)
    assert [t.id for t in group.expire(2.0)] == ["t0"]


def test_reregister_while_draining_restarts_health_checks():
    """Re-registering a draining target makes it initial again with updated address."""
    group = make_group()
    add(group, 2)
    target = group.targets["t0"]
    group.begin(target)
    group.deregister("t0", now=1.0)
    again = group.register("t0", "10.0.0.9", 81, now=2.0, weight=3)
    assert again is target
    check(group, "t0", INITIAL, "Elb.RegistrationInProgress")
    assert (again.host, again.port, again.weight, again.in_flight) == ("10.0.0.9", 81, 3, 1)
    assert (again.consecutive_ok, again.registered_at, again.drain_deadline) == (0, 2.0, 0.0)
    assert group.expire(1000.0) == []
    assert probes(group, "t0", True) == [Transition("t0", INITIAL, HEALTHY, "")]


def test_reregister_keeps_state_otherwise():
    """Re-registering a serving target updates host, port and weight but keeps its state."""
    group = make_group()
    add(group, 1)
    target = group.register("t0", "other", 9999, now=5.0, weight=7)
    check(group, "t0", HEALTHY, "")
    assert (target.host, target.port, target.weight, target.registered_at) == (
        "other",
        9999,
        7,
        0.0,
    )


# --- slow start ----------------------------------------------------------------------------------


def test_first_target_into_empty_group_skips_slow_start():
    """With no other healthy target, a newly healthy target gets full weight at once."""
    group = make_group(slow_start_s=30)
    add(group, 1)
    target = group.targets["t0"]
    assert target.slow_start_until == 0.0
    assert target.effective_weight(0.0, 30) == 1.0


def test_new_target_ramps_linearly():
    """A target joining a healthy group ramps from 10 % to full weight over slow_start_s."""
    group = make_group(slow_start_s=100)
    add(group, 1)
    group.register("new", "h", 80, now=10.0, weight=10)
    group.health_result("new", ok=True, now=10.0)
    target = group.targets["new"]
    assert (target.slow_start_began, target.slow_start_until) == (10.0, 110.0)
    assert target.effective_weight(10.0, 100) == pytest.approx(1.0)
    assert target.effective_weight(60.0, 100) == pytest.approx(5.5)
    assert target.effective_weight(110.0, 100) == 10.0


@given(weight=st.integers(1, 1000), elapsed=st.floats(-5, 200), ramp=st.floats(0.5, 900))
def test_effective_weight_is_never_zero_nor_above_weight(weight, elapsed, ramp):
    """During slow start the effective weight stays within [10 % of weight, weight]."""
    target = Target("t", "h", 1, weight, slow_start_began=0.0, slow_start_until=ramp)
    assert 0.1 * weight - 1e-9 <= target.effective_weight(elapsed, ramp) <= weight


def test_slow_start_share_is_lower_at_start_and_full_after():
    """Round robin sends a ramping target a small share at first and an equal share later."""
    group = make_group(slow_start_s=60)
    add(group, 1)
    group.register("new", "h", 80, now=0.0)
    group.health_result("new", ok=True, now=0.0)
    early = tally(group, 110, now=0.0)
    assert early["new"] <= 11
    late = tally(group, 100, now=60.0)
    assert late == {"t0": 50, "new": 50}


def test_slow_start_applies_to_weighted_random():
    """Weighted random also uses the ramped weight."""
    group = make_group(Algorithm.WEIGHTED_RANDOM, slow_start_s=60)
    add(group, 1)
    group.register("new", "h", 80, now=0.0)
    group.health_result("new", ok=True, now=0.0)
    assert tally(group, 2000, now=0.0, seed=3)["new"] < 300


def test_no_slow_start_when_only_ramping_peers_are_healthy():
    """A target does not enter slow start if every other healthy target is still ramping."""
    group = make_group(slow_start_s=60)
    add(group, 1)
    group.register("a", "h", 80, now=0.0)
    group.health_result("a", ok=True, now=0.0)
    group.deregister("t0", now=1.0)
    group.register("b", "h", 81, now=1.0)
    group.health_result("b", ok=True, now=1.0)
    assert group.targets["a"].slow_start_until == 60.0
    assert group.targets["b"].slow_start_until == 0.0


def test_leaving_healthy_ends_slow_start():
    """A ramping target that turns unhealthy loses its slow start; recovery ramps afresh."""
    group = make_group(slow_start_s=60, unhealthy_threshold=1, healthy_threshold=1)
    add(group, 1)
    group.register("new", "h", 80, now=0.0)
    group.health_result("new", ok=True, now=0.0)
    group.health_result("new", ok=False, now=5.0)
    assert group.targets["new"].slow_start_until == 0.0
    group.health_result("new", ok=True, now=20.0)
    assert group.targets["new"].slow_start_until == 80.0


def test_slow_start_disabled_by_default():
    """With slow_start_s=0 a target joining a healthy group gets full weight."""
    group = make_group()
    add(group, 2)
    assert all(t.slow_start_until == 0.0 for t in group.targets.values())
    assert tally(group, 10) == {"t0": 5, "t1": 5}
