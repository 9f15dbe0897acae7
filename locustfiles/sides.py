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
import sys
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, between, task

from locustfiles.common import SETTINGS, Endpoint, ResolveError, poison, resolve_failed

Request = Callable[[], tuple[str, str, dict[str, Any] | None]]
"""A request of one side: (method, path, JSON body or None)."""


def view_order() -> tuple[str, str, dict[str, Any] | None]:
    return "GET", f"/api/orders/o-{random.randint(1, 10_000)}", None


def pay() -> tuple[str, str, dict[str, Any] | None]:
    """A payment; with RUSHLAB_POISON_RATE, some ask for a receipt that can never be sent."""
    return "POST", "/api/payments", {"order": f"o-{random.randint(1, 10_000)}", **poison()}


def user_for(service: str, base_url: str, request: Request, label: str) -> type[FastHttpUser]:
    """A user class that sends `request` to `service` only."""

    class ServiceUser(FastHttpUser):
        endpoints = ((request()[0], f"{service} {label}"),)  # the method of one sample request
        host = base_url
        wait_time = between(*SETTINGS.wait_s)
        connection_timeout = SETTINGS.timeout_s
        network_timeout = SETTINGS.timeout_s

        def on_start(self) -> None:
            self.endpoint = Endpoint(base_url)

        @task
        def call(self) -> None:
            method, path, body = request()
            name = f"{service} {label}"
            try:
                url, headers = self.endpoint.url(path)
            except ResolveError as exc:
                resolve_failed(self, method, name, exc)
                return
            self.client.request(method, url, name=name, headers=headers, json=body)

    name = "".join(part.title() for part in service.split("-")) + "User"
    ServiceUser.__name__ = ServiceUser.__qualname__ = name
    return ServiceUser


def side_by_side(request: Request, label: str) -> dict[str, type[FastHttpUser]]:
    """One user class per service, by class name (for the locustfile's globals)."""
    if not SETTINGS.services:
        sys.exit("error: RUSHLAB_SERVICES names no service to compare")
    users = [user_for(s, url, request, label) for s, url in SETTINGS.services.items()]
    return {cls.__name__: cls for cls in users}
