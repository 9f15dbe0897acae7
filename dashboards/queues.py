"""The "Queues" dashboard: the SQS-like queue, its workers and the mail provider (issue 6).

Built like the Elasticity dashboard (dashboards/panels.py). Every query uses only the metric
names of docs/metrics.md (queue_*, worker_*, provider_*, harness_*); tests/dashboards hold it to
that and run every expression against a real Prometheus scraping a real queue, provider and
two workers. Rate windows are 5 s: Prometheus scrapes every 1 s.

Labels. The metric names are unique to their process, so no query selects on `role` or
`service` (the harness's scrape labels): they work with any scrape configuration.

- `queue` is the queue's own label on queue_* series; the `$queue` variable selects on it.
  `$dlq` (a regex, `.*dlq.*` by default) says which queues are dead-letter queues: nothing in
  the metrics tells a DLQ from any other queue.
- Workers have no `queue` label on their counters: `worker_info{queue}` names each worker's
  queue, so worker series are kept `and on (job, instance)` a worker_info of a selected queue.
  `instance` is the scrape target's (the worker's name in a harness run); worker_info's own
  `instance` label arrives as `exported_instance`.
- Provider series are by `kind` (email, whatsapp), for every queue.

Chaos events (any service) are annotations, as on the Elasticity dashboard.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as models

from dashboards.panels import (
    Layout,
    chaos_events,
    dashboard,
    label_variable,
    quantiles,
    series,
    single,
)
from harness.promql import RATE

UID = "rushlab-queues"
TITLE = "Queues"

QUEUE = 'queue=~"$queue"'
"""The `queue` variable's selector (multi-value and "All" both become a regex)."""
DLQ = 'queue=~"$dlq"'
"""Dead-letter queues: the `dlq` variable is a regex over queue names."""
DLQ_DEFAULT = ".*dlq.*"
WORK = 'queue=~"$queue", queue!~"$dlq"'
"""The selected queues that are not dead-letter queues: the work waiting for workers."""
MESSAGES_PER_S = "suffix: msg/s"  # Grafana's custom unit: the value, then " msg/s"
CHAOS_EVENTS = chaos_events()


def _rate(metric: str, selector: str = QUEUE) -> str:
    return f"rate({metric}{{{selector}}}[{RATE}])"


def _of_workers(vector: str) -> str:
    """`vector` (worker series) kept for workers of the selected queues only."""
    return f"{vector} and on (job, instance) worker_info{{{QUEUE}}}"


def _worker_rate(metric: str, by: str) -> str:
    """A worker counter's rate over the workers of the selected queues, summed by `by`."""
    return f"sum by ({by}) ({_of_workers(f'rate({metric}[{RATE}])')})"


def build() -> models.Dashboard:
    """The dashboard as the SDK's model."""
    board = (
        dashboard(
            UID,
            TITLE,
            "Queues, workers and the mail provider: backlog and age per queue, send / receive / "
            "delete rates, the cost of short polling, dead-letter queues, worker throughput and "
            "rate limiting, provider latency and failures; chaos events marked.",
            CHAOS_EVENTS,
        )
        .with_variable(
            label_variable("queue", "Queue", "label_values(queue_messages_visible, queue)")
        )
        .with_variable(dlq_variable())
    )
    layout = Layout(board)
    _overview(layout)
    _depth(layout)
    _traffic(layout)
    _dead_letters(layout)
    _workers(layout)
    _provider(layout)
    return board.build()


def _overview(layout: Layout) -> None:
    layout.row("Overview")
    received = f"sum({_rate('queue_messages_received_total')})"
    for panel in (
        single(
            "Messages visible",
            "Messages waiting for a worker in the selected queues, dead-letter queues left out. "
            "Growing while sends go on: the workers are too few, too slow, or held back by "
            "their rate limit.",
            "short",
            f"sum(queue_messages_visible{{{WORK}}})",
            decimals=0,
        ),
        single(
            "Messages in flight",
            "Received by a worker and not yet deleted. A worker holds at most one batch.",
            "short",
            f"sum(queue_messages_in_flight{{{QUEUE}}})",
            decimals=0,
        ),
        single(
            "Oldest message age",
            "The oldest message in the selected queues (dead-letter queues left out): how late "
            "the slowest delivery already is. It climbs 1 s per second when nothing is consumed.",
            "s",
            f"max(queue_oldest_message_age_seconds{{{WORK}}})",
            thresholds=((None, "green"), (30, "orange"), (300, "red")),
        ),
        single(
            "Messages in dead-letter queues",
            "Messages that failed maxReceiveCount times and were moved aside (queues matching "
            "the `dlq` regex). Anything here needs a look, then a redrive.",
            "short",
            f"sum(queue_messages_visible{{{DLQ}}})",
            thresholds=((None, "green"), (1, "red")),
            decimals=0,
        ),
        single(
            "Sent per second",
            "Messages the selected queues accepted per second.",
            MESSAGES_PER_S,
            f"sum({_rate('queue_messages_sent_total')})",
        ),
        single(
            "Deleted per second",
            "Messages deleted per second: work finished. Below the send rate, the backlog grows.",
            MESSAGES_PER_S,
            f"sum({_rate('queue_messages_deleted_total')})",
        ),
        single(
            "Empty receives per message",
            "Receive calls that returned nothing, per message received. Near 0 with long "
            "polling; many with short polling on a quiet queue. No data: nothing received.",
            "short",
            f"sum({_rate('queue_empty_receives_total')}) / ({received} > 0)",
            thresholds=((None, "green"), (1, "orange"), (10, "red")),
        ),
        single(
            "Workers",
            "Worker processes of the selected queues Prometheus scraped (worker_info).",
            "short",
            f"count(worker_info{{{QUEUE}}})",
            thresholds=((None, "red"), (1, "green")),
            decimals=0,
        ),
    ):
        layout.add(panel)


