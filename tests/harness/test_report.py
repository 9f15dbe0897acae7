"""Reports: result.json round-trips, junit.xml parses, report.html is self-contained."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from harness.report import (
    Plot,
    RunResult,
    nice_ticks,
    read_result,
    render_html,
    render_json,
    render_junit,
    render_summary,
    render_svg,
    result_from_json,
    standard_plots,
    write_reports,
)
from harness.slo import Event, Verdict
from harness.topology import topology_from

pytestmark = pytest.mark.core

PLOTTED = topology_from(
    {
        "name": "t",
        "services": {"orders": {"min_replicas": 1, "autoscaling": {"target": 2}}, "auth": {}},
        "gateway": {"routes": [{"name": "orders", "path": "/api/orders", "service": "orders"}]},
    }
)

ROOT = Path(__file__).resolve().parents[2]

P95 = 'histogram_quantile(0.95, y{service="orders"}) < 1 & 2'
VERDICTS = [
    Verdict("few-failed-gets", "threshold", True, 2.0, 3.0, "increase over the run", "<=", "x", 38),
    Verdict("p95-recovers", "recovery", False, 14.0, 10.0, "back after 14 s", "<=", P95, 22, 0, 3),
    Verdict("ejected", "threshold", False, 0.0, 1.0, "max from 12 s to 18 s", ">=", "z", 7),
]
EVENTS = [
    Event(16.0, "kill", "orders", ("orders-2",), "SIGKILL to pid 4242"),
    Event(24.5, "add", "orders", ("orders-4", "orders-5"), "3 -> 5 replicas"),
]
PLOTS = [
    Plot("Requests per second", "req/s", {"client": [(0, 10.0), (1, 250.5), (2, 260.0)]}),
    Plot("orders: latency", "s", {"p50": [(0, 0.02), (1, 0.03)], "p99": [(0, 0.3), (1, 0.4)]}),
    Plot("empty", "count", {}),
]
RESULT = RunResult(
    scenario="kill-under-rush",
    description="SIGKILL one orders server <mid-rush> & see",
    started=1_760_000_000.0,
    ended=1_760_000_038.5,
    duration_s=38.0,
    events=EVENTS,
    verdicts=VERDICTS,
    problems=[],
    plots=PLOTS,
)
INVALID = replace(RESULT, problems=["Locust's CPU was at or above 90% for 6 s"])


# -- result.json -----------------------------------------------------------------------------


def test_json_round_trips() -> None:
    """Reading result.json back gives the same RunResult."""
    assert result_from_json(render_json(RESULT)) == RESULT
    assert result_from_json(render_json(INVALID)) == INVALID


def test_json_has_the_verdict_and_summaries() -> None:
    """result.json carries outcome, exit code, verdicts, events and a summary per series."""
    data = json.loads(render_json(RESULT))
    assert (data["scenario"], data["outcome"], data["exit_code"]) == ("kill-under-rush", "fail", 1)
    assert [v["name"] for v in data["verdicts"]] == [v.name for v in VERDICTS]
    assert data["events"][1]["instances"] == ["orders-4", "orders-5"]
    summary = data["plots"][0]["series"][0]["summary"]
    assert summary == {"points": 3, "min": 10.0, "max": 260.0, "avg": 173.5, "last": 260.0}
    assert json.loads(render_json(INVALID))["exit_code"] == 2


def test_json_is_strict_nan_becomes_null() -> None:
    """A NaN point is written as null (strict JSON) and read back as NaN."""
    result = replace(RESULT, plots=[Plot("p", "s", {"a": [(0, math.nan), (1, 1.0)]})])
    text = render_json(result)

    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(text, parse_constant=refuse)
    assert data["plots"][0]["series"][0]["points"][0] == [0, None]
    point = result_from_json(text).plots[0].series["a"][0]
    assert point[0] == 0
    assert math.isnan(point[1])


def test_json_refuses_another_format() -> None:
    """A JSON document that is not a result is refused."""
    with pytest.raises(ValueError, match=r"not a rushlab\.result/1 document"):
        result_from_json('{"format": "other"}')


# -- junit.xml -------------------------------------------------------------------------------


def test_junit_one_testcase_per_slo() -> None:
    """One testsuite; a testcase per SLO, failures for the violated ones with measured/limit."""
    root = ET.fromstring(render_junit(RESULT))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "kill-under-rush"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "2", "0")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["few-failed-gets", "p95-recovers", "ejected"]
    assert cases[0].find("failure") is None
    assert "measured 2, limit <= 3" in (cases[0].findtext("system-out") or "")
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "recovery: measured 14 s, limit <= 10 s; 22 points judged, 0 missing, 3 skipped"
    )
    assert 'y{service="orders"}) < 1 & 2' in (failure.text or "")
    ejected = cases[2].find("failure")
    assert ejected is not None
    assert ejected.get("message") == "threshold: measured 0, limit >= 1; 7 points judged, 0 missing"


def test_junit_an_slo_without_data_is_an_error_not_a_failure() -> None:
    """An SLO without data is an error testcase (the run is invalid), counted in errors."""
    empty = Verdict(
        "ejected", "threshold", False, None, 1.0, "no data at 7 of 7 points (12 s to 18 s)",
        ">=", "z", 0, 7, no_data=True,
    )  # fmt: skip
    result = replace(RESULT, verdicts=[RESULT.verdicts[0], empty], problems=["SLO ejected: ..."])
    assert result.exit_code == 2
    (suite,) = ET.fromstring(render_junit(result)).findall("testsuite")
    assert (suite.get("failures"), suite.get("errors")) == ("0", "1")
    error = suite.findall("testcase")[1].find("error")
    assert error is not None
    assert (error.get("type"), error.get("message")) == (
        "slo.no-data",
        "threshold: measured no data, limit >= 1; 0 points judged, 7 missing",
    )


def test_junit_invalid_run_is_an_error_testcase() -> None:
    """An invalid run adds a "run validity" testcase with an error element."""
    (suite,) = ET.fromstring(render_junit(INVALID)).findall("testsuite")
    assert (suite.get("tests"), suite.get("errors")) == ("4", "1")
    case = suite.findall("testcase")[-1]
    assert case.get("name") == "run validity"
    error = case.find("error")
    assert error is not None
    assert "Locust's CPU" in (error.get("message") or "")


def test_junit_drops_characters_xml_cannot_carry() -> None:
    """A control character in a detail does not break the XML."""
    verdict = replace(VERDICTS[0], detail="bell \x07 here")
    root = ET.fromstring(render_junit(replace(RESULT, verdicts=[verdict])))
    assert "bell  here" in (root.find("testsuite/testcase/system-out").text or "")  # type: ignore[union-attr]


# -- report.html -----------------------------------------------------------------------------


def test_html_has_a_plot_per_plot() -> None:
    """One inline <svg> per plot."""
    page = render_html(RESULT)
    assert page.count("<svg") == len(PLOTS)


def test_html_marks_every_event_on_every_plot() -> None:
    """Each chaos event is a dashed line on each plot, its detail in the tooltip."""
    page = render_html(RESULT)
    assert page.count('<line class="event"') == len(EVENTS) * len(PLOTS)
    assert "<title>16 s: kill orders orders-2 SIGKILL to pid 4242</title>" in page


def test_html_slo_table() -> None:
    """The SLO table has one row per SLO, coloured by pass or fail."""
    page = render_html(RESULT)
    assert page.count('<tr class="slo pass">') == 1
    assert page.count('<tr class="slo fail">') == 2
    assert '<span class="badge fail">FAIL</span>' in page


def test_html_is_self_contained() -> None:
    """No scripts, no external resources: no http(s):// anywhere, no src= attributes."""
    page = render_html(INVALID)
    assert not re.search(r"https?://", page)
    assert "<script" not in page
    assert "src=" not in page
    assert "<link" not in page


