"""Scenario files: the shipped ones load; broken ones fail with file:line:col and a field path."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import InputError
from harness.scenario import (
    ChaosStep,
    Scenario,
    TimelineError,
    instance_names,
    load_scenario,
    resolve_timeline,
    topology_path,
)
from harness.topology import DEFAULT_TOPOLOGY, load_topology

pytestmark = pytest.mark.core

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "chaos" / "scenarios").glob("*.yaml"))
SHIPPED_TOPOLOGIES = sorted((ROOT / "harness" / "topologies").glob("*.yaml"))
DOCUMENTED = set(
    re.findall(r"^\| `([a-z_]+)` \|", (ROOT / "docs" / "metrics.md").read_text(), re.MULTILINE)
)

HEAD = """\
name: t
seed: 7
load:
  stages:
    - {duration_s: 10, users: 5, spawn_rate: 5}
    - {duration_s: 20, users: 10, spawn_rate: 5}
"""


def load_text(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return load_scenario(path)


def check_error(tmp_path: Path, text: str, where: str, message: str) -> None:
    """Loading `text` fails with one line `<file>:<where>: <message>...`.

    `where` is "line:col: field.path" (col may be "*" when pydantic's tagged-union path lets
    the position stop at the list item).
    """
    with pytest.raises(InputError) as caught:
        load_text(tmp_path, text)
    path = tmp_path / "scenario.yaml"
    pattern = re.escape(f"{path}:{where}: {message}").replace(r"\*", r"\d+")
    assert any(re.match(pattern, line) for line in caught.value.problems), caught.value.problems


def build(chaos: list[dict[str, Any]], seed: int = 7, duration_s: float = 30) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "t",
            "seed": seed,
            "load": {"stages": [{"duration_s": duration_s, "users": 1, "spawn_rate": 1}]},
            "chaos": chaos,
        }
    )


SHOP = {"orders": ["orders-1", "orders-2", "orders-3"], "auth": ["auth-1", "auth-2"]}


# -- the shipped scenarios -------------------------------------------------------------------


def test_the_documented_scenarios_ship() -> None:
    """chaos/scenarios holds the scenarios the product documents, and the demo's."""
    assert {p.stem for p in SHIPPED} == {
        "kill-under-rush",
        "add-under-rush",
        "pause-gray-failure",
        "latency-one-server",
        "graceful-scale-in",
        "showcase",
        "vertical-vs-horizontal",
        "autoscale-rush",
        "dns-without-lb",
        "rate-limit-burst",
        "noisy-neighbour",
        "service-down-behind-gateway",
        "sync-vs-async-email",
        "short-vs-long-polling",
        "worker-crash",
        "poison-messages",
        "queue-kill",
        "fan-out-with-queues",
        "filter-policies",
        "push-without-ack",
        "slow-consumer-isolation",
        "topic-kill",
        "flash-crowd",
        "origin-down",
        "invalidation-mid-rush",
        "cold-vs-warm-by-region",
        "edge-failover",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenario_loads(path: Path) -> None:
    """Each shipped scenario validates, is named after its file, runs 30-60 s, has SLOs,
    on a shipped topology."""
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.description
    assert 30 <= scenario.duration_s <= 60
    system = scenario.system
    limited = system.gateway is not None and any(r.limits for r in system.gateway.routes)
    autoscaled = any(s.autoscaling for s in system.services.values())
    queued = bool(system.queues)  # the queue scenarios compare designs or poison the flow
    # a flash crowd, or cold edges warming: the load itself is what happens
    crowded = scenario.load.locustfile in ("cdn", "regions")
    assert scenario.chaos or autoscaled or limited or queued or crowded  # something happens
    assert scenario.slos
    assert scenario.system.name in {p.stem for p in SHIPPED_TOPOLOGIES}
    steps = resolve_timeline(scenario, instance_names(scenario.system), scenario.system)
    assert len(steps) == len(scenario.chaos)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenario_uses_documented_metrics(path: Path) -> None:
    """Every lb_/server_/queue_/worker_/provider_ metric an SLO queries is one docs/metrics.md
    lists."""
    scenario = load_scenario(path)
    prefixes = r"(?:lb|server|queue|worker|provider)"
    for slo in scenario.slos:
        for name in re.findall(rf"\b({prefixes}_[a-z_]+?)(?:_bucket|_sum|_count)?\b", slo.expr):
            assert name in DOCUMENTED, (slo.name, name)


# -- loading ---------------------------------------------------------------------------------


def test_minimal_scenario_gets_defaults(tmp_path: Path) -> None:
    """Only a name and stages: shop topology, seed 0, one process, no chaos, no SLOs."""
    scenario = load_text(
        tmp_path, "name: t\nload:\n  stages: [{duration_s: 5, users: 1, spawn_rate: 1}]\n"
    )
    assert (scenario.topology, scenario.seed, scenario.load.workers) == ("shop", 0, 0)
    assert scenario.chaos == []
    assert scenario.slos == []
    assert scenario.duration_s == 5
    assert scenario.source == tmp_path / "scenario.yaml"


def test_duration_is_the_sum_of_the_stages(tmp_path: Path) -> None:
    """The run lasts the stages back to back."""
    assert load_text(tmp_path, HEAD).duration_s == 30


def test_topology_path_relative_to_the_scenario_file(tmp_path: Path) -> None:
    """A topology given as a path is read relative to the scenario file."""
    (tmp_path / "topo").mkdir()
    shutil.copy(DEFAULT_TOPOLOGY, tmp_path / "topo" / "mine.yaml")
    scenario = load_text(tmp_path, HEAD + "topology: topo/mine.yaml\n")
    assert scenario.system == load_topology(DEFAULT_TOPOLOGY)
    assert topology_path("shop", None) == DEFAULT_TOPOLOGY


def test_unknown_service(tmp_path: Path) -> None:
    """A service the topology lacks is named with its position and the services there are."""
    text = HEAD + "chaos:\n  - {at_s: 5, action: kill, service: orderz}\n"
    check_error(tmp_path, text, "8:29: chaos.0.service", "no service 'orderz' in topology 'shop'")


def test_at_s_beyond_the_run(tmp_path: Path) -> None:
    """An event after the last stage ends points at its at_s."""
    text = HEAD + "chaos:\n  - {at_s: 31, action: kill, service: orders}\n"
    check_error(tmp_path, text, "8:6: chaos.0.at_s", "31 s is after the end of the run (30 s)")


def test_latency_without_latency_ms(tmp_path: Path) -> None:
    """The latency action needs latency_ms; the path names the action."""
    text = HEAD + "chaos:\n  - {at_s: 5, action: latency, service: orders}\n"
    check_error(tmp_path, text, "8:*: chaos.0.latency.latency_ms", "Field required")


def test_field_of_another_action(tmp_path: Path) -> None:
    """A field another action takes (latency_ms on kill) is refused."""
    text = HEAD + "chaos:\n  - {at_s: 5, action: kill, service: orders, latency_ms: 3}\n"
    check_error(tmp_path, text, "8:*: chaos.0.kill.latency_ms", "unknown field")


def test_unknown_action(tmp_path: Path) -> None:
    """An action outside the vocabulary lists the ones there are."""
    text = HEAD + "chaos:\n  - {at_s: 5, action: nuke, service: orders}\n"
    check_error(tmp_path, text, "8:*: chaos.0", "Input tag 'nuke' found using 'action'")


def test_unknown_slo_kind(tmp_path: Path) -> None:
    """An SLO kind outside threshold/always/recovery is refused at its item."""
    text = HEAD + "slos:\n  - {name: a, kind: sometimes, expr: up, max: 1}\n"
    check_error(tmp_path, text, "8:*: slos.0", "Input tag 'sometimes' found using 'kind'")


def test_typo_in_a_field(tmp_path: Path) -> None:
    """A misspelt top-level field is pointed at exactly."""
    text = HEAD + "sloss: []\n"
    check_error(tmp_path, text, "7:1: sloss", "unknown field (a typo?)")


def test_typo_in_a_stage(tmp_path: Path) -> None:
    """A misspelt field inside a stage is pointed at exactly."""
    text = "name: t\nload:\n  stages:\n    - duration_s: 5\n      user: 1\n      spawn_rate: 1\n"
    check_error(tmp_path, text, "5:7: load.stages.0.user", "unknown field (a typo?)")


def test_slo_fields_per_kind(tmp_path: Path) -> None:
    """within_s belongs to recovery SLOs; a threshold SLO refuses it."""
    text = HEAD + "slos:\n  - {name: a, kind: threshold, expr: up, max: 1, within_s: 3}\n"
    check_error(tmp_path, text, "8:*: slos.0.threshold.within_s", "unknown field")


def test_recovery_needs_within_s(tmp_path: Path) -> None:
    """A recovery SLO without within_s is refused."""
    text = (
        HEAD
        + "chaos:\n  - {at_s: 5, action: kill, service: orders}\n"
        + "slos:\n  - {name: a, kind: recovery, expr: up, max: 1}\n"
    )
    check_error(tmp_path, text, "10:*: slos.0.recovery.within_s", "Field required")


def test_slo_needs_exactly_one_bound(tmp_path: Path) -> None:
    """max and min together (or neither) is refused."""
    text = HEAD + "slos:\n  - {name: a, kind: always, expr: up, max: 1, min: 0}\n"
    check_error(tmp_path, text, "8:*: slos.0.always", "Value error, give exactly one bound")


def test_window_beyond_the_run(tmp_path: Path) -> None:
    """A window ending after the run points at its to_s."""
    text = (
        HEAD
        + "slos:\n  - {name: a, kind: always, expr: up, max: 1, window: {from_s: 0, to_s: 40}}\n"
    )
    check_error(tmp_path, text, "8:67: slos.0.window.to_s", "40 s is after the end of the run")


@pytest.mark.parametrize("selector", ["[2s]", "[1500ms]", "[2s:1s]"])
def test_rate_range_too_short_for_the_scrape_interval(tmp_path: Path, selector: str) -> None:
    """A range that two scrapes barely fill reads as "no data" when one scrape is late (the
    run is then invalid): it is refused before anything starts, pointing at the expression."""
    text = HEAD + f"slos:\n  - {{name: a, kind: always, expr: 'rate(up{selector})', max: 1}}\n"
    check_error(tmp_path, text, "8:29: slos.0.expr", "range [")
    with pytest.raises(InputError, match=r"shorter than 3 s.*use \[3s\] or more"):
        load_text(tmp_path, text)


def test_rate_range_of_three_scrapes_is_accepted(tmp_path: Path) -> None:
    text = (
        HEAD
        + "slos:\n  - {name: a, kind: always, expr: 'rate(up[3s]) + rate(up[1m:1s])', max: 1}\n"
    )
    assert load_text(tmp_path, text).slos[0].name == "a"


def test_window_backwards(tmp_path: Path) -> None:
    """A window must end after it starts."""
    text = (
        HEAD
        + "slos:\n  - {name: a, kind: always, expr: up, max: 1, window: {from_s: 9, to_s: 4}}\n"
    )
    check_error(tmp_path, text, "8:*: slos.0.always.window", "Value error, to_s (4.0) must be")


def test_duplicate_slo_names(tmp_path: Path) -> None:
    """Two SLOs with one name would be one JUnit testcase; the second is refused."""
    text = (
        HEAD
        + "slos:\n  - {name: a, kind: always, expr: up, max: 1}\n"
        + "  - {name: a, kind: always, expr: up, max: 2}\n"
    )
    check_error(tmp_path, text, "9:6: slos.1.name", "another SLO is already named 'a'")


def test_recovery_after_an_action_not_in_the_timeline(tmp_path: Path) -> None:
    """`after: [add]` without an add event can judge nothing."""
    text = (
        HEAD
        + "chaos:\n  - {at_s: 5, action: kill, service: orders}\n"
        + "slos:\n  - {name: a, kind: recovery, expr: up, max: 1, within_s: 5, after: [add]}\n"
    )
    check_error(tmp_path, text, "10:62: slos.0.after", "no add event in the chaos timeline")


def test_recovery_without_any_event(tmp_path: Path) -> None:
    """A recovery SLO in a scenario without chaos is refused."""
    text = HEAD + "slos:\n  - {name: a, kind: recovery, expr: up, max: 1, within_s: 5}\n"
    check_error(tmp_path, text, "8:15: slos.0.kind", "a recovery SLO needs a chaos event")


def test_recovery_past_the_end_of_the_run(tmp_path: Path) -> None:
    """An event too close to the end to show recovery within within_s is refused."""
    text = (
        HEAD
        + "chaos:\n  - {at_s: 25, action: kill, service: orders}\n"
        + "slos:\n  - {name: a, kind: recovery, expr: up, max: 1, within_s: 10}\n"
    )
    check_error(tmp_path, text, "10:49: slos.0.within_s", "the run ends 5 s after the 25 s event")


def test_instance_and_count_together(tmp_path: Path) -> None:
    """An action names one instance or a count of random ones, not both."""
    text = (
        HEAD
        + "chaos:\n  - {at_s: 5, action: kill, service: orders, instance: orders-1, count: 2}\n"
    )
    check_error(tmp_path, text, "8:*: chaos.0.kill", "Value error, give instance or count")


def test_count_at_least_one(tmp_path: Path) -> None:
    """count 0 is refused."""
    text = HEAD + "chaos:\n  - {at_s: 5, action: add, service: orders, count: 0}\n"
    check_error(tmp_path, text, "8:*: chaos.0.add.count", "Input should be greater than or equal")


def test_kill_more_than_there_are(tmp_path: Path) -> None:
    """Killing 3 of orders after one died leaves too few: the event is named."""
    text = (
        HEAD
        + "chaos:\n  - {at_s: 5, action: kill, service: orders}\n"
        + "  - {at_s: 6, action: kill, service: orders, count: 3}\n"
    )
    check_error(tmp_path, text, "9:5: chaos.1", "kill: at 6 s orders has 2 instance(s)")


def test_unknown_instance(tmp_path: Path) -> None:
    """An instance the lab will not have is named with the ones it will."""
    text = HEAD + "chaos:\n  - {at_s: 5, action: pause, service: orders, instance: orders-7}\n"
    check_error(
        tmp_path,
        text,
        "8:5: chaos.0",
        "no instance 'orders-7' of orders at 5 s (there are: orders-1, orders-2, orders-3)",
    )


def test_add_past_max_replicas(tmp_path: Path) -> None:
    """The topology's max_replicas bounds add (orders: 12)."""
    text = HEAD + "chaos:\n  - {at_s: 5, action: add, service: orders, count: 10}\n"
    check_error(tmp_path, text, "8:5: chaos.0", "at 5 s orders has 3 replicas; adding 10")


def test_remove_below_min_replicas(tmp_path: Path) -> None:
    """The topology's min_replicas bounds remove (orders: 1)."""
    text = HEAD + "chaos:\n  - {at_s: 5, action: remove, service: orders, count: 3}\n"
    check_error(tmp_path, text, "8:5: chaos.0", "at 5 s orders has 3 replicas; removing 3")


def test_missing_topology(tmp_path: Path) -> None:
    """A topology name with no file is pointed at its key."""
    check_error(tmp_path, HEAD + "topology: nope\n", "7:1: topology", "no topology file")


def test_broken_topology_file(tmp_path: Path) -> None:
    """Errors inside the topology file name that file."""
    (tmp_path / "bad.yaml").write_text("name: bad\nservices: {}\n")
    with pytest.raises(InputError) as caught:
        load_text(tmp_path, HEAD + "topology: bad.yaml\n")
    assert caught.value.problems[0].startswith(f"{tmp_path / 'bad.yaml'}:2:")


def test_empty_file(tmp_path: Path) -> None:
    """An empty file says so."""
    check_error(tmp_path, "", "1:1", "the file is empty")


def test_wait_s_ordered(tmp_path: Path) -> None:
    """wait_s is [min, max] with min <= max."""
    text = (
        "name: t\nload:\n  stages: [{duration_s: 5, users: 1, spawn_rate: 1}]\n  wait_s: [2, 1]\n"
    )
    check_error(tmp_path, text, "4:3: load.wait_s", "Value error, wait_s must be [min, max]")


# -- the timeline ----------------------------------------------------------------------------


def test_timeline_in_time_order_ties_in_file_order() -> None:
    """Steps come out sorted by at_s; events at the same time keep their file order."""
    scenario = build(
        [
            {"at_s": 9, "action": "clear", "service": "orders"},
            {"at_s": 2, "action": "latency", "service": "orders", "latency_ms": 5},
            {"at_s": 2, "action": "errors", "service": "auth", "error_rate": 0.5},
        ]
    )
    steps = resolve_timeline(scenario, SHOP)
    assert [(s.at_s, s.action) for s in steps] == [(2, "latency"), (2, "errors"), (9, "clear")]
    assert steps[0].params == {"latency_ms": 5}
    assert steps[1].params == {"error_rate": 0.5}


def test_timeline_follows_instance_states() -> None:
    """Each action picks among the states it may act on, as the earlier steps left them."""
    scenario = build(
        [
            {"at_s": 1, "action": "kill", "service": "orders", "instance": "orders-1"},
            {"at_s": 2, "action": "pause", "service": "orders", "instance": "orders-2"},
            {"at_s": 3, "action": "pause", "service": "orders"},
            {"at_s": 4, "action": "resume", "service": "orders", "instance": "orders-2"},
            {"at_s": 5, "action": "clear", "service": "orders"},
            {"at_s": 6, "action": "restart", "service": "orders", "instance": "orders-1"},
            {"at_s": 7, "action": "clear", "service": "orders"},
        ]
    )
    steps = resolve_timeline(scenario, SHOP)
    assert [s.instances for s in steps] == [
        ("orders-1",),
        ("orders-2",),
        ("orders-3",),  # the only one still running
        ("orders-2",),
        ("orders-2",),  # clear: every running one (orders-1 killed, orders-3 paused)
        ("orders-1",),  # restart brings a killed instance back
        ("orders-1", "orders-2"),
    ]


def test_resize_carries_its_slots_and_refuses_a_killed_instance(tmp_path: Path) -> None:
    """resize picks a live instance, keeps it running, and needs slots (a field error)."""
    scenario = build(
        [
            {"at_s": 1, "action": "resize", "service": "orders", "slots": 32},
            {"at_s": 2, "action": "kill", "service": "orders", "instance": "orders-2"},
            {
                "at_s": 3,
                "action": "resize",
                "service": "orders",
                "instance": "orders-2",
                "slots": 4,
            },
        ]
    )
    with pytest.raises(TimelineError, match="resize: at 3 s orders-2 is killed, not running"):
        resolve_timeline(scenario, SHOP)
    [step] = resolve_timeline(build(scenario.model_dump()["chaos"][:1]), SHOP)
    assert (step.action, step.params["slots"], len(step.instances)) == ("resize", 32, 1)
    text = HEAD + "chaos:\n  - {at_s: 5, action: resize, service: orders}\n"
    check_error(tmp_path, text, "8:*: chaos.0.resize.slots", "Field required")


def test_via_dns_needs_dns_records(tmp_path: Path) -> None:
    """Users resolve names only with a topology that has dns records."""
    text = HEAD.replace("load:\n", "topology: scaling\nload:\n  via_dns: true\n")
    check_error(tmp_path, text, "5:3: load.via_dns", "topology 'scaling' has no dns records")


def test_action_on_an_instance_in_the_wrong_state() -> None:
    """Pausing a killed instance cannot be played; the error says its state."""
    scenario = build(
        [
            {"at_s": 1, "action": "kill", "service": "orders", "instance": "orders-1"},
            {"at_s": 2, "action": "pause", "service": "orders", "instance": "orders-1"},
        ]
    )
    with pytest.raises(TimelineError, match="pause: at 2 s orders-1 is killed, not running"):
        resolve_timeline(scenario, SHOP)


def test_resume_with_nothing_paused() -> None:
    """resume when no instance is paused cannot be played."""
    scenario = build([{"at_s": 1, "action": "resume", "service": "orders"}])
    with pytest.raises(TimelineError, match="resume: at 1 s orders has 0 instance"):
        resolve_timeline(scenario, SHOP)


def test_add_names_new_replicas_after_the_highest() -> None:
    """Added replicas continue the numbering, as the lab names them."""
    scenario = build(
        [
            {"at_s": 1, "action": "add", "service": "orders", "count": 2},
            {"at_s": 2, "action": "remove", "service": "orders", "instance": "orders-5"},
            {"at_s": 3, "action": "add", "service": "orders"},
        ]
    )
    steps = resolve_timeline(scenario, SHOP)
    assert steps[0] == ChaosStep(1, "add", "orders", ("orders-4", "orders-5"))
    assert steps[2].instances == ("orders-6",)


def test_seeded_choice_is_deterministic() -> None:
    """The same scenario and instances always resolve to the same steps."""
    scenario = build([{"at_s": 1, "action": "kill", "service": "orders", "count": 2}])
    assert resolve_timeline(scenario, SHOP) == resolve_timeline(scenario, SHOP)


@given(seed=st.integers(0, 2**32), count=st.integers(1, 5), size=st.integers(1, 8))
def test_random_choice_picks_distinct_live_instances(seed: int, count: int, size: int) -> None:
    """Random picks are `count` distinct instances of the pool, or a TimelineError."""
    pool = {"orders": [f"orders-{i}" for i in range(1, size + 1)]}
    scenario = build([{"at_s": 1, "action": "stop", "service": "orders", "count": count}], seed)
    if count > size:
        with pytest.raises(TimelineError):
            resolve_timeline(scenario, pool)
        return
    (step,) = resolve_timeline(scenario, pool)
    assert len(set(step.instances)) == count
    assert set(step.instances) <= set(pool["orders"])
