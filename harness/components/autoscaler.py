"""Autoscalers (targets/autoscaler): one process per service with `autoscaling`, started
once the harness's control API serves, since it acts through it (`POST /chaos` add and
remove). It has no topology section of its own: `services.<name>.autoscaling`."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, ClassVar

from harness.components import services
from harness.components.base import Component, Process, described
from harness.diagram import SERVICES, Arrow, Box, Diagram, Gauge
from harness.promql import Line, PlotQuery, summed
from harness.supervisor import Child

if TYPE_CHECKING:
    from harness.topology import Topology


def autoscaled(topology: Topology) -> list[str]:
    return [name for name, spec in services.specs(topology).items() if spec.autoscaling]


class Autoscalers(Component):
    kind: ClassVar[str] = "autoscaler"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.children: dict[str, Child] = {}  # by service

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
            self.children[name] = await self.lab.supervisor.spawn(
                f"autoscaler-{name}",
                "autoscaler",
                "targets.autoscaler",
                [
                    f"--service={name}",
                    f"--lb-control={lb_host}:{lb_port}",
                    f"--lab-control={control[0]}:{control[1]}",
                    f"--lb-token-file={token}",
                    f"--lab-token-file={token}",
                    f"--metric={scaling.metric}",
                    f"--policy={json.dumps(dataclasses.asdict(policy))}",
                ],
            )
        if self.children:
            self.lab.notify()

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
                    instances=False,
                    process=f"autoscaler-{name}",
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
        if not self.children:
            return {}
        return {"autoscalers": {name: described(c) for name, c in self.children.items()}}
