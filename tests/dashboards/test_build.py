"""Dashboards as code: the committed files are current, the JSON is sound Grafana, and every
query stays within the metric contract (docs/metrics.md, the recording rules).

The checks of sound JSON and of the metric contract run over every dashboard of
`dashboards.build.dashboards()`; the expected panels and variables of each are in its own module
(Elasticity here, Queues in test_queues.py, Fan-out in test_fanout.py)."""

from __future__ import annotations

import copy
import json
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard
from ruamel.yaml import YAML

from dashboards import elasticity, panels
from dashboards.__main__ import main
from dashboards.build import GENERATED, build_all, dashboards, render, write_all
from dashboards.queries import dashboard_queries, interpolate, metric_names
from harness.prometheus import LAB_RULES
from harness.report import standard_plots
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
METRICS_DOC = ROOT / "docs" / "metrics.md"
PROMETHEUS_OWN = frozenset({"up"})  # Prometheus writes it for every target it scrapes
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
DASHBOARDS = sorted(dashboards())
"""Every dashboard's file name: cdn.json, elasticity.json, fanout.json, queues.json."""
GRAFANA_VARIABLES = frozenset({"__interval", "__rate_interval", "__range"})

EXPECTED_PANELS = [
    "Overview",
    "Requests/s at the load balancers",
    "Requests/s sent by clients",
    "5xx share at the load balancers",
    "Client failure share",
    "Worst p99 at the load balancers",
    "Instances up",
    "Healthy targets",
    "Locust users",
    "Traffic and errors",
    "Requests per second",
    "Errors per second",
    "Answers by status code at the load balancers",
    "Error share",
    "Front door: API gateway",
    "Gateway: requests per second by route and status",
    "Gateway: rate-limit decisions per second",
    "Gateway: p95 latency by route",
    "Latency",
    "Latency at the load balancers",
    "Latency seen by clients (Locust)",
    "Server latency by endpoint (p95)",
    "Wait for a slot (server backlog)",
    "Elasticity: instances and targets",
    "Instances up and healthy targets",
    "Targets by state (load balancer view)",
    "Target health per instance",
    "Instances by what the lab did (harness)",
    "Elasticity: autoscaler",
    "Replicas: desired versus current",
    "Load per replica versus target",
    "Scaling decisions per second",
    "Load balancing",
    "Share of traffic per instance",
    "Requests in flight per target",
    "Retries by reason",
    "Upstream errors by reason",
    "Failed health checks",
    "Servers: saturation",
    "Slots in use per instance",
    "Requests waiting for a slot",
    "Server answers by code",
    "Instances with a fault injected",
]


def documented_metrics() -> frozenset[str]:
    """The names in docs/metrics.md's tables (Locust's exporter included)."""
    table = re.findall(r"^\| `([a-z_]+)` \|", METRICS_DOC.read_text(), flags=re.MULTILINE)
    return frozenset(table)


