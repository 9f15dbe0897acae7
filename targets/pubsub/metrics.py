"""The topic service's metrics (docs/metrics.md, "Topic service").

The accounting families are read from the store's durable counts at scrape time, so they
survive a restart of the topic process (a kill -9 and a restart do not reset them: the lab
can subtract them from what consumers counted). Attempts and latency are counted by the
delivery loop for the life of the process. Labels: ``topic`` and ``subscription`` (the
subscription's name: bounded by the topology), ``outcome``/``result`` from fixed lists.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from targets.fastmetrics import BornAtZeroRegistry, FastCounter, FastHistogram
from targets.pubsub.deliver import DeliveryObserver
from targets.pubsub.model import Subscription
from targets.pubsub.store import TopicStore

DELIVERY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
ENDED: Final = ("delivered", "dead_lettered", "dropped")
RESULTS: Final = (
    "delivered",
    "http_5xx",
    "timeout",
    "reset",
    "connection",
    "rejected",
    "confirmation",
)


class StoreCollector(Collector):
    def __init__(self, store: TopicStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        store = self.store
        published = CounterMetricFamily(
            "pubsub_messages_published",
            "Messages accepted by Publish and PublishBatch (durable: survives a restart).",
            labels=["topic"],
        )
        matched = CounterMetricFamily(
            "pubsub_messages_matched",
            "Published messages a subscription's filter let through: deliveries owed (durable).",
            labels=["topic", "subscription"],
        )
        ended = CounterMetricFamily(
            "pubsub_deliveries",
            "Deliveries that ended, by outcome: delivered, dead_lettered (retries exhausted,"
            " sent to the subscription's DLQ), dropped (retries exhausted and no DLQ, or"
            " unsubscribed: lost) (durable).",
            labels=["topic", "subscription", "outcome"],
        )
        retries = CounterMetricFamily(
            "pubsub_delivery_retries",
            "Failed delivery attempts that were scheduled again (durable).",
            labels=["topic", "subscription"],
        )
        pending = GaugeMetricFamily(
            "pubsub_deliveries_pending",
            "Deliveries owed now: waiting, in flight or waiting for a retry.",
            labels=["topic", "subscription"],
        )
        subscriptions = GaugeMetricFamily(
            "pubsub_subscriptions",
            "Subscriptions by protocol and state (confirmed, pending).",
            labels=["topic", "protocol", "state"],
        )
        counts = store.counts
        for name, topic in sorted(store.topics.items()):
            published.add_metric([name], counts.get((name, "", "published"), 0))
            states: dict[tuple[str, str], int] = {}
            for sub in topic.subscriptions:
                key = (name, sub.name)
                matched.add_metric(list(key), counts.get((*key, "matched"), 0))
                for outcome in ENDED:
                    ended.add_metric([*key, outcome], counts.get((*key, outcome), 0))
                retries.add_metric(list(key), counts.get((*key, "retried"), 0))
                pending.add_metric(list(key), store.owed.get(sub.id, 0))
                kind = (sub.protocol, "confirmed" if sub.confirmed else "pending")
                states[kind] = states.get(kind, 0) + 1
            for (protocol, state), n in sorted(states.items()):
                subscriptions.add_metric([name, protocol, state], n)
        yield from (published, matched, ended, retries, pending, subscriptions)


class DeliveryMetrics(DeliveryObserver):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = FastCounter(
            "pubsub_delivery_attempts_total",
            "Delivery attempts by result: delivered, http_5xx, timeout, reset (sent, closed"
            " unanswered), connection (never reached the endpoint), rejected"
            " (a queue refused the entry), confirmation (a SubscriptionConfirmation sent).",
            ["subscription", "result"],
        )
        self.latency = FastHistogram(
            "pubsub_delivery_latency_seconds",
            "Time from publish to delivery, retries included, by subscription.",
            ["subscription"],
            DELIVERY_BUCKETS,
        )
        registry.register(self.attempts)
        registry.register(self.latency)

    def declare(self, sub: Subscription) -> None:
        for result in RESULTS:
            self.attempts.inc((sub.name, result), 0)
        self.latency.declare((sub.name,))

    def attempt(self, sub: Subscription, result: str) -> None:
        self.attempts.inc((sub.name, result))

    def delivered(self, sub: Subscription, latency_s: float) -> None:
        self.latency.observe((sub.name,), latency_s)


def topic_registry(store: TopicStore) -> tuple[CollectorRegistry, DeliveryMetrics]:
    registry = BornAtZeroRegistry()
    registry.register(StoreCollector(store))
    metrics = DeliveryMetrics(registry)
    for sub in store.subscriptions.values():
        metrics.declare(sub)
    return registry, metrics
