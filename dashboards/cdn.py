"""The "CDN" dashboard: the lab's CDN edges (targets/cdn), their hit ratio, origin and store.

Built like the Fan-out dashboard (dashboards/panels.py). Every query uses only the cdn_* names
of docs/metrics.md ("CDN edge") and harness_chaos_events_total; the PromQL comes from
harness/components/cdn_queries.py, which the report can plot too. tests/dashboards/test_cdn.py
runs every expression against a real Prometheus scraping two real edges in front of a real
shop server. Rate windows are 5 s: Prometheus scrapes every 1 s.

Labels. An edge's series carry no label naming the edge, so the panels group and select on the
harness's scrape label `service` (the edge's name; its one instance is `<name>-1`), unlike the
Fan-out and Queues dashboards. The `$edge` variable selects edges (`service=~"$edge"`).

Nothing hides a missing series: no `or vector(0)`. The request, stale, collapsed, invalidation
and eviction series of every edge exist at 0 from its start, so 0 means nothing happened and
"no data" means the edge is not scraped. Exceptions, on purpose: an origin failure's series is
born with the edge's first failure of that kind (no data: no failure yet); the hit ratio and
error share of an edge that answered nothing in the window, and the mean object size of an
empty cache, are no data (their denominators are kept only above 0: never NaN, never 0).

One panel is the clients' side: Locust's latency by request name, which the `regions`
locustfile begins with the users' region (latency by region, distance included).

Chaos events of every service are annotations: what happens to the origin (the gateway, a
load balancer or its servers) shows at the edges as origin failures and stale answers.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards.panels import Layout, chaos_events, dashboard, label_variable, series, single
from harness.components import cdn_queries as cdn
from harness.promql import QUANTILES, quantile

UID = "rushlab-cdn"
TITLE = "CDN"

EDGE = 'service=~"$edge"'
"""The `edge` variable's selector (multi-value and "All" both become a regex)."""
CHAOS_EVENTS = chaos_events()
OBJECTS_PER_S = "suffix: obj/s"  # Grafana's custom unit: the value, then " obj/s"
PER_S = "suffix: /s"
CLIENT_HISTOGRAM = "locust_request_duration_seconds"  # the clients' side: locustfiles/plugin.py


def build() -> models.Dashboard:
    """The dashboard as the SDK's model."""
    board = dashboard(
        UID,
        TITLE,
        "The CDN edges: hit ratio and requests by X-Cache result per edge, what reaches the "
        "origin (fetches, failures), collapsed waiters and stale answers, latency by result, "
        "the store (bytes against capacity, objects, evictions, invalidations); chaos events "
        "marked.",
        CHAOS_EVENTS,
    ).with_variable(label_variable("edge", "Edge", f"label_values(cdn_requests_total, {cdn.EDGE})"))
    layout = Layout(board)
    _overview(layout)
    _requests(layout)
    _origin(layout)
    _latency(layout)
    _store(layout)
    return board.build()


def _overview(layout: Layout) -> None:
    layout.row("Overview")
    for panel in (
        single(
            "Hit ratio",
            "Answers from the cache (Hit, RefreshHit) over every answer of the selected edges "
            "in the last 5 s. A cold or just-invalidated cache starts low and climbs as it "
            "fills. No data: the edges answered nothing in the window.",
            "percentunit",
            cdn.hit_ratio(EDGE, by=""),
            thresholds=((None, "red"), (0.5, "orange"), (0.8, "green")),
        ),
        single(
            "Error share",
            "Error answers (an error status: a cached 404, the origin's 5xx, the edge's own "
            "502/504 when the origin failed) over every answer of the selected edges in the "
            "last 5 s. No data: nothing answered in the window.",
            "percentunit",
            cdn.error_ratio(EDGE, by=""),
            thresholds=((None, "green"), (0.01, "orange"), (0.05, "red")),
        ),
        single(
            "Requests per second",
            "Viewer requests the selected edges answered per second, every X-Cache result "
            "(Hit, RefreshHit, Miss, Error).",
            "reqps",
            cdn.requests_per_s(EDGE, by=""),
        ),
        single(
            "Origin fetches per second",
            "Requests the selected edges sent to their origin per second (fetches, "
            "revalidations, forwarded methods). Far below requests per second: the cache "
            "shields the origin; close to it: the cache is cold or keeps nothing.",
            "reqps",
            cdn.origin_fetches_per_s(EDGE, by=""),
        ),
        single(
            "Origin failures per second",
            "Origin requests of the selected edges that got no complete response (refused, "
            "timeouts, reset, bad response). No data: no edge has seen an origin failure "
            "since it started; 0: none in the last 5 s.",
            "reqps",
            cdn.origin_failures_per_s(EDGE, by=""),
            thresholds=((None, "green"), (0.001, "red")),
        ),
        single(
            "Stale served per second",
            "Expired objects the selected edges answered per second: while revalidating them "
            "(stale-while-revalidate) or because the origin failed (stale-if-error).",
            "reqps",
            cdn.stale_served_per_s(EDGE, by=""),
            thresholds=((None, "green"), (0.001, "orange")),
        ),
        single(
            "Objects stored",
            "Objects (cache keys) the selected edges hold now. 0 after a restart (the cache is "
            "memory) or an invalidation of everything.",
            "short",
            cdn.objects_stored(EDGE, by=""),
            decimals=0,
        ),
        single(
            "Cache fill",
            "Bytes the selected edges hold over their capacity (--max-bytes). Near 100 %: "
            "every new object evicts the least recently used ones.",
            "percentunit",
            cdn.fill_ratio(EDGE, by=""),
            thresholds=((None, "green"), (0.9, "orange")),
        ),
    ):
        layout.add(panel)