def recording_rules() -> dict[str, str]:
    """Recording rule name -> its expression, from harness/rules/lab.rules.yml."""
    data = YAML(typ="safe", pure=True).load(LAB_RULES)
    return {
        rule["record"]: rule["expr"]
        for group in data["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def base_name(name: str) -> str:
    """A histogram's series (`x_bucket`, `x_sum`, `x_count`) named as the histogram `x`."""
    for suffix in HISTOGRAM_SERIES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def dashboard(name: str = "elasticity.json") -> dict[str, Any]:
    return build_all()[name]


def panel_list(name: str = "elasticity.json") -> list[dict[str, Any]]:
    return list(dashboard(name)["panels"])


def check_panels(found: list[dict[str, Any]]) -> None:
    """Unique ids; rows open and empty; every other panel a known type on the datasource
    variable, with targets (unique refIds) and a description."""
    ids = [p["id"] for p in found]
    assert len(ids) == len(set(ids))
    for panel in found:
        if panel["type"] == "row":
            assert panel["panels"] == []
            assert not panel["collapsed"]
            continue
        assert panel["type"] in {"stat", "timeseries", "state-timeline"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        assert panel["description"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_committed_files_equal_what_the_code_builds() -> None:
    """dashboards/generated holds exactly the files `build_all` makes, byte for byte."""
    built = build_all()
    for name, data in built.items():
        path = GENERATED / name
        assert path.exists(), f"{path} missing: run `python -m dashboards build`"
        assert path.read_text() == render(name, data), (
            f"{path} differs from the code: run `python -m dashboards build` (never edit it)"
        )
    on_disk = {str(p.relative_to(GENERATED)) for p in GENERATED.rglob("*") if p.is_file()}
    assert on_disk == set(built), "stale files in dashboards/generated"


def test_generated_text_is_stable_and_ends_with_a_newline(tmp_path: Path) -> None:
    """Two builds write identical files: sorted keys, a trailing newline, nothing time-based."""
    first = {p.name: p.read_text() for p in write_all(tmp_path / "a")}
    second = {p.name: p.read_text() for p in write_all(tmp_path / "b")}
    assert first == second
    assert all(text.endswith("\n") and not text.endswith("\n\n") for text in first.values())
    for name in DASHBOARDS:
        text = first[name]
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_command_line_builds_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m dashboards build` writes the files; `check` exits 1 once one is edited."""
    assert main(["build", "--out", str(tmp_path)]) == 0
    assert DASHBOARDS == ["cdn.json", "elasticity.json", "fanout.json", "queues.json"]
    assert all((tmp_path / name).exists() for name in DASHBOARDS)
    assert main(["check", "--out", str(tmp_path)]) == 0
    path = tmp_path / "provisioning/datasources/prometheus.yaml"
    path.write_text(path.read_text() + "# edited by hand\n")
    assert main(["check", "--out", str(tmp_path)]) == 1
    assert "prometheus.yaml: not current" in capsys.readouterr().err


@pytest.mark.parametrize("name", DASHBOARDS)
def test_json_round_trips_through_the_sdk(name: str) -> None:
    """Dashboard.from_json reads the JSON back to the same JSON, bar the annotation extras
    the SDK's model has no field for."""
    register_default_plugins()
    data = dashboard(name)
    again = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    expected = copy.deepcopy(data)
    for annotation in expected["annotations"]["list"]:
        for key in panels.PROMETHEUS_ANNOTATION_EXTRAS.get(annotation["name"], {}):
            del annotation[key]
    assert again == expected


def test_panels_are_the_expected_ones_with_unique_ids() -> None:
    """Elasticity's panels appear in the expected order, each with its own id and a
    Prometheus target."""
    found = panel_list()
    assert [p["title"] for p in found] == EXPECTED_PANELS
    check_panels(found)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_panel_has_an_id_a_datasource_targets_and_a_description(name: str) -> None:
    """What Grafana needs of each panel, and what a reader needs: a description."""
    check_panels(panel_list(name))


def test_dashboards_have_distinct_uids_and_titles() -> None:
    """Each dashboard is its own Grafana dashboard (push_dashboard overwrites by uid)."""
    built = [dashboard(name) for name in DASHBOARDS]
    assert len({d["uid"] for d in built}) == len(built)
    assert len({d["title"] for d in built}) == len(built)
    assert all(d["uid"].startswith("rushlab-") and d["tags"] == ["rushlab"] for d in built)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_dashboard_marks_chaos_events(name: str) -> None:
    """The shared frame: a datasource variable, and chaos from Prometheus and from Grafana's
    store on every dashboard."""
    data = dashboard(name)
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    annotations = {a["name"]: a for a in data["annotations"]["list"]}
    chaos = annotations[panels.CHAOS_ANNOTATION]
    assert metric_names(chaos["expr"]) == {"harness_chaos_events_total"}
    assert chaos["step"] == "5s"
    assert annotations[panels.CHAOS_PUSHED_ANNOTATION]["target"]["tags"] == [panels.CHAOS_TAG]


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_variable_a_query_uses_is_defined(name: str) -> None:
    """No `$name` in an expression but the dashboard's own variables and Grafana's interval
    variables (a typo would reach Prometheus as a literal `$name`)."""
    data = dashboard(name)
    defined = {v["name"] for v in data["templating"]["list"]} | GRAFANA_VARIABLES
    for query in dashboard_queries(data):
        unquoted_dollar_one = query.expr.replace('"$1"', "")  # label_replace's replacement
        used = set(re.findall(r"\$\{?(\w+)", unquoted_dollar_one))
        assert used <= defined, f"{query.where}: undefined {sorted(used - defined)}"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_grid_positions_fit_the_grid_and_never_overlap(name: str) -> None:
    """Every panel lies within Grafana's 24 columns and no two panels share a cell."""
    boxes = []
    for panel in panel_list(name):
        pos = panel["gridPos"]
        assert pos["w"] > 0
        assert pos["h"] > 0
        assert pos["x"] >= 0
        assert pos["y"] >= 0
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        boxes.append((panel["title"], pos))
    for (a, p), (b, q) in combinations(boxes, 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, f"{a!r} overlaps {b!r}"


def test_variables_and_annotations() -> None:
    """`datasource` and `service` variables; chaos from Prometheus and from Grafana's store."""
    data = dashboard()
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    service = variables["service"]
    assert service["query"] == "label_values(lb_requests_total, service)"
    assert service["multi"]
    assert service["includeAll"]
    assert service["allValue"] == ".*"
    annotations = {a["name"]: a for a in data["annotations"]["list"]}
    chaos = annotations[panels.CHAOS_ANNOTATION]
    assert metric_names(chaos["expr"]) == {"harness_chaos_events_total"}
    assert chaos["datasource"]["uid"] == "${datasource}"
    assert chaos["step"] == "5s"
    pushed = annotations["Chaos (pushed to Grafana)"]
    assert pushed["datasource"]["type"] == "grafana"
    assert pushed["target"] == {
        "type": "tags",
        "tags": [panels.CHAOS_TAG],
        "matchAny": False,
        "limit": 500,
    }
    assert annotations["Annotations & Alerts"]["builtIn"] == 1
    assert data["uid"] == elasticity.UID
    assert data["title"] == "Elasticity"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_query_uses_documented_metrics_only(name: str) -> None:
    """Each expression selects only names of docs/metrics.md (or the Locust exporter's), the
    recording rules of lab.rules.yml, and `up`."""
    allowed = documented_metrics() | recording_rules().keys() | PROMETHEUS_OWN
    queries = dashboard_queries(dashboard(name))
    assert len(queries) > 30
    for query in queries:
        assert query.metrics, f"{query.where}: no metric found in {query.expr!r}"
        unknown = {m for m in query.metrics if base_name(m) not in allowed}
        assert not unknown, f"{query.where}: undocumented {sorted(unknown)} in {query.expr!r}"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_query_uses_five_second_rate_windows(name: str) -> None:
    """Panels use 5 s windows (1 s scrapes); only the annotation follows Grafana's step."""
    for query in dashboard_queries(dashboard(name)):
        unquoted = re.sub(r'"[^"]*"', '""', query.expr)  # label_replace's regex has brackets
        windows = set(re.findall(r"\[([^\]]+)\]", unquoted))
        if query.where.startswith("annotation"):
            assert windows == {"$__rate_interval"}
        else:
            assert windows <= {"5s"}, f"{query.where}: {windows}"


def test_the_dashboard_shows_every_metric_the_report_plots() -> None:
    """What the HTML report's standard_plots draw, the dashboard draws too (rules expanded)."""
    rules = recording_rules()

    def expanded(expr: str) -> set[str]:
        names: set[str] = set()
        for name in metric_names(expr):
            names |= expanded(rules[name]) if name in rules else {base_name(name)}
        return names

    shown: set[str] = set()
    for query in dashboard_queries(dashboard()):
        shown |= expanded(query.expr)
    for plot in standard_plots(PLOTTED):
        for line in plot.lines:
            missing = expanded(line.expr) - shown
            assert not missing, f"report plot {plot.title!r} uses {sorted(missing)}"


def test_queries_are_found_in_panels_and_annotations() -> None:
    """dashboard_queries lists targets of nested row panels and annotation expressions."""
    data = {
        "panels": [
            {
                "id": 1,
                "title": "r",
                "type": "row",
                "panels": [
                    {"id": 2, "title": "p", "targets": [{"refId": "A", "expr": "up"}]},
                ],
            },
            {"id": 3, "title": "q", "targets": [{"refId": "B", "expr": "x", "legendFormat": "l"}]},
        ],
        "annotations": {
            "list": [
                {"name": "a", "expr": "y"},
                {"name": "b", "target": {"expr": "z"}},
                {"name": "grafana", "target": {"type": "tags"}},
            ]
        },
    }
    found = [(q.where, q.expr, q.legend) for q in dashboard_queries(data)]
    assert found == [
        ("panel 2 (p) A", "up", ""),
        ("panel 3 (q) B", "x", "l"),
        ("annotation a", "y", ""),
        ("annotation b", "z", ""),
    ]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (service) (rate(lb_requests_total{code=~"5.."}[5s]))', {"lb_requests_total"}),
        (
            'service:lb_requests:rate5s{service=~"$service"} / on (service) group_left () x',
            {"service:lb_requests:rate5s", "x"},
        ),
        ("histogram_quantile(0.95, sum by (le) (rate(a_bucket[5s])))", {"a_bucket"}),
        ('label_replace(rate(b[5s]), "service", "$1", "name", "/api/([^/]+).*")', {"b"}),
        ("(changes(c[$__rate_interval]) > 0) or (c unless c offset $__rate_interval)", {"c"}),
        ("sum(rate(d[5s])) without (instance) > bool 1e3", {"d"}),
        ("max(e offset 5s) and ignoring(job) f or vector(0) * inf", {"e", "f"}),
    ],
)
def test_metric_names_reads_selectors_only(expr: str, names: set[str]) -> None:
    """metric_names skips functions, keywords, strings, matchers, durations and label lists."""
    assert metric_names(expr) == names


def test_interpolate_replaces_known_variables_only() -> None:
    """Grafana's variable forms are filled in; unknown ones (label_replace's $1) stay."""
    expr = 'rate(x{s=~"$service", t="${service}", u="[[service]]"}[$__rate_interval]) "$1"'
    assert interpolate(expr, {"service": "orders"}) == (
        'rate(x{s=~"orders", t="orders", u="orders"}[6s]) "$1"'
    )
    assert interpolate("y[$__interval] $__range ${datasource:raw}", {}) == (
        "y[5s] 5m ${datasource:raw}"
    )
