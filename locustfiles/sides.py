"""Designs side by side: one user class per service of RUSHLAB_SERVICES, the same task each.

`compare.py` (readers: `GET /api/orders/{id}`) and `pay.py` (payers: `POST /api/payments`)
build their users here. Every class has the same weight, so Locust splits each stage's users
evenly between the services, and a failure on one side cannot slow the other's users down.
Requests are named `<service> <path>`, so Locust's stats and `locust_requests_total{name}`
show the sides apart.

With RUSHLAB_DNS set, a service URL whose host is a name (`http://shop.lab:4001`) is resolved
through the lab's DNS server by each user, who caches the answer for its TTL (like a browser or
an OS stub resolver) and connects to that address with the name in `Host`. A name that does
not resolve is a failed request (`NameNotFound`, `ResolveTimeout`, ...), as a client sees it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from locust import task

from locustfiles.common import RushUser
from locustfiles.settings import SERVICES, SettingsError

Request = Callable[[RushUser], tuple[str, dict[str, Any] | None]]
"""What one side sends, for the user sending it: (path, JSON body or None)."""


def view_order(user: RushUser) -> tuple[str, dict[str, Any] | None]:
    return f"/api/orders/o-{random.randint(1, 10_000)}", None


def pay(user: RushUser) -> tuple[str, dict[str, Any] | None]:
    """A payment; with RUSHLAB_POISON_RATE, some ask for a receipt that can never be sent."""
    return "/api/payments", {"order": f"o-{random.randint(1, 10_000)}", **user.poison()}


def user_for(
    service: str, base_url: str, method: str, request: Request, label: str
) -> type[RushUser]:
    """A user class that sends `request` to `service` only, named `<service> <label>`."""
    name = f"{service} {label}"

    class ServiceUser(RushUser):
        endpoints = ((method, name),)
        host = base_url

        def on_start(self) -> None:
            self.base = self.endpoint(base_url)

        @task
        def call(self) -> None:
            path, body = request(self)
            self.send(self.base, method, path, name, json=body)

    ServiceUser.__name__ = ServiceUser.__qualname__ = (
        "".join(part.title() for part in service.split("-")) + "User"
    )
    return ServiceUser


def side_by_side(
    services: Mapping[str, str], method: str, request: Request, label: str
) -> dict[str, type[RushUser]]:
    """One user class per service, by class name (for the locustfile's globals); SettingsError
    when RUSHLAB_SERVICES names none."""
    if not services:
        raise SettingsError(f"{SERVICES}: names no service to compare")
    users = [user_for(s, url, method, request, label) for s, url in services.items()]
    return {cls.__name__: cls for cls in users}
