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

    kind: Literal["email", "whatsapp"] = "email"
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
        for name, provider in specs(self.lab.topology).items():
            self.children[name] = await self.lab.supervisor.spawn(
                name, "provider", "targets.workers.provider", [f"--name={name}", *provider.args()]
            )

    def url(self, name: str) -> str:
        return "http://{}:{}".format(*self.children[name].address())

    def processes(self) -> list[Process]:
        return [Process(name, child) for name, child in self.children.items()]

    async def status(self) -> dict[str, Any]:
        if not self.children:
            return {}
        return {"providers": {name: described(child) for name, child in self.children.items()}}
