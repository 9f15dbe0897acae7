"""The "Elasticity" dashboard: what the lab's HTML report plots, live, per service.

Built with grafana-foundation-sdk (the Grafana 11.6 flavour that compose runs). Every query uses
only the metric names of docs/metrics.md, the Locust exporter's (locustfiles/plugin.py), `up`,
and the recording rules of harness/rules/lab.rules.yml; tests/dashboards hold it to that and run
every expression against a real Prometheus. Rate windows are 5 s: Prometheus scrapes every 1 s.

Labels: `service`, `role` and `instance` come from the scrape targets (harness/prometheus.py).
They win over scraped labels of the same name; the harness's own scrape target sets no
`service`, so its metrics (harness_chaos_events_total, harness_instances) keep their own.

Chaos events of the selected services are annotations, from Prometheus and from Grafana's
store (dashboards/panels.py builds the frame, panels and annotations every dashboard shares).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import statetimeline
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from dashboards.panels import (
    CHAOS_ANNOTATION,
    CHAOS_TAG,
    DATASOURCE,
    PROMETHEUS_ANNOTATION_EXTRAS,
    Layout,
    Target,
    chaos_events,
    dashboard,
    label_variable,
    quantiles,
    queries,
    series,
    single,
    to_json,
)
from harness.components import gateway
from harness.promql import RATE

__all__ = [
    "CHAOS_ANNOTATION",
    "CHAOS_EVENTS",
    "CHAOS_TAG",
    "PROMETHEUS_ANNOTATION_EXTRAS",
    "TITLE",
    "UID",
    "build",
    "to_json",
]

UID = "rushlab-elasticity"
TITLE = "Elasticity"

SERVICE = 'service=~"$service"'
"""The `service` variable's selector (multi-value and "All" both become a regex)."""
# Locust names requests by route ("/api/orders/{id}"): the first path segment is the service.
CLIENT_NAME = 'name=~"/api/$service.*"'
# Chaos events on the selected services (the harness's own `service` label: its scrape target
# sets none).
CHAOS_EVENTS = chaos_events('service=~"$service"')


def _by_client_service(vector: str) -> str:
    """`vector` (Locust series) with `service` set from the request name's first segment."""
    return f'label_replace({vector}, "service", "$1", "name", "/api/([^/]+).*")'


