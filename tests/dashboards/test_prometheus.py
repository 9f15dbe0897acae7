"""The dashboards' PromQL against a real Prometheus: every expression of every dashboard parses
(with the lab's rules loaded), and on a running shop lab with traffic and one kill every
Elasticity expression returns data (the Queues dashboard's: test_queues.py), and no counter of
any exporter in the lab appears in Prometheus already above 0."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest

from chaos.actions import ChaosRequest
from dashboards.build import build_all, dashboards
from dashboards.queries import Query, dashboard_queries, interpolate
from harness.components.gateway import Gateway
from harness.components.services import AutoscalingSpec, Services
from harness.control import Controller, control_app
from harness.loadgen import run_load
from harness.prometheus import LAB_RULES, Prometheus, PrometheusError, ScrapeTarget
from harness.runtime import LabRuntime
from harness.supervisor import Supervisor, free_port
from harness.topology import Topology, load_topology
from targets import asgi
from targets.gateway.config import LimitSpec

pytestmark = pytest.mark.e2e

KILLED = "orders"
LOAD_S = 14.0
KILL_AT_S = 4.0
CONCURRENCY = 24  # above each service's slots per replica: some requests wait for a slot


def shop_with_an_autoscaler() -> Topology:
    """The shop, its orders service watched by an autoscaler that will not act in this test
    (a target far above the load; scale-in would wait its 30 s window), and a per-client limit
    on the gateway's orders route that refuses nothing (so its decisions have series)."""
    shop = load_topology()
    orders = shop.services[KILLED].model_copy(update={"autoscaling": AutoscalingSpec(target=1e5)})
    assert shop.gateway is not None
    limit = LimitSpec(name="per-client", rate=1e5, burst=100_000)
    routes = [
        r.model_copy(update={"limits": [limit]}) if r.service == KILLED else r
        for r in shop.gateway.routes
    ]
    gateway = shop.gateway.model_copy(update={"routes": routes})
    return shop.model_copy(
        update={"services": {**shop.services, KILLED: orders}, "gateway": gateway}
    )


async def first_samples(prometheus: Prometheus, at: float) -> list[tuple[dict[str, str], float]]:
    """Every counter and histogram series the lab exported: its labels and its first value."""
    cumulative = '{__name__=~".+_total|.+_bucket|.+_count|.+_sum", role!=""}[10m]'
    return [(s.labels, s.points[0][1]) for s in await prometheus.raw_samples(cumulative, at)]


# Every dashboard's variables: one value each, then what "All" becomes.
VARIABLES = (
    {"service": "orders", "queue": "emails", "dlq": ".*dlq.*", "subscription": "emails"},
    {"service": ".*", "queue": ".*", "dlq": ".*", "subscription": ".*"},
)


def queries(name: str = "elasticity.json") -> list[Query]:
    return dashboard_queries(build_all()[name])


async def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    """Prometheus accepts every panel and annotation expression of every dashboard (its
    variables filled in)."""
    async with Supervisor(tmp_path / "run") as supervisor:
        prometheus = Prometheus(supervisor.run_dir, free_port())
        prometheus.write_config([LAB_RULES])
        prometheus.set_targets([])
        await prometheus.start(supervisor)
        refused = []
        checked = 0
        for name in sorted(dashboards()):
            for query in queries(name):
                for variables in VARIABLES:
                    checked += 1
                    try:
                        await prometheus.query(interpolate(query.expr, variables))
                    except PrometheusError as exc:
                        refused.append(f"{name} {query.where}: {exc}")
        assert not refused, "\n".join(refused)
        assert checked > 2 * 60


async def test_every_panel_has_data_on_a_running_lab(tmp_path: Path) -> None:
    """The shop lab under load (orders autoscaled), one server killed: each non-Locust
    expression gives series, and every counter and histogram series of every exporter
    (load balancers, servers, gateway, queue, workers, provider, autoscaler, harness) starts
    at 0 in Prometheus, new backends and status codes of the kill included.

    Locust's expressions are skipped (no Locust runs here; tests/locust covers its exporter).
    The chaos annotation must mark the kill, although it is the first event of its series."""
    checked = [q for q in queries() if not q.client_side]
    skipped = [q for q in queries() if q.client_side]
    async with Supervisor(tmp_path / "run") as supervisor:
        lab = LabRuntime(shop_with_an_autoscaler(), supervisor)
        await lab.start()
        await lab.wait_healthy()
        controller = Controller(lab)
        control = await asgi.start(control_app(controller))
        try:
            await lab.start_autoscalers(("127.0.0.1", control.port))
            lab.extra_targets.append(
                ScrapeTarget(
                    f"127.0.0.1:{control.port}", {"role": "harness", "instance": "harness"}
                )
            )
            prometheus = Prometheus(lab.run_dir, free_port())
            prometheus.write_config([LAB_RULES])
            prometheus.set_targets(lab.scrape_targets())
            lab.listeners.append(lambda: prometheus.set_targets(lab.scrape_targets()))
            await prometheus.start(supervisor)
            await prometheus.wait_for_targets(len(lab.scrape_targets()), timeout_s=30)

            started = time.time()
            front = lab.part(Gateway).child
            assert front is not None
            labs = lab.part(Services).labs.values()
            entries = [front.address(), *(service.address for service in labs)]
            load = asyncio.gather(
                *(run_load(*entry, duration_s=LOAD_S, concurrency=CONCURRENCY) for entry in entries)
            )
            await asyncio.sleep(KILL_AT_S)
            event = await controller.chaos(ChaosRequest("kill", KILLED))
            results = await load
            assert all(r.ok > 0 for r in results)
            await asyncio.sleep(2.0)  # the last scrapes and rule evaluations land
            ended = time.time()

            empty = []
            report = []
            for query in checked:
                expr = interpolate(query.expr, {"service": KILLED})
                series = await prometheus.query_range(expr, started, ended, 1.0)
                values = [v for s in series for _, v in s.points if math.isfinite(v)]
                report.append(
                    f"{len(series):3d} series  max {max(values, default=math.nan):10.4g}  "
                    f"{query.where}"
                )
                if not series:
                    empty.append(f"{query.where}: {expr}")
            born = await first_samples(prometheus, ended)
            chaos = [q for q in checked if q.where.startswith("annotation")]
            assert len(chaos) == 1
            marks = await prometheus.query_range(
                interpolate(chaos[0].expr, {"service": KILLED}), event.at - 3, event.at + 8, 1.0
            )
        finally:
            await control.stop()

    print(f"\n{len(checked)} expressions checked, {len(skipped)} skipped (Locust):")
    print("\n".join(report))
    print("skipped, no Locust in this test:", *(q.where for q in skipped), sep="\n  ")
    assert not empty, "no data for:\n" + "\n".join(empty)
    jobs = {labels.get("role") for labels, _ in born}
    assert {"lb", "server", "gateway", "queue", "worker", "provider", "autoscaler"} <= jobs, jobs
    late = [f"{labels} first at {value}" for labels, value in born if value != 0]
    assert not late, "counters that appeared already non-zero:\n" + "\n".join(late[:20])
    marked = [(t, s.labels) for s in marks for t, v in s.points if v > 0 and t >= event.at - 1]
    assert marked, "the chaos annotation did not mark the kill"
    assert all(labels.get("action") == "kill" for _, labels in marked)
    assert all(labels.get("service") == KILLED for _, labels in marked)
