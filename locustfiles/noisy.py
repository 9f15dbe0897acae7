"""The shop's customers plus one noisy neighbour (`chaos/scenarios/noisy-neighbour.yaml`).

`ShopUser` as in `locustfiles/shop.py`, each customer with its own `X-Client-Id`, and exactly
one `NoisyNeighbour` (`fixed_count = 1`) who reads orders as fast as answers come back, all
under one client id, `noisy`. Its requests are named `noisy /api/orders/{id}`, so Locust's stats
and `locust_requests_total{name}` tell it apart from the customers. (It is not a `ShopUser`
subclass: Locust would hand it the customers' tasks too.)
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # Locust puts only locustfiles/ on sys.path; the harness sets PYTHONPATH
    sys.path.insert(0, _ROOT)

from locust import FastHttpUser, constant, task  # noqa: E402

from locustfiles.common import (  # noqa: E402
    SETTINGS,
    Endpoint,
    ResolveError,
    RushShape,  # noqa: F401  (Locust finds the shape)
    resolve_failed,
)
from locustfiles.shop import ShopUser  # noqa: E402  (Locust runs the customers too)

NAME = "noisy /api/orders/{id}"


class NoisyNeighbour(FastHttpUser):
    """One client flooding the orders route, never waiting."""

    endpoints = (("GET", NAME),)  # their series exist at 0 before the first request
    fixed_count = 1
    wait_time = constant(0)
    host = ShopUser.host
    connection_timeout = SETTINGS.timeout_s
    network_timeout = SETTINGS.timeout_s

    def on_start(self) -> None:
        self.endpoint = Endpoint(SETTINGS.services.get("orders") or self.host or "")

    @task
    def flood(self) -> None:
        try:
            url, headers = self.endpoint.url(f"/api/orders/o-{random.randint(1, 10_000)}")
        except ResolveError as exc:
            resolve_failed(self, "GET", NAME, exc)
            return
        self.client.get(url, name=NAME, headers={**headers, "X-Client-Id": "noisy"})


__all__ = ["NoisyNeighbour", "ShopUser"]
