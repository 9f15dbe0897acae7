"""Starting the lab's pieces: a load balancer and the servers behind it, as real processes.

The topology file of a later issue will describe many services; for now a lab is one load
balancer with N servers, each server told to register with it after boot.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.supervisor import Child, Supervisor
from targets.http.client import fetch_json


@dataclass(frozen=True, slots=True)
class ServerSpec:
    service: str = "shop"
    slots: int = 8
    backlog: int = 64
    service_ms: float = 20.0
    boot_delay_s: float = 0.0
    extra: tuple[str, ...] = ()


@dataclass(slots=True)
class Lab:
    """A running load balancer and its servers."""

    supervisor: Supervisor
    lb: Child
    token: str
    token_file: Path
    servers: dict[str, Child] = field(default_factory=dict)
    _next: int = 1

    @property
    def address(self) -> tuple[str, int]:
        return self.lb.address()

    @property
    def control(self) -> tuple[str, int]:
        return self.lb.address("control")

    async def add_server(self, spec: ServerSpec | None = None, name: str | None = None) -> Child:
        """Boot one more server; it registers itself with the load balancer once serving."""
        spec = spec or ServerSpec()
        if name is None:
            name = f"{spec.service}-{self._next}"
            self._next += 1
        host, port = self.control
        args = [
            "--service", spec.service,
            "--instance-id", name,
            "--slots", str(spec.slots),
            "--backlog", str(spec.backlog),
            "--service-ms", str(spec.service_ms),
            "--boot-delay", str(spec.boot_delay_s),
            "--seed", str(self._next),
            "--register-with", f"{host}:{port}",
            "--lb-token-file", str(self.token_file),
            *spec.extra,
        ]  # fmt: skip
        child = await self.supervisor.spawn(name, "server", "targets.server", args)
        self.servers[name] = child
        return child

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


async def start_lab(
    supervisor: Supervisor,
    servers: int = 3,
    spec: ServerSpec | None = None,
    lb_args: tuple[str, ...] = (),
) -> Lab:
    """A load balancer plus `servers` servers, all registered (initial state) when this returns."""
    token = secrets.token_urlsafe(24)
    token_file = supervisor.run_dir / "control.token"
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    lb = await supervisor.spawn(
        "lb", "lb", "targets.lb", ["--control-token-file", str(token_file), *lb_args]
    )
    lab = Lab(supervisor, lb, token, token_file)
    for _ in range(servers):
        await lab.add_server(spec)
    return lab
