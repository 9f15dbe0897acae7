"""`harness run` for real: lab, Prometheus, Locust, chaos, SLOs, reports and the exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

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
    assert "<svg" in (report / "report.html").read_text()


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
