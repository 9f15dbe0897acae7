"""The load generator's side of the report: what Locust's users saw. Locust itself is started
by the runner or `harness up` (harness/locust.py), scraped as `role="locust"`."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from harness.components.base import Component
from harness.promql import Line, PlotQuery, quantile_lines, summed

if TYPE_CHECKING:
    from harness.topology import Topology


class Clients(Component):
    kind: ClassVar[str] = "clients"

    @classmethod
    def plots(cls, topology: Topology) -> list[PlotQuery]:
        return [
            PlotQuery(
                "Requests per second",
                "req/s",
                (Line("client (Locust)", summed("locust_requests_total")),),
            ),
            PlotQuery(
                "Errors per second (client failures, load balancer 5xx)",
                "req/s",
                (Line("client failures", summed("locust_requests_total", 'result="fail"')),),
            ),
            PlotQuery(
                "Latency seen by clients (Locust)",
                "s",
                quantile_lines("locust_request_duration_seconds"),
            ),
        ]
