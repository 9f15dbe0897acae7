"""A lab session: `harness up` in the foreground, and how other commands find it.

`run_session` starts the topology, the control API (and, when available, Prometheus and the
Locust web UI), writes `lab.json` into the run folder and points `runs/current.json` at it,
then shows a live table until Ctrl-C or SIGTERM, and stops everything it started.
`harness status`, `chaos` and `down` read `runs/current.json` to reach the control API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.control import Controller, Grafana, control_app
from harness.locust import LocustPlan, start_locust
from harness.prometheus import LAB_RULES, Prometheus, ScrapeTarget
from harness.runtime import LabRuntime
from harness.supervisor import Supervisor, free_port
from harness.topology import Topology
from targets import asgi
from targets.http.client import fetch_json
from targets.http.upstream import UpstreamError

CURRENT = Path("runs") / "current.json"


class NoLab(Exception):
    """No running lab to talk to (never started, or stopped)."""


@dataclass(frozen=True, slots=True)
class LabInfo:
    """What `lab.json` says about a running lab."""

    run_dir: Path
    pid: int
    control: str
    token_file: Path
    urls: dict[str, str]

    @classmethod
    def read(cls, pointer: Path = CURRENT) -> LabInfo:
        try:
            data = json.loads(pointer.read_text())
            info = cls(
                Path(data["run_dir"]),
                int(data["pid"]),
                str(data["control"]),
                Path(data["token_file"]),
                dict(data["urls"]),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise NoLab(
                f"no running lab found ({pointer}: {exc}); start one with `harness up`"
            ) from None
        if not _alive(info.pid):
            raise NoLab(f"the lab in {info.run_dir} is not running (pid {info.pid} is gone)")
        return info

    def write(self, pointer: Path = CURRENT) -> None:
        data = {
            "run_dir": str(self.run_dir),
            "pid": self.pid,
            "control": self.control,
            "token_file": str(self.token_file),
            "urls": self.urls,
        }
        text = json.dumps(data, indent=2)
        (self.run_dir / "lab.json").write_text(text)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(pointer)

    async def call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        """One control API call: (status, JSON body)."""
        host, _, port = self.control.rpartition(":")
        token = self.token_file.read_text().strip()
        try:
            reply = await fetch_json(
                host,
                int(port),
                method,
                path,
                payload,
                headers=[(b"authorization", f"Bearer {token}".encode())],
                timeout_s=60,
            )
        except UpstreamError as exc:
            raise NoLab(f"the lab's control API at {self.control} does not answer: {exc}") from None
        return reply.status, reply.json()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


Extra = Callable[[LabRuntime, dict[str, str]], Awaitable[None]]


def with_locust(workers: int, swarm_limit_s: float) -> Extra:
    """The Locust web UI (with `workers` worker processes), its chaos page and exporters."""

    async def start(lab: LabRuntime, urls: dict[str, str]) -> None:
        plan = LocustPlan(
            services={
                name: "http://{}:{}".format(*service.pool.address)
                for name, service in lab.services.items()
            },
            headless=False,
            run_time_s=swarm_limit_s,
            workers=workers,
            control_url=urls["control"].removesuffix("/docs"),
            control_token_file=lab.token_file,
        )
        handles = await start_locust(lab.supervisor, plan, lab.run_dir)
        for name, (host, port) in handles.metrics.items():
            lab.extra_targets.append(
                ScrapeTarget(
                    f"{host}:{port}", {"service": "load", "role": "locust", "instance": name}
                )
            )
        lab.notify()
        urls["locust"] = f"{handles.web_url}/"
        urls["chaos page"] = f"{handles.web_url}/chaos"

    return start


async def with_prometheus(lab: LabRuntime, urls: dict[str, str]) -> None:
    """Prometheus scraping every process of the lab, its targets kept in step with chaos."""
    prometheus = Prometheus(lab.run_dir, free_port())
    prometheus.write_config([LAB_RULES])
    prometheus.set_targets(lab.scrape_targets())
    lab.listeners.append(lambda: prometheus.set_targets(lab.scrape_targets()))
    await prometheus.start(lab.supervisor)
    urls["prometheus"] = prometheus.url


async def run_session(
    topology: Topology,
    run_dir: Path,
    *,
    on_ready: Callable[[LabInfo], None],
    render: Callable[[Table], None] | None = None,
    extras: list[Extra] | None = None,
    control_port: int = 0,
    grafana: Grafana | None = None,
) -> None:
    """Run the lab until SIGINT/SIGTERM; `extras` start optional parts (Prometheus, Locust)."""
    async with Supervisor(run_dir) as supervisor:
        lab = LabRuntime(topology, supervisor)
        await lab.start()
        await lab.wait_healthy()
        controller = Controller(lab, grafana)
        control = await asgi.start(control_app(controller), "127.0.0.1", control_port)
        lab.extra_targets.append(
            ScrapeTarget(f"127.0.0.1:{control.port}", {"service": "lab", "role": "harness"})
        )
        urls = {"control": f"http://127.0.0.1:{control.port}/docs"}
        for name, service in lab.services.items():
            host, port = service.pool.address
            urls[f"{name} (load balancer)"] = f"http://{host}:{port}/"
        for extra in extras or []:
            await extra(lab, urls)
        if grafana is not None:
            urls["grafana"] = grafana.url
        info = LabInfo(run_dir, os.getpid(), f"127.0.0.1:{control.port}", lab.token_file, urls)
        info.write()
        on_ready(info)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            while not stop.is_set():
                if render is not None:
                    render(status_table(await lab.status()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            await control.stop()


def status_table(status: dict[str, Any]) -> Table:
    """Every instance of every service: state, the load balancer's view, requests in flight."""
    table = Table(title="lab", title_justify="left")
    for column in (
        "service",
        "instance",
        "role",
        "pid",
        "address",
        "state",
        "lb view",
        "in flight",
    ):
        table.add_column(column)
    for name, service in status["services"].items():
        lb = service["lb"]
        table.add_row(
            name, lb["name"], "lb", str(lb["pid"]), lb["address"], lb["state"],
            f"{lb['routable']} routable", "",
        )  # fmt: skip
        for i in service["instances"]:
            style = {"running": "", "paused": "yellow"}.get(i["state"], "red")
            table.add_row(
                "", i["name"], i["role"], str(i["pid"]), i["address"] or "",
                f"[{style}]{i['state']}[/]" if style else i["state"],
                i["target"], str(i["in_flight"]),
            )  # fmt: skip
    return table
