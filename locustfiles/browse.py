"""Side by side: shoppers browsing the shop's content through each CDN edge, and at the origin.

For `chaos/scenarios/origin-down.yaml`: RUSHLAB_SERVICES names each edge and, as `origin`, the
API gateway behind them; each gets its own user class, users split evenly. A user reads the
hot first page of the catalogue, another page, a product image, and now and then their own
account page (a `user` cookie of their own; `private, no-store`, so an edge forwards it every
time). Requests are named `<side> <route>`: `edge-a /api/catalogue/{page}`. A user who gets
somebody else's account page fails the request ("another user's page"): what a cache that
stores private pages does.
"""

from __future__ import annotations

import random

from locust import task

from locustfiles.common import RushUser, rush_shape, settings
from locustfiles.settings import SERVICES, SettingsError

PAGES = 20  # targets/server/content.py
PRODUCTS = PAGES * 12


ROUTES = ("/api/catalogue/1", "/api/catalogue/{page}", "/images/{product}", "/api/account")


def browser_for(side: str, base_url: str) -> type[RushUser]:
    class Browser(RushUser):
        endpoints = tuple(("GET", f"{side} {route}") for route in ROUTES)
        host = base_url

        def on_start(self) -> None:
            self.base = self.endpoint(base_url)
            self.user = f"u{random.getrandbits(48):012x}"  # a customer of their own

        def read(self, path: str, route: str) -> None:
            self.send(self.base, "GET", path, f"{side} {route}")

        @task(6)
        def hot_page(self) -> None:
            self.read("/api/catalogue/1", "/api/catalogue/1")

        @task(3)
        def page(self) -> None:
            self.read(f"/api/catalogue/{random.randint(2, PAGES)}", "/api/catalogue/{page}")

        @task(2)
        def image(self) -> None:
            self.read(f"/images/p{random.randint(1, PRODUCTS)}", "/images/{product}")

        @task(1)
        def account(self) -> None:
            cookie = {"cookie": f"user={self.user}"}
            name = f"{side} /api/account"
            answer = self.send(self.base, "GET", "/api/account", name, cookie, catch_response=True)
            if answer is None:  # the name did not resolve: counted as failed already
                return
            with answer as reply:
                if reply.status_code == 200 and reply.json().get("user") != self.user:
                    reply.failure("another user's account page")

    Browser.__name__ = Browser.__qualname__ = (
        "".join(part.title() for part in side.split("-")) + "Browser"
    )
    return Browser


services = settings().services
if not services:
    raise SettingsError(f"{SERVICES}: names no edge to browse through")

RushShape = rush_shape(settings().stages)  # Locust finds the shape (None: no RUSHLAB_STAGES)

# Locust collects the user classes from the module's globals: one name each.
globals().update({cls.__name__: cls for cls in map(browser_for, services, services.values())})
