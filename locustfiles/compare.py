"""Side by side: the same users against every service of RUSHLAB_SERVICES at once.

For scenarios that compare designs in one run (`chaos/scenarios/vertical-vs-horizontal.yaml`):
each service gets its own user class, built here from the settings, with the same weight, so
Locust splits every stage's users evenly between them and a failure on one side cannot slow the
other's users down. Each user reads one order after another (`GET /api/orders/{id}`); requests
are named `<service> /api/orders/{id}`, so Locust's stats and `locust_requests_total{name}` show
the sides apart.

With RUSHLAB_DNS set, a service URL whose host is a name (`http://shop.lab:4001`) is resolved
through the lab's DNS server by each user, who caches the answer for its TTL (like a browser or
an OS stub resolver) and connects to that address with the name in `Host`. A name that does
not resolve is a failed request (`NameNotFound`, `ResolveTimeout`, ...), as a client sees it.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # Locust puts only locustfiles/ on sys.path; the harness sets PYTHONPATH
    sys.path.insert(0, _ROOT)

from locust import FastHttpUser, between, task  # noqa: E402

from locustfiles.common import (  # noqa: E402
    SETTINGS,
    Endpoint,
    ResolveError,
    RushShape,  # noqa: F401  (Locust finds the shape)
    resolve_failed,
)


def user_for(service: str, base_url: str) -> type[FastHttpUser]:
    """A user class that reads orders from `service` only."""

    class ServiceUser(FastHttpUser):
        host = base_url
        wait_time = between(*SETTINGS.wait_s)
        connection_timeout = SETTINGS.timeout_s
        network_timeout = SETTINGS.timeout_s

        def on_start(self) -> None:
            self.endpoint = Endpoint(base_url)

        @task
        def view_order(self) -> None:
            name = f"{service} /api/orders/{{id}}"
            try:
                url, headers = self.endpoint.url(f"/api/orders/o-{random.randint(1, 10_000)}")
            except ResolveError as exc:
                resolve_failed(self, "GET", name, exc)
                return
            self.client.get(url, name=name, headers=headers)

    name = "".join(part.title() for part in service.split("-")) + "User"
    ServiceUser.__name__ = ServiceUser.__qualname__ = name
    return ServiceUser


if not SETTINGS.services:
    sys.exit("error: RUSHLAB_SERVICES names no service to compare")
# Locust collects the user classes from the module's globals: one name each, no loop variable.
USERS = [user_for(service, url) for service, url in SETTINGS.services.items()]
globals().update({cls.__name__: cls for cls in USERS})
