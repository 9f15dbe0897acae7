"""The queue's metrics: per-queue gauges and counters read from the engine at scrape time.

Nothing is counted on the request path: ``QueueStore.stats`` (an index range, no scan) and
``QueueStore.counters`` (plain ints the engine keeps) are read when Prometheus scrapes, so
the families always agree with the engine. Every series is labelled by ``queue`` only.
Counters count since the process opened the database (a restart resets them, as any
Prometheus counter of a restarted process).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from targets.fastmetrics import BornAtZeroRegistry
from targets.queue.poll import LongPoller
from targets.queue.rules import QueueCounters
from targets.queue.store import QueueStore

GAUGES: Final = (
    ("queue_messages_visible", "Messages available to receive now (ApproximateNumberOfMessages)."),
    (
        "queue_messages_in_flight",
        "Messages received and not yet deleted, within their visibility timeout "
        "(ApproximateNumberOfMessagesNotVisible).",
    ),
    (
        "queue_messages_delayed",
        "Messages sent with a delay that has not passed (ApproximateNumberOfMessagesDelayed).",
    ),
    (
        "queue_oldest_message_age_seconds",
        "Age of the oldest stored message of any state; 0 when empty "
        "(ApproximateAgeOfOldestMessage).",
    ),
)
COUNTERS: Final = (
    ("queue_messages_sent", "sent", "Messages accepted by SendMessage and SendMessageBatch."),
    ("queue_messages_received", "received", "Messages returned by ReceiveMessage."),
    (
        "queue_empty_receives",
        "empty_receives",
        "ReceiveMessage calls that returned no message (NumberOfEmptyReceives).",
    ),
    ("queue_messages_deleted", "deleted", "Messages deleted by DeleteMessage(Batch)."),
    (
        "queue_messages_moved_to_dlq",
        "moved_to_dlq",
        "Messages this queue moved to its dead-letter queue after maxReceiveCount receives.",
    ),
    (
        "queue_messages_redriven",
        "redriven",
        "Messages moved out of this dead-letter queue by StartMessageMoveTask (redrive).",
    ),
    ("queue_messages_expired", "expired", "Messages dropped by MessageRetentionPeriod."),
    ("queue_messages_purged", "purged", "Messages dropped by PurgeQueue."),
)


class QueueCollector(Collector):
    """Exposes the store's per-queue state as Prometheus families when scraped."""

    def __init__(self, store: QueueStore, poller: LongPoller) -> None:
        self.store = store
        self.poller = poller

    def collect(self) -> Iterator[Metric]:
        store = self.store
        names = store.queue_names()
        gauges = [GaugeMetricFamily(n, doc, labels=["queue"]) for n, doc in GAUGES]
        counters = [CounterMetricFamily(n, doc, labels=["queue"]) for n, _, doc in COUNTERS]
        for name in names:
            stats = store.stats(name)
            values = (stats.visible, stats.in_flight, stats.delayed, stats.oldest_age_seconds)
            for family, value in zip(gauges, values, strict=True):
                family.add_metric([name], value)
            counts: QueueCounters = store.counters(name)
            for counter, (_, attr, _) in zip(counters, COUNTERS, strict=True):
                counter.add_metric([name], getattr(counts, attr))
        yield from gauges
        yield from counters
        waiting = GaugeMetricFamily(
            "queue_long_polls_waiting", "ReceiveMessage calls waiting in a long poll now."
        )
        waiting.add_metric([], self.poller.waiting)
        yield waiting


def queue_registry(store: QueueStore, poller: LongPoller) -> CollectorRegistry:
    registry = BornAtZeroRegistry()
    registry.register(QueueCollector(store, poller))
    return registry
