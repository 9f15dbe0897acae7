"""Push consumers (targets/workers/push.py): HTTP endpoints a topic pushes to, no queue.

Topology: `push_consumers: {name: PushSpec}`, each a provider it hands events to. One
process each (group `<name>`, instance `<name>-1`), on a port fixed for the lab's life: the
topic's http subscription names that URL, so a killed and restarted consumer is found again
(and a consumer down meanwhile is what the push model cannot hide: the topic's retries run
out). Chaos acts on it like on any instance.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pydantic import Field

from harness.components import providers, topics
from harness.components.base import Component, Group, Instance, Problem, Shape, Strict, unknown
from harness.components.base import pool_status as _pool_status
from harness.diagram import WORKERS, Arrow, Box, Diagram, both, rate_of
from harness.promql import Line, PlotQuery, summed
from harness.supervisor import free_port

if TYPE_CHECKING:
    from harness.topology import Topology

WHAT = "a push consumer"


class PushSpec(Strict):
    """A push consumer: the topic POSTs each event to it; it hands the event to `provider`
    and answers 200 when the provider took it (502 when it failed: the topic retries)."""

    provider: str
    provider_timeout_s: float = Field(default=30.0, gt=0, le=600)


def specs(topology: Topology) -> dict[str, PushSpec]:
    return cast(dict[str, PushSpec], topology.spec(PushConsumers))


class PushConsumers(Component):
    kind: ClassVar[str] = "push-consumer"
    section: ClassVar[str | None] = "push_consumers"
    spec: ClassVar[Any] = dict[str, PushSpec]
    names_its: ClassVar[str | None] = "push consumer"
    default: ClassVar[Any] = {}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.pools: dict[str, Group] = {}
        self.ports: dict[str, int] = {}

    @classmethod
    def check(cls, topology: Topology) -> list[Problem]:
        problems: list[Problem] = []
        known = set(providers.specs(topology))
        for name, spec in specs(topology).items():
            if spec.provider not in known:
                problems.append(
                    (
                        ("push_consumers", name, "provider"),
                        unknown("provider", spec.provider, known),
                    )
                )
        consumers = set(specs(topology))
        for topic, declared in topics.specs(topology).items():
            for sub_name, sub in declared.subscriptions.items():
                if sub.push is not None and sub.push not in consumers:
                    where = ("topics", topic, "subscriptions", sub_name, "push")
                    problems.append((where, unknown("push consumer", sub.push, consumers)))
        return problems

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        return {name: Shape(cls.kind, WHAT, 1, 0, 1) for name in specs(topology)}

    @classmethod
    def plots(cls, topology: Topology) -> list[PlotQuery]:
        if not specs(topology):
            return []
        return [
            PlotQuery(
                "push consumers: notifications per second",
                "1/s",
                (
                    Line(
                        "{consumer} {outcome}",
                        summed("push_notifications_total", by="consumer, outcome"),
                    ),
                ),
            )
        ]

    def _consumer(self, name: str) -> str:
        """The subscription pushing to `name` (its accounting label), else `name`."""
        subs = topics.subscriptions(self.lab.topology)
        return next((n for n, s in subs.items() if s.push == name), name)

    async def start(self) -> None:
        for name, spec in specs(self.lab.topology).items():
            self.pools[name] = self._group(name, spec)
        # side by side: no push consumer needs another
        await asyncio.gather(*(group.launch(f"{name}-1") for name, group in self.pools.items()))

    def _group(self, name: str, spec: PushSpec) -> Group:
        port = self.ports[name] = free_port()
        provider = self.lab.part(providers.Providers).url(spec.provider)
        consumer = self._consumer(name)
        supervisor = self.lab.supervisor

        async def boot(instance: str, slots: int | None) -> Instance:
            args = [
                f"--name={instance}",
                f"--listen=127.0.0.1:{port}",
                f"--provider={provider}",
                f"--consumer={consumer}",
                f"--provider-timeout-s={spec.provider_timeout_s}",
            ]
            child = await supervisor.spawn(instance, "push-consumer", "targets.workers.push", args)
            return Instance(instance, name, child)

        return Group(name, self.kind, WHAT, 0, 1, boot)

    def urls_by_name(self) -> dict[str, str]:
        """The URL each push consumer serves on (fixed for the lab's life)."""
        return {name: f"http://127.0.0.1:{port}/" for name, port in self.ports.items()}

    def groups(self) -> list[Group]:
        return list(self.pools.values())

    def diagram(self) -> Diagram:
        """A box per push consumer, an arrow to its provider (the notifications it passed)."""
        made = Diagram()
        for name, spec in specs(self.lab.topology).items():
            made.boxes.append(Box(f"push:{name}", name, self.kind, WORKERS, "push consumer", name))
            consumer = f'service="{name}"'
            made.arrows.append(
                Arrow(
                    f"push:{name}",
                    f"provider:{spec.provider}",
                    rate_of("push_notifications_total", consumer),
                    rate_of("push_notifications_total", both(consumer, 'outcome="failed"')),
                    "msg/s",
                )
            )
        return made

    async def status(self) -> dict[str, Any]:
        if not self.pools:
            return {}
        return {"pools": {name: _pool_status(group) for name, group in self.pools.items()}}
