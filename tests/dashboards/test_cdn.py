"""The CDN dashboard: its panels and variable, queries taken from harness/components/
cdn_queries.py that select edges by `$edge` and hide no missing series, and, against a real
Prometheus scraping two real edges in front of a real shop server while hits, misses,
collapsed waiters, stale answers, evictions, an invalidation and an origin failure happen,
every panel with data and the counts as the viewers saw them."""

from __future__ import annotations

import ast
import asyncio
import json
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dashboards import cdn
from dashboards.build import GENERATED, build_all, render
from dashboards.queries import Query, dashboard_queries, interpolate, metric_names
from harness.components import cdn_queries
from harness.prometheus import Prometheus, ScrapeTarget, Series
from harness.supervisor import Child, Supervisor, free_port
from targets.http.client import Reply, fetch

pytestmark = pytest.mark.core

ROOT = Path(__file__).resolve().parents[2]
METRICS_DOC = ROOT / "docs" / "metrics.md"
EXPECTED_PANELS = [
    "Overview",
    "Hit ratio",
    "Error share",
    "Requests per second",
    "Origin fetches per second",
    "Origin failures per second",
    "Stale served per second",
    "Objects stored",
    "Cache fill",
    "Requests and hit ratio",
    "Hit ratio per edge",
    "Requests per second by edge and result",
    "Error share per edge",
    "Origin",
    "Origin fetches per second by edge",
    "Origin requests by kind and outcome",
    "Origin failures per second",
    "Collapsed waiters per second",
    "Stale served per second",
    "Latency",
    "Edge latency: from the cache",
    "Edge latency: misses and errors",
    "Client latency by region",
    "Cache store",
    "Bytes stored vs capacity",
    "Objects stored",
    "Mean object size",
    "Evictions per second",
    "Invalidations per second",
]
EDGE_SELECTOR = 'service=~"$edge"'
OTHER_SCRAPE_LABELS = ("role", "instance", "job", "exported_service")

BIG, SMALL = "eu", "us"  # two edges of the same origin; SMALL's cache holds 2 images
SMALL_MAX_BYTES = 40_000
BIG_MAX_BYTES = 64 * 1024 * 1024  # the edge's default
VARIABLES = {"edge": ".*"}
TOKEN = "cdn-dashboard-test-token"
MAX_AGE_S = 2  # the catalogue's max-age, and as much stale-while-revalidate after it
IMAGES = 6
BURST = 10  # concurrent viewers of one cold key: one fetch, the others collapse on it
IDLE_S = 7.0  # longer than the 5 s rate window: the hit ratio has no data at the end


def dashboard() -> dict[str, Any]:
    return build_all()["cdn.json"]


def queries() -> list[Query]:
    return dashboard_queries(dashboard())


def harness_only(query: Query) -> bool:
    """Data only in a harness run: the control API's harness_* metrics, and Locust's (the
    clients' latency by region; the cold-vs-warm-by-region scenario judges the same
    histogram by name with real Locust users, tests/locust its exporter)."""
    return any(name.startswith(("harness_", "locust_")) for name in query.metrics)


def documented_cdn_metrics() -> set[str]:
    """The cdn_* names of docs/metrics.md's tables."""
    table = re.findall(r"^\| `([a-z_]+)` \|", METRICS_DOC.read_text(), flags=re.MULTILINE)
    return {name for name in table if name.startswith("cdn_")}


def test_the_dashboard_is_generated_and_current() -> None:
    """dashboards/generated/cdn.json is what the code builds (`python -m dashboards build`)."""
    path = GENERATED / "cdn.json"
    assert path.exists(), "run `python -m dashboards build`"
    assert path.read_text() == render("cdn.json", dashboard())


def test_panels_are_the_expected_ones() -> None:
    """Rows and panels in reading order; each panel teaches what to look for."""
    found = dashboard()["panels"]
    assert [p["title"] for p in found] == EXPECTED_PANELS
    for panel in found:
        if panel["type"] != "row":
            assert len(panel["description"]) > 40, panel["title"]