def _requests(layout: Layout) -> None:
    layout.row("Requests and hit ratio")
    layout.add(
        series(
            "Hit ratio per edge",
            "Per edge: Hit and RefreshHit answers over every answer in the last 5 s (a "
            "collapsed waiter and a stale copy served count as Hit). It drops after a restart "
            "(the cache is memory) or an invalidation, and climbs back as the cache fills. A "
            "gap: that edge answered nothing in the window.",
            "percentunit",
            [(cdn.hit_ratio(EDGE), "{{service}}")],
            width=8,
            max_value=1,
        )
    )
    layout.add(
        series(
            "Requests per second by edge and result",
            "Viewer requests answered per second by X-Cache result: Hit (from the cache, "
            "stale or collapsed too), RefreshHit (revalidated: the origin said 304), Miss "
            "(fetched from the origin), Error (an error status, from the cache or not).",
            "reqps",
            [(cdn.requests_per_s(EDGE), "{{service}} {{result}}")],
            width=8,
        )
    )
    layout.add(
        series(
            "Error share per edge",
            "Per edge: Error answers over every answer in the last 5 s. A cached 404 is an "
            "Error too; a jump while origin failures rise: the edge has no stale copy to hide "
            "the failure with. A gap: that edge answered nothing in the window.",
            "percentunit",
            [(cdn.error_ratio(EDGE), "{{service}}")],
            width=8,
            max_value=1,
        )
    )


def _origin(layout: Layout) -> None:
    layout.row("Origin")
    layout.add(
        series(
            "Origin fetches per second by edge",
            "What each edge sent to its origin per second, against what it answered: the gap "
            "between the two lines is the load the cache takes off the origin.",
            "reqps",
            [
                (cdn.origin_fetches_per_s(EDGE), "{{service}} to the origin"),
                (cdn.requests_per_s(EDGE, by=cdn.EDGE), "{{service}} answered"),
            ],
            width=8,
        )
    )
    layout.add(
        series(
            "Origin requests by kind and outcome",
            "Why each edge asked the origin (fetch: a full GET for the cache, revalidate: a "
            "conditional GET for a stale copy, forward: a method the cache passes through) "
            "and how it ended: response, not_modified (a 304: the copy is good again) or a "
            "failure.",
            "reqps",
            [
                (
                    cdn.origin_fetches_per_s(EDGE, by=f"{cdn.EDGE}, kind, outcome"),
                    "{{service}} {{kind}} {{outcome}}",
                )
            ],
            width=8,
        )
    )
    layout.add(
        series(
            "Origin failures per second",
            "Origin requests that got no complete response, by how they failed: refused (the "
            "origin is down), connect_timeout, pool_timeout, reset, timeout, bad_response. "
            "Each is a 502 or 504 to a viewer unless a stale copy could serve on error. No "
            "line: that failure never happened at that edge.",
            "reqps",
            [(cdn.origin_failures_per_s(EDGE), "{{service}} {{outcome}}")],
            width=8,
        )
    )
    layout.add(
        series(
            "Collapsed waiters per second",
            "Requests that waited for another request's origin fetch of the same key instead "
            "of fetching it again (request collapsing). High during a rush on a cold or "
            "invalidated key: one fetch answers them all.",
            "reqps",
            [(cdn.collapsed_waiters_per_s(EDGE), "{{service}}")],
        )
    )
    layout.add(
        series(
            "Stale served per second",
            "Expired objects served per second, by reason: while_revalidate (answered at "
            "once, refreshed in the background) and if_error (the origin failed and the copy "
            "was within its stale-if-error window). if_error rising: the origin is failing "
            "and the edge hides it.",
            "reqps",
            [(cdn.stale_served_per_s(EDGE), "{{service}} {{reason}}")],
        )
    )


