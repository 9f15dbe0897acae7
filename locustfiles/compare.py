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

import ipaddress
import random
import sys
from pathlib import Path
from urllib.parse import urlsplit

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # Locust puts only locustfiles/ on sys.path; the harness sets PYTHONPATH
    sys.path.insert(0, _ROOT)

from locust import FastHttpUser, between, task  # noqa: E402

from locustfiles.common import SETTINGS, RushShape  # noqa: E402, F401  (Locust finds the shape)
from targets.dns.client import CachingResolver, ResolveError  # noqa: E402


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def user_for(service: str, base_url: str) -> type[FastHttpUser]:
    """A user class that reads orders from `service` only."""
    parts = urlsplit(base_url)
    hostname, port = parts.hostname or "", parts.port or 80
    by_name = SETTINGS.dns is not None and _is_name(hostname)

    class ServiceUser(FastHttpUser):
        host = base_url
        wait_time = between(*SETTINGS.wait_s)
        connection_timeout = SETTINGS.timeout_s
        network_timeout = SETTINGS.timeout_s

        def on_start(self) -> None:
            self.resolver = CachingResolver(SETTINGS.dns) if by_name and SETTINGS.dns else None

        @task
        def view_order(self) -> None:
            path = f"/api/orders/o-{random.randint(1, 10_000)}"
            name = f"{service} /api/orders/{{id}}"
            if self.resolver is None:
                self.client.get(path, name=name)
                return
            try:
                address = self.resolver.resolve(hostname)
            except ResolveError as exc:
                self.environment.events.request.fire(
                    request_type="GET",
                    name=name,
                    response_time=0,
                    response_length=0,
                    exception=exc,
                    context={},
                )
                return
            self.client.get(
                f"http://{address}:{port}{path}", name=name, headers={"Host": parts.netloc}
            )

    name = "".join(part.title() for part in service.split("-")) + "User"
    ServiceUser.__name__ = ServiceUser.__qualname__ = name
    return ServiceUser


if not SETTINGS.services:
    sys.exit("error: RUSHLAB_SERVICES names no service to compare")
# Locust collects the user classes from the module's globals: one name each, no loop variable.
USERS = [user_for(service, url) for service, url in SETTINGS.services.items()]
globals().update({cls.__name__: cls for cls in USERS})