def test_variables_and_annotations() -> None:
    """`edge` from the edges' scrape label `service`; chaos of every service, unfiltered (what
    happens to the origin shows at the edges)."""
    data = dashboard()
    assert (data["uid"], data["title"]) == (cdn.UID, "CDN")
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert list(variables) == ["datasource", "edge"]
    edge = variables["edge"]
    assert edge["query"] == "label_values(cdn_requests_total, service)"
    assert (edge["multi"], edge["includeAll"], edge["allValue"]) == (True, True, ".*")
    [chaos] = [q for q in queries() if q.where.startswith("annotation")]
    assert chaos.expr == cdn.CHAOS_EVENTS
    assert "{" not in chaos.expr
    assert metric_names(chaos.expr) == {"harness_chaos_events_total"}


def test_every_selector_follows_the_edge_variable() -> None:
    """Every cdn_* selector carries `service=~"$edge"` (an edge's series name no edge: the
    scrape label does); no other scrape label is selected or grouped on."""
    for query in queries():
        if harness_only(query):
            continue
        for name in query.metrics:
            assert name.startswith("cdn_"), f"{query.where}: {name}"
            selectors = re.findall(rf"\b{name}(?:\{{([^}}]*)\}})?", query.expr)
            assert selectors
            for selector in selectors:
                assert EDGE_SELECTOR in selector, f"{query.where}: {query.expr}"
        for label in OTHER_SCRAPE_LABELS:
            assert not re.search(rf"\b{label}\b", query.expr), f"{query.where}: {query.expr}"


def test_graphs_are_per_edge_and_stats_over_the_selected_edges() -> None:
    """A time series groups every aggregation by `service` (one line per edge); a stat sums
    over every selected edge (one value)."""
    kinds = {p["id"]: p["type"] for p in dashboard()["panels"]}
    for query in queries():
        if harness_only(query):
            continue
        panel_id = int(query.where.split()[1])
        groupings = re.findall(r"\bsum(?: by \(([^)]*)\))? \(", query.expr)
        assert groupings, query.where
        for grouping in groupings:
            if kinds[panel_id] == "stat":
                assert grouping == "", query.where
            else:
                assert "service" in [g.strip() for g in grouping.split(",")], query.where


def test_nothing_hides_a_missing_series() -> None:
    """No default values (`or vector(0)`, `or on() ...`, absent()); a ratio whose denominator
    may be 0 keeps it only above 0, so an idle edge's hit ratio is no data, never NaN or 0."""
    for query in queries():
        if harness_only(query):
            continue
        assert not re.search(r"\bor\b|\bvector\s*\(|\babsent", query.expr), query.where
        if " / " in query.expr:
            denominator = query.expr.rsplit(" / ", 1)[1]
            guarded = denominator.startswith("(") and denominator.endswith(" > 0)")
            assert guarded or metric_names(denominator) == {"cdn_max_bytes"}, query.where


def test_every_cdn_metric_is_shown() -> None:
    """Each documented cdn_* metric is on the dashboard."""
    documented = documented_cdn_metrics()
    assert len(documented) == 11, sorted(documented)
    shown = {re.sub(r"_bucket$", "", name) for q in queries() for name in q.metrics}
    assert documented <= shown, sorted(documented - shown)


