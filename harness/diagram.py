"""The lab as a system-design diagram: boxes (who), arrows (who calls whom), live numbers.

Each component kind draws its own part (`Component.diagram`, harness/components/): a box per
thing a person would draw (a service with its load balancer and servers, a queue, a worker
pool, a topic, an edge), placed in a `tier` (a column, left to right in the order requests
flow), and arrows between boxes. Numbers are PromQL, evaluated by the live map
(harness/livemap.py) against the lab's Prometheus: an arrow's `rate` (per second along it)
and `errors` (the failing share of it), a box's `gauges`, each instance's `per_instance`
(with `$instance` standing for the instance's name). Nothing here runs a query: this module
is data, built from the topology and the running groups.

Every expression yields one number or nothing: no data is shown as "no data", never as 0
(nothing here writes `or vector(0)`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.promql import RATE

# Columns, left to right: where requests come from, then each hop they take.
CLIENTS, NAMES, EDGES, FRONT, SERVICES, TOPICS, QUEUES, WORKERS, PROVIDERS = range(9)


@dataclass(frozen=True, slots=True)
class Gauge:
    """A number shown in a box: `label` and a PromQL expression of one value."""

    label: str
    expr: str
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Box:
    """One thing on the map. `group` is the chaos group it stands for (None: no chaos acts on
    it, e.g. the clients); its instances are drawn inside it when `instances` is set."""

    id: str
    label: str
    kind: str
    tier: int
    what: str = ""
    group: str | None = None
    instances: bool = True
    gauges: tuple[Gauge, ...] = ()
    per_instance: str | None = None  # PromQL with `$instance`: each instance's rate
    process: str | None = None  # a process whose state the box shows (a service's LB)
    process_group: str | None = None  # the chaos group that process is, when it is one
    process_kind: str | None = None  # and that group's kind (which actions apply)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "kind": self.kind,
            "tier": self.tier,
            "what": self.what,
            "group": self.group,
            "process": self.process,
            "process_group": self.process_group,
            "process_kind": self.process_kind,
        }


@dataclass(frozen=True, slots=True)
class Arrow:
    """Traffic from box `source` to box `target`: `rate` per second along it, `errors` per
    second of it that failed (PromQL, one value each; None: not measured, e.g. the autoscaler
    acting on a service)."""

    source: str
    target: str
    rate: str | None = None
    errors: str | None = None
    unit: str = "req/s"
    label: str = ""


@dataclass(slots=True)
class Diagram:
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)

    def extend(self, other: Diagram) -> None:
        self.boxes += other.boxes
        self.arrows += other.arrows

    def expressions(self) -> set[str]:
        """Every PromQL expression the map evaluates for this diagram (per-instance ones
        excepted: they depend on which instances exist)."""
        found = {g.expr for b in self.boxes for g in b.gauges}
        found |= {e for a in self.arrows for e in (a.rate, a.errors) if e is not None}
        return found


def rate_of(metric: str, matchers: str = "", window: str = RATE) -> str:
    """Per second, summed over every series `matchers` selects: one value."""
    selector = f"{{{matchers}}}" if matchers else ""
    return f"sum(rate({metric}{selector}[{window}]))"


def one_of(label: str, values: Iterable[str]) -> str:
    """A matcher of `label` for any of `values` (an exact match for one)."""
    chosen = sorted(set(values))
    if len(chosen) == 1:
        return f'{label}="{chosen[0]}"'
    return f'{label}=~"{"|".join(chosen)}"'


def both(*matchers: str) -> str:
    return ", ".join(m for m in matchers if m)