def _client_quantiles() -> list[Target]:
    bucket = f"rate(locust_request_duration_seconds_bucket{{{CLIENT_NAME}}}[{RATE}])"
    return [
        (
            f"histogram_quantile({q}, sum by (service, le) ({_by_client_service(bucket)}))",
            f"{{{{service}}}} p{round(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def _answered(selector: str) -> str:
    return f"sum by (service, backend) (rate(lb_requests_total{{{selector}}}[{RATE}]))"


def build() -> models.Dashboard:
    """The dashboard as the SDK's model."""
    board = dashboard(
        UID,
        TITLE,
        "Elasticity and queue behaviour of the lab: traffic, errors, latency, instances and "
        "targets, load balancing and server saturation per service, chaos events marked.",
        CHAOS_EVENTS,
    ).with_variable(
        label_variable("service", "Service", "label_values(lb_requests_total, service)")
    )
    layout = Layout(board)
    _overview(layout)
    _traffic(layout)
    _gateway(layout)
    _latency(layout)
    _instances(layout)
    _autoscaling(layout)
    _balancing(layout)
    _saturation(layout)
    return board.build()


def _overview(layout: Layout) -> None:
    layout.row("Overview")
    lb_rate = f"sum(service:lb_requests:rate5s{{{SERVICE}}})"
    client = f"sum(rate(locust_requests_total[{RATE}]))"
    client_failed = f'sum(rate(locust_requests_total{{result="fail"}}[{RATE}]))'
    share = ((None, "green"), (0.01, "orange"), (0.05, "red"))
    for panel in (
        single(
            "Requests/s at the load balancers",
            "Client requests the selected services' load balancers answered per second.",
            "reqps",
            lb_rate,
        ),
        single(
            "Requests/s sent by clients",
            "Requests Locust made per second, over every worker.",
            "reqps",
            client,
        ),
        single(
            "5xx share at the load balancers",
            "5xx answers over all answers; the ServiceErrorRateHigh alert fires above 5 %.",
            "percentunit",
            f"sum(service:lb_requests_5xx:rate5s{{{SERVICE}}}) / {lb_rate}",
            thresholds=share,
        ),
        single(
            "Client failure share",
            "Requests Locust counted as failed (5xx, refused, timeouts) over all it made.",
            "percentunit",
            f"{client_failed} / {client}",
            thresholds=share,
        ),
        single(
            "Worst p99 at the load balancers",
            "The highest 99th percentile latency of the selected services.",
            "s",
            f"max(service:lb_request_duration_seconds:p99_rate5s{{{SERVICE}}})",
        ),
        single(
            "Instances up",
            "Servers Prometheus scraped on its last try.",
            "short",
            f"sum(service:up_servers:sum{{{SERVICE}}})",
            decimals=0,
        ),
        single(
            "Healthy targets",
            "Targets the load balancers deem healthy; NoHealthyTargets fires at 0.",
            "short",
            f"sum(service:lb_targets_healthy:sum{{{SERVICE}}})",
            thresholds=((None, "red"), (1, "green")),
            decimals=0,
        ),
        single(
            "Locust users",
            "Users running now (a master counts its workers').",
            "short",
            "max(locust_users)",
            decimals=0,
        ),
    ):
        layout.add(panel)


def _traffic(layout: Layout) -> None:
    layout.row("Traffic and errors")
    client_rate = f"rate(locust_requests_total{{{CLIENT_NAME}}}[{RATE}])"
    client_failed = f'rate(locust_requests_total{{result="fail"}}[{RATE}])'
    layout.add(
        series(
            "Requests per second",
            "Answered by each service's load balancer, and sent by the clients (Locust, by the "
            "service its request names). A gap between the two is requests still in flight, or "
            "refused before reaching the load balancer.",
            "reqps",
            [
                (f"service:lb_requests:rate5s{{{SERVICE}}}", "{{service}} load balancer"),
                (f"sum by (service) ({_by_client_service(client_rate)})", "{{service}} clients"),
            ],
        )
    )
    layout.add(
        series(
            "Errors per second",
            "5xx answers of each load balancer, and the failures Locust saw by error class "
            "(http_503, ConnectionRefusedError, ...).",
            "reqps",
            [
                (f"service:lb_requests_5xx:rate5s{{{SERVICE}}}", "{{service}} 5xx"),
                (
                    f"sum by (error_class) (rate(locust_failures_total[{RATE}]))",
                    "clients: {{error_class}}",
                ),
            ],
        )
    )
    layout.add(
        series(
            "Answers by status code at the load balancers",
            "Every answer by code, stacked. 502/504 come after every try failed; 503 when no "
            "target was routable (backend `lb`) or a server's capacity model rejected it.",
            "reqps",
            [
                (
                    f"sum by (service, code) (rate(lb_requests_total{{{SERVICE}}}[{RATE}]))",
                    "{{service}} {{code}}",
                )
            ],
            stacked=True,
        )
    )
    layout.add(
        series(
            "Error share",
            "5xx over all answers per service (the SLO view), and the clients' failure share.",
            "percentunit",
            [
                (f"service:lb_requests_5xx:ratio_rate5s{{{SERVICE}}}", "{{service}} 5xx"),
                (
                    f"sum({client_failed}) / sum(rate(locust_requests_total[{RATE}]))",
                    "clients failed",
                ),
            ],
        )
    )


def _gateway(layout: Layout) -> None:
    layout.row("Front door: API gateway")
    layout.add(
        series(
            "Gateway: requests per second by route and status",
            "Every answer of the API gateway by route (`none`: no route matched, 404) and status:"
            " the upstream's, or the gateway's own 429 (rate limited), 502 (upstream refused)"
            " and 504 (the route's timeout).",
            "reqps",
            [(gateway.requests_by_route(), "{{route}} {{code}}")],
            width=8,
        )
    )
    layout.add(
        series(
            "Gateway: rate-limit decisions per second",
            "Each route's limits deciding: allowed, delayed (a shaping leaky bucket holds the "
            "request, then lets it through) or rejected (429, with Retry-After).",
            "reqps",
            [
                (
                    gateway.limiter_decisions("route, limit, outcome"),
                    "{{route}} {{limit}} {{outcome}}",
                )
            ],
            width=8,
        )
    )
    layout.add(
        series(
            "Gateway: p95 latency by route",
            "Request in to response out at the gateway, limiter delays included.",
            "s",
            [(gateway.p95_by_route(), "{{route}}")],
            width=8,
        )
    )


def _latency(layout: Layout) -> None:
    layout.row("Latency")
    lb = quantiles("lb_request_duration_seconds_bucket", SERVICE, "service", "{{service}}")
    # p95 and p99 come precomputed from the recording rules; p50 has no rule.
    lb[1] = (f"service:lb_request_duration_seconds:p95_rate5s{{{SERVICE}}}", lb[1][1])
    lb[2] = (f"service:lb_request_duration_seconds:p99_rate5s{{{SERVICE}}}", lb[2][1])
    layout.add(
        series(
            "Latency at the load balancers",
            "p50, p95 and p99 from request head received to response complete, retries "
            "included, over every backend of the service.",
            "s",
            lb,
        )
    )
    layout.add(
        series(
            "Latency seen by clients (Locust)",
            "p50, p95 and p99 of the response times Locust measured, by the service each "
            "request names. Above the load balancer's: the client's own queueing and network.",
            "s",
            _client_quantiles(),
        )
    )
    layout.add(
        series(
            "Server latency by endpoint (p95)",
            "Arrival to response at the servers, backlog wait included: what a saturated "
            "server shows.",
            "s",
            [
                (
                    "histogram_quantile(0.95, sum by (service, endpoint, le) "
                    f"(rate(server_request_duration_seconds_bucket{{{SERVICE}}}[{RATE}])))",
                    "{{service}} {{endpoint}}",
                )
            ],
        )
    )
    layout.add(
        series(
            "Wait for a slot (server backlog)",
            "How long requests that found every slot busy waited in the backlog. No data: "
            "no request had to wait.",
            "s",
            quantiles("server_queue_wait_seconds_bucket", SERVICE, "service", "{{service}}")[1:],
        )
    )


def _instances(layout: Layout) -> None:
    layout.row("Elasticity: instances and targets")
    layout.add(
        series(
            "Instances up and healthy targets",
            "Servers Prometheus can scrape, targets the load balancer deems healthy, and "
            "targets a new request may go to (all non-draining ones when failing open). "
            "After a kill, `up` drops within a scrape; `healthy` after the unhealthy threshold.",
            "short",
            [
                (f"service:up_servers:sum{{{SERVICE}}}", "{{service}} instances up"),
                (f"service:lb_targets_healthy:sum{{{SERVICE}}}", "{{service}} healthy targets"),
                (f"sum by (service) (lb_routable_targets{{{SERVICE}}})", "{{service}} routable"),
            ],
        )
    )
    layout.add(
        series(
            "Targets by state (load balancer view)",
            "Registered targets by state: initial (not yet proven healthy), healthy, "
            "unhealthy, draining (deregistered, finishing requests in flight).",
            "short",
            [(f"sum by (service, state) (lb_targets{{{SERVICE}}})", "{{service}} {{state}}")],
        )
    )
    layout.add(
        statetimeline.Panel()
        .title("Target health per instance")
        .description(
            "1 while the load balancer deems the target healthy. A target that finished "
            "draining disappears."
        )
        .datasource(DATASOURCE)
        .span(12)
        .height(8)
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        .fill_opacity(80)
        .legend(common_builders.VizLegendOptions().show_legend(False))
        .mappings(
            [
                models.ValueMap(
                    {
                        "0": models.ValueMappingResult(text="unhealthy", color="red", index=0),
                        "1": models.ValueMappingResult(text="healthy", color="green", index=1),
                    }
                )
            ]
        )
        .thresholds(
            builders.ThresholdsConfig()
            .mode(models.ThresholdsMode.ABSOLUTE)
            .steps([models.Threshold(value=None, color="red"), models.Threshold(1, "green")])
        )
        .targets(
            queries(
                [
                    (
                        f"max by (service, backend) (lb_target_healthy{{{SERVICE}}})",
                        "{{service}} {{backend}}",
                    )
                ]
            )
        )
    )
    layout.add(
        series(
            "Instances by what the lab did (harness)",
            "Server instances the harness started, by state: running, paused, stopped, "
            "killed. From the harness control API (absent when no harness runs the lab).",
            "short",
            [
                (
                    'sum by (service, state) (harness_instances{service=~"$service"})',
                    "{{service}} {{state}}",
                )
            ],
        )
    )


def _autoscaling(layout: Layout) -> None:
    layout.row("Elasticity: autoscaler")
    layout.add(
        series(
            "Replicas: desired versus current",
            "What the autoscaler's last decision asked for (desired), what runs (current: "
            "ready + warming) and what counts (ready: healthy for warmup_s). Desired above "
            "current while new replicas boot; the red chaos marks are its add/remove actions.",
            "short",
            [
                (
                    f"max by (service) (autoscaler_{kind}_replicas{{{SERVICE}}})",
                    f"{{{{service}}}} {kind}",
                )
                for kind in ("desired", "current", "ready")
            ],
            width=8,
        )
    )
    layout.add(
        series(
            "Load per replica versus target",
            "The metric the autoscaler tracks (in-flight requests or requests per second per "
            "ready replica, averaged over an evaluation interval) and the value it holds it at. "
            "Above the target (plus tolerance) it scales out; below, after the stabilization "
            "window, in.",
            "short",
            [
                (
                    f"max by (service, metric) (autoscaler_metric{{{SERVICE}}})",
                    "{{service}} {{metric}}",
                ),
                (
                    f"max by (service, metric) (autoscaler_metric_target{{{SERVICE}}})",
                    "{{service}} target",
                ),
            ],
            width=8,
        )
    )
    layout.add(
        series(
            "Scaling decisions per second",
            "Evaluations that changed the desired count, by direction and reason (above_target, "
            "rate_limited, at_max, below_target, ...; see docs/metrics.md).",
            "short",
            [
                (
                    "sum by (service, direction, reason) (rate(autoscaler_decisions_total"
                    f'{{{SERVICE},direction!="none"}}[5s]))',
                    "{{service}} {{direction}} {{reason}}",
                )
            ],
            width=8,
        )
    )


def _balancing(layout: Layout) -> None:
    layout.row("Load balancing")
    answered = f'{SERVICE}, backend!="lb"'
    layout.add(
        series(
            "Share of traffic per instance",
            "Each instance's share of its service's answered requests. Round robin keeps them "
            "level; a new instance ramps up under slow start.",
            "percentunit",
            [
                (
                    f"{_answered(answered)} / on (service) group_left () "
                    f"sum by (service) (rate(lb_requests_total{{{answered}}}[{RATE}]))",
                    "{{service}} {{backend}}",
                )
            ],
            max_value=1,
        )
    )
    layout.add(
        series(
            "Requests in flight per target",
            "Requests outstanding at each target, as the load balancer counts them (what "
            "least-outstanding-requests routes on).",
            "short",
            [
                (
                    f"sum by (service, backend) (lb_target_in_flight{{{SERVICE}}})",
                    "{{service}} {{backend}}",
                )
            ],
        )
    )
    layout.add(
        series(
            "Retries by reason",
            "Requests sent again to another target, by why the previous try failed. No data: "
            "no retry yet.",
            "reqps",
            [
                (
                    f"sum by (service, reason) (rate(lb_retries_total{{{SERVICE}}}[{RATE}]))",
                    "{{service}} {{reason}}",
                )
            ],
            width=8,
        )
    )
    layout.add(
        series(
            "Upstream errors by reason",
            "Failed exchanges with a target, by target and reason; a retried request counts "
            "once per failed try. No data: no failure yet.",
            "reqps",
            [
                (
                    "sum by (service, backend, reason) "
                    f"(rate(lb_upstream_errors_total{{{SERVICE}}}[{RATE}]))",
                    "{{service}} {{backend}} {{reason}}",
                )
            ],
            width=8,
        )
    )
    layout.add(
        series(
            "Failed health checks",
            "Active probes that failed, per target. No data: every probe passed so far.",
            "reqps",
            [
                (
                    "sum by (service, backend) "
                    f'(rate(lb_health_checks_total{{{SERVICE}, result="fail"}}[{RATE}]))',
                    "{{service}} {{backend}}",
                )
            ],
            width=8,
        )
    )


def _saturation(layout: Layout) -> None:
    layout.row("Servers: saturation")
    layout.add(
        series(
            "Slots in use per instance",
            "Requests holding a slot over the slots an instance has: at 100 % new requests "
            "wait in the backlog.",
            "percentunit",
            [
                (
                    f"server_in_service{{{SERVICE}}} / server_slots{{{SERVICE}}}",
                    "{{service}} {{instance}}",
                )
            ],
            width=6,
            max_value=1,
        )
    )
    layout.add(
        series(
            "Requests waiting for a slot",
            "Backlog length per instance; when the backlog is full the server answers 503.",
            "short",
            [(f"server_waiting{{{SERVICE}}}", "{{service}} {{instance}}")],
            width=6,
        )
    )
    layout.add(
        series(
            "Server answers by code",
            "What the servers answered; 503 here is the capacity model rejecting a request.",
            "reqps",
            [
                (
                    f"sum by (service, code) (rate(server_requests_total{{{SERVICE}}}[{RATE}]))",
                    "{{service}} {{code}}",
                )
            ],
            width=6,
            stacked=True,
        )
    )
    layout.add(
        series(
            "Instances with a fault injected",
            "Instances where chaos injected latency, errors or hangs (1 each).",
            "short",
            [(f"sum by (service) (server_fault_active{{{SERVICE}}})", "{{service}}")],
            width=6,
        )
    )
