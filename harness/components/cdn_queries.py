"""PromQL of the CDN edges (targets/cdn: the cdn_* metrics of docs/metrics.md's "CDN edge").

The CDN dashboard (dashboards/cdn.py) draws these, and the report can plot them. Built from
harness/promql.py only (this module is to join the edges' component module).

Labels. An edge's series carry no label naming the edge: the scrape target's `service` does
(the edge's name in the topology; its one instance is `<name>-1`), so per-edge expressions group
`by (service)` (EDGE). `matchers` narrows every selector of an expression alike (the dashboard
passes `service=~"$edge"`); `by` is the grouping ("" sums over every selected edge).

Nothing hides a missing series (no `or vector(0)`, no `absent`): an edge not scraped has no
line. The request, stale, collapsed, invalidation and eviction series of every edge exist at 0
from its start, so 0 means nothing happened. An origin failure's series (`outcome` refused,
timeout, ...) is born with that edge's first failure of the kind: "no data" there means none.
The hit ratio of an edge that answered nothing in the window is no data, not NaN (0 / 0) nor 0.
Rate windows are RATE (5 s): Prometheus scrapes every 1 s.
"""

from __future__ import annotations

from harness.promql import RATE, quantile, summed

EDGE = "service"
"""The label that names an edge (the harness's scrape label)."""
HITS = 'result=~"Hit|RefreshHit"'
"""Answers from the cache: fresh or stale (`Hit`, collapsed waiters included) and revalidated
(`RefreshHit`: the origin said 304). `Miss` and `Error` went to the origin or are errors."""
MISSES = 'result=~"Miss|Error"'
"""Answers not from the cache's good copies: fetched from (or forwarded to) the origin, or an
error status (from the cache or not)."""
ORIGIN_FAILED = 'outcome!~"response|not_modified"'
"""Origin requests that got no (complete) response: refused, connect_timeout, pool_timeout,
reset, timeout, bad_response (targets/http/upstream.py)."""


def _both(*matchers: str) -> str:
    return ", ".join(m for m in matchers if m)


def _gauge(metric: str, matchers: str, by: str) -> str:
    grouping = f" by ({by})" if by else ""
    selector = f"{{{matchers}}}" if matchers else ""
    return f"sum{grouping} ({metric}{selector})"


def requests_per_s(matchers: str = "", by: str = f"{EDGE}, result", window: str = RATE) -> str:
    """Viewer requests answered per second (by edge and X-Cache result by default)."""
    return summed("cdn_requests_total", matchers, by, window)


def hit_ratio(matchers: str = "", by: str = EDGE, window: str = RATE) -> str:
    """Hits (HITS) over every answered request: no request in the window is no data (the
    denominator is kept only above 0), never NaN, 0 or 1."""
    hits = summed("cdn_requests_total", _both(matchers, HITS), by, window)
    every = summed("cdn_requests_total", matchers, by, window)
    return f"{hits} / ({every} > 0)"


def error_ratio(matchers: str = "", by: str = EDGE, window: str = RATE) -> str:
    """`Error` answers (an error status: cached, from the origin, or the edge's own 502/504)
    over every answered request; no request in the window is no data."""
    errors = summed("cdn_requests_total", _both(matchers, 'result="Error"'), by, window)
    every = summed("cdn_requests_total", matchers, by, window)
    return f"{errors} / ({every} > 0)"


def origin_fetches_per_s(matchers: str = "", by: str = EDGE, window: str = RATE) -> str:
    """Requests the edges sent to the origin per second: fetches, revalidations and forwarded
    requests, however they ended."""
    return summed("cdn_origin_fetches_total", matchers, by, window)


def origin_failures_per_s(
    matchers: str = "", by: str = f"{EDGE}, outcome", window: str = RATE
) -> str:
    """Origin requests per second that got no (complete) response, by how they failed."""
    return summed("cdn_origin_fetches_total", _both(matchers, ORIGIN_FAILED), by, window)


def collapsed_waiters_per_s(matchers: str = "", by: str = EDGE, window: str = RATE) -> str:
    """Requests per second that waited for another request's origin fetch of their key."""
    return summed("cdn_collapsed_waiters_total", matchers, by, window)


def stale_served_per_s(matchers: str = "", by: str = f"{EDGE}, reason", window: str = RATE) -> str:
    """Expired objects served per second: while_revalidate or if_error."""
    return summed("cdn_stale_served_total", matchers, by, window)


def latency(q: float, matchers: str = "", by: str = f"{EDGE}, result", window: str = RATE) -> str:
    """The `q` quantile of the edge's request duration (head received to response complete)."""
    return quantile(q, "cdn_request_duration_seconds", matchers, by, window)


def bytes_stored(matchers: str = "", by: str = EDGE) -> str:
    return _gauge("cdn_bytes_stored", matchers, by)


def capacity_bytes(matchers: str = "", by: str = EDGE) -> str:
    """The caches' capacity (`--max-bytes`)."""
    return _gauge("cdn_max_bytes", matchers, by)


def fill_ratio(matchers: str = "", by: str = EDGE) -> str:
    """Bytes stored over capacity (an edge's capacity is above 0)."""
    return f"{bytes_stored(matchers, by)} / {capacity_bytes(matchers, by)}"


def objects_stored(matchers: str = "", by: str = EDGE) -> str:
    return _gauge("cdn_objects_stored", matchers, by)


def mean_object_bytes(matchers: str = "", by: str = EDGE) -> str:
    """Bytes stored per object stored; an empty cache is no data."""
    return f"{bytes_stored(matchers, by)} / ({objects_stored(matchers, by)} > 0)"


def evictions_per_s(matchers: str = "", by: str = EDGE, window: str = RATE) -> str:
    """Objects evicted per second (least recently used first) to make room for another."""
    return summed("cdn_evictions_total", matchers, by, window)


def invalidations_per_s(matchers: str = "", by: str = EDGE, window: str = RATE) -> str:
    """Invalidation batches accepted per second."""
    return summed("cdn_invalidations_total", matchers, by, window)


def invalidated_objects_per_s(matchers: str = "", by: str = EDGE, window: str = RATE) -> str:
    """Objects removed by invalidations per second."""
    return summed("cdn_invalidated_objects_total", matchers, by, window)
