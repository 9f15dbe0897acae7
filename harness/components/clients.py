"""The load generator's side of the report: what Locust's users saw. Locust itself is started
by the runner or `harness up` (harness/locust.py), scraped as `role="locust"`."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from harness.components import dns, edges, gateway, services
from harness.components.base import Component
from harness.diagram import CLIENTS, Arrow, Box, Diagram, Gauge, both, rate_of
from harness.promql import Line, PlotQuery, quantile_lines, summed

if TYPE_CHECKING:
    from harness.topology import Topology


BOX = "clients"  # its box on the live map


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

    def diagram(self) -> Diagram:
        """Locust's users (how many), arrows to where they enter: the gateway (else each
        service's load balancer), each viewer edge, and the DNS server when there is one.
        Each arrow's rate is what its receiver answered."""
        topology = self.lab.topology
        users = Box(
            BOX,
            "clients",
            self.kind,
            CLIENTS,
            "Locust users",
            instances=False,
            gauges=(Gauge("users", "sum(locust_users)"),),
        )
        arrows: list[Arrow] = []
        if gateway.spec_of(topology) is not None:
            arrows.append(
                Arrow(
                    BOX,
                    gateway.BOX,
                    rate_of("gateway_requests_total"),
                    rate_of("gateway_requests_total", 'code=~"5.."'),
                )
            )
        else:
            for name in services.specs(topology):
                lb = f'service="{name}"'
                arrows.append(
                    Arrow(
                        BOX,
                        services.service_box(name),
                        rate_of("lb_requests_total", lb),
                        rate_of("lb_requests_total", both(lb, 'code=~"5.."')),
                    )
                )
        viewers = set(edges.specs(topology)) - edges.shields(topology)
        for name in sorted(viewers):
            edge = f'service="{name}"'
            arrows.append(
                Arrow(
                    BOX,
                    edges.box(name),
                    rate_of("cdn_requests_total", edge),
                    rate_of("cdn_requests_total", both(edge, 'result="Error"')),
                )
            )
        if dns.spec_of(topology) is not None:
            arrows.append(Arrow(BOX, dns.NAME, rate_of("dns_queries_total"), None, "q/s"))
        return Diagram([users], arrows)
