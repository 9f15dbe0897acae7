"""The queue service (targets/queue): one process for every queue of the topology.

Topology: `queues: {name: QueueSpec}`. The lab runs one queue process (`queue-1`, group
`queue`) on a port fixed for the lab's life, so a restarted queue comes back where its clients
look; it creates its queues (and each `<queue>-dlq`) from `queues.json` as it starts.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pydantic import Field

from harness.components.base import Problem, Service, Shape, Strict
from harness.diagram import QUEUES, Arrow, Box, Diagram, Gauge, rate_of
from harness.promql import Line, PlotQuery, summed

if TYPE_CHECKING:
    from harness.topology import Topology

GROUP = "queue"
WHAT = "the queue service"
_QUEUE_NAME = re.compile(r"[a-z][a-z0-9-]{0,60}")


class DeadLetterSpec(Strict):
    """A dead-letter queue `<queue>-dlq`: a message received `max_receive_count` times
    without being deleted moves there (SQS RedrivePolicy)."""

    max_receive_count: int = Field(default=3, ge=1, le=1000)


class QueueSpec(Strict):
    """A queue of the lab's queue service (targets/queue), with SQS's attributes."""

    visibility_timeout_s: int = Field(default=30, ge=0, le=43_200)
    receive_wait_s: int = Field(default=0, ge=0, le=20)  # ReceiveMessageWaitTimeSeconds
    delay_s: int = Field(default=0, ge=0, le=900)
    retention_s: int = Field(default=345_600, ge=60, le=1_209_600)
    dead_letter: DeadLetterSpec | None = None

    def attributes(self) -> dict[str, str]:
        return {
            "VisibilityTimeout": str(self.visibility_timeout_s),
            "ReceiveMessageWaitTimeSeconds": str(self.receive_wait_s),
            "DelaySeconds": str(self.delay_s),
            "MessageRetentionPeriod": str(self.retention_s),
        }


def box(name: str) -> str:
    """The map's id of queue `name`'s box."""
    return f"queue:{name}"


def specs(topology: Topology) -> dict[str, QueueSpec]:
    return cast(dict[str, QueueSpec], topology.spec(Queues))


def names(topology: Topology) -> set[str]:
    """Every queue a lab has: the topology's, and the dead-letter queues they name."""
    queues = specs(topology)
    return {*queues, *(f"{q}-dlq" for q, spec in queues.items() if spec.dead_letter)}


def queues_file(topology: Topology) -> dict[str, object]:
    """The queue service's `--queues-file` (targets/queue/setup.py): each queue with its
    attributes, and its `<queue>-dlq` when it has `dead_letter`."""
    entries: list[dict[str, object]] = []
    for name, spec in specs(topology).items():
        entry: dict[str, object] = {"name": name, "attributes": spec.attributes()}
        if spec.dead_letter is not None:
            entry["dead_letter"] = {
                "queue": f"{name}-dlq",
                "max_receive_count": spec.dead_letter.max_receive_count,
            }
        entries.append(entry)
    return {"queues": entries}


def visibility_timeout_s(topology: Topology, queue: str) -> int:
    """The queue's visibility timeout (a dead-letter queue has SQS's default, 30 s)."""
    spec = specs(topology).get(queue)
    return (spec or QueueSpec()).visibility_timeout_s


# -- PromQL (report and Queues dashboard) --------------------------------------------------


def by_queue(metric: str) -> str:
    return f"sum by (queue) ({metric})"


def messages_per_s(verb: str) -> str:
    """Messages `verb` (sent, received, deleted) per second, by queue."""
    return summed(f"queue_messages_{verb}_total", by="queue")


class Queues(Service):
    kind: ClassVar[str] = "queue"
    section: ClassVar[str | None] = "queues"
    spec: ClassVar[Any] = dict[str, QueueSpec]
    default: ClassVar[Any] = {}
    reserved: ClassVar[tuple[str, ...]] = (GROUP,)
    GROUP: ClassVar[str] = GROUP
    WHAT: ClassVar[str] = WHAT

    @classmethod
    def check(cls, topology: Topology) -> list[Problem]:
        return [
            (
                ("queues", name),
                f"queue name {name!r}: lowercase letters, digits and '-', not ending in -dlq"
                " (dead-letter queues are named after their source)",
            )
            for name in specs(topology)
            if not _QUEUE_NAME.fullmatch(name) or name.endswith("-dlq")
        ]

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        return {GROUP: Shape(cls.kind, WHAT, 1, 1, 1)} if specs(topology) else {}

    @classmethod
    def plots(cls, topology: Topology) -> list[PlotQuery]:
        if not specs(topology):
            return []
        return [
            PlotQuery(
                "queues: messages visible and in flight",
                "messages",
                (
                    Line("{queue} visible", by_queue("queue_messages_visible")),
                    Line("{queue} in flight", by_queue("queue_messages_in_flight") + " > 0"),
                ),
            ),
            PlotQuery(
                "queues: age of the oldest message",
                "s",
                (Line("{queue}", "max by (queue) (queue_oldest_message_age_seconds)"),),
            ),
            PlotQuery(
                "queues: sent, received, deleted per second",
                "msg/s",
                tuple(
                    Line(f"{{queue}} {verb}", messages_per_s(verb))
                    for verb in ("sent", "received", "deleted")
                ),
            ),
        ]

    async def start(self) -> None:
        topology = self.lab.topology
        if not specs(topology):
            return
        queues = self.lab.run_dir / "queues.json"
        queues.write_text(json.dumps(queues_file(topology), indent=2))
        db = self.lab.run_dir / "queue.db"
        await self.launch("queue", "targets.queue", [f"--db={db}", f"--queues-file={queues}"])

    def urls(self) -> dict[str, str]:
        if self.address is None:
            return {}
        return {"queue (SQS endpoint_url; JSON API at /queues)": self.url()}

    def diagram(self) -> Diagram:
        """A box per queue (dead-letter queues too) with its depth and oldest age, an arrow
        from each queue to its dead-letter queue; chaos on any of them acts on the queue
        service that holds them all (its process is each box's instance)."""
        boxes = [
            Box(
                box(name),
                name,
                self.kind,
                QUEUES,
                "queue (in the queue service)",
                GROUP,
                gauges=(
                    Gauge("visible", f'sum(queue_messages_visible{{queue="{name}"}})'),
                    Gauge("in flight", f'sum(queue_messages_in_flight{{queue="{name}"}})'),
                    Gauge(
                        "oldest", f'max(queue_oldest_message_age_seconds{{queue="{name}"}})', "s"
                    ),
                ),
            )
            for name in sorted(names(self.lab.topology))
        ]
        dead = [
            Arrow(
                box(name),
                box(f"{name}-dlq"),
                rate_of("queue_messages_moved_to_dlq_total", f'queue="{name}"'),
                None,
                "msg/s",
                "dead letters",
            )
            for name, spec in sorted(specs(self.lab.topology).items())
            if spec.dead_letter is not None
        ]
        return Diagram(boxes, dead)
