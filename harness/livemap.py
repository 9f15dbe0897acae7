"""The live map's data: the lab's diagram (harness/diagram.py) with every box's state and
every number filled in, as `GET /map/state` serves it to the page (harness/static/map.html).

Built on request (the page asks about once a second; nothing runs while no page is open):
the boxes and arrows from the components, each instance's state from the groups, each
process's and each load-balancer target's from the lab's status, the numbers from one
instant query per distinct expression against the lab's Prometheus (all at once). Without
Prometheus, or when a query has no data, a number is `null`: the page says "no data",
never 0. `at` is when the state was made: the page shows its own delay from it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos import status as lab_status
from harness.diagram import Box, Diagram

if TYPE_CHECKING:
    from harness.runtime import Event, LabRuntime

RECENT_EVENTS = 12
PAGE = Path(__file__).parent / "static" / "map.html"


def snapshot_page(state: dict[str, Any]) -> str:
    """The map page holding `state` itself (a run report's `map.html`): drawn once, from no
    server, offering no chaos."""
    inline = json.dumps(state).replace("</", "<\\/")  # no "</script>" inside the script
    opening = '<script>\n"use strict";'
    return PAGE.read_text().replace(
        opening, f"<script>window.MAP_STATE = {inline};</script>\n{opening}", 1
    )


class LiveMap:
    def __init__(self, lab: LabRuntime, events: Callable[[], list[Event]]) -> None:
        self.lab = lab
        self.events = events

    async def state(self) -> dict[str, Any]:
        diagram = self.lab.diagram()
        rows = {r["name"]: r for _, r in lab_status.rows(await self.lab.status()) if r}
        groups = {group.name: group for group in self.lab.groups()}
        instances = {
            box.id: [(i.name, i.shown_state) for i in groups[box.group].sorted()]
            for box in diagram.boxes
            if box.group in groups and box.instances
        }
        per_instance = {
            (box.id, name): box.per_instance.replace("$instance", name)
            for box in diagram.boxes
            if box.per_instance
            for name, _ in instances.get(box.id, [])
        }
        values = await self._evaluate(diagram.expressions() | set(per_instance.values()))
        return {
            "at": time.time(),
            "prometheus": self.lab.prometheus is not None,
            "boxes": [
                self._box(box, rows, instances.get(box.id, []), per_instance, values)
                for box in diagram.boxes
            ],
            "arrows": [
                {
                    "source": a.source,
                    "target": a.target,
                    "rate": None if a.rate is None else values.get(a.rate),
                    "errors": None if a.errors is None else values.get(a.errors),
                    "measured": a.rate is not None,
                    "unit": a.unit,
                    "label": a.label,
                }
                for a in _drawable(diagram)
            ],
            "events": [e.as_dict() for e in self.events()[-RECENT_EVENTS:]],
        }

    @staticmethod
    def _box(
        box: Box,
        rows: dict[str, dict[str, Any]],
        instances: list[tuple[str, str]],
        per_instance: dict[tuple[str, str], str],
        values: dict[str, float | None],
    ) -> dict[str, Any]:
        process = rows.get(box.process) if box.process else None
        return box.as_json() | {
            "state": None if process is None else process["state"],
            "gauges": [
                {"label": g.label, "value": values.get(g.expr), "unit": g.unit} for g in box.gauges
            ],
            "instances": [
                {
                    "name": name,
                    "state": state,
                    "target": rows.get(name, {}).get("target"),  # the load balancer's view
                    "rate": values.get(per_instance.get((box.id, name), "")),
                }
                for name, state in instances
            ],
        }

    async def _evaluate(self, expressions: set[str]) -> dict[str, float | None]:
        prometheus = self.lab.prometheus
        if prometheus is None or not expressions:
            return {}
        ordered = sorted(expressions)
        answers = await asyncio.gather(
            *(prometheus.query(expr) for expr in ordered), return_exceptions=True
        )
        values: dict[str, float | None] = {}
        for expr, answer in zip(ordered, answers, strict=True):
            if isinstance(answer, BaseException) or not answer:
                values[expr] = None  # no data (or Prometheus did not answer): not a number
                continue
            value = float(answer[0].value)
            values[expr] = None if math.isnan(value) else value
        return values


def _drawable(diagram: Diagram) -> list[Any]:
    """Arrows whose two ends are on the map (a subscription to a queue the topology lacks is
    refused before this; this keeps a half-drawn lab from breaking the page)."""
    ids = {box.id for box in diagram.boxes}
    return [a for a in diagram.arrows if a.source in ids and a.target in ids]