def test_panels_use_the_queries_the_report_can_use() -> None:
    """The expressions are cdn_queries' (the report takes them from there), and that module
    imports nothing but harness.promql (it is to join the edges' component module)."""
    by_legend = {(q.where.split(" (")[1].split(")")[0], q.legend): q.expr for q in queries()}
    assert by_legend[("Hit ratio per edge", "{{service}}")] == cdn_queries.hit_ratio(cdn.EDGE)
    assert by_legend[("Hit ratio", "")] == cdn_queries.hit_ratio(cdn.EDGE, by="")
    assert by_legend[("Requests per second by edge and result", "{{service}} {{result}}")] == (
        cdn_queries.requests_per_s(cdn.EDGE)
    )
    assert cdn_queries.hit_ratio() == (
        'sum by (service) (rate(cdn_requests_total{result=~"Hit|RefreshHit"}[5s]))'
        " / (sum by (service) (rate(cdn_requests_total[5s])) > 0)"
    )
    tree = ast.parse(Path(cdn_queries.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {"__future__", "harness.promql"}


# ---------------------------------------------------------------------------------------------
# Real processes


class Viewers:
    """GETs through the edges, counting each answer's X-Cache result per edge."""

    def __init__(self, edges: dict[str, Child]) -> None:
        self.edges = edges
        self.seen: dict[str, Counter[str]] = {name: Counter() for name in edges}

    async def get(self, edge: str, path: str) -> Reply:
        reply = await fetch(*self.edges[edge].address(), "GET", path, timeout_s=10.0)
        x_cache = (reply.header(b"x-cache") or b"").decode()
        result, _, by = x_cache.partition(" from ")
        assert by == f"{edge}-1", f"{path}: X-Cache {x_cache!r}"
        self.seen[edge][result] += 1
        return reply

    async def invalidate(self, edge: str, paths: list[str]) -> int:
        """POST /_edge/invalidations with the token; how many objects it removed."""
        reply = await fetch(
            *self.edges[edge].address(),
            "POST",
            "/_edge/invalidations",
            body=json.dumps({"paths": paths}).encode(),
            headers=[
                (b"authorization", f"Bearer {TOKEN}".encode()),
                (b"content-type", b"application/json"),
            ],
            timeout_s=10.0,
        )
        assert reply.status == 201, reply.body
        removed: int = reply.json()["removed"]
        return removed


def result_of(reply: Reply) -> str:
    return (reply.header(b"x-cache") or b"").decode().partition(" ")[0]


async def _with_origin(viewers: Viewers, edge: str) -> int:
    """Through one edge while the origin serves: images (SMALL evicts), an invalidation of
    them, a burst on a cold page (collapsed), hits, a cached 404, then the catalogue's pages
    going stale (served while revalidating; RefreshHit past that). Returns the objects the
    invalidation removed."""
    for n in range(1, IMAGES + 1):
        assert result_of(await viewers.get(edge, f"/images/p{n}")) == "Miss"
    assert result_of(await viewers.get(edge, f"/images/p{IMAGES}")) == "Hit"
    removed = await viewers.invalidate(edge, ["/images/*"])
    assert result_of(await viewers.get(edge, "/images/p1")) == "Miss"
    fetched = time.monotonic()
    for page in (1, 3):
        assert result_of(await viewers.get(edge, f"/catalogue/{page}")) == "Miss"
    burst = await asyncio.gather(*(viewers.get(edge, "/catalogue/2") for _ in range(BURST)))
    assert sorted(result_of(r) for r in burst) == ["Hit"] * (BURST - 1) + ["Miss"]
    for _ in range(2):
        assert (await viewers.get(edge, "/catalogue/99")).status == 404  # cached: Error
    # Page 1 read every 0.1 s: fresh, then stale within stale-while-revalidate (a Hit,
    # refreshed in the background with a 304), fresh again, ...
    while time.monotonic() < fetched + 2 * MAX_AGE_S + 0.5:
        assert result_of(await viewers.get(edge, "/catalogue/1")) == "Hit"
        await asyncio.sleep(0.1)
    # Page 3, untouched since: past stale-while-revalidate, revalidated first (304).
    assert result_of(await viewers.get(edge, "/catalogue/3")) == "RefreshHit"
    return removed


async def _without_origin(viewers: Viewers, edge: str) -> None:
    """The origin is down: a stale page within stale-if-error is served (a Hit), a page never
    fetched is the edge's own 502 (Error)."""
    assert result_of(await viewers.get(edge, "/catalogue/2")) == "Hit"
    failed = await viewers.get(edge, "/catalogue/5")
    assert (failed.status, result_of(failed)) == (502, "Error")


async def _start(supervisor: Supervisor, tmp_path: Path) -> tuple[Child, dict[str, Child]]:
    """A shop server (50 ms a request; the catalogue 2 s fresh, 2 s more while revalidating,
    10 min on error), then the two edges in front of it."""
    origin = await supervisor.spawn(
        "origin",
        "server",
        "targets.server",
        [
            *("--listen", "127.0.0.1:0", "--name", "origin-1", "--slots", "64"),
            *("--service-ms", "50", "--distribution", "constant", "--drain-timeout", "1"),
            *("--catalogue-max-age", str(MAX_AGE_S)),
            *("--catalogue-stale-while-revalidate", str(MAX_AGE_S)),
            *("--catalogue-stale-if-error", "600"),
        ],
    )
    token = tmp_path / "token"
    token.write_text(TOKEN)
    edges = await asyncio.gather(
        *(
            supervisor.spawn(
                f"{name}-1",
                "edge",
                "targets.cdn",
                [
                    *("--origin", str(origin.ready["address"]), "--listen", "127.0.0.1:0"),
                    *("--name", f"{name}-1", "--token-file", str(token)),
                    *("--origin-timeout", "2", "--max-bytes", str(max_bytes)),
                ],
            )
            for name, max_bytes in ((BIG, BIG_MAX_BYTES), (SMALL, SMALL_MAX_BYTES))
        )
    )
    return origin, dict(zip((BIG, SMALL), edges, strict=True))


def _values(series: list[Series]) -> list[float]:
    return [v for s in series for _, v in s.points if math.isfinite(v)]


def _by(samples: Any, *labels: str) -> dict[Any, float]:
    """Instant samples' values by their `labels` (one label: its value; more: a tuple)."""
    out = {}
    for s in samples:
        key = tuple(s.labels.get(label, "") for label in labels)
        out[key[0] if len(key) == 1 else key] = s.value
    return out


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_every_panel_has_data_with_real_processes(tmp_path: Path) -> None:
    """A shop server behind two edges (`eu`, and `us` whose cache holds 2 images), both
    scraped at /_edge/metrics as the harness does (service, role, instance): misses, hits, a
    collapsed burst, a cached 404, stale-while-revalidate, a RefreshHit, evictions, an
    invalidation, then the origin stopped (stale-if-error, a 502). Every expression but the
    harness-only chaos annotation has data, the counts are what the viewers saw, and the hit
    ratio of the idle edges at the end is no data while their request rate reads 0."""
    checked = [q for q in queries() if not harness_only(q)]
    skipped = [q for q in queries() if harness_only(q)]
    assert len(skipped) == 3  # the chaos annotation, the clients' p50 and p95
    async with Supervisor(tmp_path / "run") as supervisor:
        origin, edges = await _start(supervisor, tmp_path)
        prometheus = Prometheus(supervisor.run_dir, free_port())
        prometheus.write_config([])
        prometheus.set_targets(
            [
                ScrapeTarget(
                    str(child.ready["address"]),
                    {"service": name, "role": "edge", "instance": f"{name}-1"},
                    path="/_edge/metrics",
                )
                for name, child in edges.items()
            ]
        )
        await prometheus.start(supervisor)
        await prometheus.wait_for_targets(len(edges), timeout_s=15)
        viewers = Viewers(edges)
        started = time.time()
        made = await asyncio.gather(*(_with_origin(viewers, e) for e in edges))
        removed = dict(zip(edges, made, strict=True))
        await origin.stop()
        await asyncio.gather(*(_without_origin(viewers, e) for e in edges))
        await asyncio.sleep(IDLE_S)  # the last scrapes land; the rate window empties
        ended = time.time()

        empty, report, results = [], [], {}
        for query in checked:
            expr = interpolate(query.expr, VARIABLES)
            series = await prometheus.query_range(expr, started, ended, 1.0)
            results[(query.where, query.legend)] = series
            values = _values(series)
            report.append(
                f"{len(series):3d} series  max {max(values, default=math.nan):10.4g}  "
                f"{query.where} {query.legend}"
            )
            if not values:
                empty.append(f"{query.where}: {expr}")

        async def last(expr: str, *labels: str) -> dict[Any, float]:
            return _by(await prometheus.query(expr, ended), *labels or ("service",))

        answered = await last("cdn_requests_total", "service", "result")
        origin_requests = await last("cdn_origin_fetches_total", "service", "kind", "outcome")
        stale = await last("cdn_stale_served_total", "service", "reason")
        collapsed = await last("cdn_collapsed_waiters_total")
        invalidations = await last("cdn_invalidations_total")
        invalidated = await last("cdn_invalidated_objects_total")
        evictions = await last("cdn_evictions_total")
        capacity = await last("cdn_max_bytes")
        stored = await last("cdn_bytes_stored")
        idle_ratio = await prometheus.query(interpolate(cdn_queries.hit_ratio(), {}), ended)
        idle_rate = await last(cdn_queries.requests_per_s(), "service", "result")

    print(f"\n{len(checked)} expressions checked, skipped (harness only):")
    print(*(q.where for q in skipped), sep="\n  ")
    print("\n".join(report))
    print("viewers saw:", {e: dict(c) for e, c in viewers.seen.items()})
    print("origin requests:", origin_requests)
    assert not empty, "no data for:\n" + "\n".join(empty)

    # What the viewers saw, Prometheus counted (management calls are not viewer requests).
    seen = {(e, r): n for e, c in viewers.seen.items() for r, n in c.items()}
    assert {k: v for k, v in answered.items() if v} == seen
    for edge in edges:
        assert {r for e, r in seen if e == edge} == {"Hit", "RefreshHit", "Miss", "Error"}
        assert collapsed[edge] >= 1
        assert stale[(edge, "while_revalidate")] >= 1
        assert stale[(edge, "if_error")] >= 1
        assert origin_requests[(edge, "revalidate", "not_modified")] >= 2
        failures = {
            (kind, outcome): n
            for (e, kind, outcome), n in origin_requests.items()
            if e == edge and outcome not in ("response", "not_modified") and n
        }
        # The stale page's revalidation (then served on error) and the 502's fetch.
        assert {kind for kind, _ in failures} == {"revalidate", "fetch"}, failures
        assert invalidations[edge] == 1
        assert invalidated[edge] == removed[edge]
        assert 0 < stored[edge] <= capacity[edge]
    assert removed[BIG] == IMAGES
    assert 0 < removed[SMALL] < IMAGES
    assert capacity == {BIG: BIG_MAX_BYTES, SMALL: SMALL_MAX_BYTES}
    assert evictions[BIG] == 0
    assert evictions[SMALL] == IMAGES - removed[SMALL]

    def find(title: str, legend: str) -> list[Series]:
        [series] = [s for (w, lg), s in results.items() if f"({title})" in w and lg == legend]
        return series

    # The hit ratio is a share wherever it has points (no NaN: 0 / 0 is left out), and an
    # idle edge has none, while its request rate is there and reads 0.
    ratios = find("Hit ratio per edge", "{{service}}")
    assert {s.labels["service"] for s in ratios} == set(edges)
    for s in ratios:
        assert all(math.isfinite(v) and 0 <= v <= 1 for _, v in s.points), s.points
        assert s.points[-1][0] < ended - 1
    assert idle_ratio == []
    assert set(idle_rate.values()) == {0.0}
    assert {e for e, _ in idle_rate} == set(edges)
    evicting = find("Evictions per second", "{{service}}")
    assert {s.labels["service"]: max(_values([s])) > 0 for s in evicting} == {
        BIG: False,
        SMALL: True,
    }
