"""What every locustfile of the lab shares: its settings, the stage shape, the users' base class.

Locust loads a locustfile from the repository root (`locust -f locustfiles/shop.py`, as the
harness, the image and the README run it) and puts its working directory on `sys.path`, so a
locustfile imports `locustfiles.*` and `targets.*` with no path bootstrap of its own (the
harness and the image set PYTHONPATH as well). Importing this module loads the plugin (the
Prometheus exporter and the chaos page).

No settings live in a module global: `settings()` reads the RUSHLAB_* variables whenever
something needs them and raises `SettingsError` naming a malformed one. A locustfile calls it
as Locust loads it (whether there is a shape, and which user classes, depend on them); each
`RushUser` reads its own as it is created (waits, timeouts, the DNS server, the poison rate).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from locust import FastHttpUser, LoadTestShape
from locust.env import Environment

from locustfiles import plugin  # noqa: F401  (the exporter and chaos page listeners)
from locustfiles.hosts import HostRefused, allowed, join
from locustfiles.settings import Settings, load_settings
from locustfiles.stages import Stage, tick
from targets.dns.client import CachingResolver, ResolveError

log = logging.getLogger(__name__)


def settings() -> Settings:
    """This process's RUSHLAB_* settings, read from the environment now."""
    return load_settings(os.environ)


def rush_shape(stages: Sequence[Stage]) -> type[LoadTestShape] | None:
    """The shape that runs `stages` back to back, for a locustfile to bind as `RushShape`;
    None without stages (the web UI or the command line then set users and spawn rate)."""
    if not stages:
        return None
    run = tuple(stages)

    class RushShape(LoadTestShape):
        """The stages of RUSHLAB_STAGES, back to back; None after the last ends the run."""

        def tick(self) -> tuple[int, float] | None:
            return tick(run, self.get_run_time())

    return RushShape


def default_host(services: Mapping[str, str]) -> str | None:
    """A user class's `host` before --host: the orders service, else the first service."""
    return services.get("orders") or next(iter(services.values()), None)


class RushUser(FastHttpUser):
    """A FastHttpUser of the lab: waits between tasks (RUSHLAB_WAIT_S) and times out requests
    (RUSHLAB_TIMEOUT_S) by the settings it reads as it is created (`self.settings`)."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        self.settings = settings()
        self.connection_timeout = self.network_timeout = self.settings.timeout_s
        super().__init__(environment)

    def wait_time(self) -> float:
        low, high = self.settings.wait_s
        return random.uniform(low, high)

    def endpoint(self, base_url: str | None, source: str | None = None) -> Endpoint:
        """`base_url` (any form a person types: `locustfiles/hosts.py`) as this user reaches
        it, from `source` when given (a region's address), by the lab's DNS when RUSHLAB_DNS
        is set. A base the lab refuses (not loopback; with RUSHLAB_HOSTS, not the lab's) is
        logged, and every request to it is a failure saying why."""
        return Endpoint(base_url, self.settings, source)

    def send(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        name: str,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """One request for `path` of `endpoint`, named `name` (the route, never one name per
        id). A name that does not resolve, or a refused host, is a failed request: None."""
        try:
            url, extra = endpoint.url(path)
        except (ResolveError, HostRefused) as exc:
            self.environment.events.request.fire(
                request_type=method,
                name=name,
                response_time=0,
                response_length=0,
                exception=exc,
                context={},
            )
            return None
        return self.client.request(
            method, url, name=name, headers={**(headers or {}), **extra}, **kwargs
        )

    def poison(self) -> dict[str, Any]:
        """Fields for a payment body: `{"poison": true}` for RUSHLAB_POISON_RATE of payments
        (a receipt the mail provider always refuses), else nothing."""
        rate = self.settings.poison_rate
        return {"poison": True} if rate and random.random() < rate else {}


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


class Endpoint:
    """A base URL as one user reaches it.

    The base is checked and spelled once (`hosts.allowed`); a refused one is kept as the
    refusal, raised by every `url`. With `settings.dns` (RUSHLAB_DNS) and a host name in the
    URL (`http://shop.lab:4001`), the user resolves it through that DNS server and keeps the
    answer for its TTL (one cache per user, like a browser), then connects to that address
    with the name in `Host`; queries come from `source` when given (a region's address).
    Otherwise the URL as is.
    """

    def __init__(self, base_url: str | None, settings: Settings, source: str | None = None) -> None:
        self.refused: HostRefused | None = None
        try:
            self.base_url = allowed(base_url, settings.lab_bases, strict=settings.strict_hosts)
        except HostRefused as exc:
            log.error("%s", exc)
            self.refused, self.base_url = exc, ""
        parts = urlsplit(self.base_url)
        self.scheme, self.netloc, self.prefix = parts.scheme, parts.netloc, parts.path
        self.hostname, self.port = parts.hostname or "", parts.port
        dns = settings.dns
        by_name = dns is not None and _is_name(self.hostname)
        self.resolver = CachingResolver(dns, source=source) if dns and by_name else None

    def url(self, path: str) -> tuple[str, dict[str, str]]:
        """The absolute URL for `path` and the headers it needs; HostRefused for a refused
        base, ResolveError when the name does not resolve."""
        if self.refused is not None:
            raise self.refused
        if self.resolver is None:
            return join(self.base_url, path), {}
        address = self.resolver.resolve(self.hostname)
        port = f":{self.port}" if self.port else ""
        return join(f"{self.scheme}://{address}{port}{self.prefix}", path), {"Host": self.netloc}
