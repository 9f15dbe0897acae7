"""The kinds of part a lab is made of, one module each, in the order a lab starts them.

`LabRuntime` (harness/runtime.py), the topology model (harness/topology.py), the report's
plots and the status table loop over `COMPONENTS`; nothing outside a kind's module names that
kind. Adding a kind: ARCHITECTURE.md, "Adding a kind".
"""

from __future__ import annotations

from harness.components.autoscaler import Autoscalers
from harness.components.base import Component
from harness.components.clients import Clients
from harness.components.dns import Dns
from harness.components.edges import Edges
from harness.components.gateway import Gateway
from harness.components.providers import Providers
from harness.components.push import PushConsumers
from harness.components.queue import Queues
from harness.components.regions import RegionsPart
from harness.components.services import Services
from harness.components.topics import Topics
from harness.components.workers import Workers

COMPONENTS: tuple[type[Component], ...] = (
    RegionsPart,
    Clients,
    Queues,
    Providers,
    PushConsumers,
    Topics,
    Services,
    Gateway,
    Edges,
    Dns,
    Workers,
    Autoscalers,
)
"""Start order: a kind may use what every kind before it started (the regions' network file
first, for the gateway and the edges; the gateway aims at the
services' load balancers, the workers at the queue and the providers; the topics push to
the push consumers and deliver to the queue, the payments publish to the topics; the CDN
edges fetch from the gateway or a load balancer)."""
