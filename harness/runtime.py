"""The running lab: a part per component of the registry, and what chaos may do to them.

`LabRuntime` makes one part per kind of `harness/components/` (in registry order), starts
them, and answers for all of them at once: the groups chaos acts on (`group`, `pick`), the
scrape targets, the status, the URLs. It names no kind: each part knows its own. It is the
one object the control API, the CLI and the scenario runner share; Prometheus and Locust
hang off it when they run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from harness.components import COMPONENTS
from harness.components.base import Component, Group, Instance, described
from harness.diagram import Diagram
from harness.errors import ChaosRefused
from harness.lab import write_token
from harness.prometheus import LAB_RULES, Prometheus, ScrapeTarget
from harness.supervisor import Supervisor, free_port
from harness.topology import Topology


@dataclass(frozen=True, slots=True)
class Event:
    """One chaos action as it happened."""

    at: float  # epoch seconds when the action began
    action: str
    service: str
    instances: tuple[str, ...]
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "action": self.action,
            "service": self.service,
            "instances": list(self.instances),
            "detail": self.detail,
        }


C = TypeVar("C", bound=Component)


class LabRuntime:
    """One running lab: a part per component (harness/components/), in registry order."""

    def __init__(self, topology: Topology, supervisor: Supervisor, seed: int = 0) -> None:
        self.topology = topology
        self.supervisor = supervisor
        self.rng = random.Random(seed)
        self.token, self.token_file = write_token(supervisor.run_dir)
        self.started_at = 0.0
        self.parts: dict[type[Component], Component] = {c: c(self) for c in COMPONENTS}
        self.prometheus: Prometheus | None = None  # once start_prometheus has run
        # Scrape targets beyond the parts' own (the harness, Locust), and who to tell when
        # the set changes (Prometheus's file_sd).
        self.extra_targets: list[ScrapeTarget] = []
        self.listeners: list[Callable[[], None]] = []

    @property
    def run_dir(self) -> Path:
        return self.supervisor.run_dir

    def part(self, component: type[C]) -> C:
        """The running part of kind `component`."""
        found = self.parts[component]
        assert isinstance(found, component)
        return found

    def own_addresses(self) -> set[str]:
        """Groups whose instances some part needs each on a loopback address of its own."""
        return set().union(*(c.own_addresses(self.topology) for c in self.parts))

    async def start(self) -> None:
        """Every part, in registry order (a part may use what the ones before it started)."""
        self.started_at = time.time()
        for part in self.parts.values():
            await part.start()

    async def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Until every part serves (load balancers see all of their replicas healthy)."""
        deadline = time.monotonic() + timeout_s
        for part in self.parts.values():
            await part.wait_ready(deadline)

    async def start_autoscalers(self, control: tuple[str, int]) -> None:
        """The parts that act through the harness control API (`control`, serving now)."""
        for part in self.parts.values():
            await part.after_control(control)

    def scrape_targets(self) -> list[ScrapeTarget]:
        """Every /metrics endpoint of the lab, labelled with service, role and instance."""
        return [
            *self.extra_targets,
            *(target for part in self.parts.values() for target in part.scrape_targets()),
        ]

    def urls(self) -> dict[str, str]:
        """Where a user reaches each part, by description."""
        return {name: url for part in self.parts.values() for name, url in part.urls().items()}

    def scrape(self, address: str, **labels: str) -> None:
        """One more /metrics endpoint beyond the parts' own (the harness, Locust)."""
        self.extra_targets.append(ScrapeTarget(address, labels))

    def diagram(self) -> Diagram:
        """The lab as the live map draws it: every kind's boxes and arrows."""
        made = Diagram()
        for part in self.parts.values():
            made.extend(part.diagram())
        return made

    async def start_prometheus(self) -> Prometheus:
        """Prometheus scraping every process of the lab, its targets kept in step with chaos."""
        prometheus = Prometheus(self.run_dir, free_port())
        prometheus.write_config([LAB_RULES])
        prometheus.set_targets(self.scrape_targets())
        self.listeners.append(lambda: prometheus.set_targets(self.scrape_targets()))
        await prometheus.start(self.supervisor)
        self.prometheus = prometheus
        return prometheus

    def notify(self) -> None:
        """The set of processes changed (chaos): tell whoever listens."""
        for listener in self.listeners:
            listener()

    # -- lookups used by the chaos actions ----------------------------------------------------
    def group(self, name: str) -> Group:
        """The group chaos names: a service, a worker pool, the queue service..."""
        groups = {group.name: group for group in self.groups()}
        if name not in groups:
            raise ChaosRefused(404, f"unknown service {name!r}", sorted(groups))
        return groups[name]

    def groups(self) -> list[Group]:
        return [group for part in self.parts.values() for group in part.groups()]

    def pick(
        self,
        group: Group,
        instance: str | None,
        count: int,
        states: tuple[str, ...],
        *,
        every: bool = False,
    ) -> list[Instance]:
        """The named instance, or `count` random ones (seeded) among those in `states`, or
        with `every` all of those (at least one)."""
        if instance is not None:
            found = group.instances.get(instance)
            if found is None:
                raise ChaosRefused(
                    404, f"unknown instance {instance!r} of {group.name}", sorted(group.instances)
                )
            if found.state not in states:
                raise ChaosRefused(409, f"{instance} is {found.state}, not {' or '.join(states)}")
            return [found]
        candidates = sorted(
            (i for i in group.instances.values() if i.state in states), key=lambda i: i.name
        )
        if every and candidates:
            return candidates
        if len(candidates) < count:
            raise ChaosRefused(
                409,
                f"{group.name} has {len(candidates)} instance(s) {'/'.join(states)}, {count} asked",
                [i.name for i in candidates],
            )
        return self.rng.sample(candidates, count)

    # -- status -------------------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        """Every process the lab started: each part's sections, then every other process
        (the gateway, DNS, Prometheus, Locust) as `processes`."""
        status: dict[str, Any] = {"started_at": self.started_at}
        for part in self.parts.values():
            for section, entries in (await part.status()).items():
                status.setdefault(section, {}).update(entries)
        shown = set(_pids(status))
        status["processes"] = [
            described(child)
            for child in self.supervisor.children.values()
            if child.pid not in shown
        ]
        return status


def _pids(value: Any) -> Iterator[int]:
    """Every `pid` in a status document."""
    if isinstance(value, dict):
        if isinstance(value.get("pid"), int):
            yield value["pid"]
        for item in value.values():
            yield from _pids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _pids(item)
