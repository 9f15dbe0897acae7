"""Worker pools (targets/workers): each worker receives from a queue, rate-limits itself,
delivers to a provider and deletes on success. Topology: `workers: {pool: WorkerSpec}`; the
lab names a pool's instances `<pool>-1`, `<pool>-2`, ..."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field, model_validator

from harness.components import providers, queue, topics
from harness.components.base import (
    Component,
    Group,
    Instance,
    Problem,
    Shape,
    Strict,
    pool_status,
    unknown,
)
from harness.components.services import within_bounds
from harness.diagram import WORKERS, Arrow, Box, Diagram, both, rate_of
from harness.promql import Line, PlotQuery, summed

if TYPE_CHECKING:
    from harness.topology import Topology

WHAT = "a worker pool"


class WorkerSpec(Strict):
    """A pool of queue workers: each receives from `queue`, rate-limits itself to `rate`
    messages per second, delivers to `provider` and deletes on success."""

    queue: str
    provider: str
    replicas: int = Field(default=2, ge=0, le=64)
    min_replicas: int = Field(default=0, ge=0, le=64)
    max_replicas: int = Field(default=16, ge=1, le=64)
    polling: Literal["long", "short"] = "long"
    wait_s: int = Field(default=20, ge=1, le=20)  # long polling
    empty_sleep_s: float = Field(default=0.1, ge=0, le=60)  # short polling
    batch: int = Field(default=10, ge=1, le=10)
    visibility_s: int | None = Field(default=None, ge=0, le=43_200)  # None: the queue's
    rate: float = Field(default=10.0, ge=0, le=1_000_000)  # 0: no limit
    burst: int = Field(default=1, ge=1, le=10_000)
    on_failure: Literal["return", "backoff"] = "return"
    backoff_s: float = Field(default=1.0, gt=0, le=3600)
    provider_timeout_s: float = Field(default=30.0, gt=0, le=600)
    ack: Literal["after_send", "before_send"] = "after_send"
    """When a message is deleted: after the provider took it, or before (a failed send is lost)."""

    @model_validator(mode="after")
    def _replicas_within_bounds(self) -> WorkerSpec:
        within_bounds(self.replicas, self.min_replicas, self.max_replicas)
        return self

    def args(self, queue_visibility_s: int) -> list[str]:
        """The `python -m targets.workers` flags (queue, provider and identity excluded);
        the visibility timeout is the queue's unless the pool sets its own."""
        visibility = queue_visibility_s if self.visibility_s is None else self.visibility_s
        return [
            f"--queue={self.queue}",
            f"--polling={self.polling}",
            f"--wait-s={self.wait_s}",
            f"--empty-sleep-s={self.empty_sleep_s}",
            f"--batch={self.batch}",
            f"--visibility-s={visibility}",
            f"--rate={self.rate}",
            f"--burst={self.burst}",
            f"--on-failure={self.on_failure}",
            f"--backoff-s={self.backoff_s}",
            f"--provider-timeout-s={self.provider_timeout_s}",
            f"--ack={self.ack}",
        ]


def specs(topology: Topology) -> dict[str, WorkerSpec]:
    return cast(dict[str, WorkerSpec], topology.spec(Workers))


def per_pool(counter: str) -> str:
    """`counter` per second, by worker pool (the `service` label)."""
    return summed(counter, by="service")


class Workers(Component):
    kind: ClassVar[str] = "workers"
    section: ClassVar[str | None] = "workers"
    spec: ClassVar[Any] = dict[str, WorkerSpec]
    names_its: ClassVar[str | None] = "worker pool"
    default: ClassVar[Any] = {}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.pools: dict[str, Group] = {}

    @classmethod
    def check(cls, topology: Topology) -> list[Problem]:
        problems: list[Problem] = []
        queues, known = queue.names(topology), set(providers.specs(topology))
        for pool, worker in specs(topology).items():
            for field, value, choices, what in (
                ("queue", worker.queue, queues, "queue"),
                ("provider", worker.provider, known, "provider"),
            ):
                if value not in choices:
                    problems.append((("workers", pool, field), unknown(what, value, choices)))
        return problems

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        return {name: Shape.of(cls.kind, WHAT, spec) for name, spec in specs(topology).items()}

    @classmethod
    def plots(cls, topology: Topology) -> list[PlotQuery]:
        if not specs(topology):
            return []
        return [
            PlotQuery(
                "workers: deliveries and receive calls per second",
                "1/s",
                (
                    Line(
                        "{service} {outcome}",
                        summed("worker_messages_total", by="service, outcome"),
                    ),
                    Line("{service} receive calls", per_pool("worker_receive_calls_total")),
                    Line("{service} empty receives", per_pool("worker_empty_receives_total")),
                ),
            )
        ]

    async def start(self) -> None:
        replicas: dict[str, int] = {}
        for name, spec in specs(self.lab.topology).items():
            self.pools[name], replicas[name] = self._group(name, spec), spec.replicas
        # every pool's workers side by side: a worker needs only the queue and its provider
        await asyncio.gather(
            *(
                group.launch(f"{name}-{n}")
                for name, group in self.pools.items()
                for n in range(1, replicas[name] + 1)
            )
        )

    def _group(self, name: str, spec: WorkerSpec) -> Group:
        queue_host, queue_port = self.lab.part(queue.Queues).address or ("", 0)
        provider = self.lab.part(providers.Providers).url(spec.provider)
        visibility = queue.visibility_timeout_s(self.lab.topology, spec.queue)
        consumer = topics.consumer_of_queue(self.lab.topology, spec.queue)
        supervisor = self.lab.supervisor

        async def boot(instance: str, slots: int | None) -> Instance:
            args = [
                f"--name={instance}",
                f"--queue-url=http://{queue_host}:{queue_port}",
                f"--provider={provider}",
                f"--consumer={consumer}",
                *spec.args(visibility),
            ]
            child = await supervisor.spawn(instance, "worker", "targets.workers", args)
            return Instance(instance, name, child)

        return Group(name, self.kind, WHAT, spec.min_replicas, spec.max_replicas, boot)

    def groups(self) -> list[Group]:
        return list(self.pools.values())

    def diagram(self) -> Diagram:
        """A box per pool (each worker's messages per second), an arrow from its queue (what
        it takes) and one to its provider (what failed there)."""
        made = Diagram()
        for name, spec in specs(self.lab.topology).items():
            pool = f'service="{name}"'
            made.boxes.append(
                Box(
                    f"workers:{name}",
                    name,
                    self.kind,
                    WORKERS,
                    "worker pool",
                    name,
                    per_instance=rate_of("worker_messages_total", 'instance="$instance"'),
                )
            )
            taken = rate_of("worker_messages_total", pool)
            failed = rate_of("worker_messages_total", both(pool, 'outcome="failed"'))
            made.arrows += [
                Arrow(queue.box(spec.queue), f"workers:{name}", taken, None, "msg/s"),
                Arrow(f"workers:{name}", f"provider:{spec.provider}", taken, failed, "msg/s"),
            ]
        return made

    async def status(self) -> dict[str, Any]:
        if not self.pools:
            return {}
        return {"pools": {name: pool_status(group) for name, group in self.pools.items()}}
