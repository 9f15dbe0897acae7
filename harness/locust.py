"""Locust as a child process of the harness: its command lines, its environment, its start-up.

The harness never imports locust (gevent's monkey-patching breaks asyncio): it builds command
lines for `python -m locust -f locustfiles/shop.py ...` and starts them through the
`Supervisor`, which waits for an HTTP 200 from each process before going on. The locustfile
learns where the shop is from RUSHLAB_* environment variables (`locustfiles/settings.py`), which
are set for the child only, by running it through `env VAR=value ... python -m locust ...`
(`Supervisor.spawn_program` takes an argument list, no environment).

Modes (`LocustPlan`):
- one process (`workers=0`) or a master with N workers (`--master --expect-workers N` plus N
  `--worker` processes, on a loopback master port);
- headless (bounded: `--run-time`, or the stages' shape that ends the run by itself) or with the
  web UI (always `--web-host 127.0.0.1`);
- every process exports Prometheus metrics on a loopback port of its own (`metrics` of the
  handles: the main process and each worker); in web UI mode the main process also serves
  `/metrics` and the chaos page (`/chaos`) on the web UI's port.
Reports land in the run folder: `locust_stats.csv` (and friends, `--csv`), `locust.html` and
`locust.json`, written by the main process when it exits.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.supervisor import ROOT, Child, Supervisor, free_port
from locustfiles.settings import Settings, base_url, to_environ
from locustfiles.stages import Stage, total_duration

LOCUSTFILE = ROOT / "locustfiles" / "shop.py"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class LocustPlan:
    """What Locust run to start. Ports left at 0 are picked free on loopback at start."""

    services: Mapping[str, str]
    """Service name -> base URL of its load balancer, e.g. http://127.0.0.1:4001."""
    host: str | None = None
    """Locust's --host: where the services left out of `services` are (the API gateway),
    passed as given (the users spell it: `locustfiles/hosts.py`)."""
    hosts: Mapping[str, str] = field(default_factory=dict)
    """Every base URL of the lab by name (RUSHLAB_HOSTS, `host` among them); when given, the
    users send only to these and `services`, and refuse any other host with the reason (one
    typed in the web UI's Host field, say)."""
    stages: tuple[Stage, ...] = ()
    """When given, the run follows them and stops after the last (users/spawn_rate/run_time
    are then unused)."""
    users: int = 10
    spawn_rate: float = 5.0
    run_time_s: float | None = None
    """Headless runs without stages need it; with the web UI it bounds each started swarm."""
    headless: bool = True
    web_port: int = 0
    metrics_port: int = 0
    """The main process's (single process or master) metrics port."""
    worker_metrics_ports: tuple[int, ...] = ()
    """One per worker; missing or 0 entries are picked free."""
    workers: int = 0
    master_port: int = 0
    wait_s: tuple[float, float] = (0.5, 2.0)
    timeout_s: float = 10.0
    control_url: str | None = None
    control_token_file: Path | None = None
    dns: tuple[str, int] | None = None
    """The lab's DNS server, for users that resolve service names (RUSHLAB_DNS)."""
    poison_rate: float = 0.0
    regions: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    """Share of payments whose receipt email always fails (RUSHLAB_POISON_RATE)."""
    release_file: Path | None = None
    """When set, each process holds its test for Prometheus's first scrapes and stays after it
    until this file exists (RUSHLAB_RELEASE_FILE): the scenario runner's final scrape."""
    start_file: Path | None = None
    """With `release_file`: the test also waits for this file (RUSHLAB_START_FILE), which the
    runner writes once every scrape target has been scraped twice."""
    locustfile: Path = LOCUSTFILE
    report_name: str | None = "locust"
    """Prefix of the csv/html/json reports in the run folder; None writes none."""
    exit_code_on_error: int = 0
    """Locust exits 1 when any request failed; under chaos failures are the point, so 0."""
    expect_workers_max_wait_s: int = 30
    loglevel: str = "INFO"
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, url in self.services.items():
            base_url(url, where=f"services[{name!r}]")
        for name, url in self.hosts.items():
            base_url(url, where=f"hosts[{name!r}]")
        if self.host is not None:
            base_url(self.host, where="host")
        if self.headless and not self.stages and self.run_time_s is None:
            raise ValueError("a headless run must be bounded: give stages or run_time_s")
        if self.run_time_s is not None and not (
            math.isfinite(self.run_time_s) and self.run_time_s > 0
        ):
            raise ValueError(f"run_time_s must be > 0, got {self.run_time_s!r}")
        if self.users < 0 or not (math.isfinite(self.spawn_rate) and self.spawn_rate > 0):
            raise ValueError("users must be >= 0 and spawn_rate > 0")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if len(self.worker_metrics_ports) > self.workers:
            raise ValueError("more worker_metrics_ports than workers")
        if (self.control_url is None) != (self.control_token_file is None):
            raise ValueError("control_url and control_token_file go together")

    @property
    def bound_s(self) -> float | None:
        """How long a started run lasts at most (stages, else run_time_s), if bounded."""
        return total_duration(self.stages) if self.stages else self.run_time_s


