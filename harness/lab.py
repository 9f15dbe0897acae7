"""One service of the lab as real processes: a load balancer and the servers behind it.

`start_lab` boots the load balancer, then N servers, each told to register with it after boot.
`harness/components/services.py` runs one of these per service of a topology; the demo and
the end-to-end tests use one directly.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.supervisor import Child, Supervisor, free_port

if TYPE_CHECKING:
    from harness.components.services import ServiceSpec
from targets.http.client import fetch_json


@dataclass(frozen=True, slots=True)
class ServerSpec:
    service: str = "shop"
    slots: int = 8
    backlog: int = 64
    service_ms: float = 20.0
    boot_delay_s: float = 0.0
    extra: tuple[str, ...] = ()

    @classmethod
    def of(cls, name: str, spec: ServiceSpec) -> ServerSpec:
        """The server settings a topology gives service `name`."""
        t = spec.service_time
        return cls(
            service=name,
            slots=spec.capacity.slots,
            backlog=spec.capacity.backlog,
            service_ms=t.mean_ms,
            boot_delay_s=spec.boot_delay_s,
            extra=(
                f"--distribution={t.distribution}",
                f"--sigma={t.sigma}",
                f"--drain-timeout={spec.drain_timeout_s}",
                *spec.content.args(),
            ),
        )


@dataclass(slots=True)
class Lab:
    """A running load balancer and its servers."""

    supervisor: Supervisor
    lb: Child
    token: str
    token_file: Path
    servers: dict[str, Child] = field(default_factory=dict)
    default: ServerSpec = field(default_factory=ServerSpec)
    # When set, server `<service>-<n>` listens on `<ip_prefix><n>:<port>` (DNS answers name
    # servers by address alone); otherwise on 127.0.0.1 and any free port.
    ip_prefix: str | None = None
    port: int = 0
    lb_command: tuple[str, list[str]] = ("lb", [])  # its name and arguments, to start it again
    _next: int = 1

    @property
    def address(self) -> tuple[str, int]:
        return self.lb.address()

    @property
    def control(self) -> tuple[str, int]:
        return self.lb.address("control")

    async def add_server(self, spec: ServerSpec | None = None, name: str | None = None) -> Child:
        """Boot one more server; it registers itself with the load balancer once serving."""
        spec = spec or self.default
        if name is None:
            name = f"{spec.service}-{self._next}"
            self._next += 1
        host, port = self.control
        placement = []
        if self.ip_prefix is not None:
            placement = ["--listen", f"{self.host_of(name)}:{self.port}"]
        args = [
            "--service", spec.service,
            "--name", name,
            "--slots", str(spec.slots),
            "--backlog", str(spec.backlog),
            "--service-ms", str(spec.service_ms),
            "--boot-delay", str(spec.boot_delay_s),
            "--seed", str(number(name) + 1),  # each instance its own stream, restarts too
            "--lb-control", f"{host}:{port}",
            "--lb-token-file", str(self.token_file),
            "--token-file", str(self.token_file),
            *placement,
            *spec.extra,
        ]  # fmt: skip
        child = await self.supervisor.spawn(name, "server", "targets.server", args)
        self.servers[name] = child
        return child

    async def restart_lb(self, servers: dict[str, Child]) -> Child:
        """Start the load balancer again (a restart after chaos; on the ports it had when they
        were fixed at start) and register `servers` with it, as each did when it booted."""
        name, args = self.lb_command
        self.lb = await self.supervisor.spawn(name, "lb", "targets.lb", args)
        host, port = self.control
        for target, child in servers.items():
            at, on = child.address()
            body = {"id": target, "host": at, "port": on, "weight": 1}
            reply = await fetch_json(host, port, "POST", "/targets", body, headers=self._auth())
            if reply.status not in (200, 201):
                raise RuntimeError(f"{name} refused {target}: {reply.status} {reply.body[:200]!r}")
        return self.lb

    def host_of(self, name: str) -> str:
        """The loopback address server `name` (`<service>-<n>`) listens on, with `ip_prefix`."""
        n = number(name)
        if self.ip_prefix is None or not 1 <= n <= 254:
            raise ValueError(f"{name}: no address of its own (ip_prefix {self.ip_prefix!r})")
        return f"{self.ip_prefix}{n}"

    async def targets(self) -> dict[str, Any]:
        """The load balancer's view: `GET /targets` of its control API."""
        host, port = self.control
        reply = await fetch_json(host, port, "GET", "/targets", headers=self._auth())
        result: dict[str, Any] = reply.json()
        return result

    async def deregister(self, target_id: str) -> dict[str, Any]:
        host, port = self.control
        reply = await fetch_json(
            host, port, "DELETE", f"/targets/{target_id}", headers=self._auth()
        )
        result: dict[str, Any] = reply.json()
        return result

    def _auth(self) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"Bearer {self.token}".encode())]


def number(name: str) -> int:
    """n of `<group>-<n>` (0 when it has none): instances in the order they were started."""
    digits = name.rpartition("-")[2]
    return int(digits) if digits.isdigit() else 0


def write_token(run_dir: Path) -> tuple[str, Path]:
    """A fresh secret in `run_dir/control.token`, readable by this user only."""
    token = secrets.token_urlsafe(24)
    token_file = run_dir / "control.token"
    token_file.touch(mode=0o600)
    token_file.chmod(0o600)
    token_file.write_text(token)
    return token, token_file


async def start_lab(
    supervisor: Supervisor,
    servers: int = 3,
    spec: ServerSpec | None = None,
    lb_args: tuple[str, ...] = (),
    *,
    lb_name: str = "lb",
    token: tuple[str, Path] | None = None,
    ip_prefix: str | None = None,
) -> Lab:
    """A load balancer plus `servers` servers, all registered (initial state) when this returns.

    With `ip_prefix` (e.g. "127.11.0."), server n listens on `<ip_prefix><n>`, all on one port.
    """
    secret, token_file = token or write_token(supervisor.run_dir)
    args = [f"--name={lb_name}", "--token-file", str(token_file), *lb_args]
    lb = await supervisor.spawn(lb_name, "lb", "targets.lb", args)
    lab = Lab(supervisor, lb, secret, token_file, default=spec or ServerSpec())
    lab.lb_command = (lb_name, args)
    if ip_prefix is not None:
        lab.ip_prefix, lab.port = ip_prefix, free_port(f"{ip_prefix}1")
    await asyncio.gather(*(lab.add_server() for _ in range(servers)))
    return lab