def _depth(layout: Layout) -> None:
    layout.row("Queues: depth and age")
    layout.add(
        series(
            "Depth: messages visible",
            "Messages available to receive now, per queue (SQS ApproximateNumberOfMessages). "
            "A steady climb under steady sends: consumers slower than producers. A saw-tooth: "
            "messages coming back after a worker failed to delete them.",
            "short",
            [(f"sum by (queue) (queue_messages_visible{{{QUEUE}}})", "{{queue}}")],
            width=6,
        )
    )
    layout.add(
        series(
            "Messages in flight",
            "Received and not deleted, within their visibility timeout. High while the backlog "
            "also grows: workers hold messages they do not finish (slow or failing provider). "
            "A killed worker's messages stay here until their visibility timeout ends.",
            "short",
            [(f"sum by (queue) (queue_messages_in_flight{{{QUEUE}}})", "{{queue}}")],
            width=6,
        )
    )
    layout.add(
        series(
            "Messages delayed",
            "Sent with a delay (DelaySeconds) that has not passed: not yet visible to anyone.",
            "short",
            [(f"sum by (queue) (queue_messages_delayed{{{QUEUE}}})", "{{queue}}")],
            width=6,
        )
    )
    layout.add(
        series(
            "Oldest message age",
            "Age of the oldest stored message, any state (ApproximateAgeOfOldestMessage); 0 "
            "when empty. A line rising at 1 s per second: the head of the queue is not served "
            "(no workers, or a message that keeps failing until it reaches the DLQ).",
            "s",
            [(f"max by (queue) (queue_oldest_message_age_seconds{{{QUEUE}}})", "{{queue}}")],
            width=6,
        )
    )


def _traffic(layout: Layout) -> None:
    layout.row("Queues: traffic and polling")
    layout.add(
        series(
            "Sends, receives and deletes per second",
            "Per queue. Deletes below sends: the backlog grows. Receives above deletes: messages "
            "are received again (a failed delivery left them to come back, or a visibility "
            "timeout shorter than the work). Equal lines: every message received once, done.",
            MESSAGES_PER_S,
            [
                (
                    f"sum by (queue) ({_rate(f'queue_messages_{kind}_total')})",
                    f"{{{{queue}}}} {kind}",
                )
                for kind in ("sent", "received", "deleted")
            ],
        )
    )
    layout.add(
        series(
            "Long polls waiting",
            "ReceiveMessage calls held open by the queue (WaitTimeSeconds > 0), over every queue. "
            "Long-polling workers park here while the queue is empty instead of asking again.",
            "short",
            [("sum(queue_long_polls_waiting)", "long polls")],
        )
    )
    layout.add(
        series(
            "Empty receives per second",
            "Receive calls that returned no message: at the queue, per queue, and as each "
            "worker counts them. Short polling on a quiet queue makes many (each one a paid API "
            "call in SQS); a long poll counts once, when it ends empty.",
            "short",
            [
                (f"sum by (queue) ({_rate('queue_empty_receives_total')})", "{{queue}} (queue)"),
                (_worker_rate("worker_empty_receives_total", "instance"), "{{instance}} (worker)"),
            ],
        )
    )
    layout.add(
        series(
            "Empty receives per received message",
            "The cost of short polling: empty receive calls for every message received. Long "
            "polling keeps it near 0; short polling many per message when traffic is light. "
            "No data: nothing was received in the window.",
            "short",
            [
                (
                    f"sum by (queue) ({_rate('queue_empty_receives_total')}) / "
                    f"(sum by (queue) ({_rate('queue_messages_received_total')}) > 0)",
                    "{{queue}}",
                )
            ],
        )
    )


def _dead_letters(layout: Layout) -> None:
    layout.row("Dead-letter queues")
    layout.add(
        series(
            "Dead-letter queue depth",
            "Messages waiting in the dead-letter queues (names matching the `dlq` regex). They "
            "failed maxReceiveCount receives in a row: poison messages, or an outage longer than "
            "the retries. It only goes down by a redrive or a consumer of the DLQ.",
            "short",
            [(f"sum by (queue) (queue_messages_visible{{{DLQ}}})", "{{queue}}")],
        )
    )
    layout.add(
        series(
            "Moved to the dead-letter queue per second",
            "Messages each source queue moved to its DLQ after maxReceiveCount receives. A few: "
            "poison messages. Many at once: the provider is down, and every message burns its "
            "receives; a longer visibility timeout or back-off keeps them in the queue longer.",
            MESSAGES_PER_S,
            [(f"sum by (queue) ({_rate('queue_messages_moved_to_dlq_total')})", "{{queue}}")],
        )
    )