@dataclass(frozen=True, slots=True)
class LocustPorts:
    web: int
    metrics: int
    master: int
    workers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LocustCommand:
    """One Locust process to start: its name, its argv (env included), what answers when up."""

    name: str
    role: str
    argv: list[str]
    ready_url: tuple[str, int, str]
    metrics: tuple[str, int]
    """Where its `/metrics` is served."""


@dataclass(frozen=True, slots=True)
class LocustReports:
    csv_prefix: Path
    html: Path
    json: Path

    @property
    def stats_csv(self) -> Path:
        return self.csv_prefix.with_name(self.csv_prefix.name + "_stats.csv")


@dataclass(slots=True)
class LocustHandles:
    """The running Locust processes."""

    main: Child
    """The single process, or the master."""
    workers: list[Child] = field(default_factory=list)
    web_url: str | None = None
    """`http://127.0.0.1:<port>` of the web UI (None when headless)."""
    metrics: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Process name -> (host, port) serving `/metrics` (main process first, then workers)."""
    reports: LocustReports | None = None

    @property
    def children(self) -> list[Child]:
        return [self.main, *self.workers]

    async def wait(self, timeout_s: float) -> int:
        """Wait for every process to exit by itself; the main process's exit code.

        `TimeoutError` when they have not within `timeout_s` (they keep running)."""
        async with asyncio.timeout(timeout_s):
            code = await self.main.process.wait()
            for worker in self.workers:
                await worker.process.wait()
        return code

    async def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM the main process (it writes its reports and tells workers to quit), then
        stop any worker left. The main process's exit code."""
        code = await self.main.stop(timeout_s)
        await asyncio.gather(*(w.stop(timeout_s) for w in self.workers))
        return code


def resolve_ports(plan: LocustPlan) -> LocustPorts:
    """The plan's ports with every 0 replaced by a free loopback port."""
    taken: set[int] = set()

    def pick(port: int) -> int:
        while port == 0 or port in taken:
            port = free_port()
        taken.add(port)
        return port

    given = [*plan.worker_metrics_ports, *[0] * (plan.workers - len(plan.worker_metrics_ports))]
    return LocustPorts(
        web=pick(plan.web_port),
        metrics=pick(plan.metrics_port),
        master=pick(plan.master_port),
        workers=tuple(pick(p) for p in given),
    )


def reports_for(plan: LocustPlan, run_dir: Path) -> LocustReports | None:
    if plan.report_name is None:
        return None
    stem = run_dir.absolute() / plan.report_name  # the children run in the repository root
    return LocustReports(
        stem, stem.with_name(stem.name + ".html"), stem.with_name(stem.name + ".json")
    )


def _env_argv(env: Mapping[str, str]) -> list[str]:
    """`env K=V ... python -m locust`: the variables are set for this child only."""
    return [shutil.which("env") or "/usr/bin/env", *(f"{k}={v}" for k, v in env.items())]


