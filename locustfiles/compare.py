"""Side by side: the same users against every service of RUSHLAB_SERVICES at once.

For scenarios that compare designs in one run (`chaos/scenarios/vertical-vs-horizontal.yaml`):
each service gets its own user class, built here from the settings, with the same weight, so
Locust splits every stage's users evenly between them and a failure on one side cannot slow the
other's users down. Each user reads one order after another (`GET /api/orders/{id}`); requests
are named `<service> /api/orders/{id}`, so Locust's stats and `locust_requests_total{name}` show
the sides apart.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # Locust puts only locustfiles/ on sys.path; the harness sets PYTHONPATH
    sys.path.insert(0, _ROOT)

from locust import FastHttpUser, between, task  # noqa: E402

from locustfiles.common import SETTINGS, RushShape  # noqa: E402, F401  (Locust finds the shape)


def user_for(service: str, base_url: str) -> type[FastHttpUser]:
    """A user class that reads orders from `service` only."""

    class ServiceUser(FastHttpUser):
        host = base_url
        wait_time = between(*SETTINGS.wait_s)
        connection_timeout = SETTINGS.timeout_s
        network_timeout = SETTINGS.timeout_s

        @task
        def view_order(self) -> None:
            self.client.get(
                f"/api/orders/o-{random.randint(1, 10_000)}", name=f"{service} /api/orders/{{id}}"
            )

    name = "".join(part.title() for part in service.split("-")) + "User"
    ServiceUser.__name__ = ServiceUser.__qualname__ = name
    return ServiceUser


if not SETTINGS.services:
    sys.exit("error: RUSHLAB_SERVICES names no service to compare")
# Locust collects the user classes from the module's globals: one name each, no loop variable.
USERS = [user_for(service, url) for service, url in SETTINGS.services.items()]
globals().update({cls.__name__: cls for cls in USERS})
