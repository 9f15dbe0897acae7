"""The API gateway (targets/gateway): routes by path to each service's load balancer, with
rate limits per route. Topology: `gateway: GatewaySpec`, the gateway's own schema
(targets/gateway/config.py), each route naming a service instead of an upstream."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, cast

from harness.components import services
from harness.components.base import Problem, Shape, Singleton, unknown
from harness.components.regions import RegionsPart
from harness.diagram import FRONT, Arrow, Box, Diagram, Gauge, both, one_of, rate_of
from harness.promql import RATE, Line, PlotQuery, quantile, summed
from targets.gateway.config import GatewaySpec, gateway_file

if TYPE_CHECKING:
    from harness.topology import Topology

NAME = "gateway"


def spec_of(topology: Topology) -> GatewaySpec | None:
    return cast(GatewaySpec | None, topology.spec(Gateway))


# -- PromQL (report, Elasticity dashboard) -------------------------------------------------


def requests_by_route(window: str = RATE) -> str:
    """Answers per second by route and status (the upstream's, or the gateway's own)."""
    return summed("gateway_requests_total", by="route, code", window=window) + " > 0"


def limiter_decisions(by: str = "route, outcome", window: str = RATE) -> str:
    """Rate-limit decisions per second: allowed, delayed, rejected."""
    return summed("gateway_limiter_decisions_total", by=by, window=window)


def p95_by_route(window: str = RATE) -> str:
    return quantile(0.95, "gateway_request_duration_seconds", by="route", window=window)


BOX = "gateway"  # its box on the live map


class Gateway(Singleton):
    kind: ClassVar[str] = "gateway"
    section: ClassVar[str | None] = "gateway"
    spec: ClassVar[Any] = GatewaySpec | None
    default: ClassVar[Any] = None
    reserved: ClassVar[tuple[str, ...]] = (NAME,)
    WHAT: ClassVar[str] = "the API gateway"

    @classmethod
    def check(cls, topology: Topology) -> list[Problem]:
        spec = spec_of(topology)
        known = services.specs(topology)
        return [
            (("gateway", "routes", i, "service"), unknown("service", route.service, known))
            for i, route in enumerate(spec.routes if spec else [])
            if route.service not in known
        ]

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        return {NAME: Shape(cls.kind, cls.WHAT, 1, 1, 1)} if spec_of(topology) else {}

    @classmethod
    def plots(cls, topology: Topology) -> list[PlotQuery]:
        if spec_of(topology) is None:
            return []
        return [
            PlotQuery(
                "gateway: requests per second by route and status",
                "req/s",
                (Line("{route} {code}", requests_by_route()),),
            ),
            PlotQuery(
                "gateway: rate-limit decisions per second by route",
                "req/s",
                (Line("{route} {outcome}", limiter_decisions() + " > 0"),),
            ),
            PlotQuery("gateway: p95 latency by route", "s", (Line("{route}", p95_by_route()),)),
        ]

    async def start(self) -> None:
        spec = spec_of(self.lab.topology)
        if spec is None:
            return
        upstreams = {
            name: lab.address for name, lab in self.lab.part(services.Services).labs.items()
        }
        path = self.lab.run_dir / "gateway.json"
        path.write_text(json.dumps(gateway_file(spec, upstreams), indent=2))
        await self.launch(
            "gateway",
            "targets.gateway",
            [
                f"--config={path}",
                f"--token-file={self.lab.token_file}",
                *self.lab.part(RegionsPart).origin_args(),
            ],
        )

    @property
    def url(self) -> str | None:
        """The gateway's base URL, when one runs."""
        return None if self.child is None else "http://{}:{}".format(*self.child.address())

    def side_by_side(self) -> dict[str, str]:
        """Every route that strips its prefix, by name, as a base URL (routes compared)."""
        spec = spec_of(self.lab.topology)
        if spec is None or self.url is None:
            return {}
        return {r.name: self.url + r.path for r in spec.routes if r.strip_prefix}

    def urls(self) -> dict[str, str]:
        return {} if self.url is None else {"gateway": self.url}

    def diagram(self) -> Diagram:
        """The gateway's box (its rate-limited share), an arrow per service it routes to."""
        spec = spec_of(self.lab.topology)
        if spec is None:
            return Diagram()
        limited = rate_of("gateway_requests_total", 'code="429"')
        box = Box(
            BOX,
            NAME,
            self.kind,
            FRONT,
            "API gateway: routes, rate limits",
            NAME,
            process=NAME,
            gauges=(Gauge("429/s", limited),),
        )
        routes: dict[str, list[str]] = {}
        for route in spec.routes:
            routes.setdefault(route.service, []).append(route.name)
        arrows = [
            Arrow(
                BOX,
                services.service_box(service),
                rate_of("gateway_requests_total", one_of("route", names)),
                rate_of("gateway_requests_total", both(one_of("route", names), 'code=~"5.."')),
            )
            for service, names in routes.items()
        ]
        return Diagram([box], arrows)
