"""The shop's users: the locustfile the harness runs (`locust -f locustfiles/shop.py`).

Configuration comes from RUSHLAB_* environment variables (`locustfiles/settings.py` lists
them); the harness (`harness/locust.py`) sets them. By hand, from the repo root:

    RUSHLAB_SERVICES='{"auth": "http://127.0.0.1:4001", "orders": "http://127.0.0.1:4002",
                       "payments": "http://127.0.0.1:4003"}' \\
    RUSHLAB_METRICS_PORT=9646 .venv/bin/locust -f locustfiles/shop.py --web-host 127.0.0.1

One user, one HTTP client, three services. Every request is an absolute URL, its base joined
with its path by `locustfiles/hosts.py` (whatever form `--host` or the web form's Host field
takes: `http://127.0.0.1:8080/`, `127.0.0.1:8080`, `http://localhost:8080`; a host the lab
does not send to is refused, each request a failure saying why), and Locust's geventhttpclient
pool keeps separate keep-alive connections per host, so a single `FastHttpUser` can call the auth,
orders and payments load balancers directly, the way one browser session of a real customer
calls every service. (One user class per service would split one customer into three unrelated
users; a `FastHttpSession` per service would duplicate the cookie jar and pool bookkeeping.) A
service missing from RUSHLAB_SERVICES is called at `--host`, so pointing `--host` at a gateway
and leaving RUSHLAB_SERVICES unset sends everything through the gateway.

Requests are named by route (`/api/orders/{id}`, never one name per id), so Locust's stats and
the Prometheus labels stay bounded. The task mix, per customer: browse the order list often, open
one order, check the session token, log in again now and then, place an order and pay for it.

When RUSHLAB_STAGES is set, `RushShape` (`locustfiles/common.rush_shape`) drives the users
through those stages and the run stops by itself after the last one (a headless process then
exits); otherwise the users and spawn rate come from the command line or the web UI.
"""

from __future__ import annotations

import random
import secrets
from collections import deque
from typing import Any

from locust import task

from locustfiles.common import RushUser, default_host, rush_shape, settings

RushShape = rush_shape(settings().stages)  # Locust finds the shape (None: no RUSHLAB_STAGES)


def _json(response: Any) -> dict[str, Any]:
    """The reply's JSON object, or {} for a failed request or another body."""
    if not 200 <= getattr(response, "status_code", 0) < 300:
        return {}
    try:
        data = response.json()
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


class ShopUser(RushUser):
    """A customer of the shop. Every request carries `X-Client-Id: <customer>`, the key a
    gateway's per-client rate limits count by."""

    endpoints = (  # (method, name) of every request below: their series exist at 0 from the start
        ("POST", "/api/auth/login"),
        ("GET", "/api/auth/verify"),
        ("GET", "/api/orders"),
        ("GET", "/api/orders/{id}"),
        ("POST", "/api/orders"),
        ("POST", "/api/payments"),
        ("GET", "/api/payments/{id}"),
    )
    host = default_host(settings().services)  # before --host, which Locust sets here

    def on_start(self) -> None:
        # unique across users and Locust worker processes, without a shared counter
        self.customer = f"customer-{secrets.token_hex(4)}"
        self.token: str | None = None
        self.orders: deque[str] = deque(maxlen=20)
        self.payments: deque[str] = deque(maxlen=20)
        # A service missing from RUSHLAB_SERVICES is reached through --host (the gateway).
        self.bases = {
            service: self.endpoint(url)
            for service, url in {"": self.host, **self.settings.services}.items()
        }
        self.login()

    def call(self, method: str, service: str, path: str, name: str, **kwargs: Any) -> Any:
        """One request to `service` (through its own URL, else --host), named by route."""
        headers = {"X-Client-Id": self.customer}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        endpoint = self.bases.get(service) or self.bases[""]
        return self.send(endpoint, method, path, name, headers, **kwargs)

    @task(1)
    def login(self) -> None:
        reply = self.call(
            "POST", "auth", "/api/auth/login", "/api/auth/login", json={"user": self.customer}
        )
        self.token = _json(reply).get("token") or self.token

    @task(2)
    def verify(self) -> None:
        self.call("GET", "auth", "/api/auth/verify", "/api/auth/verify")

    @task(6)
    def browse_orders(self) -> None:
        reply = self.call("GET", "orders", "/api/orders", "/api/orders")
        for order in _json(reply).get("orders", []):
            if isinstance(order, dict) and isinstance(order.get("id"), str):
                self.orders.append(order["id"])

    @task(4)
    def view_order(self) -> None:
        order = random.choice(self.orders) if self.orders else f"o-{random.randint(1, 10_000)}"
        self.call("GET", "orders", f"/api/orders/{order}", "/api/orders/{id}")

    @task(2)
    def checkout(self) -> None:
        items = [f"sku-{random.randint(1, 500)}" for _ in range(random.randint(1, 4))]
        reply = self.call("POST", "orders", "/api/orders", "/api/orders", json={"items": items})
        order = _json(reply).get("id")
        if not isinstance(order, str):
            return  # no order, nothing to pay
        self.orders.append(order)
        paid = self.call(
            "POST",
            "payments",
            "/api/payments",
            "/api/payments",
            json={"order": order, **_payment_details(), **self.poison()},
        )
        payment = _json(paid).get("id")
        if isinstance(payment, str):
            self.payments.append(payment)

    @task(1)
    def view_payment(self) -> None:
        if not self.payments:
            return
        payment = random.choice(self.payments)
        self.call("GET", "payments", f"/api/payments/{payment}", "/api/payments/{id}")


TIERS = ("standard", "standard", "standard", "gold")  # one customer in four is gold
CURRENCIES = ("EUR", "EUR", "USD", "GBP")


def _payment_details() -> dict[str, Any]:
    """What a PaymentCompleted event carries (its message attributes): an amount from a
    long-tailed mix (median about 90; about one in thirteen above 1000, which the fraud-check
    filter lets through), a currency and the customer's tier."""
    amount = round(min(random.lognormvariate(4.5, 1.7), 50_000.0), 2)
    return {"amount": amount, "currency": random.choice(CURRENCIES), "tier": random.choice(TIERS)}
