"""`harness run` for real: lab, Prometheus, Locust, chaos, SLOs, reports and the exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "chaos" / "scenarios").glob("*.yaml"))

pytestmark = pytest.mark.e2e


def run(scenario: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "harness", "run", str(scenario)),
            *("--run-dir", str(tmp_path / "run"), "--report", str(tmp_path / "report")),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.stem for s in SCENARIOS])
def test_shipped_scenario_passes_on_the_default_topology(scenario: Path, tmp_path: Path) -> None:
    """Every shipped scenario runs end to end and its SLOs hold (exit 0), with all reports."""
    result = run(scenario, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = tmp_path / "report"
    data = json.loads((report / "result.json").read_text())
    assert data["exit_code"] == 0
    assert data["problems"] == []
    cases = ET.parse(report / "junit.xml").getroot().iter("testcase")
    assert len(list(cases)) == len(data["verdicts"])
    page = (report / "report.html").read_text()
    assert "<svg" in page
    assert 'href="map.html"' in page  # the lab near the end of the rush, drawn
    assert "window.MAP_STATE" in (report / "map.html").read_text()


def test_violated_slo_exits_1_and_says_which(tmp_path: Path) -> None:
    """An SLO the system cannot meet fails the run with exit 1, naming the SLO and the value."""
    scenario = tmp_path / "impossible.yaml"
    scenario.write_text(
        """
name: impossible
description: a p95 under a tenth of a millisecond, which no server here can give
topology: shop
load:
  stages: [{duration_s: 8, users: 10, spawn_rate: 10}]
slos:
  - name: p95-impossibly-low
    kind: always
    expr: >-
      histogram_quantile(0.95, sum by (le)
      (rate(lb_request_duration_seconds_bucket{service="orders"}[5s])))
    max: 0.0001
    window: {from_s: 5, to_s: 8}