def _latency(layout: Layout) -> None:
    layout.row("Latency")
    for title, results, description in (
        (
            "Edge latency: from the cache",
            cdn.HITS,
            "p50, p95 and p99 from request head received to response complete, per edge, of "
            "Hit and RefreshHit answers. A Hit from the store takes well under a millisecond; "
            "a collapsed waiter (a Hit) waited for its leader's origin fetch, a stale copy "
            "served on error waited for the failed revalidation, a RefreshHit for the 304.",
        ),
        (
            "Edge latency: misses and errors",
            cdn.MISSES,
            "p50, p95 and p99 from request head received to response complete, per edge, of "
            "Miss and Error answers: the origin's time is in them. An Error after an origin "
            "timeout takes the timeout; one after a refused connection is fast.",
        ),
    ):
        layout.add(
            series(
                title,
                description,
                "s",
                [
                    (
                        cdn.latency(q, f"{EDGE}, {results}"),
                        f"{{{{service}}}} {{{{result}}}} p{round(q * 100)}",
                    )
                    for q in QUANTILES
                ],
            )
        )
    layout.add(
        series(
            "Client latency by region",
            "p50 and p95 of what Locust's users measured, by request name. With the `regions` "
            "locustfile every name begins with its users' region ('eu-west catalogue'), so "
            "this is latency by region as the clients in it see it: the round trip to their "
            "edge is in it (the edge latency panels start when the request reaches the "
            "edge). A far region without an edge of its own pays its distance on every hit.",
            "s",
            [
                (quantile(q, CLIENT_HISTOGRAM, by="name"), f"{{{{name}}}} p{round(q * 100)}")
                for q in (0.5, 0.95)
            ],
        )
    )


def _store(layout: Layout) -> None:
    layout.row("Cache store")
    layout.add(
        series(
            "Bytes stored vs capacity",
            "Bytes each edge's cache holds (keys, headers, bodies) against its capacity "
            "(--max-bytes). At capacity the cache evicts; a drop to 0: a restart or an "
            "invalidation of everything.",
            "bytes",
            [
                (cdn.bytes_stored(EDGE), "{{service}} stored"),
                (cdn.capacity_bytes(EDGE), "{{service}} capacity"),
            ],
            width=8,
        )
    )
    layout.add(
        series(
            "Objects stored",
            "Objects (cache keys) each edge holds. It grows with the distinct keys viewers "
            "ask for; it falls with evictions, invalidations and restarts.",
            "short",
            [(cdn.objects_stored(EDGE), "{{service}}")],
            width=8,
        )
    )
    layout.add(
        series(
            "Mean object size",
            "Bytes stored per object stored, per edge: with the capacity, how many objects fit. "
            "A gap: that edge's cache is empty.",
            "bytes",
            [(cdn.mean_object_bytes(EDGE), "{{service}}")],
            width=8,
        )
    )
    layout.add(
        series(
            "Evictions per second",
            "Objects evicted per second, least recently used first, to make room for another. "
            "Steady evictions with a low hit ratio: the working set does not fit the cache.",
            OBJECTS_PER_S,
            [(cdn.evictions_per_s(EDGE), "{{service}}")],
        )
    )
    layout.add(
        series(
            "Invalidations per second",
            "Invalidation batches each edge accepted per second, and the objects they "
            "removed. The next requests for those keys are misses: the hit ratio dips and "
            "origin fetches jump.",
            PER_S,
            [
                (cdn.invalidations_per_s(EDGE), "{{service}} batches"),
                (cdn.invalidated_objects_per_s(EDGE), "{{service}} objects removed"),
            ],
        )
    )
