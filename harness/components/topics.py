"""The topic service (targets/pubsub): one process for every topic of the topology.

Topology: `topics: {name: TopicSpec}`, each with its subscriptions by name. A subscription
delivers to a `queue` of the lab's queue service (its workers consume it) or pushes to a
push consumer (`push`, targets/workers/push.py: an http subscription, confirmed by the
handshake). The subscription's name is the consumer's name everywhere: the topic's
`subscription` label, the workers' and push consumers' `--consumer`, the providers'
`consumer` label; so the accounting of one consumer joins on one label value
(`accounting` below). The lab runs one topic process (`topics-1`, group `topics`) on a port
fixed for the lab's life, with its topics and subscriptions from `topics.json`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field, model_validator

from harness.components import queue
from harness.components.base import Problem, Service, Shape, Strict, unknown
from harness.diagram import TOPICS, Arrow, Box, Diagram, Gauge, both, rate_of
from harness.promql import Line, PlotQuery, summed

if TYPE_CHECKING:
    from harness.topology import Topology

GROUP = "topics"
WHAT = "the topic service"
ACCOUNT = "000000000000"
REGION = "us-east-1"
_NAME = re.compile(r"[a-z][a-z0-9-]{0,60}")


def topic_arn(name: str) -> str:
    return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


class RetrySpec(Strict):
    """An http subscription's delivery policy (SNS `healthyRetryPolicy`): `retries` after the
    first attempt, `min_delay_s` to `max_delay_s` apart by `backoff`, each attempt given
    `timeout_s`. SNS's default: 3 retries 20 s apart, linear (60 s in all)."""

    retries: int = Field(default=3, ge=0, le=100)
    min_delay_s: float = Field(default=20, ge=0, le=3600)
    max_delay_s: float = Field(default=20, ge=0, le=3600)
    backoff: Literal["linear", "arithmetic", "geometric", "exponential"] = "linear"

    def policy(self) -> str:
        return json.dumps(
            {
                "healthyRetryPolicy": {
                    "numRetries": self.retries,
                    "minDelayTarget": self.min_delay_s,
                    "maxDelayTarget": self.max_delay_s,
                    "backoffFunction": self.backoff,
                }
            }
        )


class SubscriptionSpec(Strict):
    """One consumer of a topic: a `queue` (fan-out with queues: durable, each queue its
    workers) or a push consumer (`push`: no queue, the topic retries, then gives up)."""

    queue: str | None = None
    push: str | None = None
    filter: dict[str, Any] | None = None  # an SNS filter policy
    filter_scope: Literal["MessageAttributes", "MessageBody"] = "MessageAttributes"
    raw: bool = False  # RawMessageDelivery: the event alone, no envelope
    retry: RetrySpec | None = None  # push only
    dead_letter: str | None = None  # a queue for what the retries could not deliver

    @model_validator(mode="after")
    def _one_endpoint(self) -> SubscriptionSpec:
        if (self.queue is None) == (self.push is None):
            raise ValueError("a subscription delivers to a `queue` or to a `push` consumer")
        if self.retry is not None and self.push is None:
            raise ValueError("`retry` is for push subscriptions (queues retry on AWS's schedule)")
        return self

    def attributes(self) -> dict[str, str]:
        attributes = {"RawMessageDelivery": "true" if self.raw else "false"}
        if self.filter is not None:
            attributes["FilterPolicy"] = json.dumps(self.filter)
            attributes["FilterPolicyScope"] = self.filter_scope
        if self.retry is not None:
            attributes["DeliveryPolicy"] = self.retry.policy()
        if self.dead_letter is not None:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": queue_arn(self.dead_letter)}
            )
        return attributes


class TopicSpec(Strict):
    """A topic of the lab's topic service (targets/pubsub) and its subscriptions by name."""

    subscriptions: dict[str, SubscriptionSpec] = Field(default_factory=dict)


def specs(topology: Topology) -> dict[str, TopicSpec]:
    return cast(dict[str, TopicSpec], topology.spec(Topics))


