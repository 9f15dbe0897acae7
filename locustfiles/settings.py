"""The environment-variable contract between the harness and the Locust processes (no Locust
import: the harness and pytest use it too).

- `RUSHLAB_SERVICES`: JSON object, service name -> base URL, e.g.
  `{"auth": "http://127.0.0.1:4001", "orders": "http://127.0.0.1:4002", "payments": ...}`.
  A service left out is reached through Locust's `--host` (relative paths): point `--host` at
  a gateway and leave the variable unset.
- `RUSHLAB_HOSTS`: JSON object, name -> base URL: every base the lab knows (the gateway, each
  load balancer, each CDN edge), set by `harness up`. When set, a user sends load only to
  these and the services' URLs; any other `--host` (or Host typed in the web form) is refused
  with a message naming them (`locustfiles/hosts.py`). Unset, any loopback host is allowed.
- `RUSHLAB_STAGES`: JSON list of stages (`locustfiles/stages.py`); when set, the run follows
  them and stops by itself after the last one.
- `RUSHLAB_WAIT_S`: `MIN,MAX` seconds a user waits between tasks (default `0.5,2`).
- `RUSHLAB_TIMEOUT_S`: connect and network timeout of each request, seconds (default `10`).
- `RUSHLAB_METRICS_PORT`: loopback port of this process's own Prometheus `/metrics` server
  (headless runs, masters and workers; every process needs its own port, so Locust's own
  `--processes` forking, which shares one environment, cannot use it). In web UI mode
  `/metrics` is also on the web UI's port.
- `RUSHLAB_CONTROL_URL`: base URL of the harness control API, for the web UI's chaos page.
- `RUSHLAB_CONTROL_TOKEN_FILE`: file holding the control API's bearer token (read by the
  Locust process on each call; never sent to the browser).
- `RUSHLAB_DNS`: `HOST:PORT` of the lab's DNS server; when set, users that support it
  (`locustfiles/compare.py`) resolve service host names through it, caching each answer for
  its TTL as a real client does.
- `RUSHLAB_REGIONS`: JSON object, client region -> `[source address, share of users]`, e.g.
  `{"eu-west": ["127.101.0.1", 1], "ap-south": ["127.102.0.1", 0.5]}`: users of a region
  send from its address (`locustfiles/regions.py`; the lab's network and DNS place them by
  it, targets/http/netem.py).
- `RUSHLAB_POISON_RATE`: share (0..1) of payments whose receipt email the mail provider always
  refuses (a "poison" message: it ends in the dead-letter queue). Default 0.
- `RUSHLAB_RELEASE_FILE`: set by the scenario runner, whose verdicts need every count in
  Prometheus. The process then holds its test until Prometheus has scraped it twice (its series
  exist at 0 before the first request), and after its test stops it stays, still serving
  `/metrics`, until this file exists (at most `HOLD_MAX_S`), so the final counts are scraped.
- `RUSHLAB_START_FILE`: set by the scenario runner with the release file: the test also waits
  for this file (at most `HOLD_MAX_S`), which the runner writes once Prometheus has scraped
  every lab process twice, so every `rate()` has a value from the run's first instant.

`load_settings` reads them (raising `SettingsError` that names the variable) and `to_environ`
writes them, so both sides share one definition.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from locustfiles.hosts import HostError, canonical
from locustfiles.stages import Stage, StagesError, parse_stages, stages_to_json

SERVICES = "RUSHLAB_SERVICES"
HOSTS = "RUSHLAB_HOSTS"
STAGES = "RUSHLAB_STAGES"
WAIT_S = "RUSHLAB_WAIT_S"
TIMEOUT_S = "RUSHLAB_TIMEOUT_S"
METRICS_PORT = "RUSHLAB_METRICS_PORT"
CONTROL_URL = "RUSHLAB_CONTROL_URL"
CONTROL_TOKEN_FILE = "RUSHLAB_CONTROL_TOKEN_FILE"  # noqa: S105  (a variable name)
DNS = "RUSHLAB_DNS"
POISON_RATE = "RUSHLAB_POISON_RATE"
RELEASE_FILE = "RUSHLAB_RELEASE_FILE"
START_FILE = "RUSHLAB_START_FILE"
REGIONS = "RUSHLAB_REGIONS"
ALL = (
    SERVICES, HOSTS, STAGES, WAIT_S, TIMEOUT_S, METRICS_PORT, CONTROL_URL, CONTROL_TOKEN_FILE, DNS,
    POISON_RATE, RELEASE_FILE, START_FILE, REGIONS,
)  # fmt: skip

DEFAULT_WAIT_S = (0.5, 2.0)
DEFAULT_TIMEOUT_S = 10.0


class SettingsError(ValueError):
    """A RUSHLAB_* variable is malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    services: Mapping[str, str] = field(default_factory=dict)
    hosts: Mapping[str, str] = field(default_factory=dict)
    stages: tuple[Stage, ...] = ()
    wait_s: tuple[float, float] = DEFAULT_WAIT_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    metrics_port: int | None = None
    control_url: str | None = None
    control_token_file: str | None = None
    dns: tuple[str, int] | None = None
    poison_rate: float = 0.0
    release_file: str | None = None
    start_file: str | None = None
    regions: Mapping[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def lab_bases(self) -> dict[str, str]:
        """Every base URL of the lab a user may send to, by name (RUSHLAB_HOSTS and the
        services); `strict_hosts` says whether only these are allowed."""
        return {**self.hosts, **self.services}

    @property
    def strict_hosts(self) -> bool:
        return bool(self.hosts)


def base_url(value: Any, *, where: str) -> str:
    """`value` as the lab spells a base URL (`locustfiles/hosts.canonical`: no trailing slash);
    `SettingsError` naming `where` otherwise."""
    try:
        return canonical(value)
    except HostError as exc:
        raise SettingsError(f"{where}: {exc}") from None


def _json_object(text: str, variable: str, of: str) -> dict[str, Any]:
    """`variable`'s JSON object (`of` says what it maps, for the error)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{variable}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{variable}: expected a JSON object of {of}")
    return raw


def _bases(text: str, variable: str, of: str) -> dict[str, str]:
    raw = _json_object(text, variable, f"{of} -> base URL")
    return {str(name): base_url(url, where=f"{variable}[{name!r}]") for name, url in raw.items()}


def _regions(text: str) -> dict[str, tuple[str, float]]:
    raw = _json_object(text, REGIONS, "region -> [address, share]")
    out: dict[str, tuple[str, float]] = {}
    for region, value in raw.items():
        ok = isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
        if not ok or not isinstance(value[1], int | float) or not value[1] > 0:
            raise SettingsError(f"{REGIONS}[{region!r}]: expected [address, share > 0]")
        out[str(region)] = (value[0], float(value[1]))
    return out


def _wait(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(",")
    try:
        pair = (float(low), float(high if sep else low))
    except ValueError:
        raise SettingsError(f"{WAIT_S}: expected MIN,MAX seconds, got {text!r}") from None
    if not all(math.isfinite(x) and x >= 0 for x in pair) or pair[0] > pair[1]:
        raise SettingsError(f"{WAIT_S}: expected 0 <= MIN <= MAX, got {text!r}")
    return pair


def _positive(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}: expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name}: expected a number > 0, got {text!r}")
    return value


def _dns(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SettingsError(f"{DNS}: expected HOST:PORT of a DNS server, got {text!r}")
    return host, int(port)


def _share(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}: expected a share between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise SettingsError(f"{name}: expected a share between 0 and 1, got {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise SettingsError(f"{METRICS_PORT}: expected a port 1..65535, got {text!r}")
    return int(text)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """The settings in `environ` (usually `os.environ`); unset or empty variables keep defaults."""

    def get(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None

    stages: tuple[Stage, ...] = ()
    if (stages_text := get(STAGES)) is not None:
        try:
            stages = parse_stages(stages_text, source=STAGES)
        except StagesError as exc:
            raise SettingsError(str(exc)) from None
    services = get(SERVICES)
    hosts = get(HOSTS)
    wait = get(WAIT_S)
    timeout = get(TIMEOUT_S)
    port = get(METRICS_PORT)
    control_url = get(CONTROL_URL)
    return Settings(
        services=_bases(services, SERVICES, "service name") if services is not None else {},
        hosts=_bases(hosts, HOSTS, "name") if hosts is not None else {},
        stages=stages,
        wait_s=_wait(wait) if wait is not None else DEFAULT_WAIT_S,
        timeout_s=_positive(timeout, TIMEOUT_S) if timeout is not None else DEFAULT_TIMEOUT_S,
        metrics_port=_port(port) if port is not None else None,
        control_url=base_url(control_url, where=CONTROL_URL) if control_url else None,
        control_token_file=get(CONTROL_TOKEN_FILE),
        dns=_dns(dns) if (dns := get(DNS)) is not None else None,
        poison_rate=_share(poison, POISON_RATE) if (poison := get(POISON_RATE)) else 0.0,
        release_file=get(RELEASE_FILE),
        start_file=get(START_FILE),
        regions=_regions(regions) if (regions := get(REGIONS)) is not None else {},
    )


def to_environ(settings: Settings) -> dict[str, str]:
    """The RUSHLAB_* variables that `load_settings` reads back into `settings`."""
    env = {
        SERVICES: json.dumps(dict(settings.services)),
        WAIT_S: f"{settings.wait_s[0]!r},{settings.wait_s[1]!r}",
        TIMEOUT_S: repr(settings.timeout_s),
    }
    if settings.hosts:
        env[HOSTS] = json.dumps(dict(settings.hosts))
    if settings.stages:
        env[STAGES] = stages_to_json(settings.stages)
    if settings.metrics_port is not None:
        env[METRICS_PORT] = str(settings.metrics_port)
    if settings.control_url is not None:
        env[CONTROL_URL] = settings.control_url
    if settings.control_token_file is not None:
        env[CONTROL_TOKEN_FILE] = settings.control_token_file
    if settings.dns is not None:
        env[DNS] = f"{settings.dns[0]}:{settings.dns[1]}"
    if settings.poison_rate:
        env[POISON_RATE] = repr(settings.poison_rate)
    if settings.release_file is not None:
        env[RELEASE_FILE] = settings.release_file
    if settings.start_file is not None:
        env[START_FILE] = settings.start_file
    if settings.regions:
        env[REGIONS] = json.dumps({r: list(v) for r, v in settings.regions.items()})
    return env
