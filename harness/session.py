"""A lab session: `harness up` in the foreground, and how other commands find it.

`run_session` starts the topology, the control API (and, when available, Prometheus and the
Locust web UI), writes `lab.json` into the run folder and points `runs/current.json` at it,
then shows a live table until Ctrl-C or SIGTERM, and stops everything it started.
`harness status`, `chaos` and `down` reach it through `runs/current.json` (harness/labinfo.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.table import Table

from dashboards.grafana import provision
from harness.components.entry import entry_points, known_hosts
from harness.control import Controller, Grafana, control_app
from harness.labinfo import LabInfo, status_table
from harness.locust import LocustPlan, start_locust
from harness.runtime import LabRuntime
from harness.supervisor import Supervisor
from harness.topology import Topology
from targets import asgi

Extra = Callable[[LabRuntime, dict[str, str]], Awaitable[None]]


def with_locust(workers: int, swarm_limit_s: float) -> Extra:
    """The Locust web UI (with `workers` worker processes), its chaos page and exporters."""

    async def start(lab: LabRuntime, urls: dict[str, str]) -> None:
        services, host = entry_points(lab)
        plan = LocustPlan(
            services=services,
            host=host,
            hosts=known_hosts(lab),
            headless=False,
            run_time_s=swarm_limit_s,
            workers=workers,
            control_url=urls["control"].removesuffix("/docs"),
            control_token_file=lab.token_file,
        )
        handles = await start_locust(lab.supervisor, plan, lab.run_dir)
        for name, (host, port) in handles.metrics.items():
            lab.scrape(f"{host}:{port}", service="load", role="locust", instance=name)
        lab.notify()
        urls["locust"] = f"{handles.web_url}"
        urls["chaos page"] = f"{handles.web_url}/chaos"

    return start


def map_url(control: str, token: str) -> str:
    """The live map's address (the token in the fragment: the browser never sends it on)."""
    return f"http://{control}/map#token={token}"


async def with_prometheus(lab: LabRuntime, urls: dict[str, str]) -> None:
    """Prometheus scraping every process of the lab, its targets kept in step with chaos."""
    urls["prometheus"] = (await lab.start_prometheus()).url


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
        lab.scrape(f"127.0.0.1:{control.port}", role="harness", instance="harness")
        await lab.start_autoscalers(("127.0.0.1", control.port))
        urls = {
            "control": f"http://127.0.0.1:{control.port}/docs",
            "map": map_url(f"127.0.0.1:{control.port}", lab.token),
        }
        urls |= lab.urls()
        for extra in extras or []:
            await extra(lab, urls)
        if grafana is not None:
            urls["grafana"] = grafana.url
            if "prometheus" in urls:  # the data source and every dashboard, on this lab
                urls |= await provision(grafana.url, grafana.token, urls["prometheus"])
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