def subscriptions(topology: Topology) -> dict[str, SubscriptionSpec]:
    """Every subscription of the lab by name (names are unique across topics)."""
    return {n: s for spec in specs(topology).values() for n, s in spec.subscriptions.items()}


def consumer_of_queue(topology: Topology, queue_name: str) -> str:
    """The consumer name of a queue's workers: the subscription delivering to it, or the
    queue itself."""
    return next(
        (n for n, s in subscriptions(topology).items() if s.queue == queue_name), queue_name
    )


def topics_file(topology: Topology, push_urls: dict[str, str]) -> dict[str, object]:
    """The topic service's `--topics-file` (targets/pubsub/setup.py)."""
    entries: list[dict[str, object]] = []
    for name, spec in specs(topology).items():
        subs: list[dict[str, object]] = []
        for sub_name, sub in spec.subscriptions.items():
            if sub.queue is not None:
                protocol, endpoint = "sqs", queue_arn(sub.queue)
            else:
                protocol, endpoint = "http", push_urls[sub.push or ""]
            subs.append(
                {
                    "name": sub_name,
                    "protocol": protocol,
                    "endpoint": endpoint,
                    "attributes": sub.attributes(),
                }
            )
        entries.append({"name": name, "subscriptions": subs})
    return {"topics": entries}


# -- PromQL (report, Fan-out dashboard, scenario SLOs) ---------------------------------------


def by_subscription(metric: str, extra: str = "") -> str:
    return f"sum by (subscription{extra}) ({metric})"


def accounting(topology: Topology, consumer: str) -> dict[str, str]:
    """One consumer's delivery accounting as PromQL (docs/metrics.md, "Delivery accounting"):
    matched (published and matching), delivered (distinct event ids the consumer's provider
    took), duplicated, redelivered, dead_lettered (by the topic, and for a queue consumer
    what its queue holds in `<queue>-dlq`), and lost: matched but neither delivered nor
    dead-lettered (judge it once nothing is pending)."""
    c = f'"{consumer}"'
    matched = f"sum(pubsub_messages_matched_total{{subscription={c}}})"
    delivered = f'sum(provider_events_total{{consumer={c},outcome="first"}})'
    duplicated = f'sum(provider_events_total{{consumer={c},outcome="duplicate"}})'
    redelivered = f"sum(provider_redeliveries_total{{consumer={c}}})"
    topic_dlq = f'sum(pubsub_deliveries_total{{subscription={c},outcome="dead_lettered"}})'
    sub = subscriptions(topology).get(consumer)
    if sub is not None and sub.queue is not None and f"{sub.queue}-dlq" in queue.names(topology):
        topic_dlq = f'({topic_dlq} + sum(queue_messages_visible{{queue="{sub.queue}-dlq"}}))'
    return {
        "matched": matched,
        "delivered": delivered,
        "duplicated": duplicated,
        "redelivered": redelivered,
        "dead_lettered": topic_dlq,
        "pending": f"sum(pubsub_deliveries_pending{{subscription={c}}})",
        "lost": f"{matched} - {delivered} - {topic_dlq}",
    }