def build_commands(plan: LocustPlan, run_dir: Path, ports: LocustPorts) -> list[LocustCommand]:
    """The main process first, then the workers (start them in that order)."""
    settings = Settings(
        services=dict(plan.services),
        hosts={name: base_url(url, where=name) for name, url in plan.hosts.items()},
        stages=plan.stages,
        wait_s=plan.wait_s,
        timeout_s=plan.timeout_s,
        control_url=plan.control_url,
        control_token_file=(
            str(plan.control_token_file.absolute()) if plan.control_token_file else None
        ),
        dns=plan.dns,
        poison_rate=plan.poison_rate,
        regions=plan.regions,
        release_file=str(plan.release_file.absolute()) if plan.release_file else None,
        start_file=str(plan.start_file.absolute()) if plan.start_file else None,
    )
    locust = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(plan.locustfile),
        *(("--host", plan.host) if plan.host else ()),
        "--loglevel",
        plan.loglevel,
    ]
    web = ["--web-host", LOOPBACK, "--web-port", str(ports.web)]

    main_env = to_environ(_with_port(settings, ports.metrics))
    main = [*_env_argv(main_env), *locust, *web]
    if plan.headless:
        main += ["--headless", "--only-summary"]
    if not plan.stages:
        main += ["--users", str(plan.users), "--spawn-rate", f"{plan.spawn_rate!r}"]
        if plan.run_time_s is not None:
            main += ["--run-time", f"{math.ceil(plan.run_time_s)}s"]
    reports = reports_for(plan, run_dir)
    if reports is not None:
        main += ["--csv", str(reports.csv_prefix), "--html", str(reports.html)]
        main += ["--json-file", str(reports.csv_prefix)]  # Locust appends ".json" itself
    main += ["--exit-code-on-error", str(plan.exit_code_on_error)]
    if plan.workers:
        main += ["--master", "--master-bind-host", LOOPBACK]
        main += ["--master-bind-port", str(ports.master)]
        main += ["--expect-workers", str(plan.workers)]
        main += ["--expect-workers-max-wait", str(plan.expect_workers_max_wait_s)]
    main += list(plan.extra_args)

    if plan.headless:
        ready: tuple[str, int, str] = (LOOPBACK, ports.metrics, "/health")
    else:
        ready = (LOOPBACK, ports.web, "/")
    name = "locust-master" if plan.workers else "locust"
    commands = [LocustCommand(name, name, main, ready, (LOOPBACK, ports.metrics))]
    for index, port in enumerate(ports.workers[: plan.workers], start=1):
        argv = [*_env_argv(to_environ(_with_port(settings, port))), *locust, *web]
        argv += ["--worker", "--master-host", LOOPBACK, "--master-port", str(ports.master)]
        argv += list(plan.extra_args)
        commands.append(
            LocustCommand(
                f"locust-worker-{index}",
                "locust-worker",
                argv,
                (LOOPBACK, port, "/health"),
                (LOOPBACK, port),
            )
        )
    return commands


def _with_port(settings: Settings, port: int) -> Settings:
    return replace(settings, metrics_port=port)


async def start_locust(
    supervisor: Supervisor, plan: LocustPlan, run_dir: Path, ready_timeout_s: float = 30.0
) -> LocustHandles:
    """Start the plan's Locust processes; returns once each answers HTTP (a headless run and a
    master with `--expect-workers` are running their test by then, or about to)."""
    ports = resolve_ports(plan)
    main_cmd, *worker_cmds = build_commands(plan, run_dir, ports)
    main = await supervisor.spawn_program(
        main_cmd.name, main_cmd.role, main_cmd.argv, main_cmd.ready_url, ready_timeout_s
    )
    handles = LocustHandles(
        main=main,
        web_url=None if plan.headless else f"http://{LOOPBACK}:{ports.web}",
        metrics={main_cmd.name: main_cmd.metrics},
        reports=reports_for(plan, run_dir),
    )
    workers = await asyncio.gather(
        *(
            supervisor.spawn_program(c.name, c.role, c.argv, c.ready_url, ready_timeout_s)
            for c in worker_cmds
        )
    )
    handles.workers = list(workers)
    handles.metrics.update({c.name: c.metrics for c in worker_cmds})
    return handles
