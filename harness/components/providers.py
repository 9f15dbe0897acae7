"""Simulated delivery providers (targets/workers/provider.py): mail or WhatsApp, slow and
flaky on purpose, one process each. Topology: `providers: {name: ProviderSpec}`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field

from harness.components.base import (
    Component,
    Process,
    ServiceTimeSpec,
    Strict,
    described,
)
from harness.supervisor import Child

if TYPE_CHECKING:
    from harness.topology import Topology


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
        self.children: dict[str, Child] = {}

    async def start(self) -> None:
        served = consumers(self.lab.topology)
        for name, provider in specs(self.lab.topology).items():
            declared = [f"--consumer={c}" for c in served.get(name, [])]
            self.children[name] = await self.lab.supervisor.spawn(
                name,
                "provider",
                "targets.workers.provider",
                [f"--name={name}", *provider.args(), *declared],
            )

    def url(self, name: str) -> str:
        return "http://{}:{}".format(*self.children[name].address())

    def processes(self) -> list[Process]:
        return [Process(name, child) for name, child in self.children.items()]

    async def status(self) -> dict[str, Any]:
        if not self.children:
            return {}
        return {"providers": {name: described(child) for name, child in self.children.items()}}
