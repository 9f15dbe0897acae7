"""The edge cache's metrics (``GET /_edge/metrics``), in a registry of its own.

Request-path counts are plain dicts (`FastCounter`, `FastHistogram`: one event-loop thread
writes them); what the store holds (bytes, objects, evictions) is read from the `LruStore`
when Prometheus scrapes, so it never drifts from the store. Label values are bounded: the
four results, the origin outcomes below, the two stale reasons.

Hit ratio: ``sum(rate(cdn_requests_total{result=~"Hit|RefreshHit"}[1m])) /
sum(rate(cdn_requests_total[1m]))``; origin offload: ``cdn_origin_fetches_total`` against
``cdn_requests_total``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from targets.cdn.core import Result
from targets.cdn.store import LruStore
from targets.fastmetrics import BornAtZeroRegistry, FastCounter, FastHistogram
from targets.http.upstream import UPSTREAM_REASONS

ORIGIN_KINDS: Final = ("fetch", "revalidate", "forward")
"""Why the edge asked the origin: a full fetch for the cache, a conditional request for a
stale entry, a request passed through uncached (a method other than GET/HEAD)."""
ORIGIN_OUTCOMES: Final = ("response", "not_modified", *UPSTREAM_REASONS)
"""How an origin request ended: a response (any status but 304), a 304, or no (complete)
response, by the engine's reason (`targets.http.upstream`)."""
STALE_REASONS: Final = ("while_revalidate", "if_error")
_RESULT_LABELS: Final = {result: (result.value,) for result in Result}


class StoreCollector(Collector):
    """The store's gauges and its eviction counter, read at scrape time."""

    def __init__(self, store: LruStore[Any]) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        store = self.store
        yield GaugeMetricFamily(
            "cdn_bytes_stored",
            "Bytes the cache holds: keys, header names and values, bodies.",
            value=store.bytes_stored,
        )
        yield GaugeMetricFamily(
            "cdn_objects_stored", "Objects (cache keys) the cache holds.", value=len(store)
        )
        yield GaugeMetricFamily(
            "cdn_max_bytes", "The cache's capacity in bytes (--max-bytes).", value=store.max_bytes
        )
        yield CounterMetricFamily(
            "cdn_evictions",
            "Objects evicted, least recently used first, to make room for another.",
            value=store.evictions,
        )


class EdgeMetrics:
    """Every family of one edge; `registry` is what ``/_edge/metrics`` exposes."""

    def __init__(self, store: LruStore[Any]) -> None:
        self.requests = FastCounter(
            "cdn_requests_total",
            "Viewer requests answered, by X-Cache result (Hit, RefreshHit, Miss, Error).",
            ["result"],
        )
        self.duration = FastHistogram(
            "cdn_request_duration_seconds",
            "From request head received to response complete, by X-Cache result.",
            ["result"],
        )
        self.origin_fetches = FastCounter(
            "cdn_origin_fetches_total",
            "Requests the edge sent to the origin, by kind and outcome.",
            ["kind", "outcome"],
        )
        self.collapsed = FastCounter(
            "cdn_collapsed_waiters_total",
            "Requests that waited for another request's origin fetch of the same key.",
            [],
        )
        self.stale = FastCounter(
            "cdn_stale_served_total",
            "Expired objects served: during stale-while-revalidate, or on an origin error.",
            ["reason"],
        )
        self.invalidations = FastCounter(
            "cdn_invalidations_total", "Invalidation batches accepted.", []
        )
        self.invalidated = FastCounter(
            "cdn_invalidated_objects_total", "Objects removed by invalidations.", []
        )
        for result in Result:
            self.requests.inc((result.value,), 0)
            self.duration.declare((result.value,))
        for kind in ORIGIN_KINDS:
            for outcome in ("response", "not_modified") if kind != "forward" else ("response",):
                self.origin_fetches.inc((kind, outcome), 0)
        for reason in STALE_REASONS:
            self.stale.inc((reason,), 0)
        for unlabelled in (self.collapsed, self.invalidations, self.invalidated):
            unlabelled.inc((), 0)
        self.registry = BornAtZeroRegistry()
        for collector in (
            self.requests,
            self.duration,
            self.origin_fetches,
            self.collapsed,
            self.stale,
            self.invalidations,
            self.invalidated,
            StoreCollector(store),
        ):
            self.registry.register(collector)

    def answered(self, result: Result, seconds: float) -> None:
        labels = _RESULT_LABELS[result]
        self.requests.inc(labels)
        self.duration.observe(labels, seconds)
