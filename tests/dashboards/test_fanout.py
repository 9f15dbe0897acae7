"""The Fan-out dashboard: its panels and variables, queries that need no harness scrape labels
and hide no missing series, and, against a real Prometheus scraping a real queue, topic
service, provider, worker and push consumer while events are published, every panel with data
and the accounting adding up per consumer."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest

from dashboards import fanout, queues
from dashboards.build import GENERATED, build_all, render
from dashboards.queries import Query, dashboard_queries, interpolate, metric_names
from harness.prometheus import Prometheus, ScrapeTarget, Series
from harness.supervisor import Child, Supervisor, free_port

pytestmark = pytest.mark.core

ROOT = Path(__file__).resolve().parents[2]
METRICS_DOC = ROOT / "docs" / "metrics.md"
EXPECTED_PANELS = [
    "Overview",
    "Published per second",
    "Deliveries per second",
    "Deliveries pending",
    "Retries per second",
    "Dead-lettered + dropped by the topic",
    "Subscriptions: confirmed and pending",
    "Publishes and deliveries",
    "Published per second by topic",
    "Deliveries per second by subscription and outcome",
    "Delivery attempts per second by subscription and result",
    "Retries and give-ups per second by subscription",
    "Deliveries pending by subscription",
    "Delivery latency",
    "Queues of the fan-out",
    "Depth: messages visible and in flight",
    "Oldest message age",
    "Dead-letter queue depth",
    "Per-consumer accounting",
    "Matched, delivered (distinct) and dead-lettered per second",
    "Duplicates per second",
    "Redeliveries per second",
    "Undelivered per consumer",
    "Push consumers",
    "Push notifications per second by outcome",
    "Push confirmations",
]
HARNESS_LABELS = ("role", "service", "exported_service")
# The consumers' metrics, bar the providers' own (provider_deliveries_total and the like,
# which the Queues dashboard shows).
FANOUT_METRICS = re.compile(
    r"pubsub_\w+|push_\w+|provider_events_total|provider_redeliveries_total"
)

TOPIC = "payments"
EMAILS = "emails"  # a queue consumer: the queue `emails`, one worker, emails-dlq after 2 receives
FRAUD = "fraud"  # a queue behind a filter policy (amount >= 500), no workers
PUSH = "push"  # a push consumer: confirms itself; a failed push is retried once, then dropped
SMS = "sms"  # a push consumer that confirms, then stops: retried once, then to sms-dlq
WEBHOOK = "webhook"  # an http subscription to a closed port: never confirmed, so gets nothing
EMAILS_DLQ, SMS_DLQ = f"{EMAILS}-dlq", f"{SMS}-dlq"
VARIABLES = {"subscription": ".*", "dlq": queues.DLQ_DEFAULT}
TRAFFIC_S = 10.0
PUBLISH_EVERY_S = 0.1
POISON = 3  # the first events are poison: the provider always fails them
FAILURE_RATE = 0.2  # and any other send at this rate: some succeed on a second try, some not
FRAUD_MIN_AMOUNT = 500


def dashboard() -> dict[str, Any]:
    return build_all()["fanout.json"]


def queries() -> list[Query]:
    return dashboard_queries(dashboard())


def harness_only(query: Query) -> bool:
    """Data only in a harness run (the control API's harness_* metrics)."""
    return any(name.startswith("harness_") for name in query.metrics)


def documented_fanout_metrics() -> set[str]:
    """The pubsub_*, push_* and provider accounting names of docs/metrics.md's tables."""
    table = re.findall(r"^\| `([a-z_]+)` \|", METRICS_DOC.read_text(), flags=re.MULTILINE)
    return {name for name in table if FANOUT_METRICS.fullmatch(name)}


def test_the_dashboard_is_generated_and_current() -> None:
    """dashboards/generated/fanout.json is what the code builds (`python -m dashboards build`)."""
    path = GENERATED / "fanout.json"
    assert path.exists(), "run `python -m dashboards build`"
    assert path.read_text() == render("fanout.json", dashboard())


def test_panels_are_the_expected_ones() -> None:
    """Rows and panels in reading order; each panel teaches what to look for."""
    found = dashboard()["panels"]
    assert [p["title"] for p in found] == EXPECTED_PANELS
    for panel in found:
        if panel["type"] != "row":
            assert len(panel["description"]) > 40, panel["title"]


def test_variables_and_annotations() -> None:
    """`subscription` from the topic's own label, `dlq` a regex, chaos on every service."""
    data = dashboard()
    assert (data["uid"], data["title"]) == (fanout.UID, "Fan-out")
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert list(variables) == ["datasource", "subscription", "dlq"]
    subscription = variables["subscription"]
    assert subscription["query"] == "label_values(pubsub_messages_matched_total, subscription)"
    assert (subscription["multi"], subscription["includeAll"]) == (True, True)
    assert subscription["allValue"] == ".*"
    dlq = variables["dlq"]
    assert dlq["type"] == "textbox"
    assert dlq["query"] == dlq["current"]["value"] == queues.DLQ_DEFAULT
    assert re.fullmatch(queues.DLQ_DEFAULT, EMAILS_DLQ)
    assert re.fullmatch(queues.DLQ_DEFAULT, SMS_DLQ)
    assert not re.fullmatch(queues.DLQ_DEFAULT, EMAILS)
    [chaos] = [q for q in queries() if q.where.startswith("annotation")]
    assert chaos.expr == fanout.CHAOS_EVENTS
    assert "{" not in chaos.expr, "chaos events of every service, unfiltered"
    assert metric_names(chaos.expr) == {"harness_chaos_events_total"}


def test_no_query_depends_on_the_harness_scrape_labels() -> None:
    """pubsub_*, push_*, provider_* and queue_* names are unique: no selector or grouping names
    the harness's role or service labels, so the panels work under any scrape configuration."""
    for query in queries():
        if harness_only(query):
            continue
        for label in HARNESS_LABELS:
            assert not re.search(rf"\b{label}\b", query.expr), f"{query.where}: {query.expr}"


def test_queries_follow_the_subscription_and_dlq_variables() -> None:
    """Every selector of a series with a subscription (pubsub_*) or a consumer (push_*,
    provider_*) carries $subscription; the two families without one (published, the
    subscriptions gauge) show every topic; every queue selector says whether it wants the
    dead-letter queues ($dlq)."""
    unfiltered = {"pubsub_messages_published_total", "pubsub_subscriptions"}
    for query in queries():
        for name in query.metrics:
            selectors = re.findall(rf"\b{name}(?:\{{([^}}]*)\}})?", query.expr)
            for selector in selectors:
                if name in unfiltered or name.startswith("harness_"):
                    assert "$subscription" not in selector, query.where
                elif name.startswith("pubsub_"):
                    assert 'subscription=~"$subscription"' in selector, query.where
                elif name.startswith(("push_", "provider_")):
                    assert 'consumer=~"$subscription"' in selector, query.where
                elif name.startswith("queue_"):
                    assert '"$dlq"' in selector, query.where


def test_nothing_hides_a_missing_series() -> None:
    """No default values (`or vector(0)`, `or on() ...`, absent()): a consumer whose provider
    is not scraped reads "no data", never 0."""
    for query in queries():
        if harness_only(query):
            continue
        assert not re.search(r"\bor\b|\bvector\s*\(|\babsent", query.expr), query.where


def test_undelivered_is_matched_minus_delivered_minus_dead_lettered() -> None:
    """docs/metrics.md's accounting, per consumer: the provider's `consumer` joins the topic's
    `subscription` through label_replace."""
    [undelivered] = [q for q in queries() if q.legend == "{{subscription}} undelivered"]
    selector = 'subscription=~"$subscription"'
    assert undelivered.expr == (
        f"sum by (subscription) (pubsub_messages_matched_total{{{selector}}})"
        " - sum by (subscription) (label_replace(provider_events_total"
        '{consumer=~"$subscription", outcome="first"}, "subscription", "$1", "consumer", "(.*)"))'
        f' - sum by (subscription) (pubsub_deliveries_total{{{selector}, outcome="dead_lettered"}})'
    )


def test_every_topic_push_and_consumer_metric_is_shown() -> None:
    """The panels draw every documented pubsub_* and push_* metric and the providers' per
    consumer accounting (provider_events_total, provider_redeliveries_total)."""
    documented = documented_fanout_metrics()
    assert len(documented) == 12, sorted(documented)
    shown = {re.sub(r"_bucket$", "", name) for q in queries() for name in q.metrics}
    assert documented <= shown, sorted(documented - shown)
    assert {"queue_messages_visible", "queue_oldest_message_age_seconds"} <= shown


# ---------------------------------------------------------------------------------------------
# Real processes


async def _call(client: httpx2.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    reply = await client.request(method, path, json=body)
    assert reply.status_code == 200, f"{method} {path}: {reply.status_code} {reply.text}"
    return reply.json()


async def _queue_arn(client: httpx2.AsyncClient, name: str) -> str:
    arn: str = (await _call(client, "GET", f"/queues/{name}"))["attributes"]["QueueArn"]
    return arn


async def _stored(client: httpx2.AsyncClient, name: str) -> int:
    """Messages a queue holds: visible, in flight or delayed."""
    attributes = (await _call(client, "GET", f"/queues/{name}"))["attributes"]
    states = ("", "NotVisible", "Delayed")
    return sum(int(attributes[f"ApproximateNumberOfMessages{state}"]) for state in states)


async def _create_queues(client: httpx2.AsyncClient) -> dict[str, str]:
    """`emails` (its messages move to `emails-dlq` after 2 receives), `fraud`, `sms-dlq`;
    their ARNs by name."""
    for name in (EMAILS_DLQ, SMS_DLQ, FRAUD):
        await _call(client, "PUT", f"/queues/{name}")
    dlq = await _queue_arn(client, EMAILS_DLQ)
    policy = json.dumps({"deadLetterTargetArn": dlq, "maxReceiveCount": 2})
    attributes = {"VisibilityTimeout": 1, "RedrivePolicy": policy}
    await _call(client, "PUT", f"/queues/{EMAILS}", {"attributes": attributes})
    return {name: await _queue_arn(client, name) for name in (EMAILS, FRAUD, SMS_DLQ)}


def _retry_once() -> str:
    """An http delivery policy: 1 retry, 1 s after the first attempt."""
    policy = {"numRetries": 1, "minDelayTarget": 1, "maxDelayTarget": 1}
    return json.dumps({"healthyRetryPolicy": {**policy, "backoffFunction": "linear"}})


def _topics_file(path: Path, arns: dict[str, str], push: str, sms: str) -> Path:
    """The topic `payments` and its five subscriptions (targets/pubsub/setup.py)."""
    fraud_filter = {"amount": [{"numeric": [">=", FRAUD_MIN_AMOUNT]}]}
    subscriptions = [
        {"name": EMAILS, "protocol": "sqs", "endpoint": arns[EMAILS]},
        {
            "name": FRAUD,
            "protocol": "sqs",
            "endpoint": arns[FRAUD],
            "attributes": {"FilterPolicy": json.dumps(fraud_filter)},
        },
        {
            "name": PUSH,
            "protocol": "http",
            "endpoint": push,
            "attributes": {"DeliveryPolicy": _retry_once()},
        },
        {
            "name": SMS,
            "protocol": "http",
            "endpoint": sms,
            "attributes": {
                "DeliveryPolicy": _retry_once(),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": arns[SMS_DLQ]}),
            },
        },
        {"name": WEBHOOK, "protocol": "http", "endpoint": f"http://127.0.0.1:{free_port()}/"},
    ]
    path.write_text(json.dumps({"topics": [{"name": TOPIC, "subscriptions": subscriptions}]}))
    return path


async def _sns(client: httpx2.AsyncClient, form: list[tuple[str, str]]) -> str:
    """One SNS query-protocol call (POST /, a form); the XML answer."""
    reply = await client.post(
        "/",
        content=urlencode([("Version", "2010-03-31"), *form]).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 200, f"{form[0]}: {reply.status_code} {reply.text}"
    return reply.text


async def _wait_for_confirmations(client: httpx2.AsyncClient, topic_arn: str) -> None:
    """Until the push consumers confirmed: only the webhook (nobody listens) stays pending."""
    deadline = time.monotonic() + 15
    while True:
        xml = await _sns(client, [("Action", "GetTopicAttributes"), ("TopicArn", topic_arn)])
        found = re.search(r"<key>SubscriptionsPending</key><value>(\d+)</value>", xml)
        assert found, xml
        if int(found.group(1)) == 1:
            return
        assert time.monotonic() < deadline, f"subscriptions still pending: {xml}"
        await asyncio.sleep(0.2)


def _amount(n: int) -> int:
    return (n * 137) % 1000


async def _publish(client: httpx2.AsyncClient, topic_arn: str) -> int:
    """One event every PUBLISH_EVERY_S for TRAFFIC_S over the SNS query protocol (as
    targets/server/email.py publishes), the first POISON of them poison; returns how many."""
    sent = 0
    start = time.monotonic()
    while time.monotonic() < start + TRAFFIC_S:
        amount = _amount(sent)
        event: dict[str, Any] = {"type": "PaymentCompleted", "event_id": f"pay-{sent}"}
        event["amount"] = amount
        if sent < POISON:
            event["poison"] = True
        form = [("Action", "Publish"), ("TopicArn", topic_arn), ("Message", json.dumps(event))]
        attributes = (("event_type", "String", "PaymentCompleted"), ("amount", "Number", amount))
        for n, (name, kind, value) in enumerate(attributes, start=1):
            at = f"MessageAttributes.entry.{n}"
            form += [(f"{at}.Name", name), (f"{at}.Value.DataType", kind)]
            form.append((f"{at}.Value.StringValue", str(value)))
        assert "<MessageId>" in await _sns(client, form)
        sent += 1
        await asyncio.sleep(max(0.0, start + sent * PUBLISH_EVERY_S - time.monotonic()))
    return sent


async def _start(supervisor: Supervisor, tmp_path: Path) -> tuple[dict[str, Child], str]:
    """The queue, the provider, the emails worker, the two push consumers, then the topic
    service over the queues it delivers to; the sms push consumer stops once it confirmed.
    Returns the scraped children and the topic's ARN."""
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
            [
                *("--listen", "127.0.0.1:0", "--latency-ms", "5", "--seed", "1"),
                *("--failure-rate", str(FAILURE_RATE)),
                *(arg for name in (EMAILS, FRAUD, PUSH, SMS) for arg in ("--consumer", name)),
            ],
        ),
    )
    queue_url = f"http://{queue.ready['address']}"
    provider_url = f"http://{provider.ready['address']}"
    async with httpx2.AsyncClient(base_url=queue_url, timeout=10.0) as client:
        arns = await _create_queues(client)
    worker, push, sms = await asyncio.gather(
        supervisor.spawn(
            "worker",
            "worker",
            "targets.workers",
            [
                *("--queue-url", queue_url, "--queue", EMAILS, "--consumer", EMAILS),
                *("--provider", provider_url, "--listen", "127.0.0.1:0", "--name", "worker"),
                *("--visibility-s", "1", "--rate", "0"),
            ],
        ),
        *(
            supervisor.spawn(
                name,
                "push",
                "targets.workers.push",
                [
                    *("--provider", provider_url, "--consumer", name),
                    *("--listen", "127.0.0.1:0", "--name", name),
                ],
            )
            for name in (PUSH, SMS)
        ),
    )
    topics_file = _topics_file(
        tmp_path / "topics.json",
        arns,
        f"http://{push.ready['address']}/",
        f"http://{sms.ready['address']}/",
    )
    topics = await supervisor.spawn(
        "topics",
        "topics",
        "targets.pubsub",
        [
            *("--db", str(tmp_path / "topics.db"), "--sqs", str(queue.ready["address"])),
            *("--listen", "127.0.0.1:0", "--topics-file", str(topics_file), "--seed", "1"),
        ],
    )
    topic_arn = f"arn:aws:sns:us-east-1:000000000000:{TOPIC}"
    async with httpx2.AsyncClient(base_url=f"http://{topics.ready['address']}") as client:
        await _wait_for_confirmations(client, topic_arn)
    await sms.stop()  # confirmed, then gone: its port refuses every push
    scraped = {"queue": queue, "provider": provider, "worker": worker, "push": push}
    return {**scraped, "topics": topics}, topic_arn


async def _settled(prometheus: Prometheus, client: httpx2.AsyncClient, sent: int) -> None:
    """Until every delivery ended, the emails worker is done with its queue (each message
    delivered or in emails-dlq) and every sms event is in sms-dlq."""
    deadline = time.monotonic() + 20
    while True:
        pending = await prometheus.query("sum(pubsub_deliveries_pending)")
        queues = (await _stored(client, EMAILS), await _stored(client, SMS_DLQ))
        if pending and pending[0].value == 0 and queues == (0, sent):
            return
        assert time.monotonic() < deadline, f"not settled: pending {pending}, queues {queues}"
        await asyncio.sleep(0.5)


def _values(series: list[Series]) -> list[float]:
    return [v for s in series for _, v in s.points if math.isfinite(v)]


def _key(series: Series, labels: tuple[str, ...]) -> Any:
    values = tuple(series.labels.get(label, "") for label in labels)
    return values[0] if len(values) == 1 else values


def _last(series: list[Series], *labels: str) -> dict[Any, float]:
    """Each series' last value, by its `labels` (one label: its value; more: a tuple)."""
    return {_key(s, labels or ("subscription",)): s.points[-1][1] for s in series}


def _peaks(series: list[Series], *labels: str) -> dict[Any, float]:
    """Each series' highest finite value, by its `labels` as in `_last`."""
    return {_key(s, labels or ("subscription",)): max(_values([s]), default=0) for s in series}


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_every_panel_has_data_with_real_processes(tmp_path: Path) -> None:
    """Queue, topic service, provider, an emails worker and a push consumer scraped by
    Prometheus while ~10 events a second are published to five subscriptions (emails, a
    filtered fraud queue without workers, the push consumer, an sms push consumer that
    confirmed and died, a webhook nobody confirmed, which gets nothing), the first POISON
    events poison: every expression but the harness-only chaos annotation has data, and
    each consumer's accounting comes out as it must."""
    checked = [q for q in queries() if not harness_only(q)]
    skipped = [q for q in queries() if harness_only(q)]
    assert len(skipped) == 1  # the chaos annotation
    async with Supervisor(tmp_path / "run") as supervisor:
        children, topic_arn = await _start(supervisor, tmp_path)
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
        await prometheus.wait_for_targets(len(children), timeout_s=15)
        topics_url = f"http://{children['topics'].ready['address']}"
        queue_url = f"http://{children['queue'].ready['address']}"
        async with (
            httpx2.AsyncClient(base_url=topics_url, timeout=10.0) as topics,
            httpx2.AsyncClient(base_url=queue_url, timeout=10.0) as queue,
        ):
            started = time.time()
            sent = await _publish(topics, topic_arn)
            await _settled(prometheus, queue, sent)
            await asyncio.sleep(2.0)  # the last scrapes land
            ended = time.time()
            fraud_depth = await _stored(queue, FRAUD)
            emails_dlq = await _stored(queue, EMAILS_DLQ)

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
        published = await prometheus.query("sum(pubsub_messages_published_total)", ended)
        matched = await prometheus.query(
            "sum by (subscription) (pubsub_messages_matched_total)", ended
        )

    print(f"\n{sent} events published; {len(checked)} expressions checked, skipped (harness only):")
    print(*(q.where for q in skipped), sep="\n  ")
    print("\n".join(report))
    assert not empty, "no data for:\n" + "\n".join(empty)

    def find(title: str, legend: str = "") -> list[Series]:
        [series] = [s for (where, lg), s in results.items() if title in where and lg == legend]
        return series

    frauds = sum(_amount(n) >= FRAUD_MIN_AMOUNT for n in range(sent))
    assert 0 < frauds < sent
    assert [s.value for s in published] == [sent]
    assert {s.labels["subscription"]: s.value for s in matched} == {
        EMAILS: sent,
        FRAUD: frauds,
        PUSH: sent,
        SMS: sent,
        WEBHOOK: 0,  # unconfirmed: left out of the fan-out, as in SNS
    }
    assert fraud_depth == frauds

    # Undelivered = matched - delivered (distinct) - dead-lettered by the topic: what failed
    # twice at the provider (the poison emails among it) waits in emails-dlq, the pushes that
    # failed twice were dropped, every fraud event waits in its queue, every sms event was
    # dead-lettered by the topic; the webhook's provider series do not exist (no consumer of
    # that name), so it has no line, not a 0.
    assert emails_dlq >= POISON
    dropped = _last(
        find("(Undelivered per consumer)", "{{subscription}} of which dropped by the topic")
    )
    assert dropped[PUSH] >= POISON
    assert dropped == {EMAILS: 0, FRAUD: 0, PUSH: dropped[PUSH], SMS: 0, WEBHOOK: 0}
    undelivered = _last(find("(Undelivered per consumer)", "{{subscription}} undelivered"))
    assert undelivered == {EMAILS: emails_dlq, FRAUD: frauds, PUSH: dropped[PUSH], SMS: 0}
    waiting = find("(Undelivered per consumer)", "{{subscription}} of which pending at the topic")
    assert _last(waiting) == {EMAILS: 0, FRAUD: 0, PUSH: 0, SMS: 0, WEBHOOK: 0}
    dlqs = find("(Dead-letter queue depth)", "{{queue}}")
    assert _last(dlqs, "queue") == {EMAILS_DLQ: emails_dlq, SMS_DLQ: sent}
    given_up = find("(Dead-lettered + dropped by the topic)")
    assert _last(given_up, "") == {"": sent + dropped[PUSH]}
    states = find("(Subscriptions: confirmed and pending)", "{{state}}")
    assert _last(states, "state") == {"confirmed": 4, "pending": 1}

    # The failures and retries behind those numbers: sms refused every push, the poison
    # pushes failed at the provider (502), the poison emails came back to the worker.
    attempts = find("(Delivery attempts", "{{subscription}} {{result}}")
    failed = {key for key, v in _peaks(attempts, "subscription", "result").items() if v > 0}
    assert {(SMS, "connection"), (PUSH, "http_5xx"), (EMAILS, "delivered")} <= failed
    retried = find("(Retries and give-ups", "{{subscription}} retried")
    assert {k for k, v in _peaks(retried).items() if v > 0} == {PUSH, SMS}
    redelivered = find("(Redeliveries per second)", "{{consumer}}")
    assert {k for k, v in _peaks(redelivered, "consumer").items() if v > 0} == {EMAILS, PUSH}
    notified = find("(Push notifications", "{{consumer}} {{outcome}}")
    assert set(_peaks(notified, "consumer", "outcome")) == {(PUSH, "delivered"), (PUSH, "failed")}
    assert min(_peaks(notified, "consumer", "outcome").values()) > 0
    confirmations = find("(Push confirmations)", "{{consumer}} {{outcome}}")
    assert _last(confirmations, "consumer", "outcome") == {
        (PUSH, "confirmed"): 1,
        (PUSH, "failed"): 0,
    }