class Topics(Service):
    kind: ClassVar[str] = "topic"
    section: ClassVar[str | None] = "topics"
    spec: ClassVar[Any] = dict[str, TopicSpec]
    default: ClassVar[Any] = {}
    reserved: ClassVar[tuple[str, ...]] = (GROUP,)
    GROUP: ClassVar[str] = GROUP
    WHAT: ClassVar[str] = WHAT

    @classmethod
    def check(cls, topology: Topology) -> list[Problem]:
        problems: list[Problem] = []
        queues = queue.names(topology)
        seen: dict[str, str] = {}
        for name, spec in specs(topology).items():
            if not _NAME.fullmatch(name):
                problems.append(
                    (("topics", name), f"topic name {name!r}: lowercase letters, digits, '-'")
                )
            for sub_name, sub in spec.subscriptions.items():
                where = ("topics", name, "subscriptions", sub_name)
                if sub_name in seen:
                    problems.append(
                        (where, f"subscription {sub_name!r} is also in topic {seen[sub_name]!r}")
                    )
                seen[sub_name] = name
                for field in ("queue", "dead_letter"):
                    value = getattr(sub, field)
                    if value is not None and value not in queues:
                        problems.append(((*where, field), unknown("queue", value, queues)))
        return problems

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        return {GROUP: Shape(cls.kind, WHAT, 1, 1, 1)} if specs(topology) else {}

    @classmethod
    def plots(cls, topology: Topology) -> list[PlotQuery]:
        if not specs(topology):
            return []
        return [
            PlotQuery(
                "topics: published and delivered per second",
                "msg/s",
                (
                    Line(
                        "{topic} published", summed("pubsub_messages_published_total", by="topic")
                    ),
                    Line(
                        "{subscription} {outcome}",
                        summed("pubsub_deliveries_total", by="subscription, outcome"),
                    ),
                ),
            ),
            PlotQuery(
                "topics: deliveries pending and retries per second",
                "deliveries",
                (
                    Line("{subscription} pending", by_subscription("pubsub_deliveries_pending")),
                    Line(
                        "{subscription} retries/s",
                        summed("pubsub_delivery_retries_total", by="subscription"),
                    ),
                ),
            ),
            PlotQuery(
                "consumers: events delivered (distinct), duplicated, redelivered, dead-lettered",
                "events",
                tuple(
                    Line(f"{name} {quantity}", accounting(topology, name)[quantity])
                    for name in subscriptions(topology)
                    for quantity in ("delivered", "duplicated", "redelivered", "dead_lettered")
                ),
            ),
            PlotQuery(
                "consumers: events lost (matched, not delivered nor dead-lettered)",
                "events",
                tuple(
                    Line(name, accounting(topology, name)["lost"])
                    for name in subscriptions(topology)
                ),
            ),
        ]

    async def start(self) -> None:
        topology = self.lab.topology
        if not specs(topology):
            return
        from harness.components.push import PushConsumers  # noqa: PLC0415 - push imports topics

        file = self.lab.run_dir / "topics.json"
        push_urls = self.lab.part(PushConsumers).urls_by_name()
        file.write_text(json.dumps(topics_file(topology, push_urls), indent=2))
        seed = self.lab.rng.randrange(2**31)  # the retry jitter's, the same on every boot
        args = [f"--db={self.lab.run_dir / 'topics.db'}", f"--topics-file={file}", f"--seed={seed}"]
        queue_address = self.lab.part(queue.Queues).address
        if queue_address is not None:
            args.append("--sqs={}:{}".format(*queue_address))
        await self.launch("topics", "targets.pubsub", args)

    def urls(self) -> dict[str, str]:
        if self.address is None:
            return {}
        return {"topics (SNS endpoint_url)": self.url()}

    def diagram(self) -> Diagram:
        """A box per topic (its pending deliveries; chaos acts on the topic service), an arrow
        per subscription: to its queue or its push consumer, failures dropped or
        dead-lettered."""
        made = Diagram()
        for topic, spec in specs(self.lab.topology).items():
            made.boxes.append(
                Box(
                    f"topic:{topic}",
                    topic,
                    self.kind,
                    TOPICS,
                    "topic (in the topic service)",
                    GROUP,
                    gauges=(
                        Gauge("pending", f'sum(pubsub_deliveries_pending{{topic="{topic}"}})'),
                    ),
                )
            )
            for name, sub in spec.subscriptions.items():
                target = queue.box(sub.queue) if sub.queue else f"push:{sub.push}"
                selector = f'subscription="{name}"'
                made.arrows.append(
                    Arrow(
                        f"topic:{topic}",
                        target,
                        rate_of("pubsub_deliveries_total", selector),
                        rate_of(
                            "pubsub_deliveries_total",
                            both(selector, 'outcome=~"dropped|dead_lettered"'),
                        ),
                        "msg/s",
                        "filtered" if sub.filter else "",
                    )
                )
        return made
