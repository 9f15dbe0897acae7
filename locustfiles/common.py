"""What every locustfile of the lab shares: its settings and the stage shape.

Imported by a locustfile after it has put the repository root on `sys.path`. Importing it also
loads the plugin (the Prometheus exporter and the chaos page).
"""

from __future__ import annotations

import ipaddress
import os
import random
import sys
from typing import Any
from urllib.parse import urlsplit

from locust import LoadTestShape, User

from locustfiles import plugin  # noqa: F401  (the exporter and chaos page listeners)
from locustfiles.settings import SettingsError, load_settings
from locustfiles.stages import tick
from targets.dns.client import CachingResolver, ResolveError

try:
    SETTINGS = load_settings(os.environ)
except SettingsError as exc:
    sys.exit(f"error: {exc}")


class _Stages(LoadTestShape):
    """The stages of RUSHLAB_STAGES, back to back; None after the last ends the run."""

    abstract = True  # Locust skips abstract shapes; `RushShape` below is the concrete one
    stages = SETTINGS.stages

    def tick(self) -> tuple[int, float] | None:
        return tick(self.stages, self.get_run_time())


# A locustfile re-exports `RushShape`; with no stages it is None and the web UI or the
# command line sets users and spawn rate.
RushShape = type("RushShape", (_Stages,), {"abstract": False}) if SETTINGS.stages else None


def poison() -> dict[str, Any]:
    """Fields for a payment body: `{"poison": true}` for RUSHLAB_POISON_RATE of payments (a
    receipt the mail provider always refuses), else nothing."""
    if SETTINGS.poison_rate and random.random() < SETTINGS.poison_rate:
        return {"poison": True}
    return {}


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


class Endpoint:
    """A base URL as one user reaches it.

    With RUSHLAB_DNS set and a host name in the URL (`http://shop.lab:4001`), the user resolves
    it through the lab's DNS server and keeps the answer for its TTL (one cache per user, like a
    browser), then connects to that address with the name in `Host`. Otherwise the URL as is.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self.scheme, self.netloc = parts.scheme, parts.netloc
        self.hostname, self.port = parts.hostname or "", parts.port
        by_name = SETTINGS.dns is not None and _is_name(self.hostname)
        self.resolver = CachingResolver(SETTINGS.dns) if by_name and SETTINGS.dns else None

    def url(self, path: str) -> tuple[str, dict[str, str]]:
        """The absolute URL for `path` and the headers it needs; ResolveError when the name
        does not resolve."""
        if self.resolver is None:
            return self.base_url + path, {}
        address = self.resolver.resolve(self.hostname)
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{address}{port}{path}", {"Host": self.netloc}


def resolve_failed(user: User, method: str, name: str, error: ResolveError) -> None:
    """A name that did not resolve is a failed request, as the client sees it."""
    user.environment.events.request.fire(
        request_type=method,
        name=name,
        response_time=0,
        response_length=0,
        exception=error,
        context={},
    )
