"""The shop's customers plus one noisy neighbour (`chaos/scenarios/noisy-neighbour.yaml`).

`ShopUser` as in `locustfiles/shop.py`, each customer with its own `X-Client-Id`, and exactly
one `NoisyNeighbour` (`fixed_count = 1`) who reads orders as fast as answers come back, all
under one client id, `noisy`. Its requests are named `noisy /api/orders/{id}`, so Locust's stats
and `locust_requests_total{name}` tell it apart from the customers. (It is not a `ShopUser`
subclass: Locust would hand it the customers' tasks too.)
"""

from __future__ import annotations

import random

from locust import constant, task

from locustfiles.common import RushUser, rush_shape, settings
from locustfiles.shop import ShopUser  # Locust runs the customers too

RushShape = rush_shape(settings().stages)  # Locust finds the shape (None: no RUSHLAB_STAGES)

NAME = "noisy /api/orders/{id}"


class NoisyNeighbour(RushUser):
    """One client flooding the orders route, never waiting."""

    endpoints = (("GET", NAME),)  # their series exist at 0 before the first request
    fixed_count = 1
    wait_time = constant(0)
    host = ShopUser.host

    def on_start(self) -> None:
        self.orders = self.endpoint(self.settings.services.get("orders") or self.host)

    @task
    def flood(self) -> None:
        path = f"/api/orders/o-{random.randint(1, 10_000)}"
        self.send(self.orders, "GET", path, NAME, {"X-Client-Id": "noisy"})


__all__ = ["NoisyNeighbour", "RushShape", "ShopUser"]