"""
    )
    result = run(scenario, tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "FAIL" in result.stdout
    assert "p95-impossibly-low" in result.stdout
    failures = ET.parse(tmp_path / "report" / "junit.xml").getroot().iter("failure")
    assert len(list(failures)) == 1


def test_bad_scenario_exits_2_before_starting_anything(tmp_path: Path) -> None:
    """A scenario naming an unknown service is refused with file:line:col; nothing starts."""
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        "name: bad\ndescription: x\nload:\n  stages: [{duration_s: 5, users: 1, spawn_rate: 1}]\n"
        "chaos:\n  - {at_s: 1, action: kill, service: nosuch}\nslos: []\n"
    )
    result = run(scenario, tmp_path)
    assert result.returncode == 2
    assert f"{scenario}:6:" in result.stdout
    assert "nosuch" in result.stdout
    assert not (tmp_path / "run").exists()


# -- every safety SLO fails on a broken variant ------------------------------------------------

ERRORS_ON_ORDERS = {"at_s": 4, "action": "errors", "service": "orders", "count": 3}
KILL_EMAIL_WORKERS = [
    {"at_s": 10, "action": "kill", "service": "email-workers", "count": 2},
    {"at_s": 20, "action": "restart", "service": "email-workers", "count": 2},
]
WORKERS_ACK_FIRST = {("workers", "*", "ack"): "before_send"}
Patch = dict[tuple[str, ...], Any]
"""Topology changes: a path of keys (`*` for every key there) to its new value (None: gone)."""
BROKEN: dict[str, tuple[str, list[dict[str, Any]], Patch, set[str], set[str]]] = {
    # variant: (shipped scenario, chaos (replacing its own), topology changes, SLOs that must
    #           fail, SLOs that must still pass, showing the failure is that variant's own)
    "errors-fail-gets": (
        "kill-under-rush",
        [{**ERRORS_ON_ORDERS, "error_rate": 0.2}],
        {},
        {"few-failed-gets"},
        set(),
    ),
    "async-errors-and-no-workers": (
        "sync-vs-async-email",
        [
            {"at_s": 10, "action": "errors", "service": "payments-async", "error_rate": 0.3},
            {"at_s": 20, "action": "stop", "service": "email-workers", "count": 6},
        ],
        {},
        {"async-never-fails", "queue-drained"},
        {"sync-collapses"},
    ),
    "workers-ack-before-sending": (
        "sync-vs-async-email",
        [],
        WORKERS_ACK_FIRST,
        {"every-email-accounted-for"},
        {"queue-drained", "async-never-fails"},
    ),
    "removal-without-draining": (
        "graceful-scale-in",
        [
            {"at_s": 8, "action": "latency", "service": "orders", "instance": "orders-2",
             "latency_ms": 400},
            {"at_s": 12, "action": "kill", "service": "orders", "instance": "orders-2"},
        ],
        {},
        {"zero-failed-requests"},
        set(),  # the killed server stays registered (unhealthy), the slow one lifts p95
    ),
    "fan-out-workers-ack-before-sending": (
        "fan-out-with-queues",
        KILL_EMAIL_WORKERS,
        {**WORKERS_ACK_FIRST, ("providers", "mail", "failure_rate"): 0.2},
        {"no-email-lost"},
        {"payments-unaffected", "no-notification-lost", "every-payment-published"},
    ),
    "fraud-check-unfiltered": (
        "filter-policies",
        [],
        {("topics", "payments", "subscriptions", "fraud-check", "filter"): None},
        {"fraud-gets-exactly-the-large-payments"},
        {"some-large-payments", "unfiltered-get-everything"},
    ),
    "push-consumer-never-down": (
        "push-without-ack",
        [
            {"at_s": 10, "action": "kill", "service": "whatsapp-workers"},
            {"at_s": 25, "action": "restart", "service": "whatsapp-workers"},
        ],
        {},
        {"push-loses-events"},
        {"every-loss-dropped", "drops-accounted-for", "queue-loses-none", "payments-unaffected"},
    ),
    "whatsapp-never-slow": (
        "slow-consumer-isolation",
        [],
        {},
        {"whatsapp-queue-grows", "whatsapp-queue-ages"},
        {"emails-keep-their-latency", "whatsapp-catches-up"},
    ),
    "regions-catalogue-sent-private": (
        "cold-vs-warm-by-region",
        [],
        {("services", "orders", "content", "catalogue_private"): True},
        {"warm-edges-hit", "near-regions-are-near"},
        {"nearest-edge-by-region", "far-region-pays-the-distance", "nothing-fails"},
    ),
    "latency-dns-without-health-checks": (
        "edge-failover",
        [{"at_s": 15, "action": "kill", "service": "edge-eu"}],
        {("dns", "records", 0, "health_checks"): False},
        {"dns-withdraws-the-dead-edge", "nothing-fails-after-ttl-plus-checks"},
        {"eu-fails-while-it-holds-the-answer", "us-east-never-fails"},
    ),
    "catalogue-max-age-zero": (
        "flash-crowd",
        [],
        {
            ("services", "orders", "content", "catalogue_max_age_s"): 0,
            ("services", "orders", "content", "stale_while_revalidate_s"): 0,
        },
        {"origin-fetches-per-ttl", "edge-latency-flat"},
        {"origin-collapses"},
    ),
    "catalogue-sent-private": (
        "origin-down",
        [
            {"at_s": 12, "action": "kill", "service": "orders", "instance": "orders-1"},
            {"at_s": 27, "action": "restart", "service": "orders", "instance": "orders-1"},
        ],
        {("services", "orders", "content", "catalogue_private"): True},
        {"hot-page-always-answered", "stale-served-on-error"},
        {"origin-side-fails", "uncached-fails-clearly"},
    ),
    "one-edge-forgotten": (
        "invalidation-mid-rush",
        [
            {"at_s": 12, "action": "publish", "service": "orders", "instance": "orders-1",
             "version": 2},
            {"at_s": 15, "action": "invalidate", "service": "edge-a"},
        ],
        {},
        {"no-old-version-after-invalidation"},
        {"origin-shows-the-new-version", "edges-keep-the-old-version"},
    ),
}  # fmt: skip


def patched(tree: Any, path: tuple[str, ...], value: Any) -> None:
    """Set (or, for None, remove) the value at `path` in `tree`, `*` matching every key."""
    head, rest = path[0], path[1:]
    keys = list(tree) if head == "*" else [head]
    for key in keys:
        if rest:
            patched(tree[key], rest, value)
        elif value is None:
            del tree[key]
        else:
            tree[key] = value


def broken_variant(name: str, tmp_path: Path) -> Path:
    """The shipped scenario with the variant's chaos (replacing its own) and topology changes
    (in a copy of its topology)."""
    shipped, chaos, changes, _, _ = BROKEN[name]
    yaml = YAML(typ="safe")
    scenario = yaml.load((ROOT / "chaos" / "scenarios" / f"{shipped}.yaml").read_text())
    scenario["name"] = f"{shipped}-broken"
    scenario["chaos"] = chaos
    if changes:
        topology = yaml.load(
            (ROOT / "harness/topologies" / f"{scenario['topology']}.yaml").read_text()
        )
        for path, value in changes.items():
            patched(topology, path, value)
        yaml.dump(topology, tmp_path / "topology.yaml")
        scenario["topology"] = "topology.yaml"
    path = tmp_path / f"{name}.yaml"
    yaml.dump(scenario, path)
    return path


@pytest.mark.parametrize("variant", BROKEN, ids=list(BROKEN))
def test_every_safety_slo_fails_on_a_broken_variant(variant: str, tmp_path: Path) -> None:
    """A deliberately broken variant of a shipped scenario (errors the LB cannot retry away,
    failing async payments, stopped workers, workers that delete before sending, a removal
    that kills a busy server, a filter taken away, a push consumer never down, a provider
    never slow) fails that scenario's SLOs for real: exit 1, and the SLOs the breakage does
    not touch still pass."""
    *_, must_fail, must_pass = BROKEN[variant]
    result = run(broken_variant(variant, tmp_path), tmp_path)
    data = json.loads((tmp_path / "report" / "result.json").read_text())
    outcomes = {v["name"]: v["outcome"] for v in data["verdicts"]}
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert data["problems"] == []
    assert {name: outcomes[name] for name in must_fail} == dict.fromkeys(must_fail, "fail")
    assert {name: outcomes[name] for name in must_pass} == dict.fromkeys(must_pass, "pass")
    if variant == "errors-fail-gets":  # the failures show in the report's plot too
        (errors,) = [p for p in data["plots"] if p["title"].startswith("Errors per second")]
        (client,) = [s for s in errors["series"] if s["label"] == "client failures"]
        assert client["summary"]["max"] > 0
