"""Simulated delivery providers (targets/workers/provider.py): mail or WhatsApp, slow and
flaky on purpose. Topology: `providers: {name: ProviderSpec}`.

Each provider is a group chaos names by the provider's name: one instance, `<name>-1`, on a
port fixed for the lab's life, so the workers, push consumers and payment servers that send
to it keep its URL across a restart. Like a service's servers it takes injected faults
(`latency`, `errors`, `clear`: its `/admin/faults`, with the lab's token): "the WhatsApp
provider slows to seconds per send". Prometheus scrapes it as `service=<name>`,
`role=provider`, `instance=<name>-1`.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field

from harness.components.base import (
    Component,
    Group,
    Instance,
    ServiceTimeSpec,
    Shape,
    Strict,
    pool_status,
    set_admin_faults,
)
from harness.diagram import PROVIDERS, Box, Diagram, Gauge
from harness.supervisor import Child, free_port

if TYPE_CHECKING:
    from harness.topology import Topology

WHAT = "a delivery provider"


class ProviderSpec(Strict):
    """A simulated delivery provider: mail or WhatsApp, with a latency and a failure rate."""

    kind: Literal["email", "whatsapp", "notification", "fraud"] = "email"
    latency: ServiceTimeSpec = ServiceTimeSpec(mean_ms=50)
    failure_rate: float = Field(default=0.0, ge=0, le=1)

    def args(self) -> list[str]:
        t = self.latency
        return [
            f"--kind={self.kind}",
            f"--latency={t.distribution}",
            f"--latency-ms={t.mean_ms}",
            f"--sigma={t.sigma}",
            f"--failure-rate={self.failure_rate}",
        ]


def specs(topology: Topology) -> dict[str, ProviderSpec]:
    return cast(dict[str, ProviderSpec], topology.spec(Providers))


def consumers(topology: Topology) -> dict[str, list[str]]:
    """provider -> the consumers (topic subscriptions) whose events it delivers: through a
    queue's workers or a push consumer. Their accounting series exist from the start."""
    from harness.components import push, topics, workers  # noqa: PLC0415 - they import this module

    served: dict[str, list[str]] = {}
    pools = workers.specs(topology)
    pushers = push.specs(topology)
    for name, sub in topics.subscriptions(topology).items():
        if sub.queue is not None:
            found = {w.provider for w in pools.values() if w.queue == sub.queue}
        else:
            found = {pushers[sub.push].provider} if sub.push in pushers else set()
        for provider in sorted(found):
            served.setdefault(provider, []).append(name)
    return served


class Providers(Component):
    kind: ClassVar[str] = "provider"
    section: ClassVar[str | None] = "providers"
    spec: ClassVar[Any] = dict[str, ProviderSpec]
    names_its: ClassVar[str | None] = "provider"
    default: ClassVar[Any] = {}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.by_name: dict[str, Group] = {}
        self.ports: dict[str, int] = {}

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        return {name: Shape(cls.kind, WHAT, 1, 1, 1) for name in specs(topology)}

    async def start(self) -> None:
        served = consumers(self.lab.topology)
        for name, spec in specs(self.lab.topology).items():
            self.by_name[name] = self._group(name, spec, served.get(name, []))
        # side by side: no provider needs another
        await asyncio.gather(*(group.launch(f"{name}-1") for name, group in self.by_name.items()))

    def _group(self, name: str, spec: ProviderSpec, served: list[str]) -> Group:
        port = self.ports[name] = free_port()  # fixed: a restarted provider comes back there
        supervisor = self.lab.supervisor
        fixed = [
            f"--listen=127.0.0.1:{port}",
            f"--token-file={self.lab.token_file}",
            *spec.args(),
            *(f"--consumer={c}" for c in served),
        ]

        async def boot(instance: str, slots: int | None) -> Instance:
            args = [f"--name={instance}", *fixed]
            child = await supervisor.spawn(instance, "provider", "targets.workers.provider", args)
            return Instance(instance, name, child)

        faults = partial(set_admin_faults, self.lab.token)
        return Group(name, self.kind, WHAT, 1, 1, boot, set_faults=faults)

    def address(self, name: str) -> tuple[str, int]:
        """Where provider `name` serves (fixed for the lab's life)."""
        return "127.0.0.1", self.ports[name]

    def url(self, name: str) -> str:
        return "http://{}:{}".format(*self.address(name))

    @property
    def children(self) -> dict[str, Child]:
        """Each provider's process now, by provider name."""
        return {name: group.sorted()[0].child for name, group in self.by_name.items()}

    def groups(self) -> list[Group]:
        return list(self.by_name.values())

    def diagram(self) -> Diagram:
        return Diagram(
            [
                Box(
                    f"provider:{name}",
                    name,
                    self.kind,
                    PROVIDERS,
                    f"{spec.kind} provider",
                    name,
                    gauges=(Gauge("in flight", f'sum(provider_in_flight{{service="{name}"}})'),),
                )
                for name, spec in specs(self.lab.topology).items()
            ]
        )

    async def status(self) -> dict[str, Any]:
        if not self.by_name:
            return {}
        return {"providers": {name: pool_status(g) for name, g in self.by_name.items()}}
