"""The Queues dashboard: its panels and variables, queries that need no harness scrape labels,
and, against a real Prometheus scraping a real queue, provider and two workers (one long, one
short polling) that deliver messages, a few poison ones among them, every panel with data."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from dashboards import queues
from dashboards.build import GENERATED, build_all, render
from dashboards.queries import Query, dashboard_queries, interpolate, metric_names
from harness.prometheus import Prometheus, ScrapeTarget, Series
from harness.supervisor import Child, Supervisor, free_port

pytestmark = pytest.mark.core

EXPECTED_PANELS = [
    "Overview",
    "Messages visible",
    "Messages in flight",
    "Oldest message age",
    "Messages in dead-letter queues",
    "Sent per second",
    "Deleted per second",
    "Empty receives per message",
    "Workers",
    "Queues: depth and age",
    "Depth: messages visible",
    "Messages in flight",
    "Messages delayed",
    "Oldest message age",
    "Queues: traffic and polling",
    "Sends, receives and deletes per second",
    "Long polls waiting",
    "Empty receives per second",
    "Empty receives per received message",
    "Dead-letter queues",
    "Dead-letter queue depth",
    "Moved to the dead-letter queue per second",
    "Workers",
    "Worker throughput by outcome",
    "Worker throughput per instance",
    "Rate limiting: waits per second",
    "Rate limiting: seconds waited per second",
    "Receive calls per delivered message",
    "What workers did after each attempt",
    "Messages held per worker",
    "Mail provider",
    "Provider latency",
    "Provider deliveries by outcome",
]
HARNESS_LABELS = ("role", "service", "exported_service")
QUEUE, DLQ = "emails", "emails-dlq"
VARIABLES = {"queue": QUEUE, "dlq": queues.DLQ_DEFAULT}
TRAFFIC_S = 10.0
POISON = 4


def dashboard() -> dict[str, Any]:
    return build_all()["queues.json"]


def queries() -> list[Query]:
    return dashboard_queries(dashboard())


def harness_only(query: Query) -> bool:
    """Data only in a harness run (the control API's harness_* metrics)."""
    return any(name.startswith("harness_") for name in query.metrics)


def test_the_dashboard_is_generated_and_current() -> None:
    """dashboards/generated/queues.json is what the code builds (`python -m dashboards build`)."""
    path = GENERATED / "queues.json"
    assert path.exists(), "run `python -m dashboards build`"
    assert path.read_text() == render("queues.json", dashboard())


def test_panels_are_the_expected_ones() -> None:
    """Rows and panels in reading order; each panel teaches what to look for."""
    found = dashboard()["panels"]
    assert [p["title"] for p in found] == EXPECTED_PANELS
    for panel in found:
        if panel["type"] != "row":
            assert len(panel["description"]) > 40, panel["title"]


def test_variables_and_annotations() -> None:
    """`queue` from the queue's own label, `dlq` a regex, chaos on every service."""
    data = dashboard()
    assert (data["uid"], data["title"]) == (queues.UID, "Queues")
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert list(variables) == ["datasource", "queue", "dlq"]
    queue = variables["queue"]
    assert queue["query"] == "label_values(queue_messages_visible, queue)"
    assert (queue["multi"], queue["includeAll"], queue["allValue"]) == (True, True, ".*")
    dlq = variables["dlq"]
    assert dlq["type"] == "textbox"
    assert dlq["query"] == dlq["current"]["value"] == queues.DLQ_DEFAULT
    assert re.fullmatch(queues.DLQ_DEFAULT, DLQ)
    assert not re.fullmatch(queues.DLQ_DEFAULT, QUEUE)
    [chaos] = [q for q in queries() if q.where.startswith("annotation")]
    assert "{" not in chaos.expr, "chaos events of every service, unfiltered"


def test_no_query_depends_on_the_harness_scrape_labels() -> None:
    """queue_*, worker_* and provider_* names are unique: no selector or grouping names the
    harness's role or service labels, so the panels work under any scrape configuration."""
    for query in queries():
        if harness_only(query):
            continue
        for label in HARNESS_LABELS:
            assert not re.search(rf"\b{label}\b", query.expr), f"{query.where}: {query.expr}"


def test_queue_and_worker_queries_follow_the_queue_variable() -> None:
    """Every queue_* selector but the label-less long-poll gauge carries $queue or $dlq; every
    worker query keeps only the workers of the selected queues (through worker_info)."""
    for query in queries():
        names = query.metrics
        if any(n.startswith("queue_") for n in names) and names != {"queue_long_polls_waiting"}:
            assert '"$queue"' in query.expr or '"$dlq"' in query.expr, query.where
        worker = {n for n in names if n.startswith("worker_")} - {"worker_info"}
        if worker:
            assert 'worker_info{queue=~"$queue"}' in query.expr, query.where
            assert "on (job, instance)" in query.expr, query.where


def test_every_queue_worker_and_provider_metric_is_shown() -> None:
    """The panels draw the documented queue, worker and provider metrics, bar the rarer
    counters (redriven, expired, purged, queue call errors, the worker's own latency)."""
    shown = set().union(*(q.metrics for q in queries()))
    for name in (
        "queue_messages_visible",
        "queue_messages_in_flight",
        "queue_messages_delayed",
        "queue_oldest_message_age_seconds",
        "queue_messages_sent_total",
        "queue_messages_received_total",
        "queue_messages_deleted_total",
        "queue_empty_receives_total",
        "queue_messages_moved_to_dlq_total",
        "queue_long_polls_waiting",
        "worker_messages_total",
        "worker_actions_total",
        "worker_receive_calls_total",
        "worker_empty_receives_total",
        "worker_rate_limit_waits_total",
        "worker_rate_limit_wait_seconds_total",
        "worker_in_flight_messages",
        "worker_info",
        "provider_send_duration_seconds_bucket",
        "provider_deliveries_total",
    ):
        assert name in shown, name
    assert metric_names(queues.CHAOS_EVENTS) == {"harness_chaos_events_total"}


# ---------------------------------------------------------------------------------------------
# Real processes


async def _call(client: httpx2.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    reply = await client.request(method, path, json=body)
    assert reply.status_code == 200, f"{method} {path}: {reply.status_code} {reply.text}"
    return reply.json()


async def _create_queues(client: httpx2.AsyncClient) -> None:
    """`emails`, whose messages move to `emails-dlq` after 2 receives."""
    await _call(client, "PUT", f"/queues/{DLQ}")
    arn = (await _call(client, "GET", f"/queues/{DLQ}"))["attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
    attributes = {"VisibilityTimeout": 1, "RedrivePolicy": policy}
    await _call(client, "PUT", f"/queues/{QUEUE}", {"attributes": attributes})


async def _send_traffic(client: httpx2.AsyncClient) -> int:
    """Batches of 4 every 0.4 s for TRAFFIC_S (about 10 messages a second), the first POISON
    batches each with one poison message, one batch delayed; returns how many were sent."""
    sent = 0
    batch = 0
    end = time.monotonic() + TRAFFIC_S
    while time.monotonic() < end:
        messages: list[dict[str, Any]] = [
            {"body": json.dumps({"to": f"user{sent + i}@example.com", "n": sent + i})}
            for i in range(4)
        ]
        if batch < POISON:
            messages[0] = {"body": json.dumps({"n": sent, "poison": True})}
        if batch == POISON:
            for message in messages:
                message["delay_seconds"] = 2
        reply = await _call(client, "POST", f"/queues/{QUEUE}/messages", {"messages": messages})
        assert not reply["failed"], reply
        sent += len(messages)
        batch += 1
        await asyncio.sleep(0.4)
    return sent


async def _start(supervisor: Supervisor, tmp_path: Path) -> dict[str, Child]:
    """The queue and the provider, then worker w1 (long polling) and w2 (short polling), both
    limited to 20 messages a second with a burst of 1 (so the limiter holds some back)."""
    queue, provider = await asyncio.gather(
        supervisor.spawn(
            "queue",
            "queue",
            "targets.queue",
            ["--db", str(tmp_path / "q.db"), "--listen", "127.0.0.1:0"],
        ),
        supervisor.spawn(
            "provider",
            "provider",
            "targets.workers.provider",
            ["--listen", "127.0.0.1:0", "--latency-ms", "5", "--seed", "1"],
        ),
    )
    common = [
        *("--queue-url", f"http://{queue.ready['address']}", "--queue", QUEUE),
        *("--provider", f"http://{provider.ready['address']}", "--listen", "127.0.0.1:0"),
        *("--visibility-s", "1", "--batch", "5", "--rate", "20", "--burst", "1"),
    ]
    w1, w2 = await asyncio.gather(
        supervisor.spawn(
            "w1", "worker", "targets.workers", [*common, "--name", "w1", "--polling", "long"]
        ),
        supervisor.spawn(
            "w2", "worker", "targets.workers", [*common, "--name", "w2", "--polling", "short"]
        ),
    )
    return {"queue": queue, "provider": provider, "w1": w1, "w2": w2}


def _values(series: list[Series]) -> list[float]:
    return [v for s in series for _, v in s.points if math.isfinite(v)]


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_every_panel_has_data_with_real_processes(tmp_path: Path) -> None:
    """Queue, provider and two workers scraped by Prometheus while ~10 messages a second flow,
    POISON of them poison: every expression but the harness-only chaos annotation has data;
    the poison messages reach the DLQ panel, both workers show, the long poll is seen."""
    checked = [q for q in queries() if not harness_only(q)]
    skipped = [q for q in queries() if harness_only(q)]
    assert len(skipped) == 1  # the chaos annotation
    async with Supervisor(tmp_path / "run") as supervisor:
        children = await _start(supervisor, tmp_path)
        prometheus = Prometheus(supervisor.run_dir, free_port())
        prometheus.write_config([])
        prometheus.set_targets(
            [
                ScrapeTarget(
                    str(child.ready["address"]),
                    {"service": name, "role": child.role, "instance": name},
                )
                for name, child in children.items()
            ]
        )
        await prometheus.start(supervisor)
        queue_url = f"http://{children['queue'].ready['address']}"
        async with httpx2.AsyncClient(base_url=queue_url, timeout=10.0) as client:
            await _create_queues(client)
            await prometheus.wait_for_targets(len(children), timeout_s=15)
            started = time.time()
            sent = await _send_traffic(client)
            await asyncio.sleep(2.0)  # the last scrapes land
            ended = time.time()
            dlq = await _call(client, "GET", f"/queues/{DLQ}")

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
            if not series:
                empty.append(f"{query.where}: {expr}")

    print(f"\n{sent} messages sent; {len(checked)} expressions checked, skipped (harness only):")
    print(*(q.where for q in skipped), sep="\n  ")
    print("\n".join(report))
    assert not empty, "no data for:\n" + "\n".join(empty)

    def find(title: str, legend: str = "") -> list[Series]:
        [series] = [s for (where, lg), s in results.items() if title in where and lg == legend]
        return series

    assert int(dlq["attributes"]["ApproximateNumberOfMessages"]) == POISON
    assert max(_values(find("(Dead-letter queue depth)", "{{queue}}"))) == POISON
    per_worker = find("(Worker throughput per instance)", "{{instance}} {{outcome}}")
    assert {s.labels["instance"] for s in per_worker} == {"w1", "w2"}
    assert {s.labels["outcome"] for s in per_worker} == {"delivered", "failed"}
    assert max(_values(find("(Long polls waiting)", "long polls"))) >= 1
    assert max(_values(find("(Messages delayed)", "{{queue}}"))) > 0
    assert max(_values(find("(Empty receives per second)", "{{instance}} (worker)"))) > 0
