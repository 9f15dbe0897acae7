"""The lab's Prometheus: config and rules checked by promtool, then a real one scraping a lab."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import prometheus
from harness.lab import Lab, ServerSpec, start_lab
from harness.loadgen import GET_ONLY, run_load
from harness.prometheus import (
    LAB_RULES,
    Prometheus,
    PrometheusError,
    Sample,
    ScrapeTarget,
    find_binary,
)
from harness.supervisor import Child, Supervisor, free_port

pytestmark = pytest.mark.core

RULES_TEST = f"""
rule_files:
  - {LAB_RULES}
evaluation_interval: 1s
tests:
  - interval: 1s
    input_series:
      - series: 'lb_requests_total{{service="shop", backend="shop-1", code="200"}}'
        values: '0+9x30'
      - series: 'lb_requests_total{{service="shop", backend="lb", code="503"}}'
        values: '0+1x30'
      - series: 'lb_requests_total{{service="cart", backend="cart-1", code="200"}}'
        values: '0+4x30'
      - series: 'lb_request_duration_seconds_bucket{{service="shop", backend="shop-1", le="0.1"}}'
        values: '0+9x30'
      - series: 'lb_request_duration_seconds_bucket{{service="shop", backend="shop-1", le="0.25"}}'
        values: '0+10x30'
      - series: 'lb_request_duration_seconds_bucket{{service="shop", backend="shop-1", le="+Inf"}}'
        values: '0+10x30'
      - series: 'lb_targets{{service="shop", state="healthy"}}'
        values: '2 2 2 0x20'
      - series: 'up{{service="shop", role="server", instance="shop-1"}}'
        values: '1x30'
      - series: 'up{{service="shop", role="server", instance="shop-2"}}'
        values: '1 1 1 0x20'
    promql_expr_test:
      - expr: service:lb_requests:rate5s
        eval_time: 10s
        exp_samples:
          - labels: 'service:lb_requests:rate5s{{service="shop"}}'
            value: 10
          - labels: 'service:lb_requests:rate5s{{service="cart"}}'
            value: 4
      - expr: service:lb_requests_5xx:ratio_rate5s
        eval_time: 10s
        exp_samples:
          - labels: 'service:lb_requests_5xx:ratio_rate5s{{service="shop"}}'
            value: 0.1
          - labels: 'service:lb_requests_5xx:ratio_rate5s{{service="cart"}}'
            value: 0
      - expr: service:lb_request_duration_seconds:p95_rate5s
        eval_time: 10s
        exp_samples:
          - labels: 'service:lb_request_duration_seconds:p95_rate5s{{service="shop"}}'
            value: 0.175
      - expr: service:up_servers:sum
        eval_time: 10s
        exp_samples:
          - labels: 'service:up_servers:sum{{service="shop"}}'
            value: 1
    alert_rule_test:
      - alertname: ServiceErrorRateHigh
        eval_time: 8s
        exp_alerts: []
      - alertname: ServiceErrorRateHigh
        eval_time: 20s
        exp_alerts:
          - exp_labels: {{service: shop, severity: page}}
            exp_annotations:
              summary: "shop: 10% of requests fail with 5xx"
      - alertname: NoHealthyTargets
        eval_time: 7s
        exp_alerts: []
      - alertname: NoHealthyTargets
        eval_time: 9s  # 0 healthy from 3 s, `for: 5s`; the alert reads a recorded series from
        exp_alerts:    # another group, which promtool may evaluate one interval later
          - exp_labels: {{service: shop, severity: page}}
            exp_annotations:
              summary: "shop: the load balancer has no healthy target"
