"""Autoscalers (targets/autoscaler): one process per service with `autoscaling`, started
once the harness's control API serves, since it acts through it (`POST /chaos` add and
remove). It has no topology section of its own: `services.<name>.autoscaling`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from harness.components import services
from harness.components.base import Component, Group, Instance, Process, Shape, described
from harness.diagram import SERVICES, Arrow, Box, Diagram, Gauge
from harness.prometheus import ScrapeTarget
from harness.promql import Line, PlotQuery, summed
from harness.supervisor import Child

if TYPE_CHECKING:
    from harness.topology import Topology


WHAT = "an autoscaler"


def group_of(service: str) -> str:
    """The name of service `service`'s autoscaler: its process and its chaos group."""
    return f"autoscaler-{service}"


def autoscaled(topology: Topology) -> list[str]:
    return [name for name, spec in services.specs(topology).items() if spec.autoscaling]


class Autoscalers(Component):
    kind: ClassVar[str] = "autoscaler"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.children: dict[str, Child] = {}  # by service
        self.by_service: dict[str, Group] = {}  # each a chaos group of one (`group_of`)

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        return {group_of(name): Shape(cls.kind, WHAT, 1, 1, 1) for name in autoscaled(topology)}

    @classmethod
    def plots(cls, topology: Topology) -> list[PlotQuery]:
        plots: list[PlotQuery] = []
        for s in autoscaled(topology):
            selector = f'{{service="{s}"}}'
            plots += [
                PlotQuery(
                    f"{s}: replicas, desired versus current",
                    "count",
                    tuple(
                        Line(kind, f"max(autoscaler_{kind}_replicas{selector})")
                        for kind in ("desired", "current", "ready")
                    ),
                ),
                PlotQuery(
                    f"{s}: load per replica versus target",
                    "per replica",
                    (
                        Line("{metric}", f"max by (metric) (autoscaler_metric{selector})"),
                        Line("target", f"max(autoscaler_metric_target{selector})"),
                    ),
                ),
                PlotQuery(
                    f"{s}: scaling decisions per second",
                    "1/s",
                    (
                        Line(
                            "{direction} {reason}",
                            summed(
                                "autoscaler_decisions_total",
                                f'service="{s}",direction!="none"',
                                by="direction, reason",
                            )
                            + " > 0",
                        ),
                    ),
                ),
            ]
        return plots

    async def after_control(self, control: tuple[str, int]) -> None:
        labs = self.lab.part(services.Services).labs
        token = self.lab.token_file
        for name in autoscaled(self.lab.topology):
            spec = services.specs(self.lab.topology)[name]
            policy, scaling = spec.autoscaler_policy(), spec.autoscaling
            assert policy is not None  # autoscaled
            assert scaling is not None
            lb_host, lb_port = labs[name].control
            args = [
                f"--service={name}",
                f"--lb-control={lb_host}:{lb_port}",
                f"--lab-control={control[0]}:{control[1]}",
                f"--lb-token-file={token}",
                f"--lab-token-file={token}",
                f"--metric={scaling.metric}",
                f"--policy={json.dumps(dataclasses.asdict(policy))}",
            ]
            group = Group(group_of(name), self.kind, WHAT, 1, 1, self._booter(name, args))
            await group.launch(group.name)
            self.by_service[name] = group
        if self.by_service:
            self.lab.notify()

    def _booter(
        self, service: str, args: list[str]
    ) -> Callable[[str, int | None], Awaitable[Instance]]:
        """How autoscaler `service` starts (again, after chaos: its decisions start afresh)."""

        async def boot(instance: str, slots: int | None) -> Instance:
            child = await self.lab.supervisor.spawn(
                instance, "autoscaler", "targets.autoscaler", args
            )
            self.children[service] = child
            return Instance(instance, instance, child)

        return boot

    def groups(self) -> list[Group]:
        return list(self.by_service.values())

    def scrape_targets(self) -> Iterable[ScrapeTarget]:
        """Its processes, labelled with the service each scales (not its group's name)."""
        return self.process_targets()

    def diagram(self) -> Diagram:
        """A box per autoscaler (desired against current replicas), an arrow to its service."""
        made = Diagram()
        for name in autoscaled(self.lab.topology):
            service = f'service="{name}"'
            made.boxes.append(
                Box(
                    f"autoscaler:{name}",
                    f"autoscaler {name}",
                    self.kind,
                    SERVICES,
                    "scales the service",
                    group_of(name),
                    process=group_of(name),
                    gauges=(
                        Gauge("desired", f"max(autoscaler_desired_replicas{{{service}}})"),
                        Gauge("current", f"max(autoscaler_current_replicas{{{service}}})"),
                    ),
                )
            )
            made.arrows.append(
                Arrow(f"autoscaler:{name}", services.service_box(name), label="scales")
            )
        return made

    def processes(self) -> list[Process]:
        return [Process(name, child) for name, child in self.children.items()]

    async def status(self) -> dict[str, Any]:
        if not self.by_service:
            return {}
        shown = {
            name: {**described(self.children[name]), "state": group.sorted()[0].shown_state}
            for name, group in self.by_service.items()
        }
        return {"autoscalers": shown}