def _workers(layout: Layout) -> None:
    layout.row("Workers")
    receive_calls = _worker_rate("worker_receive_calls_total", "instance")
    delivered = _worker_rate('worker_messages_total{outcome="delivered"}', "instance")
    layout.add(
        series(
            "Worker throughput by outcome",
            "Delivery attempts per second over all workers of the selected queues: delivered, "
            "or failed (the provider refused or did not answer). Failed attempts come back "
            "after the visibility timeout or back-off, so they count again.",
            MESSAGES_PER_S,
            [(_worker_rate("worker_messages_total", "outcome"), "{{outcome}}")],
            stacked=True,
        )
    )
    layout.add(
        series(
            "Worker throughput per instance",
            "Delivery attempts per second of each worker, by outcome. Workers of one queue share "
            "it: each takes what it receives; a worker stuck on a slow provider call falls "
            "behind. N workers with a rate limit of R deliver at most N x R.",
            MESSAGES_PER_S,
            [
                (
                    _worker_rate("worker_messages_total", "instance, outcome"),
                    "{{instance}} {{outcome}}",
                )
            ],
        )
    )
    layout.add(
        series(
            "Rate limiting: waits per second",
            'Messages each worker\'s own limiter held back ("10 emails per second"). Steady '
            "waits with a growing backlog: the limit, not the provider, sets the pace.",
            "short",
            [(_worker_rate("worker_rate_limit_waits_total", "instance"), "{{instance}}")],
            width=8,
        )
    )
    layout.add(
        series(
            "Rate limiting: seconds waited per second",
            "Share of each worker's time spent waiting for its limiter (a worker handles one "
            "message at a time, so 100 % is the most). Near 100 %: the worker does nothing "
            "but wait for tokens; more workers, or a higher rate, would drain the queue faster.",
            "percentunit",
            [(_worker_rate("worker_rate_limit_wait_seconds_total", "instance"), "{{instance}}")],
            width=8,
        )
    )
    layout.add(
        series(
            "Receive calls per delivered message",
            "Each worker's receive calls over the messages it delivered. About 0.1 with long "
            "polling and full batches of 10; far above 1 with short polling on a quiet queue: "
            "the worker spends its calls asking for nothing. No data: nothing delivered.",
            "short",
            [(f"{receive_calls} / ({delivered} > 0)", "{{instance}}")],
            width=8,
        )
    )
    layout.add(
        series(
            "What workers did after each attempt",
            "delete (delivered), leave (failed: it comes back after its visibility timeout), "
            "backoff (failed: visibility set to a growing back-off), release (received but not "
            "started when the worker stopped: visible again at once).",
            MESSAGES_PER_S,
            [(_worker_rate("worker_actions_total", "action"), "{{action}}")],
        )
    )
    layout.add(
        series(
            "Messages held per worker",
            "Messages each worker received and has not yet deleted, left or released: its "
            "current batch. A killed worker's batch stays in flight at the queue until the "
            "visibility timeout ends.",
            "short",
            [(f"sum by (instance) ({_of_workers('worker_in_flight_messages')})", "{{instance}}")],
        )
    )


def _provider(layout: Layout) -> None:
    layout.row("Mail provider")
    layout.add(
        series(
            "Provider latency",
            "p50 and p95 of a send, arrival to answer, at the provider. A worker handles one "
            "message at a time, so its throughput is at most 1 / latency: a slower provider "
            "means a growing backlog unless more workers run.",
            "s",
            quantiles("provider_send_duration_seconds_bucket", "", "kind", "{{kind}}", (0.5, 0.95)),
        )
    )
    layout.add(
        series(
            "Provider deliveries by outcome",
            "Sends the provider answered per second, by kind and outcome: delivered, or failed "
            "(500/503 at its failure rate, and every poison message). Failures here return to "
            "the queue and are tried again until maxReceiveCount.",
            MESSAGES_PER_S,
            [
                (
                    f"sum by (kind, outcome) (rate(provider_deliveries_total[{RATE}]))",
                    "{{kind}} {{outcome}}",
                )
            ],
            stacked=True,
        )
    )


def dlq_variable() -> builders.TextBoxVariable:
    """`$dlq`: which queues are dead-letter queues, a regex (nothing in the metrics says)."""
    return (
        builders.TextBoxVariable("dlq")
        .label("Dead-letter queues (regex)")
        .description("Queue names that are dead-letter queues, as a regular expression.")
        .default_value(DLQ_DEFAULT)
        .current(models.VariableOption(selected=True, text=DLQ_DEFAULT, value=DLQ_DEFAULT))
    )