"""


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_binary("promtool"), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.e2e
def test_written_config_passes_promtool_check_config(tmp_path: Path) -> None:
    """write_config produces a prometheus.yml (with its target file) that promtool accepts."""
    prom = Prometheus(tmp_path, 9090)
    prom.set_targets([ScrapeTarget("127.0.0.1:8080", {"service": "shop", "role": "lb"})])
    path = prom.write_config([LAB_RULES])
    result = promtool("check", "config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.e2e
def test_lab_rules_pass_promtool_check_rules() -> None:
    """harness/rules/lab.rules.yml is a valid rule file for Prometheus 2.42."""
    result = promtool("check", "rules", LAB_RULES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_lab_rules_compute_what_they_claim(tmp_path: Path) -> None:
    """On canned series the recording rules give the expected rates, ratio and p95; alerts fire."""
    test_file = tmp_path / "lab.rules.test.yml"
    test_file.write_text(RULES_TEST)
    result = promtool("test", "rules", test_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_set_targets_writes_valid_json_atomically(tmp_path: Path) -> None:
    """set_targets leaves one file_sd JSON file with every target and no temporary files."""
    prom = Prometheus(tmp_path, 9090)
    prom.set_targets([ScrapeTarget("127.0.0.1:1", {"role": "lb"})])
    prom.set_targets(
        [
            ScrapeTarget("127.0.0.1:1", {"service": "shop", "role": "lb"}),
            ScrapeTarget("127.0.0.1:2", {"service": "shop", "role": "server", "instance": "s-1"}),
        ]
    )
    assert json.loads(prom.targets_path.read_text()) == [
        {"targets": ["127.0.0.1:1"], "labels": {"service": "shop", "role": "lb"}},
        {
            "targets": ["127.0.0.1:2"],
            "labels": {"service": "shop", "role": "server", "instance": "s-1"},
        },
    ]
    assert os.listdir(tmp_path) == [prom.targets_path.name]


def test_failed_set_targets_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the final rename fails, the previous target list stays whole and no temp file remains."""
    prom = Prometheus(tmp_path, 9090)
    prom.set_targets([ScrapeTarget("127.0.0.1:1")])
    before = prom.targets_path.read_text()

    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(prometheus.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        prom.set_targets([ScrapeTarget("127.0.0.1:2")])
    assert prom.targets_path.read_text() == before
    assert os.listdir(tmp_path) == [prom.targets_path.name]


def test_bad_label_names_are_refused() -> None:
    """A label name Prometheus would reject (so ignoring the whole file) fails at once."""
    with pytest.raises(ValueError, match="bad-name"):
        ScrapeTarget("127.0.0.1:1", {"bad-name": "x"})
    with pytest.raises(ValueError, match="__address__"):
        ScrapeTarget("127.0.0.1:1", {"__address__": "x"})


def test_missing_binary_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the binary, find_binary names `apt-get install prometheus`."""
    monkeypatch.setattr(prometheus.shutil, "which", lambda *_, **__: None)
    with pytest.raises(PrometheusError, match="apt-get install prometheus"):
        find_binary()


def lab_targets(lab: Lab) -> list[ScrapeTarget]:
    host, port = lab.control
    lb = ScrapeTarget(f"{host}:{port}", {"service": "shop", "role": "lb", "instance": "lb"})
    return [lb, *(server_target(name, child) for name, child in lab.servers.items())]


def server_target(name: str, child: Child) -> ScrapeTarget:
    host, port = child.address()
    return ScrapeTarget(f"{host}:{port}", {"service": "shop", "role": "server", "instance": name})


async def eventually(prom: Prometheus, expr: str, timeout_s: float = 30.0) -> list[Sample]:
    deadline = time.monotonic() + timeout_s
    while not (samples := await prom.query(expr)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{expr}: still empty after {timeout_s} s")
        await asyncio.sleep(0.1)
    return samples


@pytest.mark.e2e
async def test_prometheus_scrapes_a_lab_and_sees_new_targets(tmp_path: Path) -> None:
    """A real Prometheus scrapes LB and servers, computes the rules, and picks up a new server."""
    async with Supervisor(tmp_path / "run") as sup:
        lab = await start_lab(sup, servers=2, spec=ServerSpec(service_ms=5, slots=16))
        prom = Prometheus(sup.run_dir, free_port())
        prom.write_config([LAB_RULES])
        prom.set_targets(lab_targets(lab))
        await prom.start(sup)
        await prom.wait_for_targets(3, timeout_s=30)

        result = await run_load(*lab.address, duration_s=3, concurrency=4, calls=GET_ONLY)
        assert result.ok > 0

        total = await eventually(prom, "sum(lb_requests_total) > 0")
        assert total[0].value > 0
        rate = await eventually(prom, 'service:lb_requests:rate5s{service="shop"}')
        assert rate[0].labels["service"] == "shop"
        up = await eventually(prom, "service:up_servers:sum == 2")
        assert (up[0].labels["service"], up[0].value) == ("shop", 2.0)
        end = time.time()
        series = await prom.query_range("sum(up)", end - 5, end, step=1.0)
        assert [v for _, v in series[0].points][-1] == 3.0

        with pytest.raises(PrometheusError, match="parse error"):
            await prom.query("sum(lb_requests_total")

        await lab.add_server(ServerSpec(service_ms=5, slots=16), name="shop-new")
        added = time.monotonic()
        prom.set_targets(lab_targets(lab))  # now with shop-new
        await eventually(prom, 'up{instance="shop-new"} == 1', timeout_s=30)
        delay = time.monotonic() - added
        print(f"new target first scraped {delay:.2f} s after set_targets")
        await prom.wait_for_targets(4, timeout_s=10)


@pytest.mark.e2e
async def test_wait_for_targets_names_the_ones_down(tmp_path: Path) -> None:
    """wait_for_targets fails with the instance and error of each target that is not up."""
    async with Supervisor(tmp_path / "run") as sup:
        prom = Prometheus(sup.run_dir, free_port())
        prom.write_config([])
        prom.set_targets([ScrapeTarget(f"127.0.0.1:{free_port()}", {"instance": "ghost"})])
        await prom.start(sup)
        with pytest.raises(PrometheusError, match=r"0 of 1 targets up after 5 s.*ghost") as error:
            await prom.wait_for_targets(1, timeout_s=5)
        print(error.value)