def test_html_escapes_user_text() -> None:
    """Descriptions, labels and expressions are escaped."""
    page = render_html(RESULT)
    assert "&lt;mid-rush&gt; &amp; see" in page
    assert "<mid-rush>" not in page


def test_html_shows_an_invalid_run() -> None:
    """An invalid run says so at the top with its problems."""
    page = render_html(INVALID)
    assert '<span class="badge invalid">INVALID</span>' in page
    assert "<h2>Invalid run</h2>" in page
    assert "at or above 90%" in page


def test_svg_breaks_lines_at_missing_values() -> None:
    """A NaN splits a series into separate polylines; an empty plot says "no data"."""
    plot = Plot("p", "s", {"a": [(0, 1.0), (1, 2.0), (2, math.nan), (3, 1.0), (4, 1.5)]})
    assert render_svg(plot, 4).count("<polyline") == 2
    assert "no data" in render_svg(Plot("e", "s", {}), 4)


def test_nice_ticks() -> None:
    """Ticks are round numbers covering the range."""
    assert nice_ticks(0, 0.37) == [0, 0.1, 0.2, 0.3, 0.4]
    assert nice_ticks(0, 38, 8) == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    assert nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]


# -- summary and files -----------------------------------------------------------------------


def test_summary_is_short_plain_text() -> None:
    """The terminal summary names the outcome, each event and each SLO, without colour codes."""
    text = render_summary(INVALID)
    assert text.startswith("kill-under-rush: INVALID (exit code 2)")
    assert "  PASS  few-failed-gets" in text
    assert "  FAIL  p95-recovers" in text
    assert "kill orders orders-2" in text
    assert "invalid run:" in text
    assert "\x1b" not in text
    assert len(text.splitlines()) < 15


def test_write_reports(tmp_path: Path) -> None:
    """write_reports writes the three files and returns their paths."""
    paths = write_reports(RESULT, tmp_path / "out")
    assert {k: p.name for k, p in paths.items()} == {
        "json": "result.json",
        "junit": "junit.xml",
        "html": "report.html",
    }
    assert read_result(paths["json"]) == RESULT
    ET.parse(paths["junit"])
    assert paths["html"].read_text().startswith("<!doctype html>")


def test_standard_plots_use_documented_metrics() -> None:
    """The report's queries use lb_/server_ metrics docs/metrics.md lists, per service."""
    documented = set(
        re.findall(r"^\| `([a-z_]+)` \|", (ROOT / "docs/metrics.md").read_text(), re.MULTILINE)
    )
    plots = standard_plots(PLOTTED)
    titles = [p.title for p in plots]
    assert "orders: share of traffic per instance" in titles
    assert "auth: instances and targets" in titles
    assert "orders: replicas, desired versus current" in titles
    assert "auth: replicas, desired versus current" not in titles
    pattern = r"\b((?:lb|server|autoscaler)_[a-z_]+?)(?:_bucket)?\b"
    for plot in plots:
        for line in plot.lines:
            for name in re.findall(pattern, line.expr):
                assert name in documented, (plot.title, name)
