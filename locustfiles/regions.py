"""Readers of the shop's catalogue in every client region, each at its nearest CDN edge.

For the region scenarios (`chaos/scenarios/cold-vs-warm-by-region.yaml`, `edge-failover`):
RUSHLAB_REGIONS gives each client region its source address and share of the users, one
user class per region. A user sends everything from its region's address: its DNS queries
(so the lab's latency routing answers the edge nearest that region, kept for the record's
TTL) and its HTTP requests (so the edge and the origin hold each request for the round trip
from that region: targets/http/netem.py). It reads random catalogue pages through
RUSHLAB_SERVICES' `cdn` (`http://cdn.lab:PORT`), named `<region> catalogue`: Locust's stats
and `locust_requests_total{name}` show each region apart.
"""

from __future__ import annotations

import random
from typing import Any

from geventhttpclient.client import HTTPClientPool
from geventhttpclient.url import URL
from locust import task

from locustfiles.common import RushUser, rush_shape, settings
from locustfiles.settings import REGIONS, SERVICES, SettingsError
from targets.server.content import PAGES

LABEL = "catalogue"


class BoundPool(HTTPClientPool):
    """Locust's per-user client pool, every connection sent from `source` (the region's
    address): a geventhttpclient pool binds no source of its own."""

    def __init__(self, source: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.source = source

    def get_client(self, url: Any) -> Any:
        url = url if isinstance(url, URL) else URL(url)
        new = (url.host, url.port) not in self.clients
        client = super().get_client(url)
        if new:
            pool = client._connection_pool
            create = pool._create_tcp_socket

            def bound(*args: Any) -> Any:
                sock = create(*args)
                sock.bind((self.source, 0))
                return sock

            pool._create_tcp_socket = bound
        return client


def user_in(region: str, source: str, share: float, base_url: str) -> type[RushUser]:
    name = f"{region} {LABEL}"

    class RegionUser(RushUser):
        endpoints = (("GET", name),)
        host = base_url
        weight = max(1, round(share * 10))

        def on_start(self) -> None:
            agent = self.client.client
            agent.clientpool = BoundPool(source, **agent.clientpool.client_args)
            self.base = self.endpoint(base_url, source)

        @task
        def read(self) -> None:
            page = random.randint(1, PAGES)
            self.send(self.base, "GET", f"/api/catalogue/{page}", name)

    RegionUser.__name__ = RegionUser.__qualname__ = (
        "".join(part.title() for part in region.split("-")) + "User"
    )
    return RegionUser


def region_users() -> dict[str, type[RushUser]]:
    found = settings()
    if not found.regions:
        raise SettingsError(f"{REGIONS}: names no client region")
    base = found.services.get("cdn")
    if base is None:
        raise SettingsError(f"{SERVICES}: needs 'cdn', the name of the nearest edge")
    users = [user_in(r, ip, share, base) for r, (ip, share) in found.regions.items()]
    return {cls.__name__: cls for cls in users}


RushShape = rush_shape(settings().stages)  # Locust finds the shape (None: no RUSHLAB_STAGES)

# Locust collects the user classes from the module's globals: one name each.
globals().update(region_users())
