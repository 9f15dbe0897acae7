"""The "Fan-out" dashboard: the topic service, its subscriptions and every consumer's accounting.

Built like the Queues dashboard (dashboards/panels.py). Every query uses only the metric names
of docs/metrics.md (pubsub_*, push_*, provider_*, queue_*, harness_*); tests/dashboards hold it
to that and run every expression against a real Prometheus scraping a real queue, topic
service, provider, worker and push consumer. Rate windows are 5 s: Prometheus scrapes every 1 s.

Labels. The metric names are unique to their process, so no query selects on `role` or
`service` (the harness's scrape labels): they work with any scrape configuration.

- `subscription` is the topic's label on pubsub_* series, and a subscription's name is its
  consumer's name everywhere in the lab: the `consumer` label of provider_* and push_* series.
  The `$subscription` variable selects on both (`subscription=~`, `consumer=~`), and the
  accounting joins the two with `label_replace(..., "subscription", "$1", "consumer", "(.*)")`.
- `pubsub_messages_published_total{topic}` and `pubsub_subscriptions{topic, protocol, state}`
  have no subscription: they show every topic.
- Queues carry only `queue`: nothing in the metrics says which subscription a queue serves, so
  the queue panels show every queue of the queue service. `$dlq` (a regex, `.*dlq.*` by
  default, as on the Queues dashboard) says which are dead-letter queues.

Nothing hides a missing series: no `or vector(0)`. The pubsub_* series of every subscription
and the provider_events_total and provider_redeliveries_total series of every declared
consumer exist at 0 from the start, so 0 means nothing happened and "no data" means a process
is not scraped (or a consumer's provider was not told about it with `--consumer`). Only
`pubsub_subscriptions` has a series per state present: no `pending` series while every
subscription is confirmed.

Chaos events (any service) are annotations, as on the other dashboards.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards.panels import (
    Layout,
    chaos_events,
    dashboard,
    label_variable,
    quantiles,
    queries,
    series,
    single,
)
from dashboards.queues import MESSAGES_PER_S, dlq_variable
from harness.promql import RATE

UID = "rushlab-fanout"
TITLE = "Fan-out"

SUBSCRIPTION = 'subscription=~"$subscription"'
"""The `subscription` variable's selector on the topic's series."""
CONSUMER = 'consumer=~"$subscription"'
"""The same variable on the consumers' series (provider_*, push_*): a consumer is named after
its subscription."""
DLQ = 'queue=~"$dlq"'
"""Dead-letter queues: the `dlq` variable is a regex over queue names."""
WORK = 'queue!~"$dlq"'
"""Every queue that is not a dead-letter queue."""
CHAOS_EVENTS = chaos_events()

FIRST = f'{CONSUMER}, outcome="first"'
DUPLICATE = f'{CONSUMER}, outcome="duplicate"'
ENDED_DELIVERED = f'{SUBSCRIPTION}, outcome="delivered"'
ENDED_DEAD_LETTERED = f'{SUBSCRIPTION}, outcome="dead_lettered"'
ENDED_DROPPED = f'{SUBSCRIPTION}, outcome="dropped"'
GIVEN_UP = f'{SUBSCRIPTION}, outcome=~"dead_lettered|dropped"'


def _rate(metric: str, selector: str = SUBSCRIPTION) -> str:
    return f"rate({metric}{{{selector}}}[{RATE}])"


def _as_subscription(vector: str) -> str:
    """`vector` (a consumer's series) with its `consumer` label copied into `subscription`."""
    return f'label_replace({vector}, "subscription", "$1", "consumer", "(.*)")'


def _per_subscription(vector: str) -> str:
    return f"sum by (subscription) ({vector})"


MATCHED = _per_subscription(f"pubsub_messages_matched_total{{{SUBSCRIPTION}}}")
DELIVERED_FIRST = _per_subscription(_as_subscription(f"provider_events_total{{{FIRST}}}"))
DEAD_LETTERED = _per_subscription(f"pubsub_deliveries_total{{{ENDED_DEAD_LETTERED}}}")
UNDELIVERED = f"{MATCHED} - {DELIVERED_FIRST} - {DEAD_LETTERED}"
"""docs/metrics.md's "lost" (matched - delivered - dead-lettered by the topic) per consumer,
before anything settled: what is still on its way is in it."""


def build() -> models.Dashboard:
    """The dashboard as the SDK's model."""
    board = (
        dashboard(
            UID,
            TITLE,
            "The topic service and its consumers: publishes, deliveries by outcome, retries and "
            "what is pending per subscription, delivery latency, the queues of the fan-out and "
            "their dead-letter queues, each consumer's accounting (matched, delivered, "
            "duplicated, redelivered, undelivered) and the push consumers; chaos events marked.",
            CHAOS_EVENTS,
        )
        .with_variable(
            label_variable(
                "subscription",
                "Subscription",
                "label_values(pubsub_messages_matched_total, subscription)",
            )
        )
        .with_variable(dlq_variable())
    )
    layout = Layout(board)
    _overview(layout)
    _deliveries(layout)
    _queues(layout)
    _accounting(layout)
    _push(layout)
    return board.build()


def _overview(layout: Layout) -> None:
    layout.row("Overview")
    by_state = "sum by (state) (pubsub_subscriptions)"
    subscriptions = single(  # one value per state: the legend names it
        "Subscriptions: confirmed and pending",
        "Subscriptions of every topic by state. An http subscription is pending until its "
        "endpoint visits the SubscribeURL; until then it is left out of the fan-out (as in "
        "SNS): what is published meanwhile is neither matched to it nor ever delivered. No "
        "`pending` value: every subscription is confirmed.",
        "short",
        by_state,
        decimals=0,
    ).targets(queries([(by_state, "{{state}}")]))
    for panel in (
        single(
            "Published per second",
            "Messages every topic accepted per second (Publish and PublishBatch): each was "
            "committed before its answer, so this is what the topic owes its subscriptions.",
            MESSAGES_PER_S,
            f"sum(rate(pubsub_messages_published_total[{RATE}]))",
        ),
        single(
            "Deliveries per second",
            "Deliveries to the selected subscriptions that ended delivered, per second: a queue "
            "stored the message or an endpoint answered. Below matched per second (Per-consumer "
            "accounting), deliveries pile up as pending.",
            MESSAGES_PER_S,
            f"sum({_rate('pubsub_deliveries_total', ENDED_DELIVERED)})",
        ),
        single(
            "Deliveries pending",
            "Deliveries the topic owes the selected subscriptions now: due, in flight or "
            "waiting for a retry. Climbing: an endpoint is down or slow, or a queue refuses.",
            "short",
            f"sum(pubsub_deliveries_pending{{{SUBSCRIPTION}}})",
            thresholds=((None, "green"), (100, "orange"), (1000, "red")),
            decimals=0,
        ),
        single(
            "Retries per second",
            "Failed delivery attempts the topic scheduled again (an http subscription's delivery "
            "policy, AWS's schedule for a queue). Any: an endpoint or a queue is failing.",
            "short",
            f"sum({_rate('pubsub_delivery_retries_total')})",
            thresholds=((None, "green"), (0.001, "orange")),
        ),
        single(
            "Dead-lettered + dropped by the topic",
            "Deliveries the topic gave up on, since its database was created (the counts are "
            "durable): dead_lettered went to the subscription's dead-letter queue, dropped are "
            "lost (no dead-letter queue). Anything above 0 needs a look.",
            "short",
            f"sum(pubsub_deliveries_total{{{GIVEN_UP}}})",
            thresholds=((None, "green"), (1, "red")),
            decimals=0,
        ),
        subscriptions,
    ):
        layout.add(panel.span(4))


def _deliveries(layout: Layout) -> None:
    layout.row("Publishes and deliveries")
    layout.add(
        series(
            "Published per second by topic",
            "Messages each topic accepted per second. Every subscription whose filter policy "
            "lets a message through owes one delivery of it: the fan-out multiplies this line.",
            MESSAGES_PER_S,
            [
                (
                    f"sum by (topic) (rate(pubsub_messages_published_total[{RATE}]))",
                    "{{topic}}",
                )
            ],
        )
    )
    layout.add(
        series(
            "Deliveries per second by subscription and outcome",
            "Deliveries that ended, per second: delivered (a queue stored it, an endpoint "
            "answered 2xx-4xx), dead_lettered (retries exhausted, sent to the subscription's "
            "dead-letter queue) or dropped (retries exhausted and no dead-letter queue: lost).",
            MESSAGES_PER_S,
            [
                (
                    f"sum by (subscription, outcome) ({_rate('pubsub_deliveries_total')})",
                    "{{subscription}} {{outcome}}",
                )
            ],
        )
    )
    layout.add(
        series(
            "Delivery attempts per second by subscription and result",
            "Every attempt, retries included: delivered, http_5xx, timeout, connection (refused "
            "or reset: the endpoint is down), rejected (a queue refused the entry), confirmation "
            "(a SubscriptionConfirmation was taken). Counted for the topic process's life.",
            "short",
            [
                (
                    f"sum by (subscription, result) ({_rate('pubsub_delivery_attempts_total')})",
                    "{{subscription}} {{result}}",
                )
            ],
        )
    )
    layout.add(
        series(
            "Retries and give-ups per second by subscription",
            "Failed attempts scheduled again, and deliveries whose retries ran out (dead-lettered "
            "or dropped). An http subscription retries on its delivery policy, then gives up; a "
            "queue subscription retries on AWS's schedule for days. Retries without deliveries: "
            "the endpoint is down; give-ups a few seconds later: its delivery policy is short.",
            "short",
            [
                (
                    f"sum by (subscription) ({_rate('pubsub_delivery_retries_total')})",
                    "{{subscription}} retried",
                ),
                (
                    f"sum by (subscription) ({_rate('pubsub_deliveries_total', GIVEN_UP)})",
                    "{{subscription}} given up",
                ),
            ],
        )
    )
    layout.add(
        series(
            "Deliveries pending by subscription",
            "Deliveries owed now, per subscription: due, in flight or waiting for a retry. A "
            "healthy subscription stays near 0; one that climbs has a slow or dead endpoint "
            "(its retries wait here), or a queue that refuses what the topic sends.",
            "short",
            [
                (
                    f"sum by (subscription) (pubsub_deliveries_pending{{{SUBSCRIPTION}}})",
                    "{{subscription}}",
                )
            ],
        )
    )
    layout.add(
        series(
            "Delivery latency",
            "p50, p95 and p99 from publish to delivery, retries included, per subscription. A "
            "queue subscription takes milliseconds; p99 in seconds means retries: every retry "
            "adds its delivery policy's delay.",
            "s",
            quantiles(
                "pubsub_delivery_latency_seconds_bucket",
                SUBSCRIPTION,
                "subscription",
                "{{subscription}}",
            ),
        )
    )


def _queues(layout: Layout) -> None:
    layout.row("Queues of the fan-out")
    layout.add(
        series(
            "Depth: messages visible and in flight",
            "Per queue (dead-letter queues left out): visible messages wait for a worker, in "
            "flight ones are being worked on. Visible climbing while in flight is 0: the "
            "queue's workers are gone; the topic keeps delivering, nothing is lost.",
            "short",
            [
                (
                    f"sum by (queue) (queue_messages_visible{{{WORK}}})",
                    "{{queue}} visible",
                ),
                (
                    f"sum by (queue) (queue_messages_in_flight{{{WORK}}})",
                    "{{queue}} in flight",
                ),
            ],
            width=8,
        )
    )
    layout.add(
        series(
            "Oldest message age",
            "Age of each queue's oldest message (dead-letter queues left out); 0 when empty. "
            "Rising 1 s per second: that consumer is not served, its events are late, and the "
            "other consumers of the same topic carry on regardless.",
            "s",
            [(f"max by (queue) (queue_oldest_message_age_seconds{{{WORK}}})", "{{queue}}")],
            width=8,
        )
    )
    layout.add(
        series(
            "Dead-letter queue depth",
            "Messages in the dead-letter queues (names matching the `dlq` regex): what a queue "
            "moved aside after maxReceiveCount receives, and what the topic dead-lettered after "
            "an http subscription's retries. It only goes down by a redrive.",
            "short",
            [(f"sum by (queue) (queue_messages_visible{{{DLQ}}})", "{{queue}}")],
            width=8,
        )
    )


def _accounting(layout: Layout) -> None:
    layout.row("Per-consumer accounting")
    layout.add(
        series(
            "Matched, delivered (distinct) and dead-lettered per second",
            "Per consumer: matched (published messages its filter let through: owed to it), "
            "delivered (distinct event ids its provider took), dead-lettered by the topic. "
            "Delivered below matched for long: the consumer falls behind or loses events.",
            MESSAGES_PER_S,
            [
                (
                    _per_subscription(_rate("pubsub_messages_matched_total")),
                    "{{subscription}} matched",
                ),
                (
                    _per_subscription(_as_subscription(_rate("provider_events_total", FIRST))),
                    "{{subscription}} delivered (distinct)",
                ),
                (
                    _per_subscription(_rate("pubsub_deliveries_total", ENDED_DEAD_LETTERED)),
                    "{{subscription}} dead-lettered",
                ),
            ],
        )
    )
    layout.add(
        series(
            "Duplicates per second",
            "Events a consumer's provider got again, by event id: at-least-once delivery (a "
            "worker that died after sending, before deleting; a push retried after a lost "
            "answer). Harmless only if the consumer is idempotent.",
            MESSAGES_PER_S,
            [
                (
                    f"sum by (consumer) ({_rate('provider_events_total', DUPLICATE)})",
                    "{{consumer}}",
                )
            ],
            width=6,
        )
    )
    layout.add(
        series(
            "Redeliveries per second",
            "Sends that were a consumer's second or later try of a message: a queue message "
            "received again, or a push the topic retried. Redeliveries with few duplicates: "
            "the earlier tries failed, so the retries did their job.",
            MESSAGES_PER_S,
            [
                (
                    f"sum by (consumer) ({_rate('provider_redeliveries_total', CONSUMER)})",
                    "{{consumer}}",
                )
            ],
            width=6,
        )
    )
    layout.add(
        series(
            "Undelivered per consumer",
            "matched - delivered (distinct) - dead-lettered by the topic, per consumer: lost "
            "only once everything settled. Before that it also counts what is pending at the "
            "topic, what waits in a queue consumer's queue or its own dead-letter queue, and "
            "what the topic dropped (lost). A provider restart resets its counts: the line "
            "jumps. No line: the consumer's provider is not scraped or was not told about it.",
            "short",
            [
                (UNDELIVERED, "{{subscription}} undelivered"),
                (
                    _per_subscription(f"pubsub_deliveries_pending{{{SUBSCRIPTION}}}"),
                    "{{subscription}} of which pending at the topic",
                ),
                (
                    _per_subscription(f"pubsub_deliveries_total{{{ENDED_DROPPED}}}"),
                    "{{subscription}} of which dropped by the topic",
                ),
            ],
            width=24,
        )
    )


def _push(layout: Layout) -> None:
    layout.row("Push consumers")
    layout.add(
        series(
            "Push notifications per second by outcome",
            "Notifications the topic pushed to each push consumer: delivered (its provider took "
            "it, answered 200) or failed (answered 502: the topic retries on the delivery "
            "policy, then dead-letters or drops). Nothing at all while its subscription's "
            "pending deliveries grow: the consumer is down.",
            MESSAGES_PER_S,
            [
                (
                    f"sum by (consumer, outcome) ({_rate('push_notifications_total', CONSUMER)})",
                    "{{consumer}} {{outcome}}",
                )
            ],
        )
    )
    layout.add(
        series(
            "Push confirmations",
            "SubscriptionConfirmation messages each push consumer answered since it started "
            "(confirmed: its SubscribeURL visit worked), and the topic's http subscriptions by "
            "state. A pending subscription is left out of the fan-out until it is confirmed: "
            "what is published meanwhile never reaches it.",
            "short",
            [
                (
                    f"sum by (consumer, outcome) (push_confirmations_total{{{CONSUMER}}})",
                    "{{consumer}} {{outcome}}",
                ),
                (
                    'sum by (topic, state) (pubsub_subscriptions{protocol="http"})',
                    "{{topic}} http {{state}}",
                ),
            ],
        )
    )
